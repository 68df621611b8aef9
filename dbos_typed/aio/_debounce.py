"""The awaitable debouncer: `new_debouncer` and `AsyncDebouncer.debounce`.

An `AsyncDebouncer` wraps the blocking `Debouncer`, which holds all the logic: its
`debounce` is the blocking call made on a thread (inside a workflow, made when called, on
the workflow's loop), answering with an awaitable handle.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from dbos_typed._core.context import AppContext, WorkflowContext
from dbos_typed._core.registry import NO_INPUT
from dbos_typed._queues.queues import WorkflowQueue
from dbos_typed._workflows import debounce as _debounce
from dbos_typed._workflows.debounce import Debouncer
from dbos_typed.aio._handle import AsyncWorkflowHandle, wrap
from dbos_typed.aio._loop import performed

InT = TypeVar("InT")
OutT = TypeVar("OutT")


class AsyncDebouncer(Generic[InT, OutT]):
    """A `Debouncer` whose `debounce` is awaited; made by `dbos_typed.aio.new_debouncer`.

    The same bursts as the blocking debouncer's: a call with a key that has no burst going
    starts one, later calls with the key join it, and the workflow starts `delay` after
    the latest call (no later than `max_wait` after the first), with that call's input.
    """

    __slots__ = ("debouncer",)

    def __init__(self, debouncer: Debouncer[InT, OutT]) -> None:
        self.debouncer = debouncer

    @property
    def workflow_name(self) -> str:
        """The registered name of the debounced workflow."""
        return self.debouncer.workflow_name

    @property
    def queue_name(self) -> str:
        """The queue the workflow runs on; keys are scoped to it."""
        return self.debouncer.queue_name

    @property
    def max_wait(self) -> timedelta | None:
        """The longest a burst may hold its workflow back, from its first call; None: no cap."""
        return self.debouncer.max_wait

    def __repr__(self) -> str:
        return (
            f"AsyncDebouncer(workflow_name={self.workflow_name!r}, queue_name={self.queue_name!r})"
        )

    @overload
    def debounce(
        self: AsyncDebouncer[None, OutT],
        ctx: AppContext,
        key: str,
        /,
        *,
        delay: timedelta,
        workflow_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> Coroutine[None, None, AsyncWorkflowHandle[OutT]]: ...

    @overload
    def debounce(
        self,
        ctx: AppContext,
        key: str,
        input: InT,
        /,
        *,
        delay: timedelta,
        workflow_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> Coroutine[None, None, AsyncWorkflowHandle[OutT]]: ...

    def debounce(
        self,
        ctx: AppContext,
        key: str,
        input: Any = NO_INPUT,
        /,
        *,
        delay: timedelta,
        workflow_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> Coroutine[None, None, AsyncWorkflowHandle[Any]]:
        """Start a burst for `key`, or join the one it has; await a handle to its workflow.

        The awaitable form of `Debouncer.debounce`, with the same arguments and errors.

        Durability: as `Debouncer.debounce`: the burst is a DELAYED row of its queue, and
        joining it is one transaction. Called with a `WorkflowContext`, the call is a step
        of that workflow (`DBOS.debounce`) whose ID is taken when the call is made, not
        when it is awaited; a replay returns the same handle without touching the burst.
        """

        def call() -> AsyncWorkflowHandle[Any]:
            debouncer: Debouncer[Any, Any] = self.debouncer
            handle = debouncer.debounce(
                ctx, key, input, delay=delay, workflow_id=workflow_id, timeout=timeout
            )
            return wrap(handle)

        return performed(ctx, call)


# <generated: new_debouncer overloads>
# Copied from dbos_typed/_workflows/debounce.py by scripts/generate_aio.py.
@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], Coroutine[Any, Any, OutT]],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> AsyncDebouncer[None, OutT]: ...


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], Coroutine[Any, Any, OutT]],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> AsyncDebouncer[InT, OutT]: ...


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], OutT],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> AsyncDebouncer[None, OutT]: ...


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], OutT],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> AsyncDebouncer[InT, OutT]: ...


# </generated: new_debouncer overloads>


def new_debouncer(
    ctx: AppContext,
    fn: Callable[..., Any],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> AsyncDebouncer[Any, Any]:
    """Make an awaitable debouncer for a registered workflow, before or after `launch()`.

    The same checks and options as `dbos_typed.new_debouncer`; making it writes nothing,
    so this is not a coroutine. Its `debounce` calls are awaited.

    Args:
        ctx: The context the workflow is registered with.
        fn: A registered workflow function (sync or `async def`).
        max_wait: Cap how long a burst may hold the workflow back, from its first call.
        queue: The queue the workflow runs on; the internal queue by default.

    Returns:
        An `AsyncDebouncer[I, R]` for a workflow taking an `I` and returning an `R`.

    Raises:
        RegistrationError: `fn` is not registered with this context.
        InvalidOptionError: a bad `max_wait`, or an unknown or partitioned queue.
    """
    return AsyncDebouncer(_debounce.new_debouncer(ctx, fn, max_wait=max_wait, queue=queue))
