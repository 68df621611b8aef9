"""The awaitable debouncer, schedule management and garbage collection of `dbos_typed.aio`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

import dbos_typed as dbos
from dbos_typed import aio
from tests.conftest import Backend

WAIT = timedelta(seconds=20)
HOLD = timedelta(seconds=60)  # a burst never fires by itself during a test
HOURLY = "0 0 * * * *"


def collect(ctx: dbos.WorkflowContext, value: str) -> str:
    return value


def report(ctx: dbos.WorkflowContext, run: dbos.ScheduledInput[None]) -> str:
    return run.scheduled_time.isoformat()


def test_an_awaited_burst_runs_once_with_the_last_input(backend: Backend) -> None:
    ctx = backend.context_with(collect)
    debouncer = aio.new_debouncer(ctx, collect, max_wait=timedelta(minutes=5))
    assert debouncer.workflow_name == dbos.new_debouncer(ctx, collect).workflow_name
    assert debouncer.queue_name == "_dbos_internal_queue"
    assert debouncer.max_wait == timedelta(minutes=5)
    ctx.launch()

    async def burst() -> tuple[set[str], str]:
        handles = [await debouncer.debounce(ctx, "k", f"v{i}", delay=HOLD) for i in range(3)]
        last = await debouncer.debounce(ctx, "k", "last", delay=timedelta(0))
        assert isinstance(last, aio.AsyncWorkflowHandle)
        return {h.workflow_id for h in [*handles, last]}, await last.get_result(timeout=WAIT)

    ids, result = asyncio.run(burst())
    assert len(ids) == 1 and result == "last"
    [status] = dbos.list_workflows(ctx, workflow_ids=list(ids))
    assert status.status == "SUCCESS"


def test_the_awaited_debouncer_refuses_what_the_blocking_one_does(backend: Backend) -> None:
    ctx = backend.context_with(collect)
    ctx.launch()
    debouncer = aio.new_debouncer(ctx, collect)

    async def refused() -> list[str]:
        arguments = []
        for call in (
            debouncer.debounce(ctx, "", "v", delay=HOLD),
            debouncer.debounce(ctx, "k", "v", delay=timedelta(seconds=-1)),
        ):
            with pytest.raises(dbos.InvalidOptionError) as info:
                await call
            arguments.append(info.value.argument)
        return arguments

    assert asyncio.run(refused()) == ["key", "delay"]
    with pytest.raises(dbos.RegistrationError):
        aio.new_debouncer(ctx, report)


def test_a_debounce_from_an_async_workflow_is_a_step(backend: Backend) -> None:
    ctx = backend.context_with(collect)
    debouncer = aio.new_debouncer(ctx, collect)

    async def caller(ctx: dbos.WorkflowContext) -> str:
        handle = await debouncer.debounce(ctx, "from-wf", "inner", delay=timedelta(0))
        return await handle.get_result()

    dbos.register_workflow(ctx, caller)
    ctx.launch()
    assert dbos.run_workflow(ctx, caller, workflow_id="caller").get_result() == "inner"
    steps = dbos.get_workflow_steps(ctx, "caller")
    assert steps[0].child_workflow_id == "caller-0"


def test_schedules_are_managed_by_awaiting(backend: Backend) -> None:
    ctx = backend.context_with(report)
    ctx.launch()

    async def manage() -> None:
        created = await aio.create_schedule(ctx, "hourly", report, HOURLY)
        assert created.schedule_name == "hourly"
        assert (await aio.get_schedule(ctx, "hourly")).status == dbos.ScheduleStatus.ACTIVE
        await aio.pause_schedule(ctx, "hourly")
        assert (await aio.get_schedule(ctx, "hourly")).status == dbos.ScheduleStatus.PAUSED
        await aio.resume_schedule(ctx, "hourly")
        listed = await aio.list_schedules(ctx)
        assert [s.schedule_name for s in listed] == ["hourly"]

        start = datetime(2026, 1, 1, tzinfo=UTC)
        ids = await aio.backfill_schedule(ctx, "hourly", start, start + timedelta(hours=3))
        assert len(ids) == 2  # the ticks strictly between start and end
        for workflow_id in ids:
            handle = await aio.retrieve_workflow[str](ctx, workflow_id)
            assert datetime.fromisoformat(await handle.get_result(timeout=WAIT)) > start

        triggered = await aio.trigger_schedule[str](ctx, "hourly")
        assert isinstance(triggered, aio.AsyncWorkflowHandle)
        assert triggered.workflow_id.startswith("sched-hourly-trigger-")
        assert datetime.fromisoformat(await triggered.get_result(timeout=WAIT))
        untyped = await aio.trigger_schedule(ctx, "hourly")
        assert isinstance(await untyped.get_result(timeout=WAIT), str)

        await aio.apply_schedules(ctx, [dbos.ScheduleSpec("daily", report, "0 0 0 * * *")])
        await aio.delete_schedule(ctx, "hourly")
        assert [s.schedule_name for s in await aio.list_schedules(ctx)] == ["daily"]
        with pytest.raises(dbos.ScheduleNotFoundError):
            await aio.get_schedule(ctx, "hourly")
        with pytest.raises(dbos.ScheduleNotFoundError):
            await aio.trigger_schedule(ctx, "hourly")

    asyncio.run(manage())


def test_garbage_collection_by_awaiting(backend: Backend) -> None:
    ctx = backend.context_with(collect)
    ctx.launch()
    dbos.run_workflow(ctx, collect, "a", workflow_id="old").get_result()
    dbos.run_workflow(ctx, collect, "b", workflow_id="new").get_result()

    async def collect_garbage() -> list[int]:
        kept = await aio.garbage_collect(ctx, keep_rows=1)
        rest = await aio.garbage_collect(ctx, cutoff=datetime.now(UTC) + timedelta(minutes=1))
        with pytest.raises(dbos.InvalidOptionError):
            await aio.garbage_collect(ctx)
        return [kept, rest]

    assert asyncio.run(collect_garbage()) == [1, 1]
    assert dbos.list_workflows(ctx) == []
