"""`write_stream`, `close_stream` and `read_stream[T]`: ordered values a workflow emits.

A stream is the rows of `streams` for one (workflow, key), at offsets 0, 1, 2, ...;
closing appends the sentinel `"__DBOS_STREAM_CLOSED__"`. Writers wake local readers
directly and NOTIFY `dbos_streams_channel` (batched) for readers elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.durable import begin_operation, checkpoint_of, refused, workflow_context
from dbos_typed._core.serialization import Codec, JsonValue, TypedCall, codec_for, encode_any
from dbos_typed._core.telemetry import KEY, operation_scope
from dbos_typed._core.validate import checked_name
from dbos_typed._messaging.database_waits import Wait
from dbos_typed._sysdb._listener import STREAMS_CHANNEL, payload_of
from dbos_typed._sysdb._rows import STREAM_CLOSED, RecordResult, StatusName, StepRecord
from dbos_typed._sysdb._store import SystemStore
from dbos_typed.errors import DBOSError, InvalidOptionError, NonExistentWorkflowError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

WRITE_STREAM_STEP = "DBOS.writeStream"
CLOSE_STREAM_STEP = "DBOS.closeStream"

_BATCH = 1000
_WRITING = frozenset({StatusName.PENDING, StatusName.ENQUEUED})


def write_stream(ctx: WorkflowContext, key: str, value: T) -> None:
    """Append `value` to this workflow's stream `key`.

    Durability: from the workflow, this is a step (`DBOS.writeStream`): the value and the
    checkpoint are written in one transaction, exactly once. Inside a step it has no
    checkpoint of its own (it is appended again if the step runs again).

    The value's type is not bounded statically: no bound admits every model, dataclass
    and container pydantic can write while refusing what it cannot. The check is made at
    run time instead, before anything is written and before a step ID is taken: a value
    pydantic cannot serialize (an `object()`, a function or lambda, anywhere inside the
    value) or one holding a NaN or an infinity raises `SerializationError`, whose message
    names the stream ("the value for stream 'KEY' cannot be stored: ...").

    Raises:
        DBOSError: the stream is closed.
        SerializationError: the value cannot be stored as JSON (nothing is written).
        InvalidOptionError: called outside a workflow, or a bad key.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError(
            "ctx", "write_stream needs the WorkflowContext of a running workflow"
        )
    key = checked_name(key, "key")
    _append(ctx, key, encode_any(value, f"the value for stream {key!r}"), WRITE_STREAM_STEP)


def close_stream(ctx: WorkflowContext, key: str) -> None:
    """Close this workflow's stream `key`: readers stop after the values written so far.

    Durability: a step (`DBOS.closeStream`), written with its checkpoint in one
    transaction, exactly once.

    Raises:
        DBOSError: the stream is already closed.
        InvalidOptionError: called outside a workflow or inside a step.
    """
    workflow_context(ctx, "close_stream")
    _append(ctx, checked_name(key, "key"), STREAM_CLOSED, CLOSE_STREAM_STEP)


def _append(ctx: WorkflowContext, key: str, text: str, name: str) -> None:
    runtime = ctx._runtime
    state = ctx._state
    workflow_id = state.workflow_id
    if state.in_step:
        # Attributed to the enclosing step.
        result = runtime.store.append_stream(workflow_id, key, text, state.running_step_id, None)
    else:
        step_id, recorded = begin_operation(ctx, name)
        if recorded is not None:
            return
        step = StepRecord(
            step_id, name, None, None, None, runtime.clock.now_ms(), runtime.clock.now_ms()
        )
        with operation_scope(ctx, "write_stream", name, step_id, {KEY: key}):
            result = runtime.store.append_stream(
                workflow_id, key, text, step_id, checkpoint_of(ctx, step)
            )
        if result is not None and result is not RecordResult.WRITTEN:
            refused(ctx, step_id, name, result)
    if result is None:
        raise DBOSError(f"stream {key!r} of workflow {workflow_id!r} is closed")
    runtime.publish(STREAMS_CHANNEL, payload_of(workflow_id, key))


def _start_read(
    ctx: Connected,
    workflow_id: object,
    key: object,
    *,
    from_offset: object = 0,
    snapshot: object = False,
    codec: Codec[Any],
) -> Iterator[Any]:
    # Checked when the call is made: the reader itself is a generator, which runs later.
    workflow_id, key, from_offset, snapshot = check_read(workflow_id, key, from_offset, snapshot)
    return _read(ctx, workflow_id, key, codec, from_offset, snapshot)


