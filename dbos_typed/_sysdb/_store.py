"""The system-database interface the runtime uses, with the logic both backends share.

A backend supplies three primitives: run one statement in its own transaction (`_query`),
run a function inside one transaction (`_transaction`), and turn a shared statement into its
own dialect (`_compile`). Outages are retried inside those primitives, so every method here
either completes or raises a real error.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, LiteralString, Protocol, TypeVar

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._rows import (
    Backlog,
    ClaimedWorkflow,
    ClaimRequest,
    Deduplicated,
    InsertedWorkflow,
    NewWorkflow,
    Outcome,
    QueueRow,
    RecordResult,
    StatusName,
    StatusRecord,
    StepRecord,
)

T = TypeVar("T")
Row = tuple[Any, ...]


class Transaction(Protocol):
    """A statement runner bound to one open transaction."""

    def execute(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        """Run one statement and return its rows (empty for statements without any)."""
        ...


class SystemStore(abc.ABC):
    """Typed access to the DBOS system database; one method per operation."""

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

    # -- shared operations ---------------------------------------------------------------

    def insert_child_workflow(
        self, row: NewWorkflow, parent_id: str, step_id: int, application_name: str | None
    ) -> InsertedWorkflow:
        """Start a child and record it as the parent's step, atomically."""

        def body(tx: Transaction) -> InsertedWorkflow:
            inserted = self._insert_in(tx, row)
            tx.execute(
                q.RECORD_STEP,
                {
                    "workflow_id": parent_id,
                    "step_id": step_id,
                    "name": row.name,
                    "output": None,
                    "error": None,
                    "child_workflow_id": row.workflow_id,
                    "started_at_ms": row.now_ms,
                    "completed_at_ms": row.now_ms,
                    "application_name": application_name,
                },
            )
            return inserted

        try:
            return self._transaction(body)
        except Exception as exc:
            if self._is_deduplicated(exc):
                raise Deduplicated(row.deduplication_id) from exc
            raise

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
    ) -> RecordResult:
        """Checkpoint a step in one round trip; see `RecordResult` for the outcomes."""
        rows = self._query(
            q.RECORD_STEP,
            {
                "workflow_id": workflow_id,
                "step_id": step.step_id,
                "name": step.name,
                "output": step.output,
                "error": step.error,
                "child_workflow_id": step.child_workflow_id,
                "started_at_ms": step.started_at_ms,
                "completed_at_ms": step.completed_at_ms,
                "application_name": application_name,
            },
        )
        if rows:
            return RecordResult.WRITTEN
        # Nothing written: either the step is already there or the workflow left PENDING.
        if self.get_step(workflow_id, step.step_id) is not None:
            return RecordResult.ALREADY_RECORDED
        return RecordResult.NOT_PENDING

    def get_step(self, workflow_id: str, step_id: int) -> StepRecord | None:
        """One recorded step, or None."""
        rows = self._query(q.GET_STEP, {"workflow_id": workflow_id, "step_id": step_id})
        return _step_from(rows[0]) if rows else None

    def list_steps(self, workflow_id: str) -> list[StepRecord]:
        """Every recorded step of a workflow, in step order."""
        return [_step_from(r) for r in self._query(q.LIST_STEPS, {"workflow_id": workflow_id})]

    def get_outcome(self, workflow_id: str) -> Outcome | None:
        """Status and result of a workflow, or None if it does not exist."""
        rows = self._query(q.GET_OUTCOME, {"workflow_id": workflow_id})
        if not rows:
            return None
        status, output, error, deadline = rows[0]
        return Outcome(StatusName(status), output, error, deadline)

    def get_status(self, workflow_id: str) -> StatusRecord | None:
        """The whole status row of a workflow, or None."""
        rows = self._query(q.GET_STATUS, {"workflow_id": workflow_id})
        if not rows:
            return None
        r = rows[0]
        return StatusRecord(
            workflow_id=r[0],
            status=StatusName(r[1]),
            name=r[2],
            inputs=r[3],
            output=r[4],
            error=r[5],
            executor_id=r[6],
            application_version=r[7],
            application_name=r[8],
            created_at_ms=int(r[9]),
            updated_at_ms=int(r[10]),
            queue_name=r[11],
            recovery_attempts=int(r[12] or 0),
            timeout_ms=r[13],
            deadline_ms=r[14],
            started_at_ms=r[15],
            completed_at_ms=r[16],
            parent_workflow_id=r[17],
            deduplication_id=r[18],
            priority=int(r[19] or 0),
            forked_from=r[20],
            authenticated_user=r[21],
            assumed_role=r[22],
            serialization=r[23],
        )

    def get_inputs(self, workflow_id: str) -> str | None:
        """The recorded input envelope of a workflow."""
        rows = self._query(q.GET_INPUTS, {"workflow_id": workflow_id})
        return rows[0][0] if rows else None

    def workflow_status(self, workflow_id: str) -> StatusName | None:
        """Only the status of a workflow, or None if it does not exist."""
        rows = self._query(q.WORKFLOW_EXISTS, {"workflow_id": workflow_id})
        return StatusName(rows[0][0]) if rows else None

    def cancel_workflow(self, workflow_id: str, now_ms: int) -> bool:
        """Mark a workflow CANCELLED unless it already finished; False if nothing changed."""
        return bool(self._query(q.CANCEL_WORKFLOW, {"workflow_id": workflow_id, "now_ms": now_ms}))

    def cancel_if_past_deadline(self, workflow_id: str, now_ms: int) -> bool:
        """Cancel a workflow whose stored deadline has passed; False if it had not."""
        return bool(
            self._query(q.CANCEL_IF_PAST_DEADLINE, {"workflow_id": workflow_id, "now_ms": now_ms})
        )

    def resume_workflow(self, workflow_id: str, queue_name: str, now_ms: int) -> bool:
        """Put an unfinished workflow back on a queue with a fresh attempt budget."""
        return bool(
            self._query(
                q.RESUME_WORKFLOW,
                {"workflow_id": workflow_id, "queue_name": queue_name, "now_ms": now_ms},
            )
        )

    def recover_pending(
        self, executor_id: str, application_version: str, application_name: str, now_ms: int
    ) -> list[str]:
        """Re-enqueue this executor's PENDING workflows; returns their IDs."""
        rows = self._query(
            q.RECOVER_PENDING,
            {
                "executor_id": executor_id,
                "application_version": application_version,
                "application_name": application_name,
                "now_ms": now_ms,
            },
        )
        return [r[0] for r in rows]

    def dead_letter(self, workflow_id: str, now_ms: int) -> None:
        """Set a workflow aside after too many recovery attempts."""
        self._query(q.DEAD_LETTER, {"workflow_id": workflow_id, "now_ms": now_ms})

    def requeue_claimed(self, workflow_id: str, now_ms: int) -> None:
        """Put a claimed workflow that could not be dispatched back on its queue."""
        self._query(q.REQUEUE_CLAIMED, {"workflow_id": workflow_id, "now_ms": now_ms})

    def find_deduplicated(self, queue_name: str, deduplication_id: str) -> str | None:
        """The live workflow holding a deduplication ID on a queue, if any."""
        rows = self._query(
            q.FIND_DEDUPLICATED, {"queue_name": queue_name, "deduplication_id": deduplication_id}
        )
        return rows[0][0] if rows else None

    # -- queues --------------------------------------------------------------------------

    def upsert_queue(self, row: QueueRow, now_ms: int) -> bool:
        """Create or update a queue's row; False if another application owns the name."""
        rows = self._query(
            q.UPSERT_QUEUE,
            {
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
            },
        )
        return bool(rows)

    def list_queues(self, application_name: str | None) -> list[QueueRow]:
        """The queues of an application, and those no application owns."""
        rows = self._query(q.LIST_QUEUES, {"application_name": application_name})
        return [_queue_from(r) for r in rows]

    def get_queue(self, name: str) -> QueueRow | None:
        """One queue's row, or None."""
        rows = self._query(q.GET_QUEUE, {"name": name})
        return _queue_from(rows[0]) if rows else None

    def queue_backlog(self, application_name: str) -> Backlog:
        """Which queues have ENQUEUED work and when the next DELAYED one is due, at once."""
        rows = self._query(q.QUEUE_BACKLOG, {"application_name": application_name})
        ready = frozenset((r[0], r[1]) for r in rows if r[0] is not None)
        delays = [int(r[2]) for r in rows if r[0] is None and r[2] is not None]
        return Backlog(ready, min(delays) if delays else None)

    def promote_delayed(self, application_name: str, now_ms: int) -> list[str]:
        """Move DELAYED workflows whose delay has passed to ENQUEUED; returns their queues."""
        rows = self._query(
            q.PROMOTE_DELAYED, {"application_name": application_name, "now_ms": now_ms}
        )
        return [r[0] for r in rows]

    def register_version(self, application_name: str, version: str, now_ms: int) -> None:
        """Record the running application version (kept if already known)."""
        self._query(
            q.REGISTER_VERSION,
            {
                "version_id": str(uuid.uuid4()),
                "version_name": version,
                "now_ms": now_ms,
                "application_name": application_name,
            },
        )

    def latest_version(self, application_name: str) -> str | None:
        """The newest registered version of the application, if any."""
        rows = self._query(q.LATEST_VERSION, {"application_name": application_name})
        return rows[0][0] if rows else None


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
        "parent_workflow_id": row.parent_workflow_id,
        "creator_xid": row.creator_xid,
        # A direct start runs at once, so its creator also owns the execution.
        "owner_xid": None if enqueued else row.creator_xid,
        "inputs": row.inputs,
        "now_ms": row.now_ms,
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


def claimed_from(r: Sequence[Any]) -> ClaimedWorkflow:
    """Read the RETURNING row of a claim."""
    workflow_id, name, inputs, attempts, deadline, queue_name, partition_key = r
    return ClaimedWorkflow(
        workflow_id=workflow_id,
        name=name,
        inputs=inputs,
        recovery_attempts=int(attempts),
        deadline_ms=deadline,
        queue_name=queue_name,
        partition_key=partition_key,
    )


def _queue_from(r: Sequence[Any]) -> QueueRow:
    return QueueRow(
        name=r[0],
        concurrency=r[1],
        worker_concurrency=r[2],
        rate_limit_max=r[3],
        rate_limit_period_sec=None if r[4] is None else float(r[4]),
        priority_enabled=bool(r[5]),
        partition_queue=bool(r[6]),
        polling_interval_sec=float(r[7]),
        application_name=r[8],
    )


def _step_from(r: Sequence[Any]) -> StepRecord:
    return StepRecord(
        step_id=int(r[0]),
        name=r[1],
        output=r[2],
        error=r[3],
        child_workflow_id=r[4],
        started_at_ms=r[5],
        completed_at_ms=r[6],
    )
