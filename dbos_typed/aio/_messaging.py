"""The awaitable `send`, `recv[T]` and `sleep`, and the awaitable driver of durable waits.

Waiting holds no thread: a `recv` or `sleep` awaits a `LoopWaker` that a sender, the
LISTEN thread or a cancellation sets, so a cancelled workflow's wait ends at once.
"""

from __future__ import annotations

import functools
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.clock import Clock
from dbos_typed._core.context import Connected, WorkflowContext, WorkflowState
from dbos_typed._core.serialization import Codec, JsonValue, TypedCall, codec_for
from dbos_typed._core.telemetry import operation_scope
from dbos_typed._messaging import messages as _messaging
from dbos_typed._messaging.durable_waits import DEFAULT_WAIT, SPAN_KINDS, DurableWait, replay_wait
from dbos_typed._messaging.messages import Receiving
from dbos_typed._messaging.sleep import SLEEP_STEP, begin_sleep
from dbos_typed._sysdb._rows import StepRecord
from dbos_typed.aio._loop import AsyncWait, LoopWaker, awaitable_form, performed, prepared, same

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def send(
    ctx: Connected,
    destination_id: str,
    message: T,
    topic: str | None = None,
    *,
    idempotency_key: str | None = None,
) -> Coroutine[None, None, None]:
    """Send `message` to the workflow `destination_id`, on `topic`.

    The awaitable form of `dbos_typed.send`, with the same arguments and errors; outside
    a workflow the insert is made on a thread.

    Durability: from a workflow, the send is a step (`DBOS.send`) made exactly once; it
    takes its step ID, and is written, when `send` is called. Elsewhere each call sends
    a new message, unless `idempotency_key` makes repeats a no-op.
    """
    return performed(
        ctx,
        lambda: _messaging.send(
            ctx, destination_id, message, topic, idempotency_key=idempotency_key
        ),
    )


def sleep(ctx: WorkflowContext, duration: timedelta) -> Coroutine[None, None, timedelta]:
    """Pause the workflow for `duration`, durably, without blocking its loop.

    Durability: the wake-up time is checkpointed (step `DBOS.sleep`) when `sleep` is
    called. If the process stops mid-sleep, the recovered workflow sleeps only until the
    recorded wake-up time, and not at all if it has passed.

    Returns:
        The time this call actually waited (on replay, only the remainder).

    Raises:
        InvalidOptionError: called inside a step, or `duration` is not a timedelta.
        WorkflowCancelledError: the workflow was cancelled while sleeping (it wakes at once).
    """
    return prepared(lambda: _sleep(ctx, *begin_sleep(ctx, duration)))


async def _sleep(ctx: WorkflowContext, started: float, deadline: float) -> timedelta:
    state = ctx._state
    waker = LoopWaker()
    state.execution.add_waker(waker)
    # No step ID on the span: concurrent steps of an async workflow take theirs in turn.
    with operation_scope(ctx, "sleep", SLEEP_STEP):
        return await _sleep_until(ctx._runtime.clock, state, waker, started, deadline)


async def _sleep_until(
    clock: Clock, state: WorkflowState, waker: LoopWaker, started: float, deadline: float
) -> timedelta:
    try:
        while True:
            if deadline <= clock.time():
                break
            if await waker.wait_on(clock, deadline, None):
                state.check_cancelled()
                waker.clear()
    finally:
        state.execution.remove_waker(waker)
    return timedelta(seconds=max(0.0, clock.time() - started))


async def wait_durably(op: DurableWait) -> StepRecord:
    """Await `op`; return its record (replayed, found or timed out).

    The awaitable twin of `dbos_typed._messaging.durable_waits.wait_durably`; the database calls run
    on the workflow's loop.

    Raises:
        WaitTimeoutError: the deadline passed first (and was checkpointed).
        WorkflowCancelledError: the workflow was cancelled while waiting.
        DBOSError: an exclusive wait on the same key is already in progress.
    """
    if op.recorded is not None:
        return op.recorded
    with (
        operation_scope(op.ctx, SPAN_KINDS.get(op.name, "wait"), op.name, op.step_id),
        AsyncWait(op.ctx, op.key, exclusive=op.exclusive) as wait,
    ):
        got = op.check()
        if got is None:
            deadline = op.deadline()
            while got is None:
                signalled = await wait.until(deadline, op.probe)
                got = op.check()
                if got is None and not signalled:
                    got = op.timed_out()
    return got


async def waited(op: DurableWait, codec: Codec[Any]) -> Any:
    """Await `op` and decode what it waited for (or raise its recorded timeout)."""
    return replay_wait(await wait_durably(op), codec)


def _recv(
    ctx: WorkflowContext,
    topic: str | None = None,
    timeout: timedelta = DEFAULT_WAIT,
    *,
    codec: Codec[Any],
) -> Coroutine[None, None, Any]:
    return prepared(lambda: waited(Receiving(ctx, topic, timeout), codec))


# <generated: Receive>
# Copied from dbos_typed/_messaging/messages.py by scripts/generate_aio.py.
class Receive(Protocol[T_co]):
    """The signature of `recv[T]`."""

    def __call__(
        self,
        ctx: WorkflowContext,
        topic: str | None = None,
        timeout: timedelta = ...,
    ) -> Coroutine[None, None, T_co]:
        """Receive a message as `T`."""
        ...


# </generated: Receive>


class _Receiver(TypedCall):
    """Receive a message sent to the running workflow: `await recv[T](ctx, topic, timeout=...)`.

    The awaitable form of `dbos_typed.recv`: the oldest unconsumed message on `topic`,
    waiting up to `timeout` (60 s by default) without blocking the workflow's loop.
    `recv[Order]` validates it as `Order`; `recv` without a type returns plain JSON
    values. One wait per workflow and topic at a time: two concurrent receives on the
    same topic are refused rather than left to race for messages.

    Durability: as `dbos_typed.recv`: the message is consumed and checkpointed (step
    `DBOS.recv`) in one transaction, and the call takes a second step ID (`DBOS.sleep`)
    holding the timeout's deadline; both IDs are taken when `recv` is called. A
    timeout is checkpointed and raised again on replay.

    Raises:
        WaitTimeoutError: no message arrived in time.
        SerializationError: the message is not a valid `T`.
        WorkflowCancelledError: the workflow was cancelled while waiting.
        InvalidOptionError: called outside a workflow or inside a step.
        DBOSError: another receive of this workflow already waits on this topic.
    """

    # <generated: recv[T]>
    # Copied from dbos_typed/_messaging/messages.py by scripts/generate_aio.py.
    @overload
    def __getitem__(self, tp: type[T]) -> Receive[T]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[T]) -> Receive[T]: ...

    def __getitem__(self, tp: Any) -> Receive[Any]:
        return self.typed(tp)

    # </generated: recv[T]>

    def __call__(
        self,
        ctx: WorkflowContext,
        topic: str | None = None,
        timeout: timedelta = DEFAULT_WAIT,
    ) -> Coroutine[None, None, JsonValue]:
        """Receive a message as plain JSON values; see `recv`."""
        return _recv(ctx, topic, timeout, codec=codec_for(Any))


recv = _Receiver(lambda codec: functools.partial(_recv, codec=codec), "recv")


send_bulk = awaitable_form(_messaging.send_bulk, same)
