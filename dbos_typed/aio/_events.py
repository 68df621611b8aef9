"""The awaitable `set_event` and `get_event[T]`."""

from __future__ import annotations

import functools
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.serialization import Codec, JsonValue, TypedCall, codec_for
from dbos_typed._messaging import events as _events
from dbos_typed._messaging.durable_waits import DEFAULT_WAIT
from dbos_typed._messaging.events import (
    ReadingEvent,
    check_get_event,
    event_key,
    event_wait_description,
    is_durable_read,
)
from dbos_typed.aio._loop import AsyncWait, awaitable_form, performed, prepared, run_blocking, same
from dbos_typed.aio._messaging import waited
from dbos_typed.errors import WaitTimeoutError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def set_event(ctx: WorkflowContext, key: str, value: T) -> Coroutine[None, None, None]:
    """Publish `value` under `key` for this workflow; readers see the latest value.

    The awaitable form of `dbos_typed.set_event`, with the same arguments and errors.

    Durability: from the workflow, this is a step (`DBOS.setEvent`) made exactly once; it
    takes its step ID, and is written, when `set_event` is called. Inside a step it is
    attributed to that step.
    """
    return performed(ctx, lambda: _events.set_event(ctx, key, value))


def _get_event(
    ctx: Connected,
    workflow_id: str,
    key: str,
    timeout: timedelta = DEFAULT_WAIT,
    *,
    codec: Codec[Any],
) -> Coroutine[None, None, Any]:
    def start() -> Coroutine[None, None, Any]:
        check_get_event(ctx, workflow_id, key, timeout)
        if is_durable_read(ctx):
            assert isinstance(ctx, WorkflowContext)
            return waited(ReadingEvent(ctx, workflow_id, key, timeout), codec)
        return _read_event(ctx, workflow_id, key, timeout, codec, ctx._runtime.clock.time())

    return prepared(start)


async def _read_event(
    ctx: Connected,
    workflow_id: str,
    key: str,
    timeout: timedelta,
    codec: Codec[Any],
    started: float,
) -> Any:
    store = ctx._runtime.store

    def read() -> str | None:
        return store.get_event(workflow_id, key)

    with AsyncWait(ctx, event_key(workflow_id, key)) as wait:
        deadline = started + timeout.total_seconds()
        while True:
            text = await run_blocking(ctx, read)
            if text is not None:
                return codec.decode(text)
            if not await wait.until(deadline, lambda: read() is not None):
                text = await run_blocking(ctx, read)
                if text is None:
                    raise WaitTimeoutError(event_wait_description(workflow_id, key), timeout)


# <generated: GetEvent>
# Copied from dbos_typed/_messaging/events.py by scripts/generate_aio.py.
class GetEvent(Protocol[T_co]):
    """The signature of `get_event[T]`."""

    def __call__(
        self, ctx: Connected, workflow_id: str, key: str, timeout: timedelta = ...
    ) -> Coroutine[None, None, T_co]:
        """Read an event as `T`."""
        ...


# </generated: GetEvent>


class _EventReader(TypedCall):
    """Read a workflow's event, waiting until it is set: `await get_event[T](ctx, id, key)`.

    The awaitable form of `dbos_typed.get_event`: the latest value published under `key`
    by the workflow `workflow_id`, waiting up to `timeout` (60 s by default) for the key
    to exist, without holding a thread. Works with any context or a `Client`.
    `get_event[Order]` validates the value as `Order`; without a type it returns plain
    JSON values. Cancelling the awaiting task ends the wait.

    Durability: awaited in a workflow body, the value read is checkpointed (step
    `DBOS.getEvent`, with a second step ID `DBOS.sleep` holding the deadline; both taken
    when `get_event` is called), and replay returns it; a timeout is checkpointed and
    raised again. Elsewhere it is a plain read.

    Raises:
        WaitTimeoutError: the event was not set in time.
        SerializationError: the value is not a valid `T`.
        WorkflowCancelledError: the calling workflow was cancelled while waiting.
        DBOSError: the context shut down during the wait.
    """

    # <generated: get_event[T]>
    # Copied from dbos_typed/_messaging/events.py by scripts/generate_aio.py.
    @overload
    def __getitem__(self, tp: type[T]) -> GetEvent[T]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[T]) -> GetEvent[T]: ...

    def __getitem__(self, tp: Any) -> GetEvent[Any]:
        return self.typed(tp)

    # </generated: get_event[T]>

    def __call__(
        self,
        ctx: Connected,
        workflow_id: str,
        key: str,
        timeout: timedelta = DEFAULT_WAIT,
    ) -> Coroutine[None, None, JsonValue]:
        """Read an event as plain JSON values; see `get_event`."""
        return _get_event(ctx, workflow_id, key, timeout, codec=codec_for(Any))


get_event = _EventReader(lambda codec: functools.partial(_get_event, codec=codec), "get_event")


get_all_events = awaitable_form(_events.get_all_events, same)
