"""`write_stream`, `close_stream` and `read_stream[T]`: ordered values a workflow emits.

A stream is the rows of `streams` for one (workflow, key), at offsets 0, 1, 2, ...;
closing appends the sentinel `"__DBOS_STREAM_CLOSED__"`. Writers wake local readers
directly and NOTIFY `dbos_streams_channel` (batched) for readers elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._context import Connected, WorkflowContext
from dbos_typed._durable import begin_operation, checkpoint_of, refused
from dbos_typed._runtime import now_ms
from dbos_typed._serialization import Codec, codec_for, encode_any
from dbos_typed._sleep import workflow_context
from dbos_typed._sysdb._listener import STREAMS_CHANNEL, payload_of
from dbos_typed._sysdb._rows import STREAM_CLOSED, RecordResult, StatusName, StepRecord
from dbos_typed._sysdb._store import SystemStore
from dbos_typed._validate import checked_name
from dbos_typed._waiting import Wait
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

    Raises:
        DBOSError: the stream is closed.
        SerializationError: the value cannot be stored as JSON.
        InvalidOptionError: called outside a workflow, or a bad key.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError(
            "ctx", "write_stream needs the WorkflowContext of a running workflow"
        )
    _append(ctx, checked_name(key, "key"), encode_any(value), WRITE_STREAM_STEP)


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
        # The enclosing step took the last ID handed out.
        result = runtime.store.append_stream(workflow_id, key, text, state.next_step - 1, None)
    else:
        step_id, recorded = begin_operation(ctx, name)
        if recorded is not None:
            return
        step = StepRecord(step_id, name, None, None, None, now_ms(), now_ms())
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
    codec: Codec[Any],
    from_offset: object,
    snapshot: object,
) -> Iterator[Any]:
    # Checked when the call is made: the reader itself is a generator, which runs later.
    if isinstance(from_offset, bool) or not isinstance(from_offset, int) or from_offset < 0:
        raise InvalidOptionError("from_offset", "expected a non-negative int")
    if not isinstance(snapshot, bool):
        raise InvalidOptionError("snapshot", "expected a bool")
    return _read(
        ctx,
        checked_name(workflow_id, "workflow_id"),
        checked_name(key, "key"),
        codec,
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
    offset = from_offset
    drained_after_exit = False
    with Wait(ctx, (STREAMS_CHANNEL, payload_of(workflow_id, key))) as wait:
        while True:
            status, values = store.read_stream(workflow_id, key, offset, _BATCH)
            if status is None:
                raise NonExistentWorkflowError(workflow_id)
            for text in values:
                if text == STREAM_CLOSED:
                    return
                offset += 1
                yield codec.decode(text)
            if values:
                continue
            if snapshot:
                return
            if status not in _WRITING:
                # The status can change while the workflow still runs (a cancel), so
                # read once more after seeing it before giving up.
                if drained_after_exit:
                    return
                drained_after_exit = True
                continue
            wait.until(
                None, functools.partial(_moved, store, workflow_id, key, offset), max_interval=1.0
            )


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


class _StreamReader:
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
        codec = codec_for(tp)

        def typed_read_stream(
            ctx: Connected,
            workflow_id: str,
            key: str,
            *,
            from_offset: int = 0,
            snapshot: bool = False,
        ) -> Iterator[Any]:
            return _start_read(ctx, workflow_id, key, codec, from_offset, snapshot)

        typed_read_stream.__doc__ = _StreamReader.__doc__
        return typed_read_stream

    def __call__(
        self,
        ctx: Connected,
        workflow_id: str,
        key: str,
        *,
        from_offset: int = 0,
        snapshot: bool = False,
    ) -> Iterator[Any]:
        """Iterate over a stream as plain JSON values; see `read_stream`."""
        return _start_read(ctx, workflow_id, key, codec_for(Any), from_offset, snapshot)


read_stream = _StreamReader()
