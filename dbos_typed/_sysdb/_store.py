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
from dataclasses import replace
from typing import Any, LiteralString, Protocol, TypeVar

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._rows import (
    STREAM_CLOSED,
    ClaimedWorkflow,
    InsertedWorkflow,
    NewMessage,
    NewWorkflow,
    Outcome,
    RecordResult,
    StatusName,
    StatusRecord,
    StepRecord,
)
from dbos_typed.errors import NonExistentWorkflowError

T = TypeVar("T")
Row = tuple[Any, ...]


_APPEND_ATTEMPTS = 50


class _NotRecorded(Exception):
    """Raised inside a transaction to roll back its writes when the checkpoint was refused."""


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
    def claim_queued(
        self,
        queue_name: str,
        *,
        limit: int,
        executor_id: str,
        application_version: str,
        application_name: str,
        accept_unversioned: bool,
        now_ms: int,
    ) -> list[ClaimedWorkflow]:
        """Move up to `limit` ENQUEUED workflows of a queue to PENDING for this executor."""

    @abc.abstractmethod
    def _is_foreign_key_violation(self, exc: BaseException) -> bool:
        """Whether `exc` is a foreign-key violation (a row naming a missing workflow)."""

    @abc.abstractmethod
    def _is_unique_violation(self, exc: BaseException) -> bool:
        """Whether `exc` is a primary-key or unique-constraint violation."""

    def notify(self, channel: str, payloads: Sequence[str]) -> None:  # noqa: B027
        """Send change notifications to other processes; backends without them ignore it."""

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

        return self._transaction(body)

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

    def _checkpoint_in(
        self, tx: Transaction, workflow_id: str, step: StepRecord, application_name: str | None
    ) -> None:
        """Write a checkpoint inside `tx`, or roll the whole transaction back if refused."""
        written = tx.execute(
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
        if not written:
            raise _NotRecorded

    def _with_checkpoint(
        self, workflow_id: str, step_id: int, body: Callable[[Transaction], None]
    ) -> RecordResult:
        """Run `body` (which ends with `_checkpoint_in`) atomically; say why if refused."""
        try:
            self._transaction(body)
        except _NotRecorded:
            return self._why_not_recorded(workflow_id, step_id)
        return RecordResult.WRITTEN

    def _why_not_recorded(self, workflow_id: str, step_id: int) -> RecordResult:
        if self.get_step(workflow_id, step_id) is not None:
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

    # -- messages --------------------------------------------------------------------------

    def send_message(
        self,
        message: NewMessage,
        checkpoint: tuple[str, StepRecord, str | None] | None = None,
    ) -> RecordResult:
        """Insert a message; with a checkpoint (workflow ID, step, app), in its transaction.

        A message ID that is already stored is skipped, so retried sends are not repeated.

        Raises:
            NonExistentWorkflowError: the destination workflow does not exist.
        """
        params = {
            "message_id": message.message_id,
            "destination_id": message.destination_id,
            "topic": message.topic,
            "message": message.message,
            "now_ms": message.now_ms,
        }

        def body(tx: Transaction) -> None:
            tx.execute(q.INSERT_MESSAGE, params)
            if checkpoint is not None:
                self._checkpoint_in(tx, *checkpoint)

        try:
            if checkpoint is None:
                self._query(q.INSERT_MESSAGE, params)
                return RecordResult.WRITTEN
            return self._with_checkpoint(checkpoint[0], checkpoint[1].step_id, body)
        except Exception as exc:
            if self._is_foreign_key_violation(exc):
                raise NonExistentWorkflowError(message.destination_id) from None
            raise

    def receive_message(
        self, workflow_id: str, topic: str, step: StepRecord, application_name: str | None
    ) -> tuple[RecordResult | None, str | None]:
        """Consume the oldest unconsumed message and checkpoint it as `step`, atomically.

        Returns (None, None) when there is no message (nothing is written), (WRITTEN, the
        message text) when it was consumed, or the reason the checkpoint was refused.
        """
        found: list[str] = []

        def body(tx: Transaction) -> None:
            rows = tx.execute(
                q.CONSUME_MESSAGE,
                {"workflow_id": workflow_id, "topic": topic, "step_id": step.step_id},
            )
            if not rows:
                return
            found.append(rows[0][0])
            self._checkpoint_in(tx, workflow_id, replace(step, output=rows[0][0]), application_name)

        result = self._with_checkpoint(workflow_id, step.step_id, body)
        if result is RecordResult.WRITTEN and not found:
            return None, None
        return result, (found[-1] if found and result is RecordResult.WRITTEN else None)

    def has_message(self, workflow_id: str, topic: str) -> bool:
        """Whether an unconsumed message waits on this topic (a cheap indexed probe)."""
        return bool(self._query(q.HAS_MESSAGE, {"workflow_id": workflow_id, "topic": topic}))

    # -- events ----------------------------------------------------------------------------

    def set_event(
        self,
        workflow_id: str,
        key: str,
        value: str,
        step_id: int,
        checkpoint: tuple[StepRecord, str | None] | None,
    ) -> RecordResult:
        """Publish an event (latest value and per-step history), with its checkpoint if any."""
        params = {"workflow_id": workflow_id, "key": key, "value": value, "step_id": step_id}

        def body(tx: Transaction) -> None:
            tx.execute(q.UPSERT_EVENT, params)
            tx.execute(q.UPSERT_EVENT_HISTORY, params)
            if checkpoint is not None:
                self._checkpoint_in(tx, workflow_id, *checkpoint)

        return self._with_checkpoint(workflow_id, step_id, body)

    def get_event(self, workflow_id: str, key: str) -> str | None:
        """The latest value of an event, or None if it was never set."""
        rows = self._query(q.GET_EVENT, {"workflow_id": workflow_id, "key": key})
        return rows[0][0] if rows else None

    # -- streams ---------------------------------------------------------------------------

    def append_stream(
        self,
        workflow_id: str,
        key: str,
        value: str,
        step_id: int,
        checkpoint: tuple[StepRecord, str | None] | None,
    ) -> RecordResult | None:
        """Append a value at the next offset, with its checkpoint if any.

        Returns None, writing nothing, if the stream is already closed.
        """
        attempts = 0
        while True:
            try:
                return self._append_once(workflow_id, key, value, step_id, checkpoint)
            except Exception as exc:
                # Two writers (threads inside a step) took the same offset: the loser
                # appends again, at the next one.
                attempts += 1
                if not self._is_unique_violation(exc) or attempts >= _APPEND_ATTEMPTS:
                    raise

    def _append_once(
        self,
        workflow_id: str,
        key: str,
        value: str,
        step_id: int,
        checkpoint: tuple[StepRecord, str | None] | None,
    ) -> RecordResult | None:
        params = {"workflow_id": workflow_id, "key": key, "value": value, "step_id": step_id}
        closed: list[bool] = []

        def body(tx: Transaction) -> None:
            last = tx.execute(q.LAST_STREAM_VALUE, params)
            if last and last[0][0] == STREAM_CLOSED:
                closed.append(True)
                return
            tx.execute(q.APPEND_STREAM, params)
            if checkpoint is not None:
                self._checkpoint_in(tx, workflow_id, *checkpoint)

        result = self._with_checkpoint(workflow_id, step_id, body)
        return None if closed else result

    def read_stream(
        self, workflow_id: str, key: str, offset: int, limit: int
    ) -> tuple[StatusName | None, list[str]]:
        """The writer's status and the consecutive values from `offset`, in one snapshot.

        The status is None when the workflow does not exist.
        """
        rows = self._query(
            q.READ_STREAM,
            {"workflow_id": workflow_id, "key": key, "offset": offset, "limit": limit},
        )
        if not rows:
            return None, []
        values: list[str] = []
        for _, found_offset, value in rows:
            if found_offset is None or found_offset != offset + len(values):
                break
            values.append(value)
        return StatusName(rows[0][0]), values


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
    workflow_id, name, new_inputs, old_inputs, attempts, deadline = r
    return ClaimedWorkflow(
        workflow_id=workflow_id,
        name=name,
        inputs=new_inputs if new_inputs is not None else old_inputs,
        recovery_attempts=int(attempts),
        deadline_ms=deadline,
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
