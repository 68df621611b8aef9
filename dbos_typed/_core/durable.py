"""The checkpoint protocol shared by every durable operation inside a workflow.

Each operation takes the next step ID. On replay the recorded row at that ID is returned
(after checking its name: a different name means the code is no longer deterministic); on a
first run the operation executes and its result is written in one round trip. The errors
dbos_typed itself records (a child's failure, a step's exhausted retries, a timed-out wait)
are rebuilt from their stored fields, never from a class name looked up at run time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.serialization import Codec, ErrorRecord
from dbos_typed._sysdb._retry import StoreClosedError
from dbos_typed._sysdb._rows import (
    Checkpoint,
    CheckpointRefused,
    InsertedWorkflow,
    NewWorkflow,
    RecordResult,
    StatusName,
    StepRecord,
)
from dbos_typed.errors import (
    AwaitedWorkflowCancelledError,
    DeadLetterError,
    InvalidOptionError,
    MaxStepRetriesExceededError,
    NonDeterminismError,
    NonExistentWorkflowError,
    QueueDeduplicatedError,
    QueueNotFoundError,
    ScheduleNotFoundError,
    StepFailedError,
    StepTimeoutError,
    WaitTimeoutError,
    WorkflowCancelledError,
    WorkflowDeadlineExceededError,
    WorkflowFailedError,
)

T = TypeVar("T")

#: What running an operation produced: (output JSON, error JSON, value to return,
#: exception to raise), recorded by `complete_operation`.
OperationOutcome = tuple[str | None, str | None, Any, BaseException | None]

# What a library call may raise as its answer (recorded, and raised again on replay), as
# opposed to a database outage or a cancellation, which must never be recorded.
_ANSWERS = (
    InvalidOptionError,
    NonExistentWorkflowError,
    QueueDeduplicatedError,
    QueueNotFoundError,
    ScheduleNotFoundError,
)


class ReplayStopped(BaseException):
    """A checked replay (`ReplayCheck`) stops the body: it left its history, or ran past it.

    A `BaseException`, so workflow code that catches `Exception` cannot swallow it.
    """


class ReplayCheck:
    """A run that may only replay its recorded steps: `dbos_typed.testing.check_replay`.

    Each operation the code takes is noted with the record found at its ID. The first
    one that differs from the history, or that has no record, stops the body with
    `ReplayStopped`: nothing runs that the history does not hold, so nothing is written.
    """

    def __init__(self, history: list[StepRecord]) -> None:
        self.history = {step.step_id: step.name for step in history}
        self.taken: list[tuple[int, str]] = []
        self.left_at: int | None = None  # the step where the code left the history

    def took(self, step_id: int, name: str, recorded: StepRecord | None, *, optional: bool) -> None:
        """Note the operation `name` at `step_id`; stop the body where nothing replays it.

        Raises:
            ReplayStopped: the operation is not the one recorded, or none is recorded.
        """
        self.taken.append((step_id, name))
        if recorded is None and optional:
            return
        if recorded is None or recorded.name != name:
            self.left_at = step_id
            raise ReplayStopped


class Superseded(WorkflowCancelledError):
    """This execution lost its workflow to another one and stops without writing more.

    That happens when the workflow was resumed elsewhere, finished, or was dead-lettered.
    """


# Child IDs are `<parent>-<step>`, so each generation adds to the length; past this many
# characters the parent's part is cut and a digest of it keeps the ID unique, so that a
# deep (or runaway) tree does not carry IDs of ever-growing size.
MAX_CHILD_ID_LENGTH = 128
_KEPT_PREFIX = 80


def child_workflow_id(parent_id: str, step_id: int) -> str:
    """The ID a child started at `step_id` gets unless one is given (the same on replay)."""
    child = f"{parent_id}-{step_id}"
    if len(child) <= MAX_CHILD_ID_LENGTH:
        return child
    digest = hashlib.blake2b(parent_id.encode(), digest_size=8).hexdigest()
    return f"{parent_id[:_KEPT_PREFIX]}~{digest}-{step_id}"


def begin_operation(
    ctx: WorkflowContext, name: str, *, optional: bool = False
) -> tuple[int, StepRecord | None]:
    """Take the next step ID; return it with the recorded row to replay, if any.

    `optional` marks an ID whose record a finished run may lack (the deadline of a wait
    that never had to wait).

    Raises:
        WorkflowCancelledError: the workflow was cancelled or the context is shutting down.
        NonDeterminismError: a different operation is recorded at this step.
    """
    state = ctx._state
    state.check_cancelled()
    step_id = state.next_step
    state.next_step += 1
    recorded = state.recorded.pop(step_id, None) if state.recorded else None
    if state.replay_check is not None:
        state.replay_check.took(step_id, name, recorded, optional=optional)
    if recorded is not None and recorded.name != name:
        raise NonDeterminismError(
            state.workflow_id, step_id=step_id, expected=name, recorded=recorded.name
        )
    return step_id, recorded


def record_operation(ctx: WorkflowContext, step: StepRecord) -> None:
    """Write a step's checkpoint, telling apart our own retried write and a rival's.

    Raises:
        WorkflowCancelledError: the workflow is no longer PENDING (cancelled, or taken over).
        NonDeterminismError: another execution recorded a different operation here.
    """
    runtime = ctx._runtime
    state = ctx._state
    # A run cancelled here may find its row PENDING again (resumed and re-claimed while
    # this step ran); only the new run may write from now on.
    state.check_cancelled()
    try:
        result = runtime.store.record_step(
            state.workflow_id, step, runtime.app_name, state.owner_xid
        )
    except StoreClosedError as exc:
        # The context shut down under this run: unwind it like a cancellation, without
        # recording anything; the workflow stays PENDING for the next launch.
        raise WorkflowCancelledError(state.workflow_id, "interrupted by shutdown") from exc
    if result is RecordResult.WRITTEN:
        return
    existing = refused(ctx, step.step_id, step.name, result)
    if still_owned(ctx) and (existing.output, existing.error) == (step.output, step.error):
        return  # our own write, retried after a lost reply
    raise Superseded(state.workflow_id, "superseded by another execution")


def still_owned(ctx: WorkflowContext) -> bool:
    """Whether the workflow's row still carries the token this run's start or claim set."""
    state = ctx._state
    if state.owner_xid is None:
        return True
    return ctx._runtime.store.workflow_owner(state.workflow_id) == state.owner_xid


def checkpoint_of(ctx: WorkflowContext, step: StepRecord) -> Checkpoint:
    """`step` as a checkpoint of this run, written only while the run owns its workflow."""
    state = ctx._state
    return Checkpoint(state.workflow_id, step, ctx._runtime.app_name, state.owner_xid)


def insert_child(ctx: WorkflowContext, row: NewWorkflow, step_id: int) -> InsertedWorkflow | None:
    """Insert a child workflow and record it as the parent's step `step_id`, atomically.

    Returns None, starting nothing, when the step is already recorded with this child (an
    earlier write of this run whose reply was lost, or another run of the parent): the
    child recorded there stands.

    Raises:
        WorkflowCancelledError: the parent is no longer PENDING here (cancelled, or taken over);
            the child was not started.
        NonDeterminismError: a different operation is recorded at this step.
    """
    step = StepRecord(step_id, row.name, None, None, row.workflow_id, row.now_ms, row.now_ms)
    try:
        return ctx._runtime.store.insert_child_workflow(row, checkpoint_of(ctx, step))
    except CheckpointRefused as exc:
        existing = refused(ctx, step_id, row.name, exc.result)
    if existing.child_workflow_id != row.workflow_id:
        raise NonDeterminismError(
            ctx._state.workflow_id, step_id=step_id, expected=row.name, recorded=existing.name
        )
    return None


def refused(ctx: WorkflowContext, step_id: int, name: str, result: RecordResult) -> StepRecord:
    """Explain a checkpoint the database refused: return the row already recorded there.

    Raises:
        WorkflowCancelledError: the workflow is no longer PENDING (cancelled, or taken over).
        NonDeterminismError: a different operation is recorded at this step.
    """
    runtime = ctx._runtime
    state = ctx._state
    if result is RecordResult.ALREADY_RECORDED:
        existing = runtime.store.get_step(state.workflow_id, step_id)
        if existing is not None:
            if existing.name != name:
                raise NonDeterminismError(
                    state.workflow_id, step_id=step_id, expected=name, recorded=existing.name
                )
            return existing
    status = runtime.store.workflow_status(state.workflow_id)
    if status is StatusName.CANCELLED:
        state.execution.cancel("cancelled")
        raise WorkflowCancelledError(state.workflow_id)
    raise Superseded(state.workflow_id, f"no longer running here (status {status})")


def run_durably(
    ctx: WorkflowContext,
    name: str,
    execute: Callable[[], OperationOutcome],
    replay: Callable[[StepRecord], Any],
    *,
    child_workflow_id: str | None = None,
) -> Any:
    """Run one durable operation: replay it if recorded, else execute and checkpoint it."""
    step_id, recorded = begin_operation(ctx, name)
    if recorded is not None:
        return replay(recorded)
    started = ctx._runtime.clock.now_ms()
    return complete_operation(
        ctx, step_id, name, started, execute(), child_workflow_id=child_workflow_id
    )


def complete_operation(
    ctx: WorkflowContext,
    step_id: int,
    name: str,
    started_ms: int,
    outcome: OperationOutcome,
    *,
    child_workflow_id: str | None = None,
) -> Any:
    """Checkpoint what operation `step_id` produced; return its value or raise its error."""
    output, error, value, failure = outcome
    record_operation(
        ctx,
        StepRecord(
            step_id=step_id,
            name=name,
            output=output,
            error=error,
            child_workflow_id=child_workflow_id,
            started_at_ms=started_ms,
            completed_at_ms=ctx._runtime.clock.now_ms(),
        ),
    )
    if failure is not None:
        raise failure
    return value


def in_workflow_body(ctx: object) -> bool:
    """Whether `ctx` is a running workflow's context, outside any step."""
    return isinstance(ctx, WorkflowContext) and not ctx._state.in_step


