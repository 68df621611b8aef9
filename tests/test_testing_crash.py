"""`testing.crash_at` and `testing.restart`: a crash at a chosen step, then a recovery.

A simulated crash must leave the database as a kill at that point would (nothing recorded
for the step, the workflow PENDING), and a restart must recover it like a new process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

import pytest

import dbos_typed as dbos
from dbos_typed import aio, testing
from tests.conftest import Backend

# Long enough never to be reached by a prompt answer, short enough to end a hung test.
PATIENCE = timedelta(seconds=30)


def _status(backend: Backend, workflow_id: str) -> str:
    rows = backend.query(
        "SELECT status FROM {s}.workflow_status WHERE workflow_uuid = %s", workflow_id
    )
    return str(rows[0][0])


def _step_names(backend: Backend, workflow_id: str) -> list[str]:
    rows = backend.query(
        "SELECT function_name FROM {s}.operation_outputs WHERE workflow_uuid = %s "
        "ORDER BY function_id",
        workflow_id,
    )
    return [str(row[0]) for row in rows]


def _restart(backend: Backend, ctx: dbos.DBOSContext) -> dbos.DBOSContext:
    again = testing.restart(ctx)
    backend.contexts.append(again)
    return again


class Ledger:
    """Side effects the steps make, counted as a payment provider would see them."""

    def __init__(self) -> None:
        self.charges = 0
        self.notices = 0

    def charge(self) -> int:
        self.charges += 1
        return 500

    def notify(self) -> str:
        self.notices += 1
        return "sent"


def _checkout(ledger: Ledger) -> Callable[[dbos.WorkflowContext, str], str]:
    def checkout(ctx: dbos.WorkflowContext, order: str) -> str:
        charged = dbos.run_as_step(ctx, ledger.charge, name="charge")
        dbos.run_as_step(ctx, ledger.notify, name="notify")
        return f"{order}:{charged}"

    return checkout


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_at_a_step_leaves_what_a_kill_would(
    backend: Backend, when: Literal["before", "after"]
) -> None:
    ledger = Ledger()
    checkout = _checkout(ledger)
    ctx = backend.context_with(checkout)
    ctx.launch()
    with testing.crash_at(ctx, "notify", when=when) as point:
        handle = dbos.run_workflow(ctx, checkout, "a1", workflow_id="order-a1")
        with pytest.raises(testing.SimulatedCrash) as info:
            handle.get_result(timeout=PATIENCE)
    assert point.fired and point.crash is info.value
    assert (info.value.workflow_id, info.value.step_name, info.value.when) == (
        "order-a1",
        "notify",
        when,
    )
    # The step before it is recorded; the crashed step is not, whether or not it ran.
    assert _status(backend, "order-a1") == "PENDING"
    assert _step_names(backend, "order-a1") == ["charge"]
    assert (ledger.charges, ledger.notices) == (1, 1 if when == "after" else 0)

    again = _restart(backend, ctx)
    result = dbos.retrieve_workflow[str](again, "order-a1").get_result(timeout=PATIENCE)
    assert result == "a1:500"
    # The recorded charge is replayed; a notice sent just before the crash is sent again.
    assert ledger.charges == 1
    assert ledger.notices == (2 if when == "after" else 1)
    assert _step_names(backend, "order-a1") == ["charge", "notify"]


def test_the_occurrence_counts_reaches_of_the_step(backend: Backend) -> None:
    calls: list[int] = []

    def tick(i: int) -> int:
        calls.append(i)
        return i

    def loop(ctx: dbos.WorkflowContext, n: int) -> int:
        for i in range(n):
            dbos.run_as_step(ctx, functools.partial(tick, i), name="tick")
        return n

    ctx = backend.context_with(loop)
    ctx.launch()
    with testing.crash_at(ctx, "tick", occurrence=3):
        handle = dbos.run_workflow(ctx, loop, 5, workflow_id="loop")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result(timeout=PATIENCE)
    assert calls == [0, 1]
    assert _step_names(backend, "loop") == ["tick", "tick"]
    again = _restart(backend, ctx)
    assert dbos.retrieve_workflow[int](again, "loop").get_result(timeout=PATIENCE) == 5
    assert calls == [0, 1, 2, 3, 4]


def test_a_crash_in_a_child_stops_the_parent_waiting_on_it(backend: Backend) -> None:
    paid: list[str] = []

    def record(who: str) -> str:
        paid.append(who)
        return who

    def pay(ctx: dbos.WorkflowContext, who: str) -> str:
        return dbos.run_as_step(ctx, lambda: record(who), name="pay")

    def payroll(ctx: dbos.WorkflowContext, who: str) -> str:
        return dbos.run_workflow(ctx, pay, who, workflow_id="pay-ada").get_result() + "!"

    ctx = backend.context_with(pay, payroll)
    ctx.launch()
    with testing.crash_at(ctx, "pay", when="after"):
        handle = dbos.run_workflow(ctx, payroll, "ada", workflow_id="payroll")
        with pytest.raises(testing.SimulatedCrash) as info:
            handle.get_result(timeout=PATIENCE)
    assert info.value.workflow_id == "pay-ada"
    assert (_status(backend, "payroll"), _status(backend, "pay-ada")) == ("PENDING", "PENDING")
    assert _step_names(backend, "pay-ada") == []
    again = _restart(backend, ctx)
    assert dbos.retrieve_workflow[str](again, "payroll").get_result(timeout=PATIENCE) == "ada!"
    assert paid == ["ada", "ada"]


def test_a_crash_in_a_queued_workflow(backend: Backend) -> None:
    done: list[int] = []

    def record(n: int) -> int:
        done.append(n)
        return n

    def job(ctx: dbos.WorkflowContext, n: int) -> int:
        return dbos.run_as_step(ctx, lambda: record(n), name="work")

    ctx = backend.context_with(job)
    queue = dbos.register_queue(ctx, "jobs", worker_concurrency=2)
    ctx.launch()
    with testing.crash_at(ctx, "work", when="before"):
        handle = dbos.run_workflow(ctx, job, 7, queue=queue, workflow_id="job-7")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result(timeout=PATIENCE)
        # A handle made after the run stopped learns of the crash too.
        with pytest.raises(testing.SimulatedCrash):
            dbos.retrieve_workflow[int](ctx, "job-7").get_result(timeout=PATIENCE)
    assert done == []
    assert _status(backend, "job-7") == "PENDING"
    again = _restart(backend, ctx)
    assert dbos.retrieve_workflow[int](again, "job-7").get_result(timeout=PATIENCE) == 7
    assert done == [7]


def test_a_crash_at_an_awaited_step(backend: Backend) -> None:
    fetched: list[str] = []

    async def fetch(url: str) -> str:
        fetched.append(url)
        return url.upper()

    async def crawl(ctx: dbos.WorkflowContext, url: str) -> str:
        return await aio.run_as_step(ctx, lambda: fetch(url), name="fetch", result_type=str)

    ctx = backend.context_with(crawl)
    ctx.launch()
    with testing.crash_at(ctx, "fetch", when="after"):
        handle = dbos.run_workflow(ctx, crawl, "x.org", workflow_id="crawl")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result(timeout=PATIENCE)
    assert _step_names(backend, "crawl") == []
    again = _restart(backend, ctx)
    assert dbos.retrieve_workflow[str](again, "crawl").get_result(timeout=PATIENCE) == "X.ORG"
    assert fetched == ["x.org", "x.org"]


def test_a_crash_not_reached_in_the_block_is_disarmed(backend: Backend) -> None:
    def once(ctx: dbos.WorkflowContext) -> int:
        return dbos.run_as_step(ctx, lambda: 1, name="one")

    ctx = backend.context_with(once)
    ctx.launch()
    with testing.crash_at(ctx, "one") as point:
        pass
    assert not point.fired and point.crash is None
    assert dbos.run_workflow(ctx, once).get_result(timeout=PATIENCE) == 1


def test_a_replayed_step_is_not_reached(backend: Backend) -> None:
    ledger = Ledger()
    checkout = _checkout(ledger)
    ctx = backend.context_with(checkout)
    ctx.launch()
    with testing.crash_at(ctx, "notify", when="before"):
        handle = dbos.run_workflow(ctx, checkout, "b2", workflow_id="order-b2")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result(timeout=PATIENCE)
    # Resumed here: "charge" is replayed from its record, so a crash armed at it waits
    # for a run that executes it, and this one does not.
    with testing.crash_at(ctx, "charge") as point:
        resumed = dbos.resume_workflow(ctx, "order-b2")
        assert resumed.get_result(timeout=PATIENCE) == "b2:500"
    assert not point.fired
    assert ledger.charges == 1


def test_restart_keeps_registrations_and_queues(backend: Backend) -> None:
    def noop(ctx: dbos.WorkflowContext) -> str:
        return "ok"

    def other(ctx: dbos.WorkflowContext) -> str:
        return "named"

    ctx = backend.context_with(noop)
    dbos.register_workflow(ctx, other, name="named")
    dbos.listen_queues(ctx, ["jobs"])
    dbos.register_queue(ctx, "jobs")
    ctx.launch()
    before = [(w.name, w.function) for w in dbos.list_registered_workflows(ctx)]
    again = _restart(backend, ctx)
    assert [(w.name, w.function) for w in dbos.list_registered_workflows(again)] == before
    assert again._runtime.listened == ctx._runtime.listened
    assert dbos.run_workflow(again, noop, queue="jobs").get_result(timeout=PATIENCE) == "ok"
    with pytest.raises(dbos.InitializationError):
        dbos.run_workflow(ctx, noop)  # the old one is shut down


def test_crash_at_checks_its_arguments(backend: Backend) -> None:
    ctx = backend.new_context()
    for kwargs, argument in [
        ({"step": ""}, "step"),
        ({"step": "s", "when": "during"}, "when"),
        ({"step": "s", "occurrence": 0}, "occurrence"),
        ({"step": "s", "occurrence": True}, "occurrence"),
    ]:
        with pytest.raises(dbos.InvalidOptionError, match=argument):
            with testing.crash_at(ctx, **kwargs):  # type: ignore[arg-type]
                pass
    with pytest.raises(dbos.InvalidOptionError, match="ctx"):
        testing.restart("not a context")  # type: ignore[arg-type]
