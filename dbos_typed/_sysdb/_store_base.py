"""The base of the system-database store: the primitives, checkpoints, and row mapping.

A backend supplies three primitives: run one statement in its own transaction (`_query`),
run a function inside one transaction (`_transaction`), and turn a shared statement into its
own dialect (`_compile`). Outages are retried inside those primitives, so every method built
on them either completes or raises a real error. The feature stores (`_workflow_store`,
`_queue_store`, `_message_store`, `_schedule_store`, ...) add the operations of one feature
each; `_store.SystemStore` is all of them together.
"""

from __future__ import annotations

import abc
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, LiteralString, Protocol, TypeVar

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._rows import (
    Checkpoint,
    ClaimedWorkflow,
    ClaimRequest,
    InsertedWorkflow,
    NewWorkflow,
    QueueRow,
    RecordResult,
    ScheduleRow,
    StatusName,
    StatusRecord,
    StepRecord,
)
from dbos_typed.errors import SystemDatabaseError

T = TypeVar("T")
Row = tuple[Any, ...]


class _NotRecorded(Exception):
    """Raised inside a transaction to roll back its writes when the checkpoint was refused."""


class Transaction(Protocol):
    """A statement runner bound to one open transaction."""

    def execute(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        """Run one statement and return its rows (empty for statements without any)."""
        ...


class StoreBase(abc.ABC):
    """The primitives every feature store builds on, and checkpoints, which all of them use."""

    backend: str

    # -- primitives each backend provides ------------------------------------------------

    @abc.abstractmethod
    def _query(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        """Run one statement in its own transaction, retrying through outages."""

    @abc.abstractmethod
    def _transaction(self, body: Callable[[Transaction], T]) -> T:
        """Run `body` in one transaction; on an outage the whole body is retried."""

    @abc.abstractmethod
    def migrate(self) -> None:
        """Create or check the schema (safe when several processes start together)."""

    @abc.abstractmethod
    def schema_version(self) -> int | None:
        """The DBOS migration level of the schema, or None if it has no system tables."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every connection."""

    @abc.abstractmethod
    def insert_workflow(self, row: NewWorkflow) -> InsertedWorkflow:
        """Insert a workflow and its input, or report the row that already has that ID."""

    @abc.abstractmethod
    def complete_workflow(
        self,
        workflow_id: str,
        status: StatusName,
        output: str | None,
        error: str | None,
        now_ms: int,
        owner_xid: str | None = None,
    ) -> bool:
        """Record a PENDING workflow's outcome; False if it is no longer PENDING."""

    @abc.abstractmethod
    def claim_queued(self, request: ClaimRequest) -> list[ClaimedWorkflow]:
        """Move ENQUEUED workflows of a queue to PENDING for this executor.

        At most the request's limit, and within the queue's global concurrency and rate
        limit.
        """

    @abc.abstractmethod
    def check_schema(self) -> None:
        """Fail unless the schema exists at a level this library reads (never migrates).

        Raises:
            InitializationError: the schema is missing or too old.
        """

    @abc.abstractmethod
    def _is_deduplicated(self, exc: BaseException) -> bool:
        """Whether `exc` is the deduplication index refusing a second live workflow."""

    @abc.abstractmethod
    def _is_foreign_key_violation(self, exc: BaseException) -> bool:
        """Whether `exc` is a foreign-key violation (a row naming a missing workflow)."""

    @abc.abstractmethod
    def _is_unique_violation(self, exc: BaseException) -> bool:
        """Whether `exc` is a primary-key or unique-constraint violation."""

    def notify(self, channel: str, payloads: Sequence[str]) -> None:  # noqa: B027
        """Send change notifications to other processes; backends without them ignore it."""

    def _insert_in(self, tx: Transaction, row: NewWorkflow) -> InsertedWorkflow:
        rows = tx.execute(q.INSERT_STATUS, insert_params(row))
        inserted = inserted_from(rows[0], row.creator_xid)
        if inserted.created:
            tx.execute(q.INSERT_INPUT, insert_params(row))
        return inserted

    def record_step(
        self,
        workflow_id: str,
        step: StepRecord,
        application_name: str | None,
        owner_xid: str | None = None,
    ) -> RecordResult:
        """Checkpoint a step in one round trip; see `RecordResult` for the outcomes."""
        if self._write_step(record_params(workflow_id, step, application_name, owner_xid)):
            return RecordResult.WRITTEN
        # Nothing written: either the step is already there or the workflow left PENDING.
        return self._why_not_recorded(workflow_id, step.step_id)

    def _write_step(self, params: Mapping[str, Any]) -> bool:
        """Write a step's row (`record_params`); whether the guard admitted it."""
        return bool(self._query(q.RECORD_STEP, params))

    def _records_child(self, tx: Transaction, parent: Checkpoint, child_id: str) -> bool:
        rows = tx.execute(
            q.GET_STEP, {"workflow_id": parent.workflow_id, "step_id": parent.step.step_id}
        )
        return bool(rows) and step_from(rows[0]).child_workflow_id == child_id

    def _checkpoint_in(self, tx: Transaction, checkpoint: Checkpoint) -> None:
        """Write a checkpoint inside `tx`, or roll the whole transaction back if refused."""
        if not tx.execute(q.RECORD_STEP, checkpoint_params(checkpoint)):
            raise _NotRecorded

    def _with_checkpoint(
        self, checkpoint: Checkpoint, body: Callable[[Transaction], None]
    ) -> RecordResult:
        """Run `body` (which ends with `_checkpoint_in`) atomically; say why if refused."""
        try:
            self._transaction(body)
        except _NotRecorded:
            return self._why_not_recorded(checkpoint.workflow_id, checkpoint.step.step_id)
        return RecordResult.WRITTEN

    def _why_not_recorded(self, workflow_id: str, step_id: int) -> RecordResult:
        if self.get_step(workflow_id, step_id) is not None:
            return RecordResult.ALREADY_RECORDED
        return RecordResult.NOT_PENDING

    def get_step(self, workflow_id: str, step_id: int) -> StepRecord | None:
        """One recorded step, or None."""
        rows = self._query(q.GET_STEP, {"workflow_id": workflow_id, "step_id": step_id})
        return step_from(rows[0]) if rows else None

    def list_steps(self, workflow_id: str) -> list[StepRecord]:
        """Every recorded step of a workflow, in step order."""
        return [step_from(r) for r in self._query(q.LIST_STEPS, {"workflow_id": workflow_id})]


def checkpoint_params(checkpoint: Checkpoint) -> dict[str, Any]:
    """Statement parameters for writing a checkpoint, fenced by its owner token if any."""
    return record_params(
        checkpoint.workflow_id, checkpoint.step, checkpoint.application_name, checkpoint.owner_xid
    )


def record_params(
    workflow_id: str,
    step: StepRecord,
    application_name: str | None,
    owner_xid: str | None = None,
) -> dict[str, Any]:
    """Statement parameters for writing `step` as a checkpoint of `workflow_id`.

    With `owner_xid`, the write only happens while that run still owns the workflow.
    """
    return {
        "owner_xid": owner_xid,
        "workflow_id": workflow_id,
        "step_id": step.step_id,
        "name": step.name,
        "output": step.output,
        "error": step.error,
        "child_workflow_id": step.child_workflow_id,
        "started_at_ms": step.started_at_ms,
        "completed_at_ms": step.completed_at_ms,
        "application_name": application_name,
    }


def outcome_params(
    workflow_id: str,
    status: StatusName,
    output: str | None,
    error: str | None,
    now_ms: int,
    owner_xid: str | None,
) -> dict[str, Any]:
    """Statement parameters for recording a workflow's outcome."""
    return {
        "workflow_id": workflow_id,
        "status": status.value,
        "output": output,
        "error": error,
        "now_ms": now_ms,
        "owner_xid": owner_xid,
    }


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own error behind a `SystemDatabaseError`, to tell constraint kinds apart."""
    return exc.__cause__ if isinstance(exc, SystemDatabaseError) and exc.__cause__ else exc


def claim_params(request: ClaimRequest) -> dict[str, Any]:
    """Statement parameters for a claim (the limit is set by the caller)."""
    return {
        "queue_name": request.queue_name,
        "partition_key": request.partition_key,
        "limit": request.limit,
        "executor_id": request.executor_id,
        "application_version": request.application_version,
        "application_name": request.application_name,
        "accept_unversioned": request.accept_unversioned,
        "names": json.dumps(request.workflow_names),
        "rate_limited": request.rate_limited,
        "owner_xid": str(uuid.uuid4()),
        "now_ms": request.now_ms,
    }


def has_global_limit(request: ClaimRequest) -> bool:
    """Whether dequeuers in different processes share a budget for this claim."""
    return request.concurrency is not None or request.rate_limit_max is not None


def global_capacity(tx: Transaction, request: ClaimRequest) -> int:
    """How many workflows the claim may take under the queue's cross-process limits.

    The caller must hold whatever excludes concurrent dequeuers of the same queue, so that
    the counts stay true until its claim commits.
    """
    limit = request.limit
    scope = {"queue_name": request.queue_name, "partition_key": request.partition_key}
    if request.rate_limit_max is not None and request.rate_limit_period_ms is not None:
        window_start = request.now_ms - request.rate_limit_period_ms
        started = tx.execute(q.COUNT_RATE_LIMITED, {**scope, "window_start_ms": window_start})
        limit = min(limit, request.rate_limit_max - int(started[0][0]))
    if request.concurrency is not None:
        pending = tx.execute(q.COUNT_PENDING, scope)
        limit = min(limit, request.concurrency - int(pending[0][0]))
    return max(limit, 0)


def insert_params(row: NewWorkflow) -> dict[str, Any]:
    """Statement parameters for inserting `row`."""
    enqueued = row.status in (StatusName.ENQUEUED, StatusName.DELAYED)
    return {
        "workflow_id": row.workflow_id,
        "status": row.status.value,
        "name": row.name,
        "executor_id": row.executor_id,
        "application_version": row.application_version,
        "application_id": row.application_id,
        "application_name": row.application_name,
        "queue_name": row.queue_name,
        "recovery_attempts": 0 if enqueued else 1,
        "timeout_ms": row.timeout_ms,
        "deadline_ms": row.deadline_ms,
        "deduplication_id": row.deduplication_id,
        "priority": row.priority,
        "partition_key": row.partition_key,
        "delay_until_ms": row.delay_until_ms,
        "is_debounced": row.is_debounced,
        "debounce_deadline_ms": row.debounce_deadline_ms,
        "parent_workflow_id": row.parent_workflow_id,
        "creator_xid": row.creator_xid,
        # A direct start runs at once, so its creator also owns the execution.
        "owner_xid": None if enqueued else row.creator_xid,
        "inputs": row.inputs,
        "now_ms": row.now_ms,
        "authenticated_user": row.authenticated_user,
        "assumed_role": row.assumed_role,
        "authenticated_roles": row.authenticated_roles,
        "attributes": row.attributes,
        "class_name": row.class_name,
        "config_name": row.config_name,
    }


def inserted_from(r: Sequence[Any], creator_xid: str) -> InsertedWorkflow:
    """Read the RETURNING row of a workflow insert."""
    status, name, queue_name, found_xid, deadline = r
    return InsertedWorkflow(
        created=found_xid == creator_xid,
        status=StatusName(status),
        name=name,
        queue_name=queue_name,
        deadline_ms=deadline,
    )


def claimed_from(r: Sequence[Any], owner_xid: str | None = None) -> ClaimedWorkflow:
    """Read the RETURNING row of a claim that set `owner_xid` on the rows it took."""
    workflow_id, name, inputs, attempts, deadline, queue_name, partition_key, config = r[:8]
    return ClaimedWorkflow(
        workflow_id=workflow_id,
        name=name,
        inputs=inputs,
        recovery_attempts=int(attempts),
        deadline_ms=deadline,
        queue_name=queue_name,
        partition_key=partition_key,
        has_steps=bool(r[8]) if len(r) > 8 else True,
        owner_xid=owner_xid,
        config_name=config or None,
    )


def queue_params(row: QueueRow, now_ms: int) -> dict[str, Any]:
    return {
        "name": row.name,
        "concurrency": row.concurrency,
        "worker_concurrency": row.worker_concurrency,
        "rate_limit_max": row.rate_limit_max,
        "rate_limit_period_sec": row.rate_limit_period_sec,
        "priority_enabled": row.priority_enabled,
        "partition_queue": row.partition_queue,
        "polling_interval_sec": row.polling_interval_sec,
        "application_name": row.application_name,
        "now_ms": now_ms,
    }


def queue_from(r: Sequence[Any]) -> QueueRow:
    """Read a row selected with `QUEUE_COLUMNS`, by column name."""
    v = dict(zip(q.QUEUE_NAMES, r, strict=True))
    period = v["rate_limit_period_sec"]
    v["rate_limit_period_sec"] = None if period is None else float(period)
    v["polling_interval_sec"] = float(v["polling_interval_sec"])
    for name in ("priority_enabled", "partition_queue"):
        v[name] = bool(v[name])
    return QueueRow(**v)


def status_from_row(r: Sequence[Any]) -> StatusRecord:
    """Read a row selected with the status columns (`STATUS_SELECT`), by column name."""
    v = dict(zip(q.STATUS_NAMES, r, strict=True))
    v["status"] = StatusName(v["status"])
    for name in ("created_at_ms", "updated_at_ms"):
        v[name] = int(v[name])
    for name in ("recovery_attempts", "priority"):
        v[name] = int(v[name] or 0)
    for name in ("was_forked_from", "is_debounced"):
        v[name] = bool(v[name])
    attributes = v["attributes"]
    # Postgres hands back a parsed jsonb value, SQLite the stored text.
    if attributes is not None and not isinstance(attributes, str):
        v["attributes"] = json.dumps(attributes)
    return StatusRecord(**v)


def step_from(r: Sequence[Any]) -> StepRecord:
    """Read a row selected with `STEP_SELECT`, by column name."""
    v = dict(zip(q.STEP_NAMES, r, strict=True))
    v["step_id"] = int(v["step_id"])
    return StepRecord(**v)


def schedule_params(row: ScheduleRow) -> dict[str, Any]:
    return {
        "schedule_id": row.schedule_id,
        "schedule_name": row.schedule_name,
        "workflow_name": row.workflow_name,
        "schedule": row.schedule,
        "context": row.context,
        "automatic_backfill": row.automatic_backfill,
        "cron_timezone": row.cron_timezone,
        "queue_name": row.queue_name,
        "application_name": row.application_name,
    }


def schedule_from(r: Sequence[Any]) -> ScheduleRow:
    """Read a row selected with the schedule columns, by column name."""
    v = dict(zip(q.SCHEDULE_NAMES, r, strict=True))
    v["automatic_backfill"] = bool(v["automatic_backfill"])
    return ScheduleRow(**v)
