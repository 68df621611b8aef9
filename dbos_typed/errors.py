"""Every error dbos_typed raises, in one tree.

```
DBOSError                               root of everything below; .code names the failure
├── ApplicationVersionNotFoundError     no such application version (or none): .version_name
├── InitializationError                 bad config, unreachable database, launch twice
├── InvalidOptionError (ValueError)     a bad argument: .argument and what was expected
├── PatchingNotEnabledError             patch() without Config(enable_patching=True)
├── QueueNotFoundError                  no queue has that name: .queue_name
├── RegistrationError                   duplicate name, unresolvable or unserializable type
├── ScheduleNotFoundError               no schedule has that name: .schedule_name
├── SerializationError                  a value pydantic cannot encode or decode
├── SystemDatabaseError                 the database refused a statement (not an outage)
├── WaitTimeoutError (TimeoutError)     a bounded wait ran out: .timeout
├── WorkflowError                       .workflow_id
│   ├── NonExistentWorkflowError        no workflow has that ID
│   ├── WorkflowExistsError             an imported workflow's ID is already taken
│   ├── ConflictingWorkflowError        that ID belongs to another workflow function
│   ├── NonDeterminismError             replay met a different step: .step_id, .expected, .recorded
│   ├── AwaitedWorkflowCancelledError   the awaited workflow was cancelled
│   │   └── WorkflowDeadlineExceededError   ... because its deadline passed
│   ├── DeadLetterError                 max recovery attempts exceeded
│   ├── QueueDeduplicatedError          a live workflow on the queue holds the deduplication ID
│   ├── WorkflowInterruptedError        this process's run stopped without an outcome: .reason
│   └── WorkflowFailedError             the workflow raised: .error_name, .error_message, .data
└── StepFailedError                     a step raised: .step_name, .error_name, .error_message
    ├── MaxStepRetriesExceededError     ... on every allowed attempt: .attempts
    └── StepTimeoutError                an attempt ran longer than the step's timeout: .timeout

WorkflowCancelledError (BaseException) raised inside a cancelled workflow to unwind it
```

`WorkflowCancelledError` derives from `BaseException`, like `asyncio.CancelledError`, so
that a workflow's `except Exception:` does not swallow its own cancellation by accident.
Every class pickles and unpickles with its fields intact. `WorkflowCancelled`, the old name
of `WorkflowCancelledError`, still works and warns (`DeprecationWarning`).
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

__all__ = [
    "ApplicationVersionNotFoundError",
    "AwaitedWorkflowCancelledError",
    "ConflictingWorkflowError",
    "DBOSError",
    "DeadLetterError",
    "InitializationError",
    "InvalidOptionError",
    "MaxStepRetriesExceededError",
    "NonDeterminismError",
    "NonExistentWorkflowError",
    "PatchingNotEnabledError",
    "QueueDeduplicatedError",
    "QueueNotFoundError",
    "RegistrationError",
    "ScheduleNotFoundError",
    "SerializationError",
    "StepFailedError",
    "StepTimeoutError",
    "SystemDatabaseError",
    "WaitTimeoutError",
    "WorkflowCancelledError",
    "WorkflowDeadlineExceededError",
    "WorkflowError",
    "WorkflowExistsError",
    "WorkflowFailedError",
    "WorkflowInterruptedError",
]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class _Picklable(BaseException):
    # Exceptions with keyword-only constructors do not survive pickle's default
    # `cls(*args)` call; rebuilding from the instance dict keeps every field.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class DBOSError(_Picklable, Exception):
    """Root of every error raised by dbos_typed.

    Attributes:
        code: A stable name for the kind of failure (mirrors the Go SDK's error codes).
    """

    code: ClassVar[str] = "DBOSError"

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else ""


class InitializationError(DBOSError):
    """The context could not be created or launched (bad config, database, lifecycle)."""

    code = "InitializationError"


class InvalidOptionError(DBOSError, ValueError):
    """An argument had a value the call cannot accept.

    Attributes:
        argument: The name of the offending argument.
    """

    code = "InvalidOption"

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"invalid {argument!r}: {problem}")
        self.argument = argument


class PatchingNotEnabledError(DBOSError):
    """`patch` or `deprecate_patch` was called, but the context was not configured for it.

    Patching changes how the application version is chosen, so it is switched on
    explicitly with `Config(enable_patching=True)`.

    Attributes:
        operation: The call that was refused (`"patch"` or `"deprecate_patch"`).
    """

    code = "PatchingNotEnabled"

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"{operation} needs patching enabled: create the context with "
            "Config(enable_patching=True)"
        )
        self.operation = operation


class RegistrationError(DBOSError):
    """A workflow could not be registered (duplicate, bad signature, unusable types)."""

    code = "ConflictingRegistrationError"


class SerializationError(DBOSError):
    """A value could not be converted to or from the stored JSON form."""

    code = "SerializationError"


class SystemDatabaseError(DBOSError):
    """The system database rejected an operation for a reason other than an outage.

    Also raised when a data source's own table (`transaction_completion`) cannot be read or
    written.

    Attributes:
        sqlstate: The database's error code, when it gave one.
    """

    code = "SystemDatabaseError"

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class WaitTimeoutError(DBOSError, TimeoutError):
    """A bounded wait (for a result, a message or an event) ran out.

    Attributes:
        timeout: How long the wait was allowed to take.
        what: What was awaited, in words.
    """

    code = "TimeoutError"

    def __init__(self, what: str, timeout: timedelta) -> None:
        super().__init__(f"timed out after {timeout.total_seconds():g}s waiting for {what}")
        self.timeout = timeout
        self.what = what


class WorkflowError(DBOSError):
    """An error about one workflow.

    Attributes:
        workflow_id: The workflow concerned.
    """

    code = "WorkflowError"

    def __init__(self, workflow_id: str, message: str) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id


class NonExistentWorkflowError(WorkflowError):
    """No workflow with this ID exists in the system database."""

    code = "NonExistentWorkflowError"

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id, f"workflow {workflow_id!r} does not exist")


class WorkflowExistsError(WorkflowError):
    """A workflow being imported has an ID the system database already holds."""

    code = "WorkflowExistsError"

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            workflow_id, f"workflow {workflow_id!r} already exists here; nothing was imported"
        )


class ConflictingWorkflowError(WorkflowError):
    """The workflow ID is already used by a different workflow function."""

    code = "ConflictingWorkflowError"

    def __init__(self, workflow_id: str, *, existing_name: str, requested_name: str) -> None:
        super().__init__(
            workflow_id,
            f"workflow {workflow_id!r} already exists as {existing_name!r}; "
            f"it cannot be started as {requested_name!r}",
        )
        self.existing_name = existing_name
        self.requested_name = requested_name


class NonDeterminismError(WorkflowError):
    """On replay, the workflow asked for a different step than the one recorded.

    Attributes:
        step_id: The 0-based step number where the histories diverge.
        expected: The step name the code asked for now.
        recorded: The step name found in the database.
    """

    code = "UnexpectedStep"

    def __init__(self, workflow_id: str, *, step_id: int, expected: str, recorded: str) -> None:
        super().__init__(
            workflow_id,
            f"workflow {workflow_id!r} is not deterministic: step {step_id} is recorded as "
            f"{recorded!r} but the code now runs {expected!r}",
        )
        self.step_id = step_id
        self.expected = expected
        self.recorded = recorded


class AwaitedWorkflowCancelledError(WorkflowError):
    """The awaited workflow was cancelled, so it has no result."""

    code = "AwaitedWorkflowCancelled"

    def __init__(self, workflow_id: str, message: str | None = None) -> None:
        super().__init__(workflow_id, message or f"workflow {workflow_id!r} was cancelled")


class WorkflowDeadlineExceededError(AwaitedWorkflowCancelledError):
    """The awaited workflow was cancelled because its timeout passed."""

    code = "AwaitedWorkflowCancelled"

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            workflow_id, f"workflow {workflow_id!r} was cancelled: its deadline passed"
        )


class DeadLetterError(WorkflowError):
    """The workflow was started too many times without finishing and was set aside.

    Its status is `MAX_RECOVERY_ATTEMPTS_EXCEEDED`; `resume_workflow` gives it a fresh budget.
    """

    code = "DeadLetterQueueError"

    def __init__(self, workflow_id: str, max_recovery_attempts: int | None = None) -> None:
        limit = "" if max_recovery_attempts is None else f" of {max_recovery_attempts}"
        super().__init__(
            workflow_id,
            f"workflow {workflow_id!r} exceeded its maximum{limit} recovery attempts "
            "and was moved to the dead-letter queue",
        )
        self.max_recovery_attempts = max_recovery_attempts


class WorkflowInterruptedError(WorkflowError):
    """This process's run of the workflow stopped without recording an outcome.

    That happens when its body or a step raised an exception that is not an `Exception`
    (`SystemExit`, `KeyboardInterrupt`, ...), or when a workflow it was waiting on was
    interrupted in turn. Nothing more is recorded, as after a crash: the workflow stays
    PENDING, and is run again when its executor recovers it (at its next launch) or when
    it is resumed.

    Attributes:
        reason: What stopped it, as `repr` describes the exception.
    """

    code = "WorkflowInterrupted"

    def __init__(self, workflow_id: str, reason: str) -> None:
        super().__init__(
            workflow_id,
            f"the run of workflow {workflow_id!r} stopped without an outcome ({reason}); "
            "it stays PENDING until it is recovered or resumed",
        )
        self.reason = reason


class QueueDeduplicatedError(WorkflowError):
    """An enqueue was refused: another workflow on the queue holds its deduplication ID.

    The ID is released when that workflow finishes, is cancelled or is resumed.

    Attributes:
        workflow_id: The workflow that was not enqueued.
        queue_name: The queue.
        deduplication_id: The contested deduplication ID.
    """

    code = "QueueDeduplicated"

    def __init__(self, workflow_id: str, *, queue_name: str, deduplication_id: str) -> None:
        super().__init__(
            workflow_id,
            f"workflow {workflow_id!r} was not enqueued: deduplication ID "
            f"{deduplication_id!r} is already in use on queue {queue_name!r}",
        )
        self.queue_name = queue_name
        self.deduplication_id = deduplication_id


class WorkflowFailedError(WorkflowError):
    """The workflow raised an exception; this carries what was recorded of it.

    Attributes:
        error_name: The class name of the original exception.
        error_message: Its message.
        error_code: An optional code taken from the original exception.
        data: Optional JSON data taken from the original exception.
    """

    code = "WorkflowFailed"

    def __init__(
        self,
        workflow_id: str,
        *,
        error_name: str,
        error_message: str,
        error_code: int | str | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(
            workflow_id, f"workflow {workflow_id!r} failed: {error_name}: {error_message}"
        )
        self.error_name = error_name
        self.error_message = error_message
        self.error_code = error_code
        self.data = data


class StepFailedError(DBOSError):
    """A step raised an exception; the same error is raised again when the step is replayed.

    The original exception is chained as `__cause__` on the first run only, because replay
    never rebuilds classes named by database content.

    Attributes:
        step_name: The step that failed.
        error_name: The class name of the original exception.
        error_message: Its message.
        error_code: An optional code taken from the original exception.
        data: Optional JSON data taken from the original exception.
    """

    code = "StepExecutionError"

    def __init__(
        self,
        step_name: str,
        *,
        error_name: str,
        error_message: str,
        error_code: int | str | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(f"step {step_name!r} failed: {error_name}: {error_message}")
        self.step_name = step_name
        self.error_name = error_name
        self.error_message = error_message
        self.error_code = error_code
        self.data = data


class MaxStepRetriesExceededError(StepFailedError):
    """A step failed on every attempt its retry policy allowed.

    Attributes:
        attempts: How many times the step ran.
    """

    code = "MaxStepRetriesExceeded"

    def __init__(
        self,
        step_name: str,
        *,
        attempts: int,
        error_name: str,
        error_message: str,
        error_code: int | str | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(
            step_name,
            error_name=error_name,
            error_message=error_message,
            error_code=error_code,
            data=data,
        )
        self.args = (
            f"step {step_name!r} failed after {attempts} attempts; "
            f"last error: {error_name}: {error_message}",
        )
        self.attempts = attempts


class StepTimeoutError(StepFailedError):
    """An attempt of a step ran longer than the `timeout` given to `run_as_step`.

    It counts as a failure of that attempt, so the step's retry policy retries it like
    any other; when no attempt is left it is what the step records and raises (after
    several attempts, as the `error_name` of a `MaxStepRetriesExceededError`).

    Attributes:
        timeout: How long each attempt was allowed to run.
    """

    code = "StepTimeout"

    def __init__(self, step_name: str, *, timeout: timedelta) -> None:
        seconds = timeout.total_seconds()
        super().__init__(
            step_name,
            error_name="StepTimeoutError",
            error_message=f"ran longer than its timeout of {seconds:g}s",
            data={"timeout_seconds": seconds},
        )
        self.timeout = timeout


class WorkflowCancelledError(_Picklable):
    """Raised inside a workflow that was cancelled, to unwind it.

    It derives from `BaseException` so that `except Exception` in workflow code does not
    swallow it. Let it propagate: a cancelled workflow never records a result, even if
    it catches this and returns.

    Attributes:
        workflow_id: The cancelled workflow.
    """

    def __init__(self, workflow_id: str, reason: str = "cancelled") -> None:
        super().__init__(f"workflow {workflow_id!r} was {reason}")
        self.workflow_id = workflow_id
        self.reason = reason


class ScheduleNotFoundError(DBOSError):
    """No schedule with this name exists.

    Attributes:
        schedule_name: The name looked for.
    """

    code = "ScheduleNotFound"

    def __init__(self, schedule_name: str) -> None:
        super().__init__(f"schedule {schedule_name!r} does not exist")
        self.schedule_name = schedule_name


class ApplicationVersionNotFoundError(DBOSError):
    """No application version of that name is recorded, or none at all.

    Attributes:
        version_name: The version looked for, or None when no version is recorded.
    """

    code = "ApplicationVersionNotFound"

    def __init__(self, version_name: str | None = None) -> None:
        super().__init__(
            "no application version is recorded"
            if version_name is None
            else f"application version {version_name!r} is not recorded"
        )
        self.version_name = version_name


class QueueNotFoundError(DBOSError):
    """No queue with this name is declared in the system database.

    Attributes:
        queue_name: The name looked for.
    """

    code = "QueueNotFound"

    def __init__(self, queue_name: str) -> None:
        super().__init__(f"queue {queue_name!r} does not exist")
        self.queue_name = queue_name


# Old names, kept working: each use warns and names its replacement.
_DEPRECATED = {"WorkflowCancelled": "WorkflowCancelledError"}

if TYPE_CHECKING:
    WorkflowCancelled = WorkflowCancelledError
else:

    def __getattr__(name: str) -> Any:
        replacement = _DEPRECATED.get(name)
        if replacement is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        warnings.warn(
            f"dbos_typed.errors.{name} is deprecated; use {replacement}",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[replacement]
