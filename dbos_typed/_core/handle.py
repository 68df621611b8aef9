"""`WorkflowHandle[R]` and `retrieve_workflow[R]`: waiting for a workflow's outcome.

A handle to a workflow running in this process waits on it in memory; any other handle
reads the database with a backoff that starts at a few milliseconds. Inside a workflow,
awaiting a result is itself a durable operation, so replay does not wait again.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.crash import Crashes
from dbos_typed._core.durable import OperationOutcome, rebuild_error, record_of, run_durably
from dbos_typed._core.runtime import Execution, Runtime, run_if_pending
from dbos_typed._core.serialization import (
    Codec,
    ErrorRecord,
    JsonValue,
    TypedCall,
    decode_any,
    encode_any,
)
from dbos_typed._core.status import WorkflowStatus, status_from_record
from dbos_typed._core.validate import checked_name, optional_duration, single_wait, wait_seconds
from dbos_typed._sysdb._listener import Waker
from dbos_typed._sysdb._rows import Outcome, StatusName, StepRecord
from dbos_typed.errors import (
    AwaitedWorkflowCancelledError,
    DBOSError,
    DeadLetterError,
    NonExistentWorkflowError,
    WaitTimeoutError,
    WorkflowDeadlineExceededError,
    WorkflowFailedError,
)

R = TypeVar("R")
T = TypeVar("T")

_FIRST_POLL = 0.005
_MAX_POLL = 1.0

_UNFINISHED = frozenset({StatusName.PENDING, StatusName.ENQUEUED, StatusName.DELAYED})

GET_RESULT_STEP = "DBOS.getResult"

#: What awaiting a workflow's result may end with, recorded as the outcome of a
#: `DBOS.getResult` operation and raised again on replay.
AWAITED_FAILURES = (
    WorkflowFailedError,
    AwaitedWorkflowCancelledError,
    DeadLetterError,
    NonExistentWorkflowError,
    WaitTimeoutError,
)


class WorkflowHandle(Generic[R]):
    """A reference to a workflow, typed by its result.

    Obtained from `run_workflow` or `retrieve_workflow`. Handles are cheap and may be
    created for any workflow ID, from any process.
    """

    __slots__ = ("_codec", "_ctx", "_execution", "_runtime", "workflow_id")

    def __init__(
        self,
        ctx: Connected,
        workflow_id: str,
        codec: Codec[Any] | None,
        execution: Execution | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self._ctx = ctx
        self._runtime: Runtime = ctx._runtime
        self._codec = codec
        self._execution = execution

    def __repr__(self) -> str:
        return f"WorkflowHandle(workflow_id={self.workflow_id!r})"

    def get_result(self, timeout: timedelta | None = None) -> R:
        """Wait for the workflow to finish and return its result.

        Durability: called inside a workflow, the outcome is checkpointed as a step
        (`DBOS.getResult`), so a replay returns it at once and raises the same errors.

        Args:
            timeout: How long to wait; None waits as long as it takes. Longer than a
                century is shortened to a century.

        Raises:
            InvalidOptionError: `timeout` is negative or not a timedelta.
            WorkflowFailedError: the workflow raised.
            AwaitedWorkflowCancelledError: it was cancelled (`WorkflowDeadlineExceededError`
                when its deadline passed).
            DeadLetterError: it exceeded its recovery attempts.
            NonExistentWorkflowError: there is no such workflow.
            WaitTimeoutError: `timeout` passed first.
        """
        timeout = optional_duration(timeout, "timeout")
        ctx = self._ctx
        if isinstance(ctx, WorkflowContext) and not ctx._state.in_step:
            return self._durable_result(ctx, timeout)  # type: ignore[no-any-return]
        return self._wait(timeout, None)

    def _durable_result(self, ctx: WorkflowContext, timeout: timedelta | None) -> Any:
        def execute() -> OperationOutcome:
            try:
                value = self._wait(timeout, ctx)
            except AWAITED_FAILURES as exc:
                return None, record_of(exc).encode(), None, exc
            return self._encode(value), None, value, None

        return run_durably(
            ctx, GET_RESULT_STEP, execute, self._replay, child_workflow_id=self.workflow_id
        )

    def _replay(self, recorded: StepRecord) -> Any:
        if recorded.error is not None:
            raise rebuild_error(ErrorRecord.decode(recorded.error), step_name=GET_RESULT_STEP)
        return self._decode(recorded.output or "null")

    def _encode(self, value: Any) -> str:
        what = f"the result of workflow {self.workflow_id!r}"
        return (
            self._codec.encode(value, what) if self._codec is not None else encode_any(value, what)
        )

    def _decode(self, text: str) -> Any:
        return self._codec.decode(text) if self._codec is not None else decode_any(text)

    def _wait(self, timeout: timedelta | None, waiter_ctx: WorkflowContext | None) -> R:
        execution = self._execution
        seconds = None if timeout is None else wait_seconds(timeout)
        started = None if timeout is None else time.monotonic()
        if (
            execution is not None
            and waiter_ctx is None
            and (seconds is None or seconds <= threading.TIMEOUT_MAX)
        ):
            # A run in this process, awaited where no cancellation can interrupt the wait:
            # its future is the whole wait, with no waker to make. An outcome left to the
            # database is read below, as any other. An unbounded wait on a run that no
            # worker has taken yet runs it here instead.
            if seconds is None:
                run_if_pending(execution)
            try:
                kind = execution.future.result(seconds)[0]
            except FutureTimeout:
                assert timeout is not None
                raise WaitTimeoutError(f"workflow {self.workflow_id!r}", timeout) from None
            if kind != "database":
                return finished_result(self, execution)  # type: ignore[no-any-return]
        waker = threading.Event()
        watch = OutcomeWatch(self, timeout, waiter_ctx, waker, started=started)
        try:
            while True:
                result = watch.local_result()
                if result is PENDING and not watch.local_pending:
                    result = watch.settle(self._runtime.store.get_outcome(self.workflow_id))
                if result is not PENDING:
                    return result  # type: ignore[no-any-return]
                waker.wait(watch.next_wait())
                waker.clear()
        finally:
            watch.close()

    def _resolve(self, outcome: Outcome) -> Any:
        workflow_id = self.workflow_id
        if outcome.status is StatusName.SUCCESS:
            return self._decode(outcome.output or "null")
        if outcome.status is StatusName.ERROR:
            record = ErrorRecord.decode(outcome.error or "")
            raise WorkflowFailedError(
                workflow_id,
                error_name=record.name,
                error_message=record.message,
                error_code=record.code,
                data=record.data,
            )
        if outcome.status is StatusName.MAX_RECOVERY_ATTEMPTS_EXCEEDED:
            raise DeadLetterError(workflow_id)
        if outcome.deadline_ms is not None and outcome.deadline_ms <= self._runtime.clock.now_ms():
            raise WorkflowDeadlineExceededError(workflow_id)
        raise AwaitedWorkflowCancelledError(workflow_id)

    def get_status(self) -> WorkflowStatus:
        """Read the workflow's current status.

        Raises:
            NonExistentWorkflowError: there is no such workflow.
        """
        record = self._runtime.store.get_status(self.workflow_id)
        if record is None:
            raise NonExistentWorkflowError(self.workflow_id)
        return status_from_record(record)


#: What `OutcomeWatch` answers while the workflow has not finished.
PENDING: Any = object()


class OutcomeWatch:
    """One wait for a workflow's outcome, with the waiting itself left to the caller.

    It looks first at a run of the workflow in this process (whose end sets `waker`), and
    otherwise at the database, which the caller reads and hands to `settle`, polling with
    a backoff; the blocking handle and the awaitable one drive it the same way.
    """

    __slots__ = (
        "_give_up",
        "_handle",
        "_interrupt",
        "_poll",
        "_timeout",
        "_waiter",
        "_waker",
        "_watched",
        "local_pending",
    )

    def __init__(
        self,
        handle: WorkflowHandle[Any],
        timeout: timedelta | None,
        waiter_ctx: WorkflowContext | None,
        waker: Waker,
        *,
        started: float | None = None,
    ) -> None:
        self._handle = handle
        self._timeout = timeout or timedelta(0)
        # The timeout counts from `started` (the monotonic clock), by default from now.
        self._give_up: float | None = None
        if timeout is not None:
            begun = time.monotonic() if started is None else started
            self._give_up = begun + wait_seconds(timeout)
        self._waker = waker
        self._waiter = waiter_ctx
        self._interrupt = waiter_ctx._state.execution if waiter_ctx is not None else None
        if self._interrupt is not None:
            self._interrupt.add_waker(waker)
        self._watched: Execution | None = None
        self._poll = _FIRST_POLL
        self.local_pending = False  # a run in this process has not ended: no need to poll

    def close(self) -> None:
        """Stop being woken by the waiting workflow's cancellation."""
        if self._interrupt is not None:
            self._interrupt.remove_waker(self._waker)

    def local_result(self) -> Any:
        """The result of this process's run of the workflow, or `PENDING`.

        Raises:
            WorkflowFailedError: that run raised.
        """
        handle = self._handle
        execution = handle._execution or handle._runtime.running_execution(handle.workflow_id)
        self.local_pending = False
        if execution is None:
            return PENDING
        if execution is not self._watched:
            self._watched = execution
            waker = self._waker
            execution.future.add_done_callback(lambda _: waker.set())
        if not execution.future.done():
            self.local_pending = True
            return PENDING
        return finished_result(handle, execution)

    def settle(self, outcome: Outcome | None) -> Any:
        """The result the database holds (`PENDING` while unfinished); raises failures.

        Raises:
            NonExistentWorkflowError: there is no such workflow.
            DBOSError: the context shut down while its run of the workflow was going.
            SimulatedCrash: a test crashed this process's last run of the workflow.
        """
        handle = self._handle
        if outcome is None:
            raise NonExistentWorkflowError(handle.workflow_id)
        if outcome.status not in _UNFINISHED:
            return handle._resolve(outcome)
        crashes = handle._runtime.crashes
        if crashes is not None and outcome.status is StatusName.PENDING:
            _raise_simulated_crash(handle._runtime, crashes, handle.workflow_id)
        if handle._runtime.shutting_down.is_set() and self._watched is not None:
            raise DBOSError(
                f"the context shut down before workflow {handle.workflow_id!r} finished"
            )
        return PENDING

    def next_wait(self) -> float | None:
        """How long to wait for the waker before looking again (None: until woken).

        Raises:
            WorkflowCancelledError: the waiting workflow was cancelled.
            WaitTimeoutError: the caller's timeout passed.
        """
        if self._waiter is not None:
            self._waiter._state.check_cancelled()
        wait = None
        if not self.local_pending:
            wait = self._poll
            self._poll = min(self._poll * 1.5, _MAX_POLL)
        if self._give_up is not None:
            remaining = self._give_up - time.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(f"workflow {self._handle.workflow_id!r}", self._timeout)
            wait = single_wait(remaining) if wait is None else min(wait, remaining)
        return wait