def checkpointed(ctx: Connected, name: str, action: Callable[[], T], codec: Codec[Any]) -> T:
    """Run a library call; in a workflow body, as an operation recorded under `name`.

    A replay returns the recorded answer (or raises the recorded error) without calling
    `action` again, so a workflow that forks, cancels or lists sees the same outcome after
    a restart, and a write is made once. Only errors that answer the call (an argument
    refused; no such workflow, queue or schedule) are recorded; a database error is not,
    so the call runs again when the workflow does. Inside a step, or outside a workflow,
    the call runs as is.
    """
    if not in_workflow_body(ctx):
        return action()
    assert isinstance(ctx, WorkflowContext)

    def execute() -> OperationOutcome:
        try:
            value = action()
        except _ANSWERS as exc:
            return None, record_of(exc).encode(), None, exc
        return codec.encode(value), None, value, None

    def replay(step: StepRecord) -> Any:
        if step.error is not None:
            raise rebuild_error(ErrorRecord.decode(step.error), step_name=name)
        return codec.decode(step.output or "null")

    result: T = run_durably(ctx, name, execute, replay)
    return result


# -- errors dbos_typed records and rebuilds ------------------------------------------------


def record_of(exc: BaseException) -> ErrorRecord:
    """What to store of an exception; dbos_typed's own errors keep their fields in `data`."""
    if isinstance(exc, MaxStepRetriesExceededError):
        return ErrorRecord(
            name="MaxStepRetriesExceededError",
            message=str(exc),
            data={
                "step_name": exc.step_name,
                "attempts": exc.attempts,
                "error_name": exc.error_name,
                "error_message": exc.error_message,
                "error_code": exc.error_code,
                "data": exc.data,
            },
        )
    if isinstance(exc, StepFailedError):
        # Replay raises StepFailedError again from the original exception's fields.
        return ErrorRecord(
            name=exc.error_name, message=exc.error_message, code=exc.error_code, data=exc.data
        )
    if isinstance(exc, WorkflowFailedError):
        return ErrorRecord(
            name="WorkflowFailedError",
            message=str(exc),
            data={
                "workflow_id": exc.workflow_id,
                "error_name": exc.error_name,
                "error_message": exc.error_message,
                "error_code": exc.error_code,
                "data": exc.data,
            },
        )
    if isinstance(exc, QueueDeduplicatedError):
        return ErrorRecord(
            name="QueueDeduplicatedError",
            message=str(exc),
            data={
                "workflow_id": exc.workflow_id,
                "queue_name": exc.queue_name,
                "deduplication_id": exc.deduplication_id,
            },
        )
    if isinstance(exc, AwaitedWorkflowCancelledError | DeadLetterError | NonExistentWorkflowError):
        return ErrorRecord(
            name=type(exc).__name__, message=str(exc), data={"workflow_id": exc.workflow_id}
        )
    if isinstance(exc, InvalidOptionError):
        problem = str(exc).split(": ", 1)[-1]
        return ErrorRecord(
            name="InvalidOptionError",
            message=str(exc),
            data={"argument": exc.argument, "problem": problem},
        )
    if isinstance(exc, ScheduleNotFoundError):
        return ErrorRecord(
            name="ScheduleNotFoundError",
            message=str(exc),
            data={"schedule_name": exc.schedule_name},
        )
    if isinstance(exc, QueueNotFoundError):
        return ErrorRecord(
            name="QueueNotFoundError", message=str(exc), data={"queue_name": exc.queue_name}
        )
    if isinstance(exc, WaitTimeoutError):
        return ErrorRecord(
            name="WaitTimeoutError",
            message=str(exc),
            data={"timeout_seconds": exc.timeout.total_seconds(), "what": exc.what},
        )
    return ErrorRecord.of(exc)


