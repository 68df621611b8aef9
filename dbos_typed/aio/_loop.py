"""The pieces every awaitable call is built from: wakers, waits and where blocking work runs.

Nothing here blocks an event loop except inside a workflow, where the loop is the
workflow's own (see `run_blocking`). Waiting never holds a thread: a coroutine sleeps on a
`LoopWaker`, which writers, the LISTEN thread and cancellation set from any thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from dbos_typed._core.clock import Clock
from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._messaging.database_waits import Registration
from dbos_typed._sysdb._listener import Key
from dbos_typed.errors import WorkflowCancelledError

P = ParamSpec("P")
T = TypeVar("T")
U = TypeVar("U")


class LoopWaker:
    """A waker a coroutine awaits on its loop, and any thread may set."""

    __slots__ = ("_event", "_loop")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def set(self) -> None:
        """Wake the coroutine; safe from any thread, and after its loop has closed."""
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:
            pass  # the loop is closed: nothing waits on it any more

    def clear(self) -> None:
        """Forget a wake-up already seen (on the loop)."""
        self._event.clear()

    async def wait(self, timeout: float | None) -> bool:
        """Wait until set (True) or for `timeout` seconds (False); None waits until set."""
        if self._event.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True

    async def wait_on(self, clock: Clock, deadline: float | None, poll: float | None) -> bool:
        """Wait until set, until `clock` reaches `deadline`, or for `poll` real seconds.

        Returns whether it was set (a virtual clock sets it at the deadline too).
        """
        token = clock.alarm(deadline, self)
        try:
            return await self.wait(clock.real_timeout(deadline, poll))
        finally:
            clock.cancel_alarm(token)


class AsyncWait(Registration[LoopWaker]):
    """The awaitable `Wait`: a `LoopWaker` registered on one key; a context manager.

    Cancelling the task that awaits `until` unregisters it on the way out (`with`), so an
    abandoned wait leaves nothing behind.
    """

    __slots__ = ()

    def __init__(self, ctx: Connected, key: Key, *, exclusive: bool = False) -> None:
        super().__init__(ctx, key, LoopWaker(), exclusive=exclusive)

    async def until(
        self, deadline: float | None, probe: Callable[[], bool], *, max_interval: float = 60.0
    ) -> bool:
        """Wait for a signal; False once `deadline` (epoch seconds on the context's clock) passed.

        Between signals the database is re-checked with `probe`, as `Wait.until` does.

        Raises:
            WorkflowCancelledError: the waiting workflow was cancelled.
            DBOSError: the context shut down.
        """
        while True:
            wait = self.next_wait(deadline, max_interval)
            if wait is None:
                return False
            if await self._event.wait_on(self._runtime.clock, deadline, wait):
                self._event.clear()
                self.check_stop()
                return True
            if await run_blocking(self._workflow, probe):
                self.check_stop()
                return True


async def run_blocking(ctx: object, fn: Callable[[], T]) -> T:
    """Make a database call from a coroutine.

    Inside a workflow it runs right here, on the workflow's own loop: a statement costs
    the same as in a workflow that is not async, and the workflow's durable calls reach
    the database in the order they were made. Anywhere else it runs on a thread of the
    loop's default executor, so the application's loop never waits on the database.
    """
    if isinstance(ctx, WorkflowContext):
        return fn()
    return await asyncio.to_thread(fn)


def performed(ctx: object, fn: Callable[[], T]) -> Coroutine[None, None, T]:
    """A blocking call as a coroutine.

    Inside a workflow the call is made now, before returning: it takes its step ID (if it
    is a durable operation) in the order the workflow body made its calls, whatever order
    they are awaited in, and what it raises is raised when awaited. Anywhere else it is
    made on a thread when awaited.
    """
    if isinstance(ctx, WorkflowContext):
        return prepared(lambda: returning(fn()))
    return asyncio.to_thread(fn)


def prepared(start: Callable[[], Coroutine[None, None, T]]) -> Coroutine[None, None, T]:
    """Do the part of a call that must happen when it is made, and return the rest.

    `start` runs now (checks, step IDs) and returns the coroutine that does the rest. An
    error it raises is raised when the returned coroutine is awaited, as if the call had
    been an `async def`.
    """
    try:
        return start()
    except (Exception, WorkflowCancelledError) as exc:
        return raising(exc)


async def returning(value: T) -> T:
    """A coroutine that returns `value`."""
    return value


async def raising(exc: BaseException) -> Any:
    """A coroutine that raises `exc`."""
    raise exc


async def on_worker(ctx: WorkflowContext, fn: Callable[[], T]) -> T:
    """Run a blocking function on one of the context's worker threads and await it.

    Worker threads are the ones workflows run on: reused when idle, added when all are
    busy, so a step that blocks never waits for a free thread. The function sees the
    caller's context variables (so it knows which step it runs in). If the awaiting task
    is cancelled, the function still runs to its end on its thread, and its result is
    dropped.
    """
    loop = asyncio.get_running_loop()
    # The outcome travels as a value: a future cannot carry every exception (StopIteration).
    future: asyncio.Future[tuple[Any, BaseException | None]] = loop.create_future()
    context = contextvars.copy_context()

    def settle(outcome: tuple[Any, BaseException | None]) -> None:
        if not future.done():  # else the awaiting task was cancelled meanwhile
            future.set_result(outcome)

    def task() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (context.run(fn), None)
        except BaseException as exc:
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:
            pass  # the loop is closed: the workflow ended without waiting for this

    ctx._runtime.workers.submit(task)
    value, error = await future
    if error is not None:
        raise error
    return value  # type: ignore[no-any-return]


def awaitable_form(
    fn: Callable[P, T], convert: Callable[[T], U]
) -> Callable[P, Coroutine[None, None, U]]:
    """`fn` as a coroutine function: the same call made on a thread, its answer converted.

    Inside a workflow it is made when called, on the workflow's loop, so it takes its
    operation's step ID in call order.
    """

    def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[None, None, U]:
        return performed(args[0] if args else None, lambda: convert(fn(*args, **kwargs)))

    name = fn.__name__
    call.__name__ = call.__qualname__ = name
    call.__module__ = "dbos_typed.aio"
    call.__doc__ = (
        f"The awaitable form of `dbos_typed.{name}`: the same call, made on a thread "
        "(inside a workflow: when called, on the workflow's loop).\n\n"
        + inspect.cleandoc(fn.__doc__ or "")
    )
    return call


def same(value: T) -> T:
    """The identity: for a call whose answer needs no conversion."""
    return value
