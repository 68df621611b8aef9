"""A worker process for the messaging crash test: it SIGKILLs itself right after a send
commits, then a second run recovers the workflows.

Usage: python -m tests.crash_messaging_worker <database_url> <schema> start|recover <count>

`count` sender workflows each send three messages (with a step in between) to their own
receiver workflow, which receives all three. In `start` mode the process kills itself the
moment the fourth send has committed, before any workflow sees that send return.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import timedelta
from typing import Any

import dbos_typed as dbos

MESSAGES = 3
KILL_AFTER = 4

# Senders start sending only once every workflow exists, so each receiver has a sender.
ALL_STARTED = threading.Event()


def receiver(ctx: dbos.WorkflowContext) -> list[int]:
    return [dbos.recv[int](ctx, "m", timeout=timedelta(seconds=60)) for _ in range(MESSAGES)]


def sender(ctx: dbos.WorkflowContext, destination: str) -> int:
    dbos.run_as_step(ctx, lambda: ALL_STARTED.wait(60), name="wait-for-all")
    for n in range(MESSAGES):
        dbos.send(ctx, destination, n, "m")
        dbos.run_as_step(ctx, lambda: None, name=f"after-{n}")
    return MESSAGES


def _kill_after_commits(ctx: dbos.DBOSContext, limit: int) -> None:
    store = ctx._runtime.store
    original = store.send_message
    lock = threading.Lock()
    committed = [0]

    def send_message(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        with lock:
            committed[0] += 1
            if committed[0] >= limit:
                os.kill(os.getpid(), signal.SIGKILL)  # committed, but nobody saw it return
        return result

    setattr(store, "send_message", send_message)  # noqa: B010


def main() -> None:
    url, schema, mode, count = sys.argv[1:5]
    ctx = dbos.new_context(
        dbos.Config(
            app_name="crash-messaging",
            database_url=url,
            database_schema=schema,
            application_version="crash-messaging",
        )
    )
    dbos.register_workflow(ctx, receiver)
    dbos.register_workflow(ctx, sender)
    ctx.launch()
    ids = range(int(count))
    if mode == "start":
        _kill_after_commits(ctx, KILL_AFTER)
        for i in ids:
            dbos.run_workflow(ctx, receiver, workflow_id=f"recv-{i}")
        for i in ids:
            dbos.run_workflow(ctx, sender, f"recv-{i}", workflow_id=f"send-{i}")
        ALL_STARTED.set()
        threading.Event().wait(120)  # killed long before
        raise SystemExit("the worker was expected to kill itself")
    ALL_STARTED.set()
    for i in ids:
        received = dbos.retrieve_workflow[list[int]](ctx, f"recv-{i}").get_result(
            timeout=timedelta(seconds=60)
        )
        assert received == list(range(MESSAGES)), received
        sent = dbos.retrieve_workflow[int](ctx, f"send-{i}").get_result()
        assert sent == MESSAGES
    ctx.shutdown()
    print("recovered", len(ids))


if __name__ == "__main__":
    main()
