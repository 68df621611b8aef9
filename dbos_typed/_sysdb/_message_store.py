"""Messages, events and streams: what workflows send, publish and write."""

from __future__ import annotations

from dataclasses import replace

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._rows import (
    STREAM_CLOSED,
    Checkpoint,
    NewMessage,
    RecordResult,
    StatusName,
)
from dbos_typed._sysdb._store_base import (
    StoreBase,
    Transaction,
)
from dbos_typed.errors import NonExistentWorkflowError

_APPEND_ATTEMPTS = 50


class MessageStore(StoreBase):
    """Operations on notifications, events and streams."""

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
