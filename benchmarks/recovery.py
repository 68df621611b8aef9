"""Recovery: 1,000 PENDING workflows left by a killed process, back to done after launch().

Usage: python -m benchmarks.recovery [--url postgresql://...] [--workflows N]

A child process starts `--workflows` workflows that each record one step and then block;
once every one of them has recorded its step, the child is killed with SIGKILL. A new
context with the same executor ID and application version then launches on the same
database, and the figure is the time from calling `launch()` until the last recovered
workflow has finished (each replays its recorded step from the database and completes).
The target is 1 s for 1,000 workflows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psycopg

import dbos_typed as dbos
from benchmarks._harness import as_url, base_parser, drop_database, fresh_database

VERSION = "recovery-v1"
_blocked = threading.Event()  # never set in the child: its workflows wait to be killed
_recovering = False


def _record() -> int:
    return 1


def held(ctx: dbos.WorkflowContext, n: int) -> int:
    dbos.run_as_step(ctx, _record, name="record")
    if not _recovering:
        _blocked.wait()
    return n


def _config(url: str) -> dbos.Config:
    return dbos.Config(
        app_name="bench",
        database_url=url,
        application_version=VERSION,
        executor_id="bench-executor",
        max_connections=20,
    )


def _doomed(url: str, workflows: int) -> None:
    """Start the workflows, say so once each has recorded its step, and wait to be killed."""
    ctx = dbos.new_context(_config(url))
    dbos.register_workflow(ctx, held)
    ctx.launch()
    for n in range(workflows):
        dbos.run_workflow(ctx, held, n, workflow_id=f"held-{n}")
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM dbos.operation_outputs").fetchone()
            if row is not None and row[0] >= workflows:
                break
            time.sleep(0.05)
    print("ready", flush=True)
    time.sleep(3600)


def _recover(url: str, workflows: int) -> float:
    global _recovering
    _recovering = True
    ctx = dbos.new_context(_config(url))
    dbos.register_workflow(ctx, held)
    begin = time.perf_counter()
    ctx.launch()
    try:
        for n in range(workflows):
            dbos.retrieve_workflow[int](ctx, f"held-{n}").get_result()
        return time.perf_counter() - begin
    finally:
        ctx.shutdown()


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--doomed", action="store_true", help="internal: the killed process")
    args = parser.parse_args()
    if args.doomed:
        _doomed(args.url, args.workflows)
        return
    target = fresh_database(args.url)
    url = as_url(target)
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.recovery",
                "--doomed",
                "--url",
                url,
                "--workflows",
                str(args.workflows),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready", line
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM dbos.workflow_status WHERE status = 'PENDING'"
            ).fetchone()
        pending = row[0] if row else 0
        seconds = _recover(url, args.workflows)
        print(
            f"{pending} PENDING workflows left by a killed process; launch() to all "
            f"{args.workflows} finished: {seconds * 1000:.0f} ms "
            f"({args.workflows / seconds:.0f} workflows/s)"
        )
    finally:
        drop_database(args.url, target)


if __name__ == "__main__":
    main()