def finished_result(handle: WorkflowHandle[Any], execution: Execution) -> Any:
    """The result of a run in this process that has ended, or `PENDING` to read the database.

    Raises:
        WorkflowFailedError: that run raised.
    """
    kind, value = execution.future.result()
    if kind == "ok":
        stored = execution.stored_output
        if stored is None or stored[0] is handle._codec:
            return value
        # Typed otherwise than the workflow returns (`resume_workflow[R]`, ...): the
        # result as this handle would read it from the database.
        return handle._decode(stored[1])
    if kind == "error":
        raise value
    handle._execution = None  # the outcome is in the database
    return PENDING


def _raise_simulated_crash(runtime: Runtime, crashes: Crashes, workflow_id: str) -> None:
    """Raise the crash that a test made of the workflow's run, while its row is left so.

    Such a run left the row PENDING, and nothing in this process runs it again until a
    restart, so its waiters learn of the crash however late they came to wait, rather
    than wait for ever. A row that a claim took since (resumed, recovered) carries a new
    owner token: the crash is then history.
    """
    stopped = crashes.stopped(workflow_id)
    if stopped is None:
        return
    crash, owner_xid = stopped
    if owner_xid is None or runtime.store.workflow_owner(workflow_id) == owner_xid:
        raise crash
    crashes.forget(workflow_id)


