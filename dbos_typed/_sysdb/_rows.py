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
    is_debounced: bool = False
    debounce_deadline_ms: int | None = None  # a debounced burst starts no later than this
    authenticated_user: str | None = None
    assumed_role: str | None = None
    authenticated_roles: str | None = None  # a JSON array of strings
    attributes: str | None = None  # a JSON object
    class_name: str | None = None  # the class of a configured instance's workflow
    config_name: str | None = None  # the configured instance that runs it


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
    authenticated_roles: str | None = None  # a JSON array of strings
    attributes: str | None = None  # a JSON object
    queue_partition_key: str | None = None
    was_forked_from: bool = False
    delay_until_ms: int | None = None
    class_name: str | None = None
    config_name: str | None = None
    schedule_name: str | None = None
    debounce_deadline_ms: int | None = None
    is_debounced: bool = False


@dataclass(frozen=True, slots=True)
class ClaimedWorkflow:
    """A queued workflow this executor has just taken to run."""

    workflow_id: str
    name: str
    inputs: str | None
    recovery_attempts: int
    deadline_ms: int | None
    queue_name: str | None = None
    partition_key: str | None = None
    has_steps: bool = True  # False: nothing recorded yet, so nothing to load for replay
    owner_xid: str | None = None  # the claim's token, which fences the run's writes
    config_name: str | None = None  # the configured instance that runs it (None: none)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One row of the `queues` table: a queue's flow-control settings."""

    name: str
    concurrency: int | None
    worker_concurrency: int | None
    rate_limit_max: int | None
    rate_limit_period_sec: float | None
    priority_enabled: bool
    partition_queue: bool
    polling_interval_sec: float
    application_name: str | None


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One row of the `application_versions` table."""

    version_id: str
    version_name: str
    timestamp_ms: int
    created_at_ms: int
    application_name: str | None


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the idle probe found.

    `ready` holds the queues (and partitions) with ENQUEUED work; `next_delay_ms` is when
    the earliest DELAYED workflow is due (None if there is none).
    """

    ready: frozenset[tuple[str, str | None]]
    next_delay_ms: int | None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One dequeue: which queue (and partition), how many at most, and its global limits."""

    queue_name: str
    partition_key: str | None
    limit: int
    concurrency: int | None
    rate_limit_max: int | None
    rate_limit_period_ms: int | None
    executor_id: str
    application_version: str
    application_name: str
    accept_unversioned: bool
    now_ms: int
    # The (name, config name) pairs registered here; "" for no configured instance.
    workflow_names: tuple[tuple[str, str], ...] = ()

    @property
    def rate_limited(self) -> bool:
        """Whether claimed rows count towards a rate limit."""
        return self.rate_limit_max is not None


class Deduplicated(Exception):
    """An enqueue collided with a live workflow holding the same deduplication ID."""


@dataclass(frozen=True, slots=True)
class DeduplicationHolder:
    """The workflow that holds a deduplication ID on a queue."""

    workflow_id: str
    name: str
    status: StatusName
    is_debounced: bool


@dataclass(frozen=True, slots=True)
class Debounced:
    """Where a debounce call landed: the workflow that will run the burst.

    `name` is the name recorded under that ID, which differs from the debounced workflow's
    only when the caller chose an ID that belongs to another workflow.
    """

    workflow_id: str
    name: str


class RecordResult(enum.Enum):
    """How a checkpoint write ended."""

    WRITTEN = "written"
    NOT_PENDING = "not_pending"
    ALREADY_RECORDED = "already_recorded"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A step to record together with an operation's own writes, in one transaction.

    With `owner_xid`, nothing is written unless that run still owns the workflow.
    """

    workflow_id: str
    step: StepRecord
    application_name: str | None
    owner_xid: str | None = None


class CheckpointRefused(Exception):
    """An operation was rolled back because its checkpoint was refused; `result` says why."""

    def __init__(self, result: RecordResult) -> None:
        super().__init__(result.value)
        self.result = result


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


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One workflow_schedules row, as stored."""

    schedule_id: str
    schedule_name: str
    workflow_name: str
    workflow_class_name: str | None
    schedule: str
    status: str
    context: str
    last_fired_at: str | None
    automatic_backfill: bool
    cron_timezone: str | None
    queue_name: str | None
    application_name: str | None


@dataclass(frozen=True, slots=True)
class ScheduledTick:
    """A scheduled workflow about to be enqueued: one tick, a backfill or a trigger."""

    workflow_id: str
    name: str
    class_name: str | None
    inputs: str
    queue_name: str
    schedule_name: str
    application_version: str | None
    application_name: str | None
    now_ms: int


@dataclass(frozen=True, slots=True)
class WorkflowAggregateRecord:
    """One group of workflow_status rows: its key and its metrics, in epoch milliseconds."""

    group: dict[str, str | None]
    bucket_start_ms: int | None
    count: int
    first_created_at_ms: int
    max_queue_wait_ms: int | None
    max_latency_ms: int | None


@dataclass(frozen=True, slots=True)
class StepAggregateRecord:
    """One group of operation_outputs rows: its key and its metrics, in epoch milliseconds."""

    group: dict[str, str | None]
    bucket_start_ms: int | None
    count: int
    max_duration_ms: int | None
