"""The awaitable `write_stream`, `close_stream`, and `read_stream[T]` as an async iterator."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.serialization import Codec, JsonValue, TypedCall, codec_for
from dbos_typed._messaging import streams as _streams
from dbos_typed._messaging.streams import Next, StreamCursor, check_read
from dbos_typed.aio._loop import AsyncWait, performed, run_blocking

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def write_stream(ctx: WorkflowContext, key: str, value: T) -> Coroutine[None, None, None]:
    """Append `value` to this workflow's stream `key`.

    The awaitable form of `dbos_typed.write_stream`, with the same arguments and errors.

    Durability: from the workflow, this is a step (`DBOS.writeStream`) made exactly once;
    it takes its step ID, and is written, when `write_stream` is called. Inside a step
    it is attributed to that step.
    """
    return performed(ctx, lambda: _streams.write_stream(ctx, key, value))


def close_stream(ctx: WorkflowContext, key: str) -> Coroutine[None, None, None]:
    """Close this workflow's stream `key`: readers stop after the values written so far.

    The awaitable form of `dbos_typed.close_stream`, with the same arguments and errors.

    Durability: a step (`DBOS.closeStream`) made exactly once, when `close_stream` is
    called.
    """
    return performed(ctx, lambda: _streams.close_stream(ctx, key))


async def _read(
    ctx: Connected,
    workflow_id: str,
    key: str,
    codec: Codec[Any],
    from_offset: int,
    snapshot: bool,
) -> AsyncIterator[Any]:
    store = ctx._runtime.store
    cursor = StreamCursor(workflow_id, key, from_offset, snapshot)
    with AsyncWait(ctx, cursor.wait_key) as wait:
        while True:
            texts, then = cursor.take(
                await run_blocking(ctx, functools.partial(cursor.read, store))
            )
            for text in texts:
                yield codec.decode(text)
            if then is Next.END:
                return
            if then is Next.WAIT:
                await wait.until(None, cursor.moved(store), max_interval=1.0)


def _start_read(
    ctx: Connected,
    workflow_id: object,
    key: object,
    *,
    from_offset: object = 0,
    snapshot: object = False,
    codec: Codec[Any],
) -> AsyncIterator[Any]:
    # Checked when the call is made, as the blocking reader does.
    workflow_id, key, from_offset, snapshot = check_read(workflow_id, key, from_offset, snapshot)
    return _read(ctx, workflow_id, key, codec, from_offset, snapshot)


# <generated: ReadStream>
# Copied from dbos_typed/_messaging/streams.py by scripts/generate_aio.py.
class ReadStream(Protocol[T_co]):
    """The signature of `read_stream[T]`."""

    def __call__(
        self,
        ctx: Connected,
        workflow_id: str,
        key: str,
        *,
        from_offset: int = 0,
        snapshot: bool = False,
    ) -> AsyncIterator[T_co]:
        """Iterate over a stream as `T`."""
        ...


# </generated: ReadStream>


class _StreamReader(TypedCall):
    """Iterate over a workflow's stream as it is written: `async for v in read_stream[T](...)`.

    The awaitable form of `dbos_typed.read_stream`, with the same arguments and end: each
    value in order as soon as it is written, until the stream is closed or its writer is
    no longer PENDING or ENQUEUED. Waiting for values holds no thread (reads are made on
    one); leaving the loop, or cancelling the task iterating, ends the wait.
    `read_stream[Order]` validates values as `Order`; without a type it yields plain
    JSON values. Reading is not a step: inside a workflow it is not checkpointed.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
        SerializationError: a value is not a valid `T`.
        InvalidOptionError: a bad argument (raised by the call itself).
    """

    # <generated: read_stream[T]>
    # Copied from dbos_typed/_messaging/streams.py by scripts/generate_aio.py.
    @overload
    def __getitem__(self, tp: type[T]) -> ReadStream[T]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[T]) -> ReadStream[T]: ...

    def __getitem__(self, tp: Any) -> ReadStream[Any]:
        return self.typed(tp)

    # </generated: read_stream[T]>

    def __call__(
        self,
        ctx: Connected,
        workflow_id: str,
        key: str,
        *,
        from_offset: int = 0,
        snapshot: bool = False,
    ) -> AsyncIterator[JsonValue]:
        """Iterate over a stream as plain JSON values; see `read_stream`."""
        return _start_read(
            ctx, workflow_id, key, from_offset=from_offset, snapshot=snapshot, codec=codec_for(Any)
        )


read_stream = _StreamReader(
    lambda codec: functools.partial(_start_read, codec=codec), "read_stream"
)
