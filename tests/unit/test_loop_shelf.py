"""The event loops async workflows run on: `asyncio.run`, with the loop kept between runs."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dbos_typed._core.runtime import LoopShelf, WorkerPool

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


def test_runs_reuse_one_loop_and_leave_the_thread_without_a_current_one() -> None:
    shelf = LoopShelf()
    loops = [shelf.run(_running_loop()), shelf.run(_running_loop())]
    assert loops[0] is loops[1]
    with pytest.raises(RuntimeError):
        asyncio.get_event_loop_policy().get_event_loop()
    shelf.close()
    assert loops[0].is_closed()


def test_context_variables_set_in_one_run_do_not_reach_the_next() -> None:
    shelf = LoopShelf()
    marker.set("caller")

    async def set_it() -> str:
        seen = marker.get()
        marker.set("inside")
        return seen

    assert shelf.run(set_it()) == "caller"
    assert shelf.run(set_it()) == "caller"
    assert marker.get() == "caller"
    shelf.close()


def test_tasks_left_behind_are_cancelled_before_run_returns() -> None:
    shelf = LoopShelf()
    cancelled = threading.Event()

    async def leave_a_task() -> None:
        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)

    shelf.run(leave_a_task())
    assert cancelled.is_set()
    loop = shelf.run(_running_loop())
    assert not asyncio.all_tasks(loop)
    shelf.close()


def test_an_unfinished_async_generator_is_closed_with_its_loop_as_asyncio_run_does() -> None:
    shelf = LoopShelf()
    closed: list[bool] = []
    held: list[Any] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def take_one() -> asyncio.AbstractEventLoop:
        gen = numbers()
        held.append(gen)  # still alive when the run ends
        await gen.__anext__()
        return asyncio.get_running_loop()

    first = shelf.run(take_one())
    assert closed == [True]
    assert first.is_closed()
    assert shelf.run(_running_loop()) is not first
    shelf.close()


def test_a_run_that_used_the_default_executor_closes_its_loop_after_it() -> None:
    shelf = LoopShelf()

    async def use_a_thread() -> asyncio.AbstractEventLoop:
        await asyncio.to_thread(lambda: None)
        return asyncio.get_running_loop()

    assert shelf.run(use_a_thread()).is_closed()
    shelf.close()


def test_a_failing_run_raises_and_the_loop_stays_usable() -> None:
    shelf = LoopShelf()

    async def fail() -> asyncio.AbstractEventLoop:
        raise ValueError(id(asyncio.get_running_loop()))

    with pytest.raises(ValueError) as raised:
        shelf.run(fail())
    assert id(shelf.run(_running_loop())) == raised.value.args[0]
    shelf.close()


def test_concurrent_runs_get_loops_of_their_own_and_at_most_keep_are_kept() -> None:
    shelf = LoopShelf(keep=1)
    inside = threading.Barrier(2)
    loops: list[asyncio.AbstractEventLoop] = []

    async def meet() -> None:
        loops.append(asyncio.get_running_loop())
        inside.wait(10)  # both runs are under way at once

    threads = [threading.Thread(target=lambda: shelf.run(meet())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert loops[0] is not loops[1]
    assert sorted(loop.is_closed() for loop in loops) == [False, True]
    shelf.close()
    assert all(loop.is_closed() for loop in loops)


def test_a_worker_pool_closes_its_loops_when_it_stops() -> None:
    pool = WorkerPool("kept", 1)
    loops: list[asyncio.AbstractEventLoop] = []
    done = threading.Semaphore(0)

    def task() -> None:
        loops.append(pool.loops.run(_running_loop()))
        done.release()

    for _ in range(2):
        pool.submit(task)
        assert done.acquire(timeout=10)
    assert loops[0] is loops[1]
    assert not loops[0].is_closed()
    pool.stop()
    assert loops[0].is_closed()
    assert pool.loops.run(_running_loop()).is_closed()  # after stop, none is kept


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_closing_from_inside_a_running_loop_closes_the_idle_loops() -> None:
    shelf = LoopShelf()
    idle = shelf.run(_running_loop())

    async def close_it() -> None:
        shelf.close()

    asyncio.run(close_it())
    assert idle.is_closed()
