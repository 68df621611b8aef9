"""Async workflows and steps: event loops of their own, deterministic step IDs, recovery."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed import aio
from tests.conftest import Backend, Gate, wait_for

runs: Counter[str] = Counter()
runs_lock = threading.Lock()


def count(label: str) -> str:
    with runs_lock:
        runs[label] += 1
    return label


class Quote(BaseModel):
    skus: list[str]
    total: int


def _steps(backend: Backend, workflow_id: str) -> list[tuple[object, ...]]:
    return backend.query(
        "SELECT function_id, function_name FROM {s}.operation_outputs "
        "WHERE workflow_uuid = %s ORDER BY function_id",
        workflow_id,
    )


def test_an_async_workflow_returns_its_declared_type(backend: Backend) -> None:
    async def price(sku: str) -> int:
        await asyncio.sleep(0)
        return len(sku)

    async def quote(ctx: dbos.WorkflowContext, skus: list[str]) -> Quote:
        prices = [await aio.run_as_step(ctx, functools.partial(price, s)) for s in skus]
        return Quote(skus=skus, total=sum(prices))

    ctx = backend.context_with(quote)
    ctx.launch()
    # Started and awaited with the blocking calls...
    blocking = dbos.run_workflow(ctx, quote, ["a", "bb"], workflow_id="blocking")
    assert blocking.get_result(timeout=timedelta(seconds=10)) == Quote(skus=["a", "bb"], total=3)

    # ...and with the awaitable ones.
    async def main() -> Quote:
        handle = await aio.run_workflow(ctx, quote, ["ccc"], workflow_id="awaited")
        return await handle.get_result(timeout=timedelta(seconds=10))

    assert asyncio.run(main()) == Quote(skus=["ccc"], total=3)
    assert backend.query(
        "SELECT output FROM {s}.workflow_output WHERE workflow_uuid = %s", "awaited"
    ) == [('{"skus":["ccc"],"total":3}',)]
    # A partial is named after its function, the same on every run.
    name = "test_an_async_workflow_returns_its_declared_type.<locals>.price"
    assert _steps(backend, "blocking") == [(0, name), (1, name)]


def test_gathered_steps_are_numbered_in_call_order_and_replay_after_a_crash(
    backend: Backend,
) -> None:
    gate = Gate()

    async def first(second_done: asyncio.Event) -> bool:
        count("first")
        await second_done.wait()
        # The second step finished first: its checkpoint is already written.
        return (1, "second") in _steps(backend, "gathered")

    async def second(second_done: asyncio.Event) -> str:
        second_done.set()
        return count("second")

    async def gathered(ctx: dbos.WorkflowContext) -> str:
        done = asyncio.Event()
        first_call = aio.run_as_step(ctx, functools.partial(first, done), name="first")
        second_call = aio.run_as_step(ctx, functools.partial(second, done), name="second")
        # Started in the other order: the IDs still follow the calls.
        b, a = await asyncio.gather(second_call, first_call)
        await aio.run_as_step(ctx, gate, name="gate")
        last = await aio.run_as_step(ctx, lambda: count("last"), name="last")
        return f"{a}-{b}-{last}"

    runs.clear()
    ctx = backend.context_with(gathered)
    ctx.launch()
    dbos.run_workflow(ctx, gathered, workflow_id="gathered")
    gate.wait_entered()
    # The second step completed before the first, yet holds the later ID.
    assert _steps(backend, "gathered") == [(0, "first"), (1, "second")]
    ctx.shutdown(timeout=timedelta(0))
    gate.open()

    recovering = backend.context_with(gathered)
    recovering.launch()
    handle = dbos.retrieve_workflow[str](recovering, "gathered")
    assert handle.get_result(timeout=timedelta(seconds=30)) == "True-second-last"
    # Replayed from the record: neither gathered step ran again.
    assert (runs["first"], runs["second"], runs["last"]) == (1, 1, 1)
    assert _steps(backend, "gathered") == [(0, "first"), (1, "second"), (2, "gate"), (3, "last")]


def test_blocking_step_bodies_run_on_worker_threads_at_once(backend: Backend) -> None:
    both_running = threading.Barrier(2, timeout=10)
    loop_threads: list[int] = []

    def blocking(label: str) -> int:
        both_running.wait()  # passes only if the other step runs at the same time
        return threading.get_ident()

    async def parallel(ctx: dbos.WorkflowContext) -> list[int]:
        loop_threads.append(threading.get_ident())
        return list(
            await asyncio.gather(
                aio.run_as_step(ctx, lambda: blocking("a"), name="a"),
                aio.run_as_step(ctx, lambda: blocking("b"), name="b"),
            )
        )

    ctx = backend.context_with(parallel)
    ctx.launch()
    threads = dbos.run_workflow(ctx, parallel).get_result(timeout=timedelta(seconds=20))
    assert len(set(threads)) == 2
    assert loop_threads[0] not in threads


def test_async_steps_retry_and_record_their_failures(backend: Backend) -> None:
    attempts: Counter[str] = Counter()

    async def flaky() -> int:
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise ConnectionError("try again")
        return 7

    async def broken() -> int:
        attempts["broken"] += 1
        raise ValueError("always")

    async def retrying(ctx: dbos.WorkflowContext) -> str:
        value = await aio.run_as_step(
            ctx, flaky, name="flaky", max_retries=3, base_interval=timedelta(milliseconds=1)
        )
        try:
            await aio.run_as_step(
                ctx, broken, name="broken", max_retries=1, base_interval=timedelta(milliseconds=1)
            )
        except dbos.MaxStepRetriesExceededError as exc:
            return f"{value} {exc.error_name} {exc.attempts}"
        return "no failure"

    ctx = backend.context_with(retrying)
    ctx.launch()
    handle = dbos.run_workflow(ctx, retrying, workflow_id="retrying")
    assert handle.get_result(timeout=timedelta(seconds=10)) == "7 ValueError 2"
    assert attempts == Counter({"flaky": 3, "broken": 2})
    rows = backend.query(
        "SELECT function_name, output, error IS NOT NULL FROM {s}.operation_outputs "
        "WHERE workflow_uuid = %s ORDER BY function_id",
        "retrying",
    )
    assert rows == [("flaky", "7", False), ("broken", None, True)]


def test_each_concurrent_step_owns_what_it_writes(backend: Backend) -> None:
    async def publish(ctx: dbos.WorkflowContext, key: str, hold: asyncio.Event) -> str:
        await hold.wait()
        await aio.set_event(ctx, key, key)
        # A step inside a step simply runs: no checkpoint of its own.
        return await aio.run_as_step(ctx, lambda: f"{key}!", name="inner")

    async def publishers(ctx: dbos.WorkflowContext) -> list[str]:
        hold = asyncio.Event()
        steps = [
            asyncio.create_task(
                aio.run_as_step(ctx, functools.partial(publish, ctx, key, hold), name=key)
            )
            for key in ("a", "b")
        ]
        await asyncio.sleep(0)  # both steps are under way before either writes
        hold.set()
        return list(await asyncio.gather(*steps))

    ctx = backend.context_with(publishers)
    ctx.launch()
    handle = dbos.run_workflow(ctx, publishers, workflow_id="publishers")
    assert handle.get_result(timeout=timedelta(seconds=10)) == ["a!", "b!"]
    assert _steps(backend, "publishers") == [(0, "a"), (1, "b")]
    history = backend.query(
        "SELECT key, function_id FROM {s}.workflow_events_history WHERE workflow_uuid = %s "
        "ORDER BY key",
        "publishers",
    )
    assert history == [("a", 0), ("b", 1)]


def test_blocking_durable_calls_work_inside_an_async_workflow(backend: Backend) -> None:
    async def mixed(ctx: dbos.WorkflowContext) -> int:
        one = dbos.run_as_step(ctx, lambda: 1, name="blocking-step")
        dbos.sleep(ctx, timedelta(milliseconds=1))
        dbos.set_event(ctx, "k", one)
        two = await aio.run_as_step(ctx, lambda: 2, name="awaited-step")
        return one + two

    ctx = backend.context_with(mixed)
    ctx.launch()
    assert dbos.run_workflow(ctx, mixed, workflow_id="mixed").get_result() == 3
    assert _steps(backend, "mixed") == [
        (0, "blocking-step"),
        (1, "DBOS.sleep"),
        (2, "DBOS.setEvent"),
        (3, "awaited-step"),
    ]


def test_the_blocking_run_as_step_refuses_coroutines(backend: Backend) -> None:
    async def job() -> int:
        return 1

    def misuse(ctx: dbos.WorkflowContext) -> list[str]:
        refused = []
        for fn in (job, lambda: job()):
            try:
                dbos.run_as_step(ctx, fn, name="job")  # type: ignore[unused-coroutine]
            except dbos.InvalidOptionError as exc:
                refused.append(exc.argument)
        return refused

    ctx = backend.context_with(misuse)
    ctx.launch()
    assert dbos.run_workflow(ctx, misuse).get_result(timeout=timedelta(seconds=10)) == [
        "fn",
        "fn",
    ]


def test_an_async_workflow_starts_and_awaits_children(backend: Backend) -> None:
    async def child(ctx: dbos.WorkflowContext, n: int) -> int:
        return await aio.run_as_step(ctx, lambda: n * 10, name="times-ten")

    async def parent(ctx: dbos.WorkflowContext) -> int:
        handles = [await aio.run_workflow(ctx, child, n) for n in (1, 2)]
        results = await asyncio.gather(*(h.get_result() for h in handles))
        return sum(results)

    ctx = backend.context_with(child, parent)
    ctx.launch()
    assert dbos.run_workflow(ctx, parent, workflow_id="parent").get_result() == 30
    rows = backend.query(
        "SELECT function_id, function_name, child_workflow_id FROM {s}.operation_outputs "
        "WHERE workflow_uuid = %s ORDER BY function_id",
        "parent",
    )
    name = "test_an_async_workflow_starts_and_awaits_children.<locals>.child"
    assert rows == [
        (0, name, "parent-0"),
        (1, name, "parent-1"),
        (2, "DBOS.getResult", "parent-0"),
        (3, "DBOS.getResult", "parent-1"),
    ]


def test_a_cancelled_async_workflow_stops_at_its_next_durable_call(backend: Backend) -> None:
    gate = Gate()

    async def gated(ctx: dbos.WorkflowContext) -> str:
        await aio.run_as_step(ctx, gate, name="gate")
        return await aio.run_as_step(ctx, lambda: count("after"), name="after")

    runs.clear()
    ctx = backend.context_with(gated)
    ctx.launch()
    handle = dbos.run_workflow(ctx, gated, workflow_id="gated")
    gate.wait_entered()
    dbos.cancel_workflow(ctx, "gated")
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=timedelta(seconds=10))
    assert runs["after"] == 0
    assert _steps(backend, "gated") == []


@pytest.mark.parametrize("wait", ["sleep", "recv", "get_event"])
def test_cancel_wakes_an_async_wait_promptly(backend: Backend, wait: str) -> None:
    async def waiting(ctx: dbos.WorkflowContext) -> None:
        if wait == "sleep":
            await aio.sleep(ctx, timedelta(seconds=60))
        elif wait == "recv":
            await aio.recv[int](ctx, "t", timeout=timedelta(seconds=60))
        else:
            await aio.get_event[int](ctx, "nobody", "k", timeout=timedelta(seconds=60))

    ctx = backend.context_with(waiting)
    ctx.launch()
    dbos.run_workflow(ctx, waiting, workflow_id="waiting")
    # Every wait records its deadline (a DBOS.sleep step) before it starts waiting.
    wait_for(lambda: "DBOS.sleep" in [name for _, name in _steps(backend, "waiting")])
    start = time.monotonic()

    async def cancel_and_await() -> None:
        handle = await aio.retrieve_workflow(ctx, "waiting")
        await aio.cancel_workflow(ctx, "waiting")
        await handle.get_result(timeout=timedelta(seconds=10))

    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        asyncio.run(cancel_and_await())
    assert time.monotonic() - start < 5  # the wait had 60 s to go


def test_awaited_waits_are_recorded_and_replayed(backend: Backend) -> None:
    gate = Gate()

    def writer(ctx: dbos.WorkflowContext) -> None:
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.set_event(ctx, "k", 7)

    async def reader(ctx: dbos.WorkflowContext) -> str:
        try:
            await aio.recv[int](ctx, "nothing", timeout=timedelta(0))
            outcome = "message"
        except dbos.WaitTimeoutError:
            outcome = "timeout"
        value = await aio.get_event[int](ctx, "writer", "k", timeout=timedelta(seconds=20))
        return f"{outcome} {value}"

    ctx = backend.context_with(writer, reader)
    ctx.launch()
    dbos.run_workflow(ctx, writer, workflow_id="writer")
    handle = dbos.run_workflow(ctx, reader, workflow_id="reader")
    wait_for(lambda: len(_steps(backend, "reader")) == 3)  # the event's deadline
    gate.open()
    assert handle.get_result(timeout=timedelta(seconds=20)) == "timeout 7"
    assert _steps(backend, "reader") == [
        (0, "DBOS.recv"),
        (1, "DBOS.sleep"),
        (2, "DBOS.getEvent"),
        (3, "DBOS.sleep"),
    ]
    # A copy that replays all four: the recorded timeout and value come back as they were.
    copy = dbos.fork_workflow(ctx, "reader", 4, new_workflow_id="reader-copy")
    assert copy.get_result(timeout=timedelta(seconds=20)) == "timeout 7"
    assert len(_steps(backend, "reader-copy")) == 4


def test_a_deadline_stops_an_async_workflow(backend: Backend) -> None:
    async def slow(ctx: dbos.WorkflowContext) -> None:
        await aio.sleep(ctx, timedelta(seconds=60))

    ctx = backend.context_with(slow)
    ctx.launch()

    async def main() -> None:
        handle = await aio.run_workflow(ctx, slow, timeout=timedelta(milliseconds=200))
        await handle.get_result(timeout=timedelta(seconds=10))

    start = time.monotonic()
    with pytest.raises(dbos.WorkflowDeadlineExceededError):
        asyncio.run(main())
    assert time.monotonic() - start < 5


def test_an_abandoned_recv_leaves_no_waiter_behind(backend: Backend) -> None:
    async def patient(ctx: dbos.WorkflowContext) -> int:
        try:
            await asyncio.wait_for(aio.recv[int](ctx, "t", timeout=timedelta(seconds=60)), 0.05)
        except TimeoutError:
            pass
        await aio.set_event(ctx, "listening", True)
        # Refused if the abandoned receive were still registered on the topic.
        return await aio.recv[int](ctx, "t", timeout=timedelta(seconds=10))

    ctx = backend.context_with(patient)
    ctx.launch()
    handle = dbos.run_workflow(ctx, patient, workflow_id="patient")
    assert dbos.get_event[bool](ctx, "patient", "listening", timeout=timedelta(seconds=10))
    dbos.send(ctx, "patient", 5, "t")
    assert handle.get_result(timeout=timedelta(seconds=10)) == 5
    # Step 0 is the abandoned receive (nothing recorded), 1 its deadline; the second
    # receive may have found the message at once, without a deadline of its own.
    assert _steps(backend, "patient")[:3] == [
        (1, "DBOS.sleep"),
        (2, "DBOS.setEvent"),
        (3, "DBOS.recv"),
    ]


def test_generators_are_refused_as_workflows(backend: Backend) -> None:
    async def agen(ctx: dbos.WorkflowContext) -> AsyncIterator[int]:
        yield 1

    def gen(ctx: dbos.WorkflowContext) -> Iterator[int]:
        yield 1

    ctx = backend.new_context()
    for fn in (agen, gen):
        with pytest.raises(dbos.RegistrationError, match="generator"):
            dbos.register_workflow(ctx, fn)


def test_concurrent_async_steps_each_see_their_own_step_id(backend: Backend) -> None:
    async def own_id(ctx: dbos.WorkflowContext) -> int:
        await asyncio.sleep(0)  # let the other step start before this one answers
        return dbos.get_step_id(ctx)

    async def both(ctx: dbos.WorkflowContext) -> list[int]:
        ids = await asyncio.gather(
            aio.run_as_step(ctx, functools.partial(own_id, ctx), name="one"),
            aio.run_as_step(ctx, functools.partial(own_id, ctx), name="two"),
        )
        return [*ids, dbos.get_step_id(ctx)]

    ctx = backend.context_with(both)
    ctx.launch()
    assert dbos.run_workflow(ctx, both, workflow_id="both").get_result(
        timeout=timedelta(seconds=10)
    ) == [0, 1, 1]


def test_an_awaited_start_goes_to_the_workers_at_once(backend: Backend) -> None:
    # An awaited handle never runs the body itself, so its start is not held for a caller.
    def plain(ctx: dbos.WorkflowContext) -> str:
        return threading.current_thread().name

    ctx = backend.context_with(plain)
    ctx.launch()
    ctx._runtime.late_hand_off.grace = 60

    async def main() -> str:
        handle = await aio.run_workflow(ctx, plain)
        return await handle.get_result(timeout=timedelta(seconds=30))

    assert asyncio.run(main()).startswith("dbos-")
