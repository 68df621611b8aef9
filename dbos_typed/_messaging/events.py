"""`set_event` and `get_event[T]`: a workflow publishes key/value events others read.

`workflow_events` holds the latest value of each key, `workflow_events_history` the value
each step set (fork reads it). The writer wakes local readers directly and NOTIFYs
`dbos_workflow_events_channel` (batched) for readers in other processes.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.durable import (
    begin_operation,
    checkpoint_of,
    checkpointed,
    record_operation,
    refused,
)
from dbos_typed._core.serialization import (
    Codec,
    JsonValue,
    TypedCall,
    codec_for,
    decode_any,
    encode_any,
)
from dbos_typed._core.validate import checked_duration, checked_name, wait_seconds
from dbos_typed._messaging.database_waits import Wait
from dbos_typed._messaging.durable_waits import DEFAULT_WAIT, DurableWait, replay_wait, wait_durably
from dbos_typed._sysdb._listener import EVENTS_CHANNEL, Key, payload_of
from dbos_typed._sysdb._rows import RecordResult, StepRecord
from dbos_typed.errors import InvalidOptionError, NonExistentWorkflowError, WaitTimeoutError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

SET_EVENT_STEP = "DBOS.setEvent"
GET_EVENT_STEP = "DBOS.getEvent"


def set_event(ctx: WorkflowContext, key: str, value: T) -> None:
    """Publish `value` under `key` for this workflow; readers see the latest value.

    Durability: from the workflow, this is a step (`DBOS.setEvent`): the value, its history
    row and the checkpoint are written in one transaction, exactly once. Inside a step it
    has no checkpoint of its own and is attributed to that step (it runs again if the step
    does).

    The value's type is not bounded statically: no bound admits every model, dataclass
    and container pydantic can write while refusing what it cannot. The check is made at
    run time instead, before anything is written and before a step ID is taken: a value
    pydantic cannot serialize (an `object()`, a function or lambda, anywhere inside the
    value) or one holding a NaN or an infinity raises `SerializationError`, whose message
    names the event ("the value of event 'KEY' cannot be stored: ...").

    Args:
        ctx: The running workflow's context.
        key: The event's name.
        value: Any value pydantic can serialize.

    Raises:
        SerializationError: the value cannot be stored as JSON (nothing is written).
        InvalidOptionError: called outside a workflow, or a bad key.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError("ctx", "set_event needs the WorkflowContext of a running workflow")
    checked_name(key, "key")
    text = encode_any(value, f"the value of event {key!r}")
    runtime = ctx._runtime
    state = ctx._state
    workflow_id = state.workflow_id
    if state.in_step:
        # Attributed to the enclosing step.
        runtime.store.set_event(workflow_id, key, text, state.running_step_id, None)
    else:
        step_id, recorded = begin_operation(ctx, SET_EVENT_STEP)
        if recorded is not None:
            return
        step = StepRecord(
            step_id,
            SET_EVENT_STEP,
            None,
            None,
            None,
            runtime.clock.now_ms(),
            runtime.clock.now_ms(),
        )
        result = runtime.store.set_event(workflow_id, key, text, step_id, checkpoint_of(ctx, step))
        if result is not RecordResult.WRITTEN:
            refused(ctx, step_id, SET_EVENT_STEP, result)
    runtime.publish(EVENTS_CHANNEL, payload_of(workflow_id, key))


ALL_EVENTS_STEP = "DBOS.getAllEvents"


def get_all_events(ctx: Connected, workflow_id: str, /) -> dict[str, Any]:
    """The latest value of every event a workflow has set, by key, as plain JSON values.

    It does not wait: an event not set yet is absent. Use `get_event[T]` to wait for one
    key and validate it as a type.

    Durability: from a workflow body the read is an operation of its own
    (`DBOS.getAllEvents`) that records what it read, so a replay sees the same events.
    Elsewhere it is a plain read.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
    """
    if not isinstance(ctx, Connected):
        raise InvalidOptionError("ctx", "expected a DBOSContext, WorkflowContext or Client")
    workflow_id = checked_name(workflow_id, "workflow_id")
    store = ctx._runtime.store

    def read() -> dict[str, Any]:
        found = store.all_events(workflow_id)
        if not found and store.workflow_status(workflow_id) is None:
            raise NonExistentWorkflowError(workflow_id)
        return {key: decode_any(value) for key, value in found}

    result: dict[str, Any] = checkpointed(ctx, ALL_EVENTS_STEP, read, codec_for(dict[str, Any]))
    return result


def check_get_event(ctx: object, workflow_id: object, key: object, timeout: object) -> None:
    """Check the arguments of `get_event`.

    Raises:
        InvalidOptionError: the argument named in it is invalid.
    """
    if not isinstance(ctx, Connected):
        raise InvalidOptionError("ctx", "expected a DBOSContext, WorkflowContext or Client")
    checked_name(workflow_id, "workflow_id")
    checked_name(key, "key")
    checked_duration(timeout, "timeout")


