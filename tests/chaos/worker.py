"""The chaos soak's worker: runs a mix of durable features until every workflow is done.

Usage: python -m tests.chaos.worker <database_url> <schema> <log_path> <count>

Each run starts (or finds again, by ID) the same `count` workflows, recovers whatever a
killed predecessor left, and exits 0 once all have finished. Every step appends a line to
the log when it runs, so the test can count executions across kills.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from datetime import timedelta

import dbos_typed as dbos

# Set by main(); a module imported elsewhere (another test) logs nowhere.
LOG = os.devnull
RUN = os.environ.get("DBOS_TYPED_CHAOS_RUN", "0")  # which life of the worker this is


def _log(line: str) -> None:
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _work(workflow_id: str, step: str, value: int) -> int:
    _log(f"{workflow_id} {step} {RUN}")
    time.sleep(0.03)  # a step with some duration, so kills also land inside steps
    return value


def task(ctx: dbos.WorkflowContext, n: int) -> int:
    wid = dbos.get_workflow_id(ctx)
    return dbos.run_as_step(ctx, functools.partial(_work, wid, "task", n * n), name="task")


def mixed(ctx: dbos.WorkflowContext, i: int) -> int:
    wid = dbos.get_workflow_id(ctx)
    first = dbos.run_as_step(ctx, functools.partial(_work, wid, "first", i), name="first")
    child = dbos.run_workflow(ctx, task, i).get_result()
    queued = dbos.run_workflow(ctx, task, i + 1, queue="chaos").get_result()
    dbos.send(ctx, wid, i * 7, topic="self")
    try:  # a value that cannot round-trip is refused, and nothing is sent
        dbos.send(ctx, wid, float("nan"), topic="refused")
    except dbos.SerializationError:
        pass
    message = dbos.recv[int](ctx, "self", timeout=timedelta(seconds=60))
    dbos.set_event(ctx, "progress", "halfway")
    for _ in range(3):  # stretch each run, so kills land in the middle of the work
        dbos.sleep(ctx, timedelta(milliseconds=150))
    last = dbos.run_as_step(ctx, functools.partial(_work, wid, "last", message), name="last")
    return first + child + queued + last


def expected(i: int) -> int:
    return i + i * i + (i + 1) * (i + 1) + i * 7


def main() -> None:
    global LOG
    url, schema, LOG, count = sys.argv[1:5]
    ctx = dbos.new_context(
        dbos.Config(
            app_name="chaos",
            database_url=url,
            database_schema=schema,
            application_version="chaos",
            # Lives alternate between two executor IDs: a life finds the leftovers of the
            # one before it (another executor, killed) through heartbeats, and those of
            # the one before that through recovery at launch.
            executor_id=f"chaos-{int(RUN) % 2}",
            executor_heartbeat_timeout=timedelta(seconds=1),
        )
    )
    dbos.register_workflow(ctx, task)
    dbos.register_workflow(ctx, mixed)
    dbos.register_queue(ctx, "chaos", worker_concurrency=8)
    ctx.launch()
    handles = [
        dbos.run_workflow(ctx, mixed, i, workflow_id=f"chaos-{i}") for i in range(int(count))
    ]
    os.write(1, b"ready\n")
    for i, handle in enumerate(handles):
        assert handle.get_result(timeout=timedelta(seconds=120)) == expected(i)
    ctx.shutdown()
    print("all done", flush=True)


if __name__ == "__main__":
    main()