class _Retriever(TypedCall):
    """`retrieve_workflow(ctx, id)`, or `retrieve_workflow[T](ctx, id)` for a typed result."""

    @overload
    def __getitem__(self, tp: type[T]) -> Callable[[Connected, str], WorkflowHandle[T]]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[T]) -> Callable[[Connected, str], WorkflowHandle[T]]: ...

    def __getitem__(self, tp: Any) -> Callable[[Connected, str], WorkflowHandle[Any]]:
        return self.typed(tp)

    def __call__(self, ctx: Connected, workflow_id: str, /) -> WorkflowHandle[JsonValue]:
        """Retrieve a handle whose result is plain JSON (`JsonValue`)."""
        return retrieve_handle(ctx, workflow_id, None)


def handle_to(ctx: Connected, workflow_id: str, codec: Codec[Any] | None) -> WorkflowHandle[Any]:
    """A handle to a workflow this code just started or found, attached to its run here."""
    return WorkflowHandle(ctx, workflow_id, codec, ctx._runtime.running_execution(workflow_id))


def retrieve_handle(
    ctx: Connected, workflow_id: str, /, codec: Codec[Any] | None = None
) -> WorkflowHandle[Any]:
    """A handle to an existing workflow; `codec` None: its result is plain JSON.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
    """
    workflow_id = checked_name(workflow_id, "workflow_id")
    runtime = ctx._runtime
    record = runtime.store.get_status(workflow_id)
    if record is None:
        raise NonExistentWorkflowError(workflow_id)
    return handle_to(ctx, workflow_id, codec)


retrieve_workflow = _Retriever(
    lambda codec: functools.partial(retrieve_handle, codec=codec), "retrieve_workflow"
)
"""Get a handle to an existing workflow by ID.

Works with a context or a `Client`. `retrieve_workflow(ctx, id)` gives the result as plain
JSON, typed `WorkflowHandle[JsonValue]` (the same in every process, whether or not it
registered the workflow, and even while the workflow runs here); `retrieve_workflow[T](ctx,
id)` validates it as `T` and is typed `WorkflowHandle[T]`.

Raises:
    NonExistentWorkflowError: there is no such workflow.
"""
