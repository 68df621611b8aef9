"""Events (set_event / get_event[T]) and streams (write, close, read_stream[T])."""

from __future__ import annotations

import queue
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from tests.conftest import Backend, Gate, wait_for


class Progress(BaseModel):
    stage: str
    percent: int


def _step_names(backend: Backend, workflow_id: str) -> list[Any]:
    rows = backend.query(
        "SELECT function_name FROM {s}.operation_outputs WHERE workflow_uuid = %s "
        "ORDER BY function_id",
        workflow_id,
    )
    return [r[0] for r in rows]


# -- events --------------------------------------------------------------------------------


def test_events_keep_the_latest_value_and_a_history_per_step(backend: Backend) -> None:
    def publisher(ctx: dbos.WorkflowContext) -> None:
        dbos.set_event(ctx, "progress", Progress(stage="start", percent=0))
        dbos.run_as_step(
            ctx,
            lambda: dbos.set_event(ctx, "inner", 1),  # inside a step: no checkpoint of its own
            name="work",
        )
        dbos.set_event(ctx, "progress", Progress(stage="done", percent=100))

    ctx = backend.context_with(publisher)
    ctx.launch()
    dbos.run_workflow(ctx, publisher, workflow_id="pub").get_result()
    assert dbos.get_event[Progress](ctx, "pub", "progress") == Progress(stage="done", percent=100)
    assert dbos.get_event[int](ctx, "pub", "inner") == 1
    assert dbos.get_event(ctx, "pub", "progress") == {"stage": "done", "percent": 100}
    assert _step_names(backend, "pub") == ["DBOS.setEvent", "work", "DBOS.setEvent"]
    history = backend.query(
        "SELECT function_id, key, value FROM {s}.workflow_events_history "
        "WHERE workflow_uuid = %s ORDER BY function_id",
        "pub",
    )
    assert history == [
        (0, "progress", '{"stage":"start","percent":0}'),
        (1, "inner", "1"),
        (2, "progress", '{"stage":"done","percent":100}'),
    ]


def test_several_readers_wait_for_one_event(backend: Backend) -> None:
    gate = Gate()

    def publisher(ctx: dbos.WorkflowContext) -> None:
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.set_event(ctx, "ready", "yes")

    ctx = backend.context_with(publisher)
    ctx.launch()
    dbos.run_workflow(ctx, publisher, workflow_id="many-readers")
    gate.wait_entered()
    results: queue.Queue[str] = queue.Queue()
    started = threading.Barrier(9)

    def read() -> None:
        started.wait(10)
        results.put(
            dbos.get_event[str](ctx, "many-readers", "ready", timeout=timedelta(seconds=10))
        )

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    started.wait(10)
    gate.open()
    for t in threads:
        t.join(15)
    assert [results.get_nowait() for _ in range(8)] == ["yes"] * 8


def test_get_event_times_out(backend: Backend) -> None:
    def silent(ctx: dbos.WorkflowContext) -> None:
        return None

    ctx = backend.context_with(silent)
    ctx.launch()
    dbos.run_workflow(ctx, silent, workflow_id="silent").get_result()
    start = time.monotonic()
    with pytest.raises(dbos.WaitTimeoutError) as caught:
        dbos.get_event[int](ctx, "silent", "never", timeout=timedelta(milliseconds=150))
    assert 0.15 <= time.monotonic() - start < 3
    assert isinstance(caught.value, TimeoutError)


def test_get_event_in_a_workflow_is_checkpointed_and_replayed(backend: Backend) -> None:
    gate = Gate()

    def publisher(ctx: dbos.WorkflowContext) -> None:
        dbos.set_event(ctx, "v", 1)
        dbos.recv[str](ctx, "go", timeout=timedelta(seconds=30))
        dbos.set_event(ctx, "v", 2)

    def reader(ctx: dbos.WorkflowContext) -> str:
        value = dbos.get_event[int](ctx, "pub2", "v", timeout=timedelta(seconds=10))
        try:
            dbos.get_event[int](ctx, "pub2", "missing", timeout=timedelta(milliseconds=100))
            missing = "found"
        except dbos.WaitTimeoutError:
            missing = "timed out"
        dbos.run_as_step(ctx, gate, name="gate")
        return f"{value} {missing}"

    first = backend.context_with(publisher, reader)
    first.launch()
    dbos.run_workflow(first, publisher, workflow_id="pub2")
    assert dbos.get_event[int](first, "pub2", "v") == 1  # set before the reader starts
    dbos.run_workflow(first, reader, workflow_id="reader")
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))
    assert _step_names(backend, "reader") == ["DBOS.getEvent", "DBOS.getEvent", "DBOS.sleep"]

    second = backend.context_with(publisher, reader)
    dbos.send(second, "pub2", "go", "go")  # the event changes before the reader's replay
    gate.open()
    second.launch()
    dbos.retrieve_workflow(second, "pub2").get_result()
    assert dbos.get_event[int](second, "pub2", "v") == 2
    assert dbos.retrieve_workflow[str](second, "reader").get_result() == "1 timed out"


