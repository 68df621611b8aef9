"""A process runs a bounded number of workflows at once, and child IDs stay short."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dbos_typed as dbos
from dbos_typed._core.durable import MAX_CHILD_ID_LENGTH
from tests.conftest import Backend, Gate, wait_for

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


def _held_and_where(backend: Backend, gate: Gate) -> tuple[dbos.DBOSContext, Any]:
    """A context with one workflow thread, held by a workflow until `gate` opens."""

    def held(ctx: dbos.WorkflowContext) -> None:
        dbos.run_as_step(ctx, gate, name="held")

    ctx = backend.context_with(held, where, max_workflow_threads=1)
    ctx.launch()
    blocker = dbos.run_workflow(ctx, held)
    gate.wait_entered()
    return ctx, blocker


def where(ctx: dbos.WorkflowContext) -> str:
    """The name of the thread the workflow's body ran on."""
    return threading.current_thread().name


def _in_thread(call: Callable[[], object]) -> list[object]:
    """Run `call` on a thread named "caller" and return what it returned or raised."""
    done: list[object] = []

    def caller() -> None:
        try:
            done.append(call())
        except Exception as exc:
            done.append(exc)

    thread = threading.Thread(target=caller, name="caller")
    thread.start()
    thread.join(PATIENCE.total_seconds())
    return done


def test_a_caller_waiting_on_a_run_no_thread_has_taken_runs_it_itself(backend: Backend) -> None:
    gate = Gate()
    ctx, blocker = _held_and_where(backend, gate)
    # The only workflow thread is held, yet the wait ends: the waiting thread ran the body.
    assert _in_thread(lambda: dbos.run_workflow(ctx, where).get_result()) == ["caller"]
    gate.released.set()
    blocker.get_result(timeout=PATIENCE)
    assert pool_threads(ctx) == 1


def _held_hand_off(ctx: dbos.DBOSContext) -> None:
    """Make direct starts wait a minute for their callers before any worker gets them."""
    ctx._runtime.late_hand_off.grace = 60


def test_a_caller_that_waits_on_its_starts_wakes_no_workflow_thread(backend: Backend) -> None:
    ctx = backend.context_with(where)
    ctx.launch()
    _held_hand_off(ctx)
    ran = _in_thread(lambda: [dbos.run_workflow(ctx, where).get_result() for _ in range(5)])
    assert ran == [["caller"] * 5]
    # No worker was woken for runs their callers took: the pool never started a thread.
    assert pool_threads(ctx) == 0


def test_a_start_nobody_waits_on_still_reaches_a_workflow_thread(backend: Backend) -> None:
    ctx = backend.context_with(where)
    ctx.launch()
    (handle,) = _in_thread(lambda: dbos.run_workflow(ctx, where))
    assert isinstance(handle, dbos.WorkflowHandle)
    assert handle.get_result(timeout=PATIENCE) not in ("caller", threading.main_thread().name)


def test_shutdown_hands_untaken_runs_to_the_workflow_threads(backend: Backend) -> None:
    ctx = backend.context_with(where)
    ctx.launch()
    _held_hand_off(ctx)
    (handle,) = _in_thread(lambda: dbos.run_workflow(ctx, where))
    assert isinstance(handle, dbos.WorkflowHandle)
    execution = ctx._runtime.running_execution(handle.workflow_id)
    assert execution is not None and not execution.future.done()
    ctx.shutdown(timeout=PATIENCE)
    # Within the shutdown's wait, not a minute later: the run went to a worker and ended.
    assert execution.future.done()


def test_a_bounded_wait_leaves_the_run_to_the_workflow_threads(backend: Backend) -> None:
    gate = Gate()
    ctx, blocker = _held_and_where(backend, gate)
    handle = dbos.run_workflow(ctx, where)
    (timed_out,) = _in_thread(lambda: handle.get_result(timeout=timedelta(milliseconds=100)))
    assert isinstance(timed_out, dbos.WaitTimeoutError)
    gate.released.set()
    assert handle.get_result(timeout=PATIENCE) != "caller"
    blocker.get_result(timeout=PATIENCE)


def test_a_run_awaited_from_the_main_thread_runs_on_a_workflow_thread(backend: Backend) -> None:
    # An interrupt (Ctrl-C) on the main thread must reach the caller, not the body.
    ctx = backend.context_with(where)
    ctx.launch()
    names = {dbos.run_workflow(ctx, where).get_result() for _ in range(20)}
    assert threading.main_thread().name not in names


def pool_threads(ctx: dbos.DBOSContext) -> int:
    return ctx._runtime.workers.thread_count()
