"""A worker process for the multi-process queue tests: serves one queue until told to stop.

Usage: python -m tests.queue_worker <database_url> <schema> <executor_id> <mode> <settings>

`settings` is JSON with the queue's `name`, `worker_concurrency`, `concurrency` and
`polling_ms`, and optionally the executor's `heartbeat_ms`. The worker prints "ready" once
launched and stops when its stdin closes.
In `crash` mode the `work` step of every workflow prints "entered <id>" and never returns
(the test kills the process there); in `serve` mode it sleeps for the workflow's input
milliseconds and returns.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

import dbos_typed as dbos

MODE = sys.argv[4] if len(sys.argv) > 4 else "serve"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _work(workflow_id: str, hold_ms: int) -> int:
    if MODE == "crash":
        # One write call: print() writes the text and the newline separately, and lines
        # from concurrent workflows would interleave.
        os.write(1, f"entered {workflow_id}\n".encode())
        time.sleep(3600)  # killed here
    time.sleep(hold_ms / 1000)
    return hold_ms


def tracked(ctx: dbos.WorkflowContext, hold_ms: int) -> str:
    """Records when it began and ended as steps, so the test can measure overlaps."""
    wid = dbos.get_workflow_id(ctx)
    dbos.run_as_step(ctx, _now_ms, name="begin")
    dbos.run_as_step(ctx, lambda: _work(wid, hold_ms), name="work")
    dbos.run_as_step(ctx, _now_ms, name="end")
    return wid


def main() -> None:
    url, schema, executor_id, _, raw = sys.argv[1:6]
    settings = json.loads(raw)
    ctx = dbos.new_context(
        dbos.Config(
            app_name="queue-test",
            database_url=url,
            database_schema=schema,
            executor_id=executor_id,
            application_version="queue-test",
            executor_heartbeat_timeout=(
                timedelta(milliseconds=settings["heartbeat_ms"])
                if "heartbeat_ms" in settings
                else None
            ),
        )
    )
    dbos.register_workflow(ctx, tracked)
    dbos.register_queue(
        ctx,
        settings["name"],
        worker_concurrency=settings.get("worker_concurrency"),
        concurrency=settings.get("concurrency"),
        polling_interval=timedelta(milliseconds=settings.get("polling_ms", 50)),
    )
    ctx.launch()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    ctx.shutdown(timeout=timedelta(seconds=10))
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