def test_an_event_set_in_another_context_wakes_the_reader(backend: Backend) -> None:
    gate = Gate()

    def publisher(ctx: dbos.WorkflowContext) -> None:
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.set_event(ctx, "e", "hello")

    writing = backend.context_with(publisher)
    writing.launch()
    reading = backend.new_context(app_name="reader-app")
    reading.launch()
    dbos.run_workflow(writing, publisher, workflow_id="remote-event")
    gate.wait_entered()
    got: queue.Queue[tuple[str, float]] = queue.Queue()

    def read() -> None:
        value = dbos.get_event[str](reading, "remote-event", "e", timeout=timedelta(seconds=10))
        got.put((value, time.monotonic()))

    reader = threading.Thread(target=read)
    reader.start()
    key = ("dbos_workflow_events_channel", "remote-event::e")
    wait_for(lambda: reading._runtime.waiters.count(key) == 1)
    opened = time.monotonic()
    gate.open()
    reader.join(15)
    value, at = got.get_nowait()
    assert value == "hello"
    assert at - opened < 2.5  # a NOTIFY (or polling), not the periodic safety net (5 s)


# -- streams -------------------------------------------------------------------------------


def test_a_stream_is_read_while_it_is_written(backend: Backend) -> None:
    gate = Gate()

    def writer(ctx: dbos.WorkflowContext) -> None:
        dbos.write_stream(ctx, "out", Progress(stage="a", percent=1))
        dbos.write_stream(ctx, "out", Progress(stage="b", percent=2))
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.write_stream(ctx, "out", Progress(stage="c", percent=3))
        dbos.close_stream(ctx, "out")
        dbos.set_event(ctx, "after-close", True)

    ctx = backend.context_with(writer)
    ctx.launch()
    dbos.run_workflow(ctx, writer, workflow_id="streamer")
    seen: queue.Queue[Progress | None] = queue.Queue()

    def read() -> None:
        for item in dbos.read_stream[Progress](ctx, "streamer", "out"):
            seen.put(item)
        seen.put(None)

    reader = threading.Thread(target=read)
    reader.start()
    assert seen.get(timeout=10) == Progress(stage="a", percent=1)
    assert seen.get(timeout=10) == Progress(stage="b", percent=2)
    gate.wait_entered()
    assert seen.empty()
    gate.open()
    assert seen.get(timeout=10) == Progress(stage="c", percent=3)
    assert seen.get(timeout=10) is None  # closed: the iteration ended
    reader.join(10)
    assert dbos.get_event[bool](ctx, "streamer", "after-close") is True
    rows = backend.query(
        'SELECT "offset", value, function_id FROM {s}.streams WHERE workflow_uuid = %s '
        'ORDER BY "offset"',
        "streamer",
    )
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert rows[3][1] == '"__DBOS_STREAM_CLOSED__"'
    assert [r[2] for r in rows] == [0, 1, 3, 4]  # the step that wrote each value
    # Reading after the fact gives the same values.
    assert [p.stage for p in dbos.read_stream[Progress](ctx, "streamer", "out")] == ["a", "b", "c"]


def test_a_stream_ends_when_its_writer_finishes_without_closing(backend: Backend) -> None:
    gate = Gate()

    def writer(ctx: dbos.WorkflowContext) -> None:
        dbos.write_stream(ctx, "s", 1)
        dbos.run_as_step(ctx, lambda: dbos.write_stream(ctx, "s", 2), name="in-step")
        dbos.run_as_step(ctx, gate, name="gate")

    ctx = backend.context_with(writer)
    ctx.launch()
    dbos.run_workflow(ctx, writer, workflow_id="unclosed")
    gate.wait_entered()
    done: queue.Queue[list[int]] = queue.Queue()
    reader = threading.Thread(
        target=lambda: done.put(list(dbos.read_stream[int](ctx, "unclosed", "s")))
    )
    reader.start()
    gate.open()
    assert done.get(timeout=10) == [1, 2]
    reader.join(10)
    assert _step_names(backend, "unclosed") == ["DBOS.writeStream", "in-step", "gate"]


