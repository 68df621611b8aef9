"""Messages, events and streams: what workflows send, publish and write."""

from __future__ import annotations

from collections.abc import Sequence
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
        """Insert a message; with a checkpoint, in its transaction (see `send_messages`)."""
        return self.send_messages([message], checkpoint)

    def send_messages(
        self,
        messages: Sequence[NewMessage],
        checkpoint: Checkpoint | None = None,
    ) -> RecordResult:
        """Insert messages in one transaction, with the checkpoint if one is given.

        A message ID that is already stored is skipped, so retried sends are not repeated.
        Either every message is stored or none is.

        Raises:
            NonExistentWorkflowError: a destination workflow does not exist.
        """
        params = [
            {
                "message_id": message.message_id,
                "destination_id": message.destination_id,
                "topic": message.topic,
                "message": message.message,
                "now_ms": message.now_ms,
            }
            for message in messages
        ]

        def body(tx: Transaction) -> None:
            for one in params:
                tx.execute(q.INSERT_MESSAGE, one)
            if checkpoint is not None:
                self._checkpoint_in(tx, checkpoint)

        try:
            if checkpoint is None and len(params) == 1:
                self._query(q.INSERT_MESSAGE, params[0])  # one statement, no transaction
                return RecordResult.WRITTEN
            if checkpoint is None:
                self._transaction(body)
                return RecordResult.WRITTEN
            return self._with_checkpoint(checkpoint, body)
        except Exception as exc:
            if self._is_foreign_key_violation(exc):
                raise NonExistentWorkflowError(self._missing_destination(messages)) from None
            raise

    def _missing_destination(self, messages: Sequence[NewMessage]) -> str:
        """The first destination of `messages` that does not exist (after a refused insert)."""
        for message in messages:
            if not self._query(q.WORKFLOW_EXISTS, {"workflow_id": message.destination_id}):
                return message.destination_id
        return messages[0].destination_id  # deleted meanwhile: name the first

    def all_events(self, workflow_id: str) -> list[tuple[str, str]]:
        """Every event of a workflow with its latest value, by key."""
        rows = self._query(q.ALL_EVENTS, {"workflow_id": workflow_id})
        return [(str(key), str(value)) for key, value in rows]

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
