"""Plain records that cross the storage boundary, and the status names the schema uses."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StatusName(enum.StrEnum):
    """The `status` column's values."""

    ENQUEUED = "ENQUEUED"
    DELAYED = "DELAYED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"


#: The queue that recovery, resume and DBOS's own tools put work on.
INTERNAL_QUEUE = "_dbos_internal_queue"

TERMINAL_STATUSES = frozenset(
    {
        StatusName.SUCCESS,
        StatusName.ERROR,
        StatusName.CANCELLED,
        StatusName.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    }
)


@dataclass(frozen=True, slots=True)
class NewWorkflow:
    """A workflow_status row (and its input) about to be inserted."""

    workflow_id: str
    status: StatusName
    name: str
    inputs: str
    executor_id: str | None
    application_version: str | None
    application_name: str | None
    application_id: str | None
    creator_xid: str
    now_ms: int
    queue_name: str | None = None
    timeout_ms: int | None = None
    deadline_ms: int | None = None
    parent_workflow_id: str | None = None
    deduplication_id: str | None = None
    priority: int = 0
    partition_key: str | None = None
    delay_until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class InsertedWorkflow:
    """The row found or created by an insert, and whether this call created it."""

    created: bool
    status: StatusName
    name: str
    queue_name: str | None
    deadline_ms: int | None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One operation_outputs row."""

    step_id: int
    name: str
    output: str | None
    error: str | None
    child_workflow_id: str | None
    started_at_ms: int | None = None
    completed_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a waiter needs to know of a workflow: where it stands and its result."""

    status: StatusName
    output: str | None
    error: str | None
    deadline_ms: int | None


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """A workflow_status row with its input and output joined in."""

    workflow_id: str
    status: StatusName
    name: str
    inputs: str | None
    output: str | None
    error: str | None
    executor_id: str | None
    application_version: str | None
    application_name: str | None
    created_at_ms: int
    updated_at_ms: int
    queue_name: str | None
    recovery_attempts: int
    timeout_ms: int | None
    deadline_ms: int | None
    started_at_ms: int | None
    completed_at_ms: int | None
    parent_workflow_id: str | None
    deduplication_id: str | None
    priority: int
    forked_from: str | None
    authenticated_user: str | None
    assumed_role: str | None
    serialization: str | None


@dataclass(frozen=True, slots=True)
class ClaimedWorkflow:
    """A queued workflow this executor has just taken to run."""

    workflow_id: str
    name: str
    inputs: str | None
    recovery_attempts: int
    deadline_ms: int | None


class RecordResult(enum.Enum):
    """How a checkpoint write ended."""

    WRITTEN = "written"
    NOT_PENDING = "not_pending"
    ALREADY_RECORDED = "already_recorded"


#: The stored value that closes a stream (a JSON string, as every DBOS SDK writes it).
STREAM_CLOSED = '"__DBOS_STREAM_CLOSED__"'

#: The topic column's value for a message sent without a topic.
NULL_TOPIC = "__null__topic__"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A notifications row about to be inserted."""

    message_id: str
    destination_id: str
    topic: str
    message: str
    now_ms: int