def test_a_stream_read_can_start_at_an_offset_and_stop_at_what_is_written(
    backend: Backend,
) -> None:
    gate = Gate()

    def writer(ctx: dbos.WorkflowContext) -> None:
        for i in range(4):
            dbos.write_stream(ctx, "s", i)
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.write_stream(ctx, "s", 4)
        dbos.close_stream(ctx, "s")

    ctx = backend.context_with(writer)
    ctx.launch()
    dbos.run_workflow(ctx, writer, workflow_id="offsets")
    gate.wait_entered()
    # The writer is still running: a snapshot returns what is there instead of waiting.
    assert list(dbos.read_stream[int](ctx, "offsets", "s", snapshot=True)) == [0, 1, 2, 3]
    assert list(dbos.read_stream[int](ctx, "offsets", "s", from_offset=2, snapshot=True)) == [
        2,
        3,
    ]
    assert list(dbos.read_stream(ctx, "offsets", "s", from_offset=9, snapshot=True)) == []
    gate.open()
    # A reader that saw three values resumes after them and follows to the close.
    assert list(dbos.read_stream[int](ctx, "offsets", "s", from_offset=3)) == [3, 4]
    for bad in (-1, "2", True, 1.5):
        with pytest.raises(dbos.InvalidOptionError, match="from_offset"):
            dbos.read_stream(ctx, "offsets", "s", from_offset=bad)  # type: ignore[arg-type]
    with pytest.raises(dbos.InvalidOptionError, match="snapshot"):
        dbos.read_stream[int](ctx, "offsets", "s", snapshot=1)  # type: ignore[arg-type]


def test_stream_misuse(backend: Backend) -> None:
    def writer(ctx: dbos.WorkflowContext) -> list[str]:
        errors: list[str] = []
        dbos.close_stream(ctx, "s")
        try:
            dbos.write_stream(ctx, "s", 1)
        except dbos.DBOSError as exc:
            errors.append(str(exc))
        try:
            dbos.run_as_step(ctx, lambda: dbos.close_stream(ctx, "t"), name="close-in-step")
        except dbos.StepFailedError as exc:
            errors.append(exc.error_name)
        return errors

    ctx = backend.context_with(writer)
    ctx.launch()
    errors = dbos.run_workflow(ctx, writer, workflow_id="misuse").get_result()
    assert errors == ["stream 's' of workflow 'misuse' is closed", "InvalidOptionError"]
    assert list(dbos.read_stream(ctx, "misuse", "s")) == []
    with pytest.raises(dbos.NonExistentWorkflowError):
        next(iter(dbos.read_stream[int](ctx, "no-such-workflow", "s")))
    with pytest.raises(dbos.InvalidOptionError):
        dbos.write_stream(ctx, "s", 1)  # type: ignore[arg-type]


def test_concurrent_writers_inside_a_step_append_without_gaps(backend: Backend) -> None:
    def write_many(ctx: dbos.WorkflowContext, start: int) -> None:
        for i in range(start, start + 25):
            dbos.write_stream(ctx, "s", i)

    def fan_out(ctx: dbos.WorkflowContext) -> None:
        threads = [threading.Thread(target=write_many, args=(ctx, n * 25)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def writer(ctx: dbos.WorkflowContext) -> None:
        dbos.run_as_step(ctx, lambda: fan_out(ctx), name="fan-out")
        dbos.close_stream(ctx, "s")

    ctx = backend.context_with(writer)
    ctx.launch()
    dbos.run_workflow(ctx, writer, workflow_id="fan").get_result()
    assert sorted(dbos.read_stream[int](ctx, "fan", "s")) == list(range(100))
    offsets = backend.query(
        'SELECT "offset" FROM {s}.streams WHERE workflow_uuid = %s ORDER BY "offset"', "fan"
    )
    assert [r[0] for r in offsets] == list(range(101))


def test_shutdown_ends_a_wait_outside_a_workflow(backend: Backend) -> None:
    def silent(ctx: dbos.WorkflowContext) -> None:
        return None

    ctx = backend.context_with(silent)
    ctx.launch()
    dbos.run_workflow(ctx, silent, workflow_id="quiet").get_result()
    outcome: queue.Queue[BaseException] = queue.Queue()

    def read() -> None:
        try:
            dbos.get_event[int](ctx, "quiet", "never", timeout=timedelta(seconds=60))
        except BaseException as exc:
            outcome.put(exc)

    reader = threading.Thread(target=read)
    reader.start()
    key = ("dbos_workflow_events_channel", "quiet::never")
    wait_for(lambda: ctx._runtime.waiters.count(key) == 1)
    start = time.monotonic()
    ctx.shutdown()
    error = outcome.get(timeout=10)
    reader.join(10)
    assert isinstance(error, dbos.DBOSError) and "shut down" in str(error)
    assert time.monotonic() - start < 5
