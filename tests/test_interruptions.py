"""Runs that stop without an outcome, and failures that cannot describe themselves.

An exception that is not an `Exception` (`SystemExit`, `KeyboardInterrupt`, ...) stops a
run as a crash would: nothing is recorded and the workflow stays PENDING for recovery;
whoever waits on that run is told at once. An exception whose message cannot be read is
still recorded, with a placeholder.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import dbos_typed as dbos
from tests.conftest import Backend

# Long enough never to be reached by a prompt answer, short enough to end a hung test.
PATIENCE = timedelta(seconds=30)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words")


def _status(backend: Backend, workflow_id: str) -> str:
    rows = backend.query(
        "SELECT status FROM {s}.workflow_status WHERE workflow_uuid = %s", workflow_id
    )
    return str(rows[0][0])


@pytest.mark.parametrize("signal", [SystemExit(3), KeyboardInterrupt()], ids=type)
def test_a_body_that_exits_leaves_the_workflow_pending_and_tells_the_caller(
    backend: Backend, signal: BaseException
) -> None:
    stop = [True]

    def exits(ctx: dbos.WorkflowContext, n: int) -> int:
        dbos.run_as_step(ctx, lambda: n, name="first")
        if stop[0]:
            raise signal
        return n * 2

    ctx = backend.context_with(exits)
    ctx.launch()
    handle = dbos.run_workflow(ctx, exits, 21, workflow_id="exits")
    with pytest.raises(dbos.WorkflowInterruptedError) as info:
        handle.get_result(timeout=PATIENCE)
    assert info.value.workflow_id == "exits"
    assert info.value.reason.startswith(type(signal).__name__)
    assert info.value.__cause__ is signal
    assert _status(backend, "exits") == "PENDING"
    assert [s.name for s in dbos.get_workflow_steps(ctx, "exits")] == ["first"]
    ctx.shutdown()

    stop[0] = False  # the next launch recovers it, as after a crash
    again = backend.context_with(exits)
    again.launch()
    assert dbos.retrieve_workflow[int](again, "exits").get_result(timeout=PATIENCE) == 42


def test_a_step_that_exits_records_nothing_for_the_step(backend: Backend) -> None:
    def step() -> int:
        raise SystemExit("bye")

    def exits_in_step(ctx: dbos.WorkflowContext) -> int:
        return dbos.run_as_step(ctx, step, name="exits", max_retries=3)

    ctx = backend.context_with(exits_in_step)
    ctx.launch()
    handle = dbos.run_workflow(ctx, exits_in_step, workflow_id="in-step")
    with pytest.raises(dbos.WorkflowInterruptedError, match="SystemExit: bye"):
        handle.get_result(timeout=PATIENCE)
    assert _status(backend, "in-step") == "PENDING"
    assert dbos.get_workflow_steps(ctx, "in-step") == []


def test_an_async_body_that_exits_tells_the_caller(backend: Backend) -> None:
    async def exits_later(ctx: dbos.WorkflowContext) -> int:
        raise KeyboardInterrupt

    ctx = backend.context_with(exits_later)
    ctx.launch()
    handle = dbos.run_workflow(ctx, exits_later, workflow_id="async")
    with pytest.raises(dbos.WorkflowInterruptedError):
        handle.get_result(timeout=PATIENCE)
    assert _status(backend, "async") == "PENDING"


def test_a_parent_waiting_on_an_interrupted_child_stops_with_it(backend: Backend) -> None:
    def child(ctx: dbos.WorkflowContext) -> int:
        raise SystemExit(1)

    def parent(ctx: dbos.WorkflowContext) -> int:
        return dbos.run_workflow(ctx, child, workflow_id="child").get_result() + 1

    ctx = backend.context_with(child, parent)
    ctx.launch()
    handle = dbos.run_workflow(ctx, parent, workflow_id="parent")
    with pytest.raises(dbos.WorkflowInterruptedError) as info:
        handle.get_result(timeout=PATIENCE)
    assert info.value.workflow_id == "parent" and "child" in info.value.reason
    # Neither outcome was recorded: both are run again when recovered.
    assert (_status(backend, "parent"), _status(backend, "child")) == ("PENDING", "PENDING")
    # Only the child's start is recorded, not the wait for its result.
    assert [s.child_workflow_id for s in dbos.get_workflow_steps(ctx, "parent")] == ["child"]


def test_an_exception_that_cannot_describe_itself_is_still_recorded(backend: Backend) -> None:
    def fails(ctx: dbos.WorkflowContext) -> int:
        raise Unprintable

    def step() -> int:
        raise Unprintable

    def fails_in_step(ctx: dbos.WorkflowContext) -> int:
        return dbos.run_as_step(ctx, step, name="s")

    ctx = backend.context_with(fails, fails_in_step)
    ctx.launch()
    for fn, workflow_id in ((fails, "body"), (fails_in_step, "step")):
        handle = dbos.run_workflow(ctx, fn, workflow_id=workflow_id)
        with pytest.raises(dbos.WorkflowFailedError) as info:
            handle.get_result(timeout=PATIENCE)
        assert info.value.error_name == "Unprintable"
        assert info.value.error_message == "<Unprintable whose str() raised RuntimeError>"
        assert _status(backend, workflow_id) == "ERROR"