def _field(data: Any, key: str, default: Any = None) -> Any:
    return data.get(key, default) if isinstance(data, dict) else default


def _rebuild_own(record: ErrorRecord) -> BaseException | None:
    data = record.data
    workflow_id = str(_field(data, "workflow_id", ""))
    if record.name == "WorkflowFailedError":
        return WorkflowFailedError(
            workflow_id,
            error_name=str(_field(data, "error_name", "Error")),
            error_message=str(_field(data, "error_message", "")),
            error_code=_field(data, "error_code"),
            data=_field(data, "data"),
        )
    if record.name == "QueueDeduplicatedError":
        return QueueDeduplicatedError(
            workflow_id,
            queue_name=str(_field(data, "queue_name", "")),
            deduplication_id=str(_field(data, "deduplication_id", "")),
        )
    simple: dict[str, Callable[[str], BaseException]] = {
        "AwaitedWorkflowCancelledError": AwaitedWorkflowCancelledError,
        "WorkflowDeadlineExceededError": WorkflowDeadlineExceededError,
        "DeadLetterError": DeadLetterError,
        "NonExistentWorkflowError": NonExistentWorkflowError,
    }
    if record.name in simple:
        return simple[record.name](workflow_id)
    if record.name == "InvalidOptionError":
        problem = _field(data, "problem", record.message.split(": ", 1)[-1])
        return InvalidOptionError(str(_field(data, "argument", "")), str(problem))
    if record.name == "ScheduleNotFoundError":
        return ScheduleNotFoundError(str(_field(data, "schedule_name", "")))
    if record.name == "QueueNotFoundError":
        return QueueNotFoundError(str(_field(data, "queue_name", "")))
    if record.name == "WaitTimeoutError":
        seconds = _field(data, "timeout_seconds", 0.0)
        what = str(_field(data, "what", "a result"))
        return WaitTimeoutError(what, timedelta(seconds=float(seconds or 0.0)))
    return None


