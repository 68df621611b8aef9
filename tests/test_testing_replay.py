"""`testing.check_replay`: today's code against a workflow's recorded steps, writing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

import dbos_typed as dbos
from dbos_typed import aio, testing
from tests.conftest import Backend

PATIENCE = timedelta(seconds=30)

calls: list[str] = []


def _step(name: str) -> Callable[[], str]:
    def body() -> str:
        calls.append(name)
        return name

    return body


def child(ctx: dbos.WorkflowContext, n: int) -> int:
    return n + 1


def original(ctx: dbos.WorkflowContext, order: str) -> str:
    dbos.run_as_step(ctx, _step("charge"), name="charge")
    dbos.run_workflow(ctx, child, 1).get_result()
    dbos.send(ctx, dbos.get_workflow_id(ctx), "hi", topic="note")
    note = dbos.recv[str](ctx, "note", timeout=PATIENCE)  # there already: no wait recorded
    dbos.sleep(ctx, timedelta(milliseconds=1))
    dbos.run_as_step(ctx, _step("notify"), name="notify")
    return f"{order}:{note}"


def renamed(ctx: dbos.WorkflowContext, order: str) -> str:
    dbos.run_as_step(ctx, _step("charge"), name="charge")
    dbos.run_workflow(ctx, child, 1).get_result()
    dbos.send(ctx, dbos.get_workflow_id(ctx), "hi", topic="note")
    dbos.recv[str](ctx, "note", timeout=PATIENCE)
    dbos.sleep(ctx, timedelta(milliseconds=1))
    dbos.run_as_step(ctx, _step("email"), name="email")
    return order


def longer(ctx: dbos.WorkflowContext, order: str) -> str:
    original(ctx, order)
    dbos.run_as_step(ctx, _step("audit"), name="audit")
    return order


def shorter(ctx: dbos.WorkflowContext, order: str) -> str:
    dbos.run_as_step(ctx, _step("charge"), name="charge")
    return order


def _recorded(backend: Backend) -> dbos.DBOSContext:
    """A finished run of `original`, as workflow "w"."""
    ctx = backend.context_with(original, child)
    ctx.launch()
    assert dbos.run_workflow(ctx, original, "a1", workflow_id="w").get_result(PATIENCE) == "a1:hi"
    return ctx


def _code(backend: Backend, body: Callable[[dbos.WorkflowContext, str], str]) -> dbos.DBOSContext:
    """A context where `body` is today's code of the workflow recorded as `original`."""
    ctx = backend.new_context()
    dbos.register_workflow(ctx, body, name="original")
    dbos.register_workflow(ctx, child)
    return ctx


def _rows(backend: Backend) -> list[tuple[object, ...]]:
    return backend.query(
        "SELECT workflow_uuid, function_id, function_name FROM {s}.operation_outputs "
        "ORDER BY workflow_uuid, function_id"
    )


def test_the_same_code_replays_without_running_or_writing(backend: Backend) -> None:
    ctx = _recorded(backend)
    rows, ran = _rows(backend), list(calls)
    testing.check_replay(ctx, "w")
    testing.check_replay(_code(backend, original), "w")  # not launched: it needs no runtime
    assert _rows(backend) == rows
    assert calls == ran  # no step ran again


def test_a_renamed_step_is_reported_with_both_paths(backend: Backend) -> None:
    _recorded(backend)
    ran = list(calls)
    with pytest.raises(dbos.NonDeterminismError) as info:
        testing.check_replay(_code(backend, renamed), "w")
    error = info.value
    assert (error.recorded, error.expected) == ("notify", "email")
    steps = dbos.get_workflow_steps(backend.new_context(), "w")
    assert error.step_id == next(s.step_id for s in steps if s.name == "notify")
    table = "\n".join(error.__notes__)
    assert "recorded" in table and "≠ email" in table and "notify" in table
    assert calls == ran  # the new step was not run


def test_a_finished_workflow_must_not_take_more_or_fewer_steps(backend: Backend) -> None:
    _recorded(backend)
    count = max(s.step_id for s in dbos.get_workflow_steps(backend.new_context(), "w")) + 1
    with pytest.raises(dbos.NonDeterminismError) as more:
        testing.check_replay(_code(backend, longer), "w")
    assert (more.value.step_id, more.value.recorded, more.value.expected) == (
        count,
        "(nothing)",
        "audit",
    )
    with pytest.raises(dbos.NonDeterminismError) as fewer:
        testing.check_replay(_code(backend, shorter), "w")
    assert (fewer.value.step_id, fewer.value.expected) == (1, "(the workflow returns)")


def test_a_workflow_in_flight_may_go_on_past_its_history(backend: Backend) -> None:
    ctx = backend.context_with(original, child)
    ctx.launch()
    with testing.crash_at(ctx, "notify"):
        handle = dbos.run_workflow(ctx, original, "a1", workflow_id="w")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result(PATIENCE)
    # Recovered, it would run "email" where the old code ran "notify": that is allowed.
    testing.check_replay(_code(backend, renamed), "w")
    testing.check_replay(_code(backend, longer), "w")
    with pytest.raises(dbos.NonDeterminismError) as info:
        testing.check_replay(_code(backend, shorter), "w")
    assert info.value.step_id == 1


def test_check_replay_refuses_what_it_cannot_check(backend: Backend) -> None:
    ctx = _recorded(backend)
    with pytest.raises(dbos.NonExistentWorkflowError):
        testing.check_replay(ctx, "nobody")
    with pytest.raises(dbos.RegistrationError, match="not registered"):
        testing.check_replay(backend.new_context(), "w")


async def _fetch() -> str:
    calls.append("fetch")
    return "page"


async def crawl(ctx: dbos.WorkflowContext, url: str) -> str:
    page = await aio.run_as_step(ctx, _fetch, name="fetch")
    return f"{url}:{page}"


async def crawl_renamed(ctx: dbos.WorkflowContext, url: str) -> str:
    page = await aio.run_as_step(ctx, _fetch, name="download")
    return f"{url}:{page}"


def test_an_async_workflow_is_checked_from_inside_a_running_event_loop(backend: Backend) -> None:
    ctx = backend.context_with(crawl)
    ctx.launch()
    assert dbos.run_workflow(ctx, crawl, "u", workflow_id="c").get_result(PATIENCE) == "u:page"
    today = backend.new_context()
    dbos.register_workflow(today, crawl_renamed, name=dbos.list_registered_workflows(ctx)[0].name)
    ran = list(calls)

    async def in_an_async_test() -> None:
        testing.check_replay(ctx, "c")
        with pytest.raises(dbos.NonDeterminismError) as info:
            testing.check_replay(today, "c")
        assert (info.value.recorded, info.value.expected) == ("fetch", "download")

    asyncio.run(in_an_async_test())
    assert calls == ran
