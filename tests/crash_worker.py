"""A worker process for the crash tests: runs workflows until killed, or recovers them.

Usage: python -m tests.crash_worker <database_url> <schema> <log_path> start|recover <count>

Every step appends "<workflow> <step> start|done" to the log before and after its work, so
the test can count executions across processes. In `start` mode the third step never
finishes (the process is killed there); in `recover` mode it does.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from datetime import timedelta

import dbos_typed as dbos

MODE = sys.argv[4] if len(sys.argv) > 4 else "start"


def _log(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _step(log: str, workflow_id: str, n: int) -> int:
    _log(log, f"{workflow_id} {n} start")
    if n == 2 and MODE == "start":
        # One write per line: print() writes the text and the newline separately, so
        # lines from concurrent workflows could merge and the test would miss one.
        sys.stdout.write(f"entered {workflow_id}\n")
        sys.stdout.flush()
        time.sleep(3600)  # killed here
    _log(log, f"{workflow_id} {n} done")
    return n


def three_steps(ctx: dbos.WorkflowContext, log: str) -> int:
    wid = dbos.get_workflow_id(ctx)
    total = 0
    for n in range(4):
        total += dbos.run_as_step(ctx, functools.partial(_step, log, wid, n), name=f"step-{n}")
    return total


def main() -> None:
    url, schema, log, mode, count = sys.argv[1:6]
    ctx = dbos.new_context(
        dbos.Config(
            app_name="crash-test",
            database_url=url,
            database_schema=schema,
            application_version="crash-test",
        )
    )
    dbos.register_workflow(ctx, three_steps)
    ctx.launch()
    ids = [f"crash-{i}" for i in range(int(count))]
    if mode == "start":
        for wid in ids:
            dbos.run_workflow(ctx, three_steps, log, workflow_id=wid)
        time.sleep(3600)  # the test kills this process
    for wid in ids:
        result = dbos.retrieve_workflow[int](ctx, wid).get_result(timeout=timedelta(seconds=60))
        assert result == 6, result
    ctx.shutdown()
    print("recovered", len(ids))


if __name__ == "__main__":
    main()
