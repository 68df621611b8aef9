"""The system-database interface the runtime uses, with the logic both backends share.

A backend supplies three primitives: run one statement in its own transaction (`_query`),
run a function inside one transaction (`_transaction`), and turn a shared statement into its
own dialect (`_compile`). Outages are retried inside those primitives, so every method here
either completes or raises a real error.
"""

from __future__ import annotations

import abc
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, LiteralString, Protocol, TypeVar

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._rows import (
    STREAM_CLOSED,
    Backlog,
    Checkpoint,
    CheckpointRefused,
    ClaimedWorkflow,
    ClaimRequest,
    Debounced,
    Deduplicated,
    DeduplicationHolder,
    InsertedWorkflow,
    NewMessage,
    NewWorkflow,
    Outcome,
    QueueRow,
    RecordResult,
    ScheduledTick,
    ScheduleRow,
    StatusName,
    StatusRecord,
    StepRecord,
    VersionRow,
)
from dbos_typed.errors import NonExistentWorkflowError, SystemDatabaseError

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

    # -- shared operations ---------------------------------------------------------------

    def insert_child_workflow(self, row: NewWorkflow, parent: Checkpoint) -> InsertedWorkflow:
        """Start a child and record it as the parent's step, atomically.

        Raises:
            CheckpointRefused: the parent's step was not recorded (the parent is no longer
                PENDING or no longer owned by the run, or the step is already recorded);
                the child was not started.
            Deduplicated: the child's deduplication ID is taken.
        """

        def body(tx: Transaction) -> InsertedWorkflow:
            # Holding the parent's row while its status is checked is what makes a cancel
            # of the tree complete: a cancel that comes first is seen here and refuses the
            # child, and one that comes after waits for this child to be visible to it.
            self._lock_workflow_in(tx, parent.workflow_id)
            inserted = self._insert_in(tx, row)
            try:
                self._checkpoint_in(tx, parent)
            except _NotRecorded:
                if inserted.created and self._records_child(tx, parent, row.workflow_id):
                    # This very call committed both before (a retry after a lost reply):
                    # the child is ours to run.
                    return inserted
                raise
            return inserted

        try:
            return self._transaction(body)
        except _NotRecorded:
            raise CheckpointRefused(
                self._why_not_recorded(parent.workflow_id, parent.step.step_id)
            ) from None
        except Exception as exc:
            if self._is_deduplicated(exc):
                raise Deduplicated(row.deduplication_id) from exc
            raise

    def _lock_workflow_in(self, tx: Transaction, workflow_id: str) -> None:  # noqa: B027
        """Share-lock a workflow's row until `tx` ends (a no-op where writes are serial)."""

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
        rows = self._query(
            q.RECORD_STEP,
            record_params(workflow_id, step, application_name, owner_xid),
        )
        if rows:
            return RecordResult.WRITTEN
        # Nothing written: either the step is already there or the workflow left PENDING.
        if self.get_step(workflow_id, step.step_id) is not None:
            return RecordResult.ALREADY_RECORDED
        return RecordResult.NOT_PENDING

    def _records_child(self, tx: Transaction, parent: Checkpoint, child_id: str) -> bool:
        rows = tx.execute(
            q.GET_STEP, {"workflow_id": parent.workflow_id, "step_id": parent.step.step_id}
        )
        return bool(rows) and _step_from(rows[0]).child_workflow_id == child_id

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
        return status_from_row(rows[0]) if rows else None

    def get_inputs(self, workflow_id: str) -> str | None:
        """The recorded input envelope of a workflow."""
        rows = self._query(q.GET_INPUTS, {"workflow_id": workflow_id})
        return rows[0][0] if rows else None

    def workflow_owner(self, workflow_id: str) -> str | None:
        """The token of the run that owns a workflow now (set by its start or claim)."""
        rows = self._query(q.WORKFLOW_OWNER, {"workflow_id": workflow_id})
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
        self,
        executor_id: str,
        application_version: str,
        application_name: str,
        now_ms: int,
        *,
        launched_ms: int | None = None,
    ) -> list[str]:
        """Re-enqueue this executor's PENDING workflows; returns their IDs.

        Rows touched at or after `launched_ms` were claimed by a live process since this one
        started (another process with the same executor ID), so they are left to it.
        """
        rows = self._query(
            q.RECOVER_PENDING,
            {
                "executor_id": executor_id,
                "application_version": application_version,
                "application_name": application_name,
                "now_ms": now_ms,
                "launched_ms": now_ms if launched_ms is None else launched_ms,
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

    def deduplication_holder(
        self, queue_name: str, deduplication_id: str
    ) -> DeduplicationHolder | None:
        """The workflow holding a deduplication ID on a queue, and what kind it is."""
        rows = self._query(
            q.DEDUPLICATION_HOLDER,
            {"queue_name": queue_name, "deduplication_id": deduplication_id},
        )
        if not rows:
            return None
        workflow_id, name, status, is_debounced = rows[0]
        return DeduplicationHolder(workflow_id, name, StatusName(status), bool(is_debounced))

    # -- debouncing ----------------------------------------------------------------------

    def debounce_workflow(
        self,
        row: NewWorkflow,
        checkpoint: Checkpoint | None = None,
    ) -> Debounced | RecordResult:
        """Join the live burst of `row`'s deduplication ID on its queue, or start one with `row`.

        The live burst is the DELAYED, debounced row of the same workflow holding the ID.
        Joining it moves its start to `row.delay_until_ms` (capped by its debounce deadline)
        and replaces its input, in one transaction; without one, `row` is inserted. With
        `checkpoint`, the calling workflow's step is recorded in the same transaction, naming
        the workflow the call landed on as its child.

        Returns:
            Where the call landed; or, when the checkpoint was refused, why (nothing written).

        Raises:
            Deduplicated: another workflow holds the ID (see `deduplication_holder`).
        """
        params = insert_params(row)

        def body(tx: Transaction) -> Debounced:
            joined = tx.execute(q.EXTEND_DEBOUNCED, params)
            if joined:
                landed = Debounced(joined[0][0], row.name)
                tx.execute(q.REPLACE_INPUT, {**params, "workflow_id": landed.workflow_id})
            else:
                inserted = self._insert_in(tx, row)
                landed = Debounced(row.workflow_id, inserted.name)
                if inserted.name != row.name:
                    return landed  # the chosen ID belongs to another workflow; the caller refuses
            if checkpoint is not None:
                child = replace(checkpoint.step, child_workflow_id=landed.workflow_id)
                self._checkpoint_in(tx, replace(checkpoint, step=child))
            return landed

        try:
            return self._transaction(body)
        except _NotRecorded:
            assert checkpoint is not None
            return self._why_not_recorded(checkpoint.workflow_id, checkpoint.step.step_id)
        except Exception as exc:
            if self._is_deduplicated(exc):
                raise Deduplicated(row.deduplication_id) from exc
            raise

    # -- queues --------------------------------------------------------------------------

    def upsert_queue(
        self, row: QueueRow, now_ms: int, *, update_existing: bool = True
    ) -> QueueRow | None:
        """Create a queue's row, or update it if `update_existing`; return the stored row.

        Returns None, and changes nothing, if another application owns the name.
        """
        rows = self._query(
            q.UPSERT_QUEUE if update_existing else q.INSERT_QUEUE_IF_ABSENT,
            _queue_params(row, now_ms),
        )
        return queue_from(rows[0]) if rows else None

    def update_queue(
        self, name: str, change: Callable[[QueueRow], QueueRow], now_ms: int
    ) -> QueueRow | None:
        """Rewrite a queue's settings from its current row, in one transaction.

        The row stays locked while `change` computes the new one (it may raise, and then
        nothing is written). The name and owner are kept.

        Returns:
            The row written, or None if there is no such queue.
        """

        def body(tx: Transaction) -> QueueRow | None:
            rows = tx.execute(q.LOCK_QUEUE, {"name": name, "now_ms": now_ms})
            if not rows:
                return None
            current = queue_from(rows[0])
            changed = replace(
                change(current), name=current.name, application_name=current.application_name
            )
            tx.execute(q.UPDATE_QUEUE, _queue_params(changed, now_ms))
            return changed

        return self._transaction(body)

    def delete_queue(self, name: str) -> bool:
        """Delete a queue's row (its workflows stay); False if there was none."""
        return bool(self._query(q.DELETE_QUEUE, {"name": name}))

    def list_queues(self, application_name: str | None) -> list[QueueRow]:
        """The queues of an application, and those no application owns."""
        rows = self._query(q.LIST_QUEUES, {"application_name": application_name})
        return [queue_from(r) for r in rows]

    def get_queue(self, name: str) -> QueueRow | None:
        """One queue's row, or None."""
        rows = self._query(q.GET_QUEUE, {"name": name})
        return queue_from(rows[0]) if rows else None

    def queue_backlog(self, application_name: str) -> Backlog:
        """Which queues have ENQUEUED work and when the next DELAYED one is due, at once."""
        rows = self._query(q.QUEUE_BACKLOG, {"application_name": application_name})
        ready = frozenset((r[0], r[1]) for r in rows if r[0] is not None)
        delays = [int(r[2]) for r in rows if r[0] is None and r[2] is not None]
        return Backlog(ready, min(delays) if delays else None)

    def touch_running(self, workflow_ids: Sequence[str], now_ms: int) -> None:
        """Mark PENDING workflows run by this process as alive (a heartbeat)."""
        pg = self.backend == "postgres"
        query = q.TOUCH_RUNNING_PG if pg else q.TOUCH_RUNNING_SQLITE
        self._query(query, {"workflow_ids": json.dumps(list(workflow_ids)), "now_ms": now_ms})

    def take_over_silent(
        self,
        application_name: str,
        application_version: str,
        silent_since_ms: int,
        running_here: Sequence[str],
        now_ms: int,
    ) -> list[tuple[str, str | None]]:
        """Re-enqueue PENDING workflows nobody touched since `silent_since_ms`.

        Only those of this application version, and not among `running_here`. Returns
        (workflow ID, executor that held it).
        """
        pg = self.backend == "postgres"
        query = q.TAKE_OVER_SILENT_PG if pg else q.TAKE_OVER_SILENT_SQLITE
        params = {
            "application_name": application_name,
            "application_version": application_version,
            "silent_since_ms": silent_since_ms,
            "workflow_ids": json.dumps(list(running_here)),
            "now_ms": now_ms,
        }
        return [
            (str(r[0]), None if r[1] is None else str(r[1])) for r in self._query(query, params)
        ]

    def unclaimable_names(
        self, queue_name: str, application_name: str, names: Sequence[str], waiting_since_ms: int
    ) -> list[tuple[str, int]]:
        """(name, count) of a queue's old ENQUEUED workflows whose names are not in `names`.

        Old: waiting since before `waiting_since_ms`.
        """
        query = q.UNCLAIMABLE_NAMES_PG if self.backend == "postgres" else q.UNCLAIMABLE_NAMES_SQLITE
        params = {
            "queue_name": queue_name,
            "application_name": application_name,
            "names": json.dumps(list(names)),
            "waiting_since_ms": waiting_since_ms,
        }
        return [(str(name), int(count)) for name, count in self._query(query, params)]

    def set_workflow_delay(self, workflow_id: str, delay_until_ms: int, now_ms: int) -> bool:
        """Move a DELAYED workflow's start time; False (nothing changed) if it is not DELAYED."""
        params = {"workflow_id": workflow_id, "delay_until_ms": delay_until_ms, "now_ms": now_ms}
        return bool(self._query(q.SET_WORKFLOW_DELAY, params))

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

    def list_versions(self, application_name: str | None) -> list[VersionRow]:
        """An application's versions and unclaimed ones (every one for None), newest first."""
        rows = self._query(q.LIST_VERSIONS, {"application_name": application_name})
        return [
            VersionRow(
                version_id=r[0],
                version_name=r[1],
                timestamp_ms=int(r[2]),
                created_at_ms=int(r[3]),
                application_name=r[4],
            )
            for r in rows
        ]

    def set_latest_version(self, version_name: str, application_name: str, now_ms: int) -> bool:
        """Make a version the application's latest; False if it sees no such version."""
        rows = self._query(
            q.SET_LATEST_VERSION,
            {"version_name": version_name, "application_name": application_name, "now_ms": now_ms},
        )
        return bool(rows)

    # -- messages --------------------------------------------------------------------------

    def send_message(
        self,
        message: NewMessage,
        checkpoint: Checkpoint | None = None,
    ) -> RecordResult:
        """Insert a message; with a checkpoint, in its transaction.

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
                self._checkpoint_in(tx, checkpoint)

        try:
            if checkpoint is None:
                self._query(q.INSERT_MESSAGE, params)
                return RecordResult.WRITTEN
            return self._with_checkpoint(checkpoint, body)
        except Exception as exc:
            if self._is_foreign_key_violation(exc):
                raise NonExistentWorkflowError(message.destination_id) from None
            raise

    def receive_message(
        self, topic: str, checkpoint: Checkpoint
    ) -> tuple[RecordResult | None, str | None]:
        """Consume the oldest unconsumed message and checkpoint it as `step`, atomically.

        Returns (None, None) when there is no message (nothing is written), (WRITTEN, the
        message text) when it was consumed, or the reason the checkpoint was refused.
        """
        found: list[str] = []
        workflow_id, step = checkpoint.workflow_id, checkpoint.step

        def body(tx: Transaction) -> None:
            rows = tx.execute(
                q.CONSUME_MESSAGE,
                {"workflow_id": workflow_id, "topic": topic, "step_id": step.step_id},
            )
            if not rows:
                return
            found.append(rows[0][0])
            self._checkpoint_in(tx, replace(checkpoint, step=replace(step, output=rows[0][0])))

        result = self._with_checkpoint(checkpoint, body)
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
        checkpoint: Checkpoint | None,
    ) -> RecordResult:
        """Publish an event (latest value and per-step history), with its checkpoint if any."""
        params = {"workflow_id": workflow_id, "key": key, "value": value, "step_id": step_id}

        def body(tx: Transaction) -> None:
            tx.execute(q.UPSERT_EVENT, params)
            tx.execute(q.UPSERT_EVENT_HISTORY, params)
            if checkpoint is not None:
                self._checkpoint_in(tx, checkpoint)

        if checkpoint is None:
            self._transaction(body)
            return RecordResult.WRITTEN
        return self._with_checkpoint(checkpoint, body)

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
        checkpoint: Checkpoint | None,
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
        checkpoint: Checkpoint | None,
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
                self._checkpoint_in(tx, checkpoint)

        if checkpoint is None:
            self._transaction(body)
            return None if closed else RecordResult.WRITTEN
        result = self._with_checkpoint(checkpoint, body)
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

    # -- schedules -----------------------------------------------------------------------

    def list_schedules(self, application_name: str) -> list[ScheduleRow]:
        """The application's schedules and the unclaimed ones, by name."""
        rows = self._query(q.LIST_SCHEDULES, {"application_name": application_name})
        return [_schedule_from(r) for r in rows]

    def get_schedule(self, schedule_name: str) -> ScheduleRow | None:
        """One schedule by name."""
        rows = self._query(q.GET_SCHEDULE, {"schedule_name": schedule_name})
        return _schedule_from(rows[0]) if rows else None

    def create_schedule(self, row: ScheduleRow) -> bool:
        """Insert a new ACTIVE schedule; False if the name is taken."""
        return bool(self._query(q.CREATE_SCHEDULE, _schedule_params(row)))

    def upsert_schedules(self, rows: Sequence[ScheduleRow]) -> str | None:
        """Create or redefine schedules by name, all in one transaction.

        Returns:
            None, or the name of a schedule owned by another application, in which case
            nothing was written.
        """

        class _Foreign(Exception):
            pass

        def body(tx: Transaction) -> None:
            for row in rows:
                if not tx.execute(q.UPSERT_SCHEDULE, _schedule_params(row)):
                    raise _Foreign(row.schedule_name)  # rolls the whole batch back

        try:
            self._transaction(body)
        except _Foreign as exc:
            return str(exc.args[0])
        return None

    def set_schedule_status(self, schedule_name: str, status: str) -> bool:
        """Pause or resume a schedule (clearing last_fired_at); False if it does not exist."""
        return bool(
            self._query(q.SET_SCHEDULE_STATUS, {"schedule_name": schedule_name, "status": status})
        )

    def delete_schedule(self, schedule_name: str) -> bool:
        """Delete a schedule; False if it did not exist."""
        return bool(self._query(q.DELETE_SCHEDULE, {"schedule_name": schedule_name}))

    def enqueue_scheduled(
        self,
        ticks: Sequence[ScheduledTick],
        *,
        only_if_active: bool,
        last_fired_at: str | None = None,
    ) -> list[str]:
        """Enqueue scheduled workflows whose IDs do not exist yet, in one transaction.

        `last_fired_at` is written to the schedule when this call created a row, so it
        tracks the newest tick some process enqueued.

        Returns:
            The IDs this call created.
        """

        def body(tx: Transaction) -> list[str]:
            created: list[str] = []
            for tick in ticks:
                params = {
                    "workflow_id": tick.workflow_id,
                    "name": tick.name,
                    "class_name": tick.class_name,
                    "queue_name": tick.queue_name,
                    "application_version": tick.application_version,
                    "application_name": tick.application_name,
                    "schedule_name": tick.schedule_name,
                    "creator_xid": str(uuid.uuid4()),
                    "only_if_active": only_if_active,
                    "now_ms": tick.now_ms,
                    "inputs": tick.inputs,
                }
                if tx.execute(q.ENQUEUE_SCHEDULED, params):
                    tx.execute(q.INSERT_INPUT, params)
                    created.append(tick.workflow_id)
            if created and last_fired_at is not None:
                tx.execute(
                    q.SET_LAST_FIRED_AT,
                    {"schedule_name": ticks[0].schedule_name, "last_fired_at": last_fired_at},
                )
            return created

        return self._transaction(body)


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
    workflow_id, name, inputs, attempts, deadline, queue_name, partition_key = r[:7]
    return ClaimedWorkflow(
        workflow_id=workflow_id,
        name=name,
        inputs=inputs,
        recovery_attempts=int(attempts),
        deadline_ms=deadline,
        queue_name=queue_name,
        partition_key=partition_key,
        has_steps=bool(r[7]) if len(r) > 7 else True,
        owner_xid=owner_xid,
    )


def _queue_params(row: QueueRow, now_ms: int) -> dict[str, Any]:
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
    """Read a row selected with `QUEUE_COLUMNS`."""
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


def status_from_row(r: Sequence[Any]) -> StatusRecord:
    """Read a row selected with the status columns of `GET_STATUS`."""
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
        authenticated_roles=r[24],
        # Postgres hands back a parsed jsonb value, SQLite the stored text.
        attributes=r[25] if r[25] is None or isinstance(r[25], str) else json.dumps(r[25]),
        queue_partition_key=r[26],
        was_forked_from=bool(r[27]),
        delay_until_ms=r[28],
        class_name=r[29],
        config_name=r[30],
        schedule_name=r[31],
        debounce_deadline_ms=r[32],
        is_debounced=bool(r[33]),
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


def _schedule_params(row: ScheduleRow) -> dict[str, Any]:
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


def _schedule_from(r: Sequence[Any]) -> ScheduleRow:
    return ScheduleRow(
        schedule_id=r[0],
        schedule_name=r[1],
        workflow_name=r[2],
        workflow_class_name=r[3],
        schedule=r[4],
        status=r[5],
        context=r[6],
        last_fired_at=r[7],
        automatic_backfill=bool(r[8]),
        cron_timezone=r[9],
        queue_name=r[10],
        application_name=r[11],
    )