def is_durable_read(ctx: Connected) -> bool:
    """Whether `get_event` is a checkpointed operation here: in a workflow body."""
    return isinstance(ctx, WorkflowContext) and not ctx._state.in_step


def event_key(workflow_id: str, key: str) -> Key:
    """The notification key writers of the event wake."""
    return (EVENTS_CHANNEL, payload_of(workflow_id, key))


def event_wait_description(workflow_id: str, key: str) -> str:
    """What a `WaitTimeoutError` of `get_event` says it waited for."""
    return f"event {key!r} of workflow {workflow_id!r}"


class ReadingEvent(DurableWait):
    """A `get_event` from a workflow body, in progress: takes its two step IDs when made."""

    def __init__(
        self, ctx: WorkflowContext, workflow_id: str, key: str, timeout: timedelta
    ) -> None:
        self._workflow_id = workflow_id
        self._key = key
        what = event_wait_description(workflow_id, key)
        super().__init__(ctx, GET_EVENT_STEP, event_key(workflow_id, key), timeout, what)

    def check(self) -> StepRecord | None:
        """Read the event; once it is set, checkpoint the value read."""
        text = self.ctx._runtime.store.get_event(self._workflow_id, self._key)
        if text is None:
            return None
        step = StepRecord(
            self.step_id,
            GET_EVENT_STEP,
            text,
            None,
            None,
            self.started_ms(),
            self.ctx._runtime.clock.now_ms(),
        )
        record_operation(self.ctx, step)
        return step

    def probe(self) -> bool:
        """Whether the event is set."""
        return self.ctx._runtime.store.get_event(self._workflow_id, self._key) is not None


def _get_event(
    ctx: Connected,
    workflow_id: str,
    key: str,
    timeout: timedelta = DEFAULT_WAIT,
    *,
    codec: Codec[Any],
) -> Any:
    check_get_event(ctx, workflow_id, key, timeout)
    if is_durable_read(ctx):
        assert isinstance(ctx, WorkflowContext)
        return replay_wait(wait_durably(ReadingEvent(ctx, workflow_id, key, timeout)), codec)
    started = ctx._runtime.clock.time()
    store = ctx._runtime.store
    with Wait(ctx, event_key(workflow_id, key)) as wait:
        deadline = started + wait_seconds(timeout)
        while True:
            text = store.get_event(workflow_id, key)
            if text is not None:
                return codec.decode(text)
            if not wait.until(deadline, lambda: store.get_event(workflow_id, key) is not None):
                text = store.get_event(workflow_id, key)
                if text is None:
                    raise WaitTimeoutError(event_wait_description(workflow_id, key), timeout)


class GetEvent(Protocol[T_co]):
    """The signature of `get_event[T]`."""

    def __call__(
        self, ctx: Connected, workflow_id: str, key: str, timeout: timedelta = ...
    ) -> T_co:
        """Read an event as `T`."""
        ...


class _EventReader(TypedCall):
    """Read a workflow's event, waiting until it is set: `get_event[T](ctx, id, key)`.

    Returns the latest value published under `key` by the workflow `workflow_id`, waiting
    up to `timeout` (60 s by default) for the key to exist. Any number of readers may wait
    on the same event. `get_event[Order](...)` validates the value as `Order`;
    `get_event[TypeAdapter(int | None)](...)` takes any type pydantic can describe;
    `get_event(...)` without a type returns plain JSON values.

    Durability: called from a workflow (not inside a step), the value read is checkpointed
    (step `DBOS.getEvent`) and replay returns it; the call takes a second step ID
    (`DBOS.sleep`) holding the timeout deadline, so recovery waits only for the rest, and
    a timeout is checkpointed and raised again on replay. Elsewhere it is a plain read.

    Raises:
        WaitTimeoutError: the event was not set in time.
        SerializationError: the value is not a valid `T`.
        WorkflowCancelledError: the calling workflow was cancelled while waiting.
    """

    @overload
    def __getitem__(self, tp: type[T]) -> GetEvent[T]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[T]) -> GetEvent[T]: ...

    def __getitem__(self, tp: Any) -> GetEvent[Any]:
        return self.typed(tp)

    def __call__(
        self,
        ctx: Connected,
        workflow_id: str,
        key: str,
        timeout: timedelta = DEFAULT_WAIT,
    ) -> JsonValue:
        """Read an event as plain JSON values; see `get_event`."""
        value: JsonValue = _get_event(ctx, workflow_id, key, timeout, codec=codec_for(Any))
        return value


get_event = _EventReader(lambda codec: functools.partial(_get_event, codec=codec), "get_event")
