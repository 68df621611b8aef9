"""`send` and `recv[T]`: messages to a workflow, by topic, exactly once.

Messages live in the `notifications` table; a database trigger NOTIFYs
`dbos_notifications_channel` with `"<destination>::<topic>"` on every insert, so a sender
in any process (or language) wakes the receiver. A send from this process also wakes a
local receiver directly.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.durable import begin_operation, checkpoint_of, refused, workflow_context
from dbos_typed._core.serialization import Codec, JsonValue, TypedCall, codec_for, encode_any
from dbos_typed._core.telemetry import TARGET_WORKFLOW_ID, operation_scope
from dbos_typed._core.validate import checked_duration, checked_name, optional_name, storable_text
from dbos_typed._messaging.durable_waits import DEFAULT_WAIT, DurableWait, replay_wait, wait_durably
from dbos_typed._sysdb._listener import NOTIFICATIONS_CHANNEL, payload_of
from dbos_typed._sysdb._rows import NULL_TOPIC, NewMessage, RecordResult, StepRecord
from dbos_typed.errors import InvalidOptionError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

SEND_STEP = "DBOS.send"
RECV_STEP = "DBOS.recv"

# Message IDs of sends from workflows are derived from (workflow, step): a send retried
# after a crash, even one whose checkpoint was lost with the reply, reuses its ID.
_MESSAGE_NAMESPACE = uuid.UUID("5d1f3c4e-7a2b-4c39-9d8e-0b6f2a1e7c55")


def send(
    ctx: Connected,
    destination_id: str,
    message: T,
    topic: str | None = None,
    *,
    idempotency_key: str | None = None,
) -> None:
    """Send `message` to the workflow `destination_id`, on `topic`.

    The message is stored as JSON (pydantic infers its type) until the destination
    receives it with `recv`; a message sent before the receiver waits is kept.

    Durability: from a workflow, the send is a step (`DBOS.send`) and happens exactly
    once: the message and the checkpoint are written in one transaction, and a retry
    reuses the same message ID. From outside a workflow (or inside a step) each call
    sends a new message, unless `idempotency_key` is given: then a key is delivered at
    most once per destination.

    The value's type is not bounded statically: no bound admits every model, dataclass
    and container pydantic can write while refusing what it cannot. The check is made at
    run time instead, before anything is written and before a step ID is taken: a value
    pydantic cannot serialize (an `object()`, a function or lambda, anywhere inside the
    value) or one holding a NaN or an infinity raises `SerializationError`, whose message
    names the message ("the message cannot be stored: ...").

    Args:
        ctx: Any context.
        destination_id: The receiving workflow's ID.
        message: The message (any value pydantic can serialize).
        topic: The topic; None is a topic of its own.
        idempotency_key: Makes repeated sends of the same key to a destination a no-op.

    Raises:
        NonExistentWorkflowError: there is no workflow `destination_id`.
        SerializationError: the message cannot be stored as JSON (nothing is sent).
        InvalidOptionError: a bad argument.
    """
    if not isinstance(ctx, Connected):
        raise InvalidOptionError("ctx", "expected a DBOSContext, WorkflowContext or Client")
    checked_name(destination_id, "destination_id")
    stored_topic = _stored_topic(topic)
    optional_name(idempotency_key, "idempotency_key")
    text = encode_any(message, "the message")
    runtime = ctx._runtime
    message_id = None if idempotency_key is None else f"{idempotency_key}::{destination_id}"
    if isinstance(ctx, WorkflowContext) and not ctx._state.in_step:
        step_id, recorded = begin_operation(ctx, SEND_STEP)
        if recorded is not None:
            return  # sent before this replay
        workflow_id = ctx._state.workflow_id
        if message_id is None:
            message_id = str(uuid.uuid5(_MESSAGE_NAMESPACE, f"{workflow_id}::{step_id}"))
        started = runtime.clock.now_ms()
        row = NewMessage(message_id, destination_id, stored_topic, text, runtime.message_time_ms())
        step = StepRecord(step_id, SEND_STEP, None, None, None, started, runtime.clock.now_ms())
        target = {TARGET_WORKFLOW_ID: destination_id}
        with operation_scope(ctx, "send", SEND_STEP, step_id, target):
            result = runtime.store.send_message(row, checkpoint_of(ctx, step))
        if result is not RecordResult.WRITTEN:
            refused(ctx, step_id, SEND_STEP, result)  # raises unless it was our own write
    else:
        row = NewMessage(
            message_id or str(uuid.uuid4()),
            destination_id,
            stored_topic,
            text,
            runtime.message_time_ms(),
        )
        target = {TARGET_WORKFLOW_ID: destination_id}
        with operation_scope(ctx, "send", SEND_STEP, None, target):
            runtime.store.send_message(row)
    # The trigger notifies other processes; a receiver in this one need not wait for it.
    runtime.waiters.wake((NOTIFICATIONS_CHANNEL, payload_of(destination_id, stored_topic)))


SEND_BULK_STEP = "DBOS.sendBulk"

#: One message of `send_bulk`: (destination ID, message) or (destination ID, message, topic).
BulkMessage = tuple[str, Any] | tuple[str, Any, str | None]


def send_bulk(
    ctx: Connected,
    messages: Sequence[BulkMessage],
    /,
    *,
    idempotency_key: str | None = None,
) -> None:
    """Send several messages, to one workflow or many, in one transaction.

    Each entry is `(destination_id, message)` or `(destination_id, message, topic)`;
    every message is checked and encoded before anything is written, and then all of
    them are stored or, if a destination does not exist, none.

    Durability: from a workflow, the batch is one step (`DBOS.sendBulk`) made exactly
    once, with the messages and the checkpoint in one transaction. Elsewhere each call
    sends a new batch, unless `idempotency_key` is given: a batch sent again with the
    same key delivers nothing more.

    Raises:
        NonExistentWorkflowError: a destination does not exist (nothing is sent).
        SerializationError: a message cannot be stored as JSON.
        InvalidOptionError: a bad argument, naming the entry.
    """
    if not isinstance(ctx, Connected):
        raise InvalidOptionError("ctx", "expected a DBOSContext, WorkflowContext or Client")
    optional_name(idempotency_key, "idempotency_key")
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise InvalidOptionError("messages", "expected a sequence of (destination, message)")
    entries = [_bulk_entry(i, entry) for i, entry in enumerate(messages)]
    if not entries:
        return
    runtime = ctx._runtime
    now = runtime.message_time_ms()
    if isinstance(ctx, WorkflowContext) and not ctx._state.in_step:
        step_id, recorded = begin_operation(ctx, SEND_BULK_STEP)
        if recorded is not None:
            return  # sent before this replay
        prefix = f"{ctx._state.workflow_id}::{step_id}"
        rows = [
            NewMessage(str(uuid.uuid5(_MESSAGE_NAMESPACE, f"{prefix}::{i}")), d, t, m, now)
            for i, (d, m, t) in enumerate(entries)
        ]
        started = runtime.clock.now_ms()
        step = StepRecord(
            step_id, SEND_BULK_STEP, None, None, None, started, runtime.clock.now_ms()
        )
        with operation_scope(ctx, "send", SEND_BULK_STEP, step_id):
            result = runtime.store.send_messages(rows, checkpoint_of(ctx, step))
        if result is not RecordResult.WRITTEN:
            refused(ctx, step_id, SEND_BULK_STEP, result)  # raises unless it was our own write
    else:
        rows = [
            NewMessage(
                str(uuid.uuid4()) if idempotency_key is None else f"{idempotency_key}::{i}::{d}",
                d,
                t,
                m,
                now,
            )
            for i, (d, m, t) in enumerate(entries)
        ]
        with operation_scope(ctx, "send", SEND_BULK_STEP):
            runtime.store.send_messages(rows)
    for destination, _, topic in entries:
        runtime.waiters.wake((NOTIFICATIONS_CHANNEL, payload_of(destination, topic)))


def _bulk_entry(index: int, entry: object) -> tuple[str, str, str]:
    """One checked entry of `send_bulk`: (destination, encoded message, stored topic)."""
    argument = f"messages[{index}]"
    if not isinstance(entry, tuple) or len(entry) not in (2, 3):
        raise InvalidOptionError(argument, "expected (destination_id, message[, topic])")
    destination = checked_name(entry[0], f"{argument} destination_id")
    topic = entry[2] if len(entry) == 3 else None
    if topic is not None and not isinstance(topic, str):
        raise InvalidOptionError(f"{argument} topic", "expected a string or None")
    stored = NULL_TOPIC if topic is None else storable_text(topic, f"{argument} topic")
    return destination, encode_any(entry[1], f"the message {argument}"), stored


def _stored_topic(topic: str | None) -> str:
    if topic is None:
        return NULL_TOPIC
    if not isinstance(topic, str):
        raise InvalidOptionError("topic", "expected a string or None")
    return storable_text(topic, "topic")


def _checked_timeout(timeout: object) -> timedelta:
    return checked_duration(timeout, "timeout")


class Receiving(DurableWait):
    """A `recv` in progress: takes its two step IDs when made."""

    exclusive = True

    def __init__(self, ctx: WorkflowContext, topic: str | None, timeout: timedelta) -> None:
        workflow_context(ctx, "recv")
        self._topic = _stored_topic(topic)
        timeout = _checked_timeout(timeout)
        key = (NOTIFICATIONS_CHANNEL, payload_of(ctx._state.workflow_id, self._topic))
        super().__init__(ctx, RECV_STEP, key, timeout, f"a message on topic {topic!r}")

    def check(self) -> StepRecord | None:
        """Consume the oldest message on the topic, with the checkpoint, if there is one."""
        ctx = self.ctx
        step = StepRecord(
            self.step_id,
            RECV_STEP,
            None,
            None,
            None,
            self.started_ms(),
            ctx._runtime.clock.now_ms(),
        )
        result, text = ctx._runtime.store.receive_message(self._topic, checkpoint_of(ctx, step))
        if result is None:
            return None
        if result is RecordResult.WRITTEN:
            return StepRecord(self.step_id, RECV_STEP, text, None, None)
        # Refused: our own commit whose reply was lost (or a rival's): its record stands.
        return refused(ctx, self.step_id, RECV_STEP, result)

    def probe(self) -> bool:
        """Whether a message waits on the topic."""
        return self.ctx._runtime.store.has_message(self.ctx._state.workflow_id, self._topic)


def _recv(
    ctx: WorkflowContext,
    topic: str | None = None,
    timeout: timedelta = DEFAULT_WAIT,
    *,
    codec: Codec[Any],
) -> Any:
    return replay_wait(wait_durably(Receiving(ctx, topic, timeout)), codec)


class Receive(Protocol[T_co]):
    """The signature of `recv[T]`."""

    def __call__(
        self,
        ctx: WorkflowContext,
        topic: str | None = None,
        timeout: timedelta = ...,
    ) -> T_co:
        """Receive a message as `T`."""
        ...


class _Receiver(TypedCall):
    """Receive a message sent to the running workflow: `recv[T](ctx, topic, timeout=...)`.

    The oldest unconsumed message on `topic` is returned, waiting up to `timeout` (60 s by
    default) for one. `recv[Order](ctx, "orders")` validates it as `Order` and is typed
    `Order`; `recv[TypeAdapter(int | None)](ctx)` takes any type pydantic can describe;
    `recv(ctx, topic)` without a type returns plain JSON values. One wait per workflow and
    topic at a time.

    Durability: the message is consumed and checkpointed (step `DBOS.recv`) in one
    transaction, so it is received exactly once; replay returns it again. The call takes
    a second step ID (`DBOS.sleep`) holding the absolute timeout deadline, written before
    waiting, so a workflow recovered mid-wait waits only for the rest. A timeout is
    checkpointed too, and replay raises it again.

    Raises:
        WaitTimeoutError: no message arrived in time.
        SerializationError: the message is not a valid `T`.
        WorkflowCancelledError: the workflow was cancelled while waiting.
        InvalidOptionError: called outside a workflow or inside a step.
        DBOSError: another `recv` of this workflow already waits on this topic.
    """

    @overload
    def __getitem__(self, tp: type[T]) -> Receive[T]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[T]) -> Receive[T]: ...

    def __getitem__(self, tp: Any) -> Receive[Any]:
        return self.typed(tp)

    def __call__(
        self,
        ctx: WorkflowContext,
        topic: str | None = None,
        timeout: timedelta = DEFAULT_WAIT,
    ) -> JsonValue:
        """Receive a message as plain JSON values; see `recv`."""
        value: JsonValue = _recv(ctx, topic, timeout, codec=codec_for(Any))
        return value


recv = _Receiver(lambda codec: functools.partial(_recv, codec=codec), "recv")
