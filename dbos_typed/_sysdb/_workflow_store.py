"""The workflow rows: starts of children, statuses and outcomes, cancel, resume, recovery.

Also deduplication lookups and the heartbeats that let one executor take over another's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._rows import (
    Checkpoint,
    CheckpointRefused,
    Deduplicated,
    DeduplicationHolder,
    InsertedWorkflow,
    NewWorkflow,
    Outcome,
    StatusName,
    StatusRecord,
)
from dbos_typed._sysdb._store_base import (
    StoreBase,
    Transaction,
    _NotRecorded,
    status_from_row,
)


class WorkflowStore(StoreBase):
    """Operations on workflow rows as a whole."""

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

    def _lock_workflow_in(self, tx: Transaction, workflow_id: str) -> None:
        """Share-lock a workflow's row until `tx` ends (a no-op where writes are serial)."""

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
