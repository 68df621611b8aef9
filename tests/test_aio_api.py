"""The awaitable API from async application code: nothing blocks the caller's loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

import dbos_typed as dbos
from dbos_typed import aio
from tests.conftest import Backend, Gate, wait_for


def test_awaiting_a_result_leaves_the_loop_free(backend: Backend) -> None:
    gate = Gate()

    def gated(ctx: dbos.WorkflowContext, n: int) -> int:
        dbos.run_as_step(ctx, gate, name="gate")
        return n + 1

    ctx = backend.context_with(gated)
    ctx.launch()

    async def main() -> tuple[int, dbos.StatusName]:
        handle = await aio.run_workflow(ctx, gated, 41, workflow_id="gated")
        assert isinstance(handle, aio.AsyncWorkflowHandle)
        result = asyncio.create_task(handle.get_result(timeout=timedelta(seconds=20)))
        # This coroutine goes on while the result is awaited; were the wait blocking the
        # loop, the gate would never open.
        await asyncio.to_thread(gate.wait_entered)
        pending = (await handle.get_status()).status
        gate.open()
        assert pending == "PENDING"
        return await result, (await handle.get_status()).status

    assert asyncio.run(main()) == (42, "SUCCESS")


def test_enqueue_and_retrieve_from_a_client(backend: Backend) -> None:
    async def double(ctx: dbos.WorkflowContext, n: int) -> int:
        return 2 * n

    ctx = backend.context_with(double)
    dbos.register_queue(ctx, "jobs")
    ctx.launch()

    async def main() -> tuple[int, int, str | None]:
        with dbos.new_client(backend.config()) as client:
            name = "test_enqueue_and_retrieve_from_a_client.<locals>.double"
            handle = await aio.enqueue[int](client, "jobs", name, 21, workflow_id="job-1")
            result = await handle.get_result(timeout=timedelta(seconds=20))
            again = await aio.retrieve_workflow[int](client, "job-1")
            untyped = await aio.retrieve_workflow(ctx, "job-1")
            return result, await again.get_result(), (await untyped.get_status()).queue_name

    assert asyncio.run(main()) == (42, 42, "jobs")


def test_debounce_from_a_client(backend: Backend) -> None:
    def collect(ctx: dbos.WorkflowContext, text: str) -> str:
        return text

    ctx = backend.new_context()
    dbos.register_workflow(ctx, collect, name="collect")
    ctx.launch()
    hold, now = timedelta(seconds=60), timedelta(0)

    async def main() -> tuple[str, str, dbos.JsonValue]:
        with dbos.new_client(backend.config()) as client:
            first = await aio.debounce[str](client, "collect", "k", "one", delay=hold)
            joined = await aio.debounce[str](client, "collect", "k", "two", delay=now)
            assert first.workflow_id == joined.workflow_id
            assert (await first.get_status()).status in (
                "DELAYED",
                "ENQUEUED",
                "PENDING",
                "SUCCESS",
            )
            untyped = await aio.debounce(
                client, "collect", "other", "three", delay=now, workflow_id="burst-2"
            )
            with pytest.raises(dbos.InvalidOptionError) as info:
                await aio.debounce(client, "collect", "", "v", delay=now)
            assert info.value.argument == "key"
            return (
                await joined.get_result(timeout=timedelta(seconds=20)),
                untyped.workflow_id,
                await untyped.get_result(timeout=timedelta(seconds=20)),
            )

    assert asyncio.run(main()) == ("two", "burst-2", "three")


def test_events_and_streams_are_read_as_they_come(backend: Backend) -> None:
    gate = Gate()

    async def producer(ctx: dbos.WorkflowContext) -> None:
        await aio.run_as_step(ctx, gate, name="gate")
        await aio.set_event(ctx, "progress", 50)
        for n in range(3):
            await aio.write_stream(ctx, "numbers", n)
        await aio.close_stream(ctx, "numbers")

    ctx = backend.context_with(producer)
    ctx.launch()

    async def main() -> tuple[int, list[int]]:
        await aio.run_workflow(ctx, producer, workflow_id="producer")
        event = asyncio.create_task(aio.get_event[int](ctx, "producer", "progress"))
        numbers = [n async for n in aio.read_stream[int](ctx, "producer", "numbers", snapshot=True)]
        assert numbers == []  # nothing written yet
        gate.open()
        streamed = [n async for n in aio.read_stream[int](ctx, "producer", "numbers")]
        return await event, streamed

    assert asyncio.run(main()) == (50, [0, 1, 2])


def test_messages_from_async_code_reach_an_async_receiver(backend: Backend) -> None:
    async def receiver(ctx: dbos.WorkflowContext) -> str:
        await aio.set_event(ctx, "ready", True)
        return await aio.recv[str](ctx, "greeting", timeout=timedelta(seconds=20))

    ctx = backend.context_with(receiver)
    ctx.launch()

    async def main() -> str:
        handle = await aio.run_workflow(ctx, receiver, workflow_id="receiver")
        await aio.get_event[bool](ctx, "receiver", "ready", timeout=timedelta(seconds=10))
        await aio.send(ctx, "receiver", "hello", "greeting")
        return await handle.get_result(timeout=timedelta(seconds=20))

    assert asyncio.run(main()) == "hello"


def test_cancel_resume_fork_and_list_from_async_code(backend: Backend) -> None:
    gate = Gate()

    def resumable(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, lambda: "first", name="first")
        dbos.run_as_step(ctx, gate, name="gate")
        return "done"

    ctx = backend.context_with(resumable)
    ctx.launch()

    async def main() -> list[object]:
        await aio.run_workflow(ctx, resumable, workflow_id="steered")
        await asyncio.to_thread(gate.wait_entered)
        await aio.cancel_workflow(ctx, "steered")
        [cancelled] = await aio.list_workflows(ctx, workflow_ids=["steered"])
        gate.open()
        resumed = await aio.resume_workflow(ctx, "steered")
        outcome = await resumed.get_result(timeout=timedelta(seconds=20))
        steps = await aio.get_workflow_steps(ctx, "steered")
        fork = await aio.fork_workflow(ctx, "steered", 1, new_workflow_id="forked")
        forked = await fork.get_result(timeout=timedelta(seconds=20))
        queued = await aio.list_queued_workflows(ctx)
        return [cancelled.status, outcome, [s.name for s in steps], forked, queued]

    assert asyncio.run(main()) == ["CANCELLED", "done", ["first", "gate"], "done", []]


def test_batch_steering_attributes_and_deletion_from_async_code(backend: Backend) -> None:
    def waits(ctx: dbos.WorkflowContext, tag: str) -> str:
        return tag

    ctx = backend.context_with(waits)
    dbos.register_queue(ctx, "later")
    ctx.launch()

    async def main() -> list[object]:
        for tag in ("a", "b"):
            await aio.run_workflow(
                ctx, waits, tag, workflow_id=tag, queue="later", delay=timedelta(hours=1)
            )
        await aio.cancel_workflows(ctx, ["a", "b", "missing"])
        cancelled = [w.status for w in await aio.list_workflows(ctx)]
        handles = await aio.resume_workflows(ctx, ["b", "a"])
        results = [await h.get_result(timeout=timedelta(seconds=20)) for h in handles]
        await aio.set_workflow_attributes(ctx, "a", {"team": "x"})
        [labelled] = await aio.list_workflows(ctx, workflow_ids=["a"])
        [copy] = await aio.fork_workflows(ctx, [("a", 0, "a-copy")])
        copied = await copy.get_result(timeout=timedelta(seconds=20))
        await aio.delete_workflows(ctx, ["a", "b", "a-copy"])
        return [cancelled, results, labelled.attributes, copied, await aio.list_workflows(ctx)]

    assert asyncio.run(main()) == [
        ["CANCELLED", "CANCELLED"],
        ["b", "a"],
        {"team": "x"},
        "a",
        [],
    ]


def test_cancelling_an_awaiting_task_ends_its_wait(backend: Backend) -> None:
    gate = Gate()

    def silent(ctx: dbos.WorkflowContext) -> None:
        dbos.run_as_step(ctx, gate, name="gate")

    ctx = backend.context_with(silent)
    ctx.launch()
    handle = dbos.run_workflow(ctx, silent, workflow_id="silent")
    gate.wait_entered()
    event_key = ("dbos_workflow_events_channel", "silent::never")
    stream_key = ("dbos_streams_channel", "silent::never")
    waiters = ctx._runtime.waiters

    async def main() -> None:
        long = timedelta(seconds=60)
        tasks = [
            asyncio.create_task(aio.get_event[int](ctx, "silent", "never", timeout=long)),
            asyncio.create_task(first_value(aio.read_stream[int](ctx, "silent", "never"))),
            asyncio.create_task(
                (await aio.retrieve_workflow(ctx, "silent")).get_result(timeout=long)
            ),
        ]
        await asyncio.to_thread(
            wait_for, lambda: waiters.count(event_key) == 1 and waiters.count(stream_key) == 1
        )
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

    start = time.monotonic()
    asyncio.run(main())  # returns only once no thread of its executor is left waiting
    assert time.monotonic() - start < 10  # the waits had 60 s to go
    assert waiters.count(event_key) == waiters.count(stream_key) == 0
    gate.open()
    assert handle.get_result(timeout=timedelta(seconds=10)) is None  # the workflow ran on


async def first_value(values: AsyncIterator[int]) -> int:
    return await anext(values)


def test_errors_are_raised_when_awaited(backend: Backend) -> None:
    ctx = backend.context_with()
    ctx.launch()

    async def main() -> None:
        missing = aio.retrieve_workflow(ctx, "missing")  # nothing raised yet
        with pytest.raises(dbos.NonExistentWorkflowError):
            await missing
        with pytest.raises(dbos.InvalidOptionError):
            await aio.get_event(ctx, "wf", "key", timeout=timedelta(seconds=-1))
        with pytest.raises(dbos.InvalidOptionError):
            await aio.sleep(ctx, timedelta(seconds=1))  # type: ignore[arg-type]
        with pytest.raises(dbos.InvalidOptionError):
            aio.read_stream(ctx, "wf", "key", from_offset=-1)  # checked by the call itself
        with pytest.raises(dbos.WaitTimeoutError):
            await aio.get_event(ctx, "wf", "key", timeout=timedelta(0))

    asyncio.run(main())
