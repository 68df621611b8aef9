"""`AsyncWorkflowHandle[R]` and the awaitable `retrieve_workflow[R]`.

The awaitable handle waits as the blocking one does (`OutcomeWatch`: a run in this
process first, else the database with a backoff), on a `LoopWaker` instead of a thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.durable import (
    OperationOutcome,
    begin_operation,
    complete_operation,
    record_of,
)
from dbos_typed._core.handle import (
    AWAITED_FAILURES,
    GET_RESULT_STEP,
    PENDING,
    OutcomeWatch,
    WorkflowHandle,
    retrieve_handle,
)
from dbos_typed._core.serialization import Codec, JsonValue, TypedCall
from dbos_typed._core.status import WorkflowStatus
from dbos_typed._sysdb._rows import StepRecord
from dbos_typed.aio._loop import LoopWaker, performed, prepared, run_blocking
from dbos_typed.errors import InvalidOptionError

R = TypeVar("R")
T = TypeVar("T")


class AsyncWorkflowHandle(Generic[R]):
    """A reference to a workflow, typed by its result, whose waits are awaited.

    Obtained from `dbos_typed.aio.run_workflow`, `retrieve_workflow`, `enqueue`,
    `resume_workflow` or `fork_workflow`. It waits without holding a thread, so any
    number of coroutines may await workflows at once.
    """

    __slots__ = ("_handle",)

    def __init__(self, handle: WorkflowHandle[R]) -> None:
        self._handle = handle

    @property
    def workflow_id(self) -> str:
        """The workflow's ID."""
        return self._handle.workflow_id

    def __repr__(self) -> str:
        return f"AsyncWorkflowHandle(workflow_id={self.workflow_id!r})"

    def get_result(self, timeout: timedelta | None = None) -> Coroutine[None, None, R]:
        """Wait for the workflow to finish and return its result.

        Cancelling the awaiting task ends the wait; the workflow itself runs on.

        Durability: awaited inside a workflow, the outcome is checkpointed as a step
        (`DBOS.getResult`) whose ID is taken when `get_result` is called, so a replay
        returns it at once and raises the same errors.

        Args:
            timeout: How long to wait; None waits as long as it takes.

        Raises:
            WorkflowFailedError: the workflow raised.
            AwaitedWorkflowCancelledError: it was cancelled (`WorkflowDeadlineExceededError`
                when its deadline passed).
            DeadLetterError: it exceeded its recovery attempts.
            NonExistentWorkflowError: there is no such workflow.
            WaitTimeoutError: `timeout` passed first.
        """
        return prepared(lambda: self._start_result(timeout))

    def _start_result(self, timeout: timedelta | None) -> Coroutine[None, None, R]:
        if timeout is not None and (not isinstance(timeout, timedelta) or timeout < timedelta(0)):
            raise InvalidOptionError("timeout", "expected a non-negative timedelta or None")
        ctx = self._handle._ctx
        if isinstance(ctx, WorkflowContext) and not ctx._state.in_step:
            step_id, recorded = begin_operation(ctx, GET_RESULT_STEP)
            return self._durable_result(ctx, step_id, recorded, timeout)
        return _wait(self._handle, timeout, None)

    async def _durable_result(
        self,
        ctx: WorkflowContext,
        step_id: int,
        recorded: StepRecord | None,
        timeout: timedelta | None,
    ) -> R:
        handle = self._handle
        if recorded is not None:
            return handle._replay(recorded)  # type: ignore[no-any-return]
        started = ctx._runtime.clock.now_ms()
        try:
            value = await _wait(handle, timeout, ctx)
        except AWAITED_FAILURES as exc:
            outcome: OperationOutcome = (None, record_of(exc).encode(), None, exc)
        else:
            outcome = (handle._encode(value), None, value, None)
        return complete_operation(  # type: ignore[no-any-return]
            ctx, step_id, GET_RESULT_STEP, started, outcome, child_workflow_id=self.workflow_id
        )

    def get_status(self) -> Coroutine[None, None, WorkflowStatus]:
        """Read the workflow's current status.

        Raises:
            NonExistentWorkflowError: there is no such workflow.
        """
        return performed(self._handle._ctx, self._handle.get_status)


async def _wait(
    handle: WorkflowHandle[R], timeout: timedelta | None, waiter_ctx: WorkflowContext | None
) -> R:
    waker = LoopWaker()
    watch = OutcomeWatch(handle, timeout, waiter_ctx, waker)
    store = handle._runtime.store
    workflow_id = handle.workflow_id
    try:
        while True:
            result = watch.local_result()
            if result is PENDING and not watch.local_pending:
                outcome = await run_blocking(handle._ctx, lambda: store.get_outcome(workflow_id))
                result = watch.settle(outcome)
            if result is not PENDING:
                return result  # type: ignore[no-any-return]
            await waker.wait(watch.next_wait())
            waker.clear()
    finally:
        watch.close()


def wrap(handle: WorkflowHandle[R]) -> AsyncWorkflowHandle[R]:
    """The awaitable twin of a handle."""
    return AsyncWorkflowHandle(handle)


class _Retriever(TypedCall):
    """`await retrieve_workflow(ctx, id)`, or `retrieve_workflow[T](ctx, id)` typed."""

    @overload
    def __getitem__(
        self, tp: type[T]
    ) -> Callable[[Connected, str], Coroutine[None, None, AsyncWorkflowHandle[T]]]: ...

    @overload
    def __getitem__(
        self, tp: TypeAdapter[T]
    ) -> Callable[[Connected, str], Coroutine[None, None, AsyncWorkflowHandle[T]]]: ...

    def __getitem__(
        self, tp: Any
    ) -> Callable[[Connected, str], Coroutine[None, None, AsyncWorkflowHandle[Any]]]:
        return self.typed(tp)

    def __call__(
        self, ctx: Connected, workflow_id: str, /
    ) -> Coroutine[None, None, AsyncWorkflowHandle[JsonValue]]:
        """Retrieve a handle whose result is plain JSON (`JsonValue`)."""
        return _retrieve(ctx, workflow_id, None)


def _retrieve(
    ctx: Connected, workflow_id: str, /, codec: Codec[Any] | None = None
) -> Coroutine[None, None, AsyncWorkflowHandle[Any]]:
    return performed(ctx, lambda: wrap(retrieve_handle(ctx, workflow_id, codec)))


retrieve_workflow = _Retriever(
    lambda codec: functools.partial(_retrieve, codec=codec), "retrieve_workflow"
)
"""Get a handle to an existing workflow by ID: `await retrieve_workflow[T](ctx, id)`.

The awaitable form of `dbos_typed.retrieve_workflow`: it reads the database on a thread
(inside a workflow, on the workflow's loop) and returns an `AsyncWorkflowHandle`. Works
with a context or a `Client`. Without `[T]` the result is plain JSON, typed
`AsyncWorkflowHandle[JsonValue]`.

Raises:
    NonExistentWorkflowError: there is no such workflow.
"""
