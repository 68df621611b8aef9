"""A process runs a bounded number of workflows at once, and child IDs stay short."""

from __future__ import annotations

import threading
from datetime import timedelta

import dbos_typed as dbos
from dbos_typed._core.durable import MAX_CHILD_ID_LENGTH
from tests.conftest import Backend, wait_for

PATIENCE = timedelta(seconds=30)


def test_a_workflow_that_starts_itself_stops_at_the_thread_cap(backend: Backend) -> None:
    def forever(ctx: dbos.WorkflowContext, depth: int) -> int:
        return dbos.run_workflow(ctx, forever, depth + 1).get_result()

    ctx = backend.context_with(forever, max_workflow_threads=4)
    ctx.launch()
    dbos.run_workflow(ctx, forever, 0, workflow_id="r" * 120)
    pool = ctx._runtime.workers

    def rows() -> int:
        return int(str(backend.query("SELECT count(*) FROM {s}.workflow_status")[0][0]))

    # Four run and wait on their children; the fifth is recorded and waits for a thread.
    wait_for(lambda: rows() == 5 and pool.spare() == -1)
    assert pool.thread_count() == 4
    ids = [w.workflow_id for w in dbos.list_workflows(ctx)]
    assert max(len(i) for i in ids) <= MAX_CHILD_ID_LENGTH
    dbos.cancel_workflow(ctx, "r" * 120, cancel_children=True)
    ctx.shutdown()
    assert rows() == 5


def test_the_queue_runner_claims_only_what_it_has_threads_for(backend: Backend) -> None:
    entered = threading.Semaphore(0)
    release = threading.Event()

    def held(ctx: dbos.WorkflowContext, n: int) -> int:
        def wait() -> None:
            entered.release()
            release.wait(30)

        dbos.run_as_step(ctx, wait, name="wait")
        return n

    ctx = backend.context_with(held, max_workflow_threads=2)
    queue = dbos.register_queue(ctx, "wide", polling_interval=timedelta(milliseconds=20))
    ctx.launch()
    handles = [dbos.run_workflow(ctx, held, n, queue=queue) for n in range(5)]
    assert entered.acquire(timeout=10) and entered.acquire(timeout=10)
    statuses = sorted(h.get_status().status.value for h in handles)
    assert statuses == ["ENQUEUED"] * 3 + ["PENDING"] * 2  # the rest stay for other executors
    release.set()
    assert [h.get_result(timeout=PATIENCE) for h in handles] == [0, 1, 2, 3, 4]