def check_read(
    workflow_id: object, key: object, from_offset: object, snapshot: object
) -> tuple[str, str, int, bool]:
    """Check the arguments of `read_stream`; return them typed.

    Raises:
        InvalidOptionError: the argument named in it is invalid.
    """
    if isinstance(from_offset, bool) or not isinstance(from_offset, int) or from_offset < 0:
        raise InvalidOptionError("from_offset", "expected a non-negative int")
    if not isinstance(snapshot, bool):
        raise InvalidOptionError("snapshot", "expected a bool")
    return (
        checked_name(workflow_id, "workflow_id"),
        checked_name(key, "key"),
        from_offset,
        snapshot,
    )


def _read(
    ctx: Connected,
    workflow_id: str,
    key: str,
    codec: Codec[Any],
    from_offset: int,
    snapshot: bool,
) -> Iterator[Any]:
    store = ctx._runtime.store
    cursor = StreamCursor(workflow_id, key, from_offset, snapshot)
    with Wait(ctx, cursor.wait_key) as wait:
        while True:
            texts, then = cursor.take(cursor.read(store))
            for text in texts:
                yield codec.decode(text)
            if then is Next.END:
                return
            if then is Next.WAIT:
                wait.until(None, cursor.moved(store), max_interval=1.0)


class Next(Enum):
    """What a stream reader does after a read."""

    READ = "read"
    WAIT = "wait"
    END = "end"


class StreamCursor:
    """Where a reader is in a stream, and what it does after each read of it.

    Shared by the blocking reader and the awaitable one, which differ only in how they
    read and wait.
    """

    __slots__ = ("_drained", "_key", "_snapshot", "_workflow_id", "offset", "wait_key")

    def __init__(self, workflow_id: str, key: str, from_offset: int, snapshot: bool) -> None:
        self._workflow_id = workflow_id
        self._key = key
        self._snapshot = snapshot
        self._drained = False
        self.offset = from_offset
        self.wait_key = (STREAMS_CHANNEL, payload_of(workflow_id, key))

    def read(self, store: SystemStore) -> tuple[StatusName | None, list[str]]:
        """Read the next batch from the database: the writer's status and the values."""
        return store.read_stream(self._workflow_id, self._key, self.offset, _BATCH)

    def take(self, read: tuple[StatusName | None, list[str]]) -> tuple[list[str], Next]:
        """The values of one read to yield, in order, and what to do next.

        Raises:
            NonExistentWorkflowError: there is no such workflow.
        """
        status, values = read
        if status is None:
            raise NonExistentWorkflowError(self._workflow_id)
        texts: list[str] = []
        for text in values:
            if text == STREAM_CLOSED:
                return texts, Next.END
            texts.append(text)
        self.offset += len(texts)
        if values:
            return texts, Next.READ
        if self._snapshot:
            return texts, Next.END
        if status not in _WRITING:
            # The status can change while the workflow still runs (a cancel), so read
            # once more after seeing it before giving up.
            if self._drained:
                return texts, Next.END
            self._drained = True
            return texts, Next.READ
        return texts, Next.WAIT

    def moved(self, store: SystemStore) -> Callable[[], bool]:
        """A probe for periodic re-checks: whether there is more to read, or an end."""
        return functools.partial(_moved, store, self._workflow_id, self._key, self.offset)


def _moved(store: SystemStore, workflow_id: str, key: str, offset: int) -> bool:
    # A writer in another process that finishes sends no notification: look for it too.
    status, values = store.read_stream(workflow_id, key, offset, 1)
    return bool(values) or status not in _WRITING


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
    ) -> Iterator[T_co]:
        """Iterate over a stream as `T`."""
        ...


class _StreamReader(TypedCall):
    """Iterate over a workflow's stream as it is written: `read_stream[T](ctx, id, key)`.

    Yields each value in order as soon as it is written, and ends when the stream is
    closed, or when the writing workflow is no longer PENDING or ENQUEUED (after reading
    everything it wrote). `read_stream[Order](...)` validates values as `Order`;
    `read_stream(...)` without a type yields plain JSON values. Reading is not a step:
    inside a workflow it is not checkpointed.

    Keyword options: `from_offset` skips the first values (offsets count from 0, so a
    reader that saw `n` values resumes with `from_offset=n`); `snapshot=True` ends once
    the values written so far are read, instead of waiting for more.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
        SerializationError: a value is not a valid `T`.
    """

    @overload
    def __getitem__(self, tp: type[T]) -> ReadStream[T]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[T]) -> ReadStream[T]: ...

    def __getitem__(self, tp: Any) -> ReadStream[Any]:
        return self.typed(tp)

    def __call__(
        self,
        ctx: Connected,
        workflow_id: str,
        key: str,
        *,
        from_offset: int = 0,
        snapshot: bool = False,
    ) -> Iterator[JsonValue]:
        """Iterate over a stream as plain JSON values; see `read_stream`."""
        codec = codec_for(Any)
        return _start_read(
            ctx, workflow_id, key, from_offset=from_offset, snapshot=snapshot, codec=codec
        )


read_stream = _StreamReader(
    lambda codec: functools.partial(_start_read, codec=codec), "read_stream"
)