def rebuild_error(record: ErrorRecord, *, step_name: str) -> BaseException:
    """The exception a recorded operation error raises on replay."""
    if record.name == "MaxStepRetriesExceededError":
        data = record.data
        return MaxStepRetriesExceededError(
            str(_field(data, "step_name", step_name)),
            attempts=int(_field(data, "attempts", 0) or 0),
            error_name=str(_field(data, "error_name", "Error")),
            error_message=str(_field(data, "error_message", "")),
            error_code=_field(data, "error_code"),
            data=_field(data, "data"),
        )
    if record.name == "StepTimeoutError":
        seconds = _field(record.data, "timeout_seconds", 0)
        timeout = timedelta(seconds=float(seconds) if isinstance(seconds, int | float) else 0)
        return StepTimeoutError(step_name, timeout=timeout)
    own = _rebuild_own(record)
    if own is not None:
        return own
    return StepFailedError(
        step_name,
        error_name=record.name,
        error_message=record.message,
        error_code=record.code,
        data=record.data,
    )


def workflow_context(ctx: object, operation: str) -> WorkflowContext:
    """Check that `ctx` belongs to a running workflow and that no step is running.

    Raises:
        InvalidOptionError: it is not a workflow's context, or a step is running.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError(
            "ctx", f"{operation} needs the WorkflowContext of a running workflow"
        )
    if ctx._state.in_step:
        raise InvalidOptionError("ctx", f"{operation} cannot be called from inside a step")
    return ctx
