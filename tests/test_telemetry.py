"""Tracing, metrics and log fields through the OpenTelemetry API, on both backends.

Each test hands its context an SDK provider of its own (`Config.tracer_provider`), with a
synchronous in-memory exporter, so tests never share spans. The global provider is set
only in worker processes (tests/otel_worker.py), where no other test runs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import dbos_typed as dbos
from dbos_typed import aio
from tests.conftest import Backend, Gate, WorkerProcess, wait_for

ROOT = Path(__file__).resolve().parents[1]
PATIENCE = timedelta(seconds=30)


@dataclass
class Tracing:
    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider, exporter)
    provider.shutdown()


def _parent(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def _trace(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def child(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n * 2, name="double")


def parent(ctx: dbos.WorkflowContext, n: int) -> int:
    me = dbos.get_workflow_id(ctx)
    first = dbos.run_as_step(ctx, lambda: n + 1, name="add")
    doubled = dbos.run_workflow(ctx, child, first).get_result()
    dbos.send(ctx, me, "hello", "topic")
    assert dbos.recv[str](ctx, "topic", timeout=timedelta(seconds=5)) == "hello"
    dbos.set_event(ctx, "done", doubled)
    assert dbos.get_event[int](ctx, me, "done", timedelta(seconds=5)) == doubled
    dbos.sleep(ctx, timedelta(milliseconds=1))
    dbos.write_stream(ctx, "out", doubled)
    return doubled


def test_a_workflow_is_a_span_with_a_child_span_per_operation(
    backend: Backend, tracing: Tracing
) -> None:
    ctx = backend.context_with(parent, child, tracer_provider=tracing.provider)
    ctx.launch()
    handle = dbos.run_workflow(ctx, parent, 1, workflow_id="wf")
    assert handle.get_result(timeout=PATIENCE) == 4

    root = tracing.one("parent")
    start = tracing.one("start parent")
    assert _parent(root) == _id(start) and start.parent is None
    attrs = _attrs(root)
    assert attrs["dbos.workflow.id"] == "wf"
    assert attrs["dbos.workflow.name"] == "parent"
    assert attrs["dbos.application.version"] == "test-version"
    assert attrs["dbos.executor.id"] == "local"
    assert attrs["dbos.workflow.status"] == "SUCCESS"
    assert attrs["dbos.operation"] == "workflow"
    below = {s.name: s for s in tracing.spans() if _parent(s) == _id(root)}
    assert set(below) == {
        "add",
        "start child",
        "DBOS.send",
        "DBOS.recv",
        "DBOS.getEvent",
        "DBOS.sleep",
        "DBOS.writeStream",
    }
    step = _attrs(below["add"])
    assert (step["dbos.step.id"], step["dbos.step.name"], step["dbos.step.attempt"]) == (
        0,
        "add",
        1,
    )
    assert step["dbos.workflow.id"] == "wf" and step["dbos.operation"] == "step"
    assert _attrs(below["start child"])["dbos.target.workflow.id"] == "wf-1"
    assert _attrs(below["DBOS.send"])["dbos.target.workflow.id"] == "wf"
    assert _attrs(below["DBOS.recv"])["dbos.operation"] == "recv"
    # The child workflow continues the trace under the span that started it.
    kid = tracing.one("child")
    assert _parent(kid) == _id(below["start child"]) and _trace(kid) == _trace(root)
    assert _attrs(kid)["dbos.workflow.id"] == "wf-1"
    assert [_parent(s) for s in tracing.named("double")] == [_id(kid)]
    assert all(_trace(s) == _trace(root) for s in tracing.spans())


def test_a_failing_step_shows_each_attempt_and_fails_the_workflow(
    backend: Backend, tracing: Tracing
) -> None:
    def flaky() -> int:
        raise ValueError("no luck")

    def fails(ctx: dbos.WorkflowContext) -> int:
        return dbos.run_as_step(ctx, flaky, max_retries=2, base_interval=timedelta(milliseconds=1))

    ctx = backend.context_with(fails, tracer_provider=tracing.provider)
    ctx.launch()
    with pytest.raises(dbos.WorkflowFailedError):
        dbos.run_workflow(ctx, fails).get_result(timeout=PATIENCE)
    attempts = sorted(tracing.named(flaky.__qualname__), key=lambda s: s.start_time or 0)
    assert [_attrs(s)["dbos.step.attempt"] for s in attempts] == [1, 2, 3]
    for span in attempts:
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events] == ["exception"]
        assert (span.events[0].attributes or {})["exception.type"] == "ValueError"
    workflow = tracing.one(fails.__qualname__)
    assert workflow.status.status_code is StatusCode.ERROR
    assert _attrs(workflow)["dbos.workflow.status"] == "ERROR"


def test_a_workflow_started_in_a_span_is_its_child_and_stores_its_context(
    backend: Backend, tracing: Tracing
) -> None:
    ctx = backend.context_with(child, tracer_provider=tracing.provider)
    ctx.launch()
    tracer = tracing.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        handle = dbos.run_workflow(ctx, child, 2, attributes={"team": "a"})
    assert handle.get_result(timeout=PATIENCE) == 4
    request_id = request.get_span_context().trace_id
    start = tracing.one("start child")
    assert _trace(start) == request_id
    assert _parent(start) == request.get_span_context().span_id
    assert _parent(tracing.one("child")) == _id(start)
    # Stored with the workflow where DBOS's SDK keeps it; users see only their attributes.
    (stored,) = backend.query(
        "SELECT attributes FROM {s}.workflow_status WHERE workflow_uuid = %s", handle.workflow_id
    )
    value = stored[0] if isinstance(stored[0], dict) else json.loads(str(stored[0]))
    assert value["team"] == "a"
    assert value["dbos.otelContext"]["traceparent"].split("-")[1] == format(request_id, "032x")
    assert handle.get_status().attributes == {"team": "a"}
    # Replacing the user's attributes keeps the trace context.
    dbos.set_workflow_attributes(ctx, handle.workflow_id, {"team": "b"})
    assert handle.get_status().attributes == {"team": "b"}
    (stored,) = backend.query(
        "SELECT attributes FROM {s}.workflow_status WHERE workflow_uuid = %s", handle.workflow_id
    )
    assert "dbos.otelContext" in str(stored[0])


def test_a_workflow_debounced_in_a_span_continues_its_trace(
    backend: Backend, tracing: Tracing
) -> None:
    ctx = backend.context_with(child, tracer_provider=tracing.provider)
    ctx.launch()
    debouncer = dbos.new_debouncer(ctx, child)
    tracer = tracing.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        handle = debouncer.debounce(ctx, "key", 3, delay=timedelta(0))
    assert handle.get_result(timeout=PATIENCE) == 6
    start = tracing.one("start child")
    assert _parent(start) == request.get_span_context().span_id
    run = tracing.one("child")
    assert _trace(run) == request.get_span_context().trace_id
    assert _parent(run) == _id(start)


def test_without_user_attributes_none_are_shown(backend: Backend, tracing: Tracing) -> None:
    ctx = backend.context_with(child, tracer_provider=tracing.provider)
    ctx.launch()
    handle = dbos.run_workflow(ctx, child, 1)
    handle.get_result(timeout=PATIENCE)
    assert handle.get_status().attributes is None
    listed = dbos.list_workflows(ctx, workflow_ids=[handle.workflow_id])
    assert [s.attributes for s in listed] == [None]


def test_queued_resumed_and_forked_runs_continue_the_trace(
    backend: Backend, tracing: Tracing
) -> None:
    ctx = backend.context_with(child, tracer_provider=tracing.provider)
    queue = dbos.register_queue(ctx, "work", polling_interval=timedelta(milliseconds=20))
    ctx.launch()
    tracer = tracing.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        handle = dbos.run_workflow(ctx, child, 3, queue=queue, workflow_id="queued")
    assert handle.get_result(timeout=PATIENCE) == 6
    enqueue = tracing.one("enqueue child")
    assert _attrs(enqueue)["dbos.queue.name"] == "work"
    run = tracing.one("child")
    assert _parent(run) == _id(enqueue)
    assert _attrs(run)["dbos.queue.name"] == "work"
    trace_id = request.get_span_context().trace_id
    assert _trace(run) == trace_id

    dbos.resume_workflow(ctx, "queued")  # finished: nothing runs
    forked = dbos.fork_workflow(ctx, "queued", 0)
    assert forked.get_result(timeout=PATIENCE) == 6
    runs = tracing.named("child")
    assert len(runs) == 2
    assert {_trace(s) for s in runs} == {trace_id}
    assert {_parent(s) for s in runs} == {_id(enqueue)}


def test_a_recovered_run_is_a_new_span_of_the_original_trace(
    backend: Backend, tracing: Tracing
) -> None:
    gate = Gate()

    def waits(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return "done"

    first = backend.context_with(waits, executor_id="e", tracer_provider=tracing.provider)
    first.launch()
    dbos.run_workflow(first, waits, workflow_id="crashy")
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))  # the row stays PENDING, as after a crash
    gate.open()
    wait_for(lambda: len(tracing.named(waits.__qualname__)) == 1)

    second = backend.context_with(waits, executor_id="e", tracer_provider=tracing.provider)
    second.launch()
    handle = dbos.retrieve_workflow[str](second, "crashy")
    assert handle.get_result(timeout=PATIENCE) == "done"
    wait_for(lambda: len(tracing.named(waits.__qualname__)) == 2)
    original, recovered = sorted(tracing.named(waits.__qualname__), key=lambda s: s.start_time or 0)
    start = tracing.one(f"start {waits.__qualname__}")
    assert _parent(original) == _parent(recovered) == _id(start)
    assert _trace(recovered) == _trace(original)
    assert _attrs(recovered)["dbos.workflow.recovered"] is True
    assert _attrs(recovered)["dbos.workflow.attempt"] == 2
    assert "dbos.workflow.recovered" not in _attrs(original)


def test_metrics(backend: Backend) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])

    def fails(ctx: dbos.WorkflowContext) -> None:
        dbos.run_as_step(ctx, _boom, name="boom")

    ctx = backend.context_with(child, fails, meter_provider=meters)
    queue = dbos.register_queue(ctx, "work", polling_interval=timedelta(milliseconds=20))
    ctx.launch()
    assert dbos.run_workflow(ctx, child, 1).get_result(timeout=PATIENCE) == 2
    assert dbos.run_workflow(ctx, child, 2, queue=queue).get_result(timeout=PATIENCE) == 4
    with pytest.raises(dbos.WorkflowFailedError):
        dbos.run_workflow(ctx, fails).get_result(timeout=PATIENCE)
    dbos.run_workflow(ctx, child, 5, queue=queue, delay=timedelta(hours=1))

    points = _points(reader)
    assert points[("dbos.workflow.started", (("dbos.workflow.name", "child"),))] == 2
    assert points[("dbos.workflow.started", (("dbos.workflow.name", fails.__qualname__),))] == 1
    finished = ("dbos.workflow.name", "child"), ("dbos.workflow.status", "SUCCESS")
    assert points[("dbos.workflow.finished", finished)] == 1 + 1
    failed = ("dbos.workflow.name", fails.__qualname__), ("dbos.workflow.status", "ERROR")
    assert points[("dbos.workflow.finished", failed)] == 1
    assert points[("dbos.workflow.duration", finished)] == 2  # a histogram's count
    steps = ("dbos.operation", "step"), ("dbos.step.name", "double")
    ok = ("dbos.workflow.name", "child"), ("dbos.workflow.status", "SUCCESS")
    assert points[("dbos.step.duration", (*steps, *ok))] == 2
    boom = ("dbos.operation", "step"), ("dbos.step.name", "boom")
    error = ("dbos.workflow.name", fails.__qualname__), ("dbos.workflow.status", "ERROR")
    assert points[("dbos.step.duration", (*boom, *error))] == 1
    assert points[("dbos.queue.latency", (("dbos.queue.name", "work"),))] == 1
    depth = ("dbos.queue.name", "work"), ("dbos.workflow.status", "DELAYED")
    assert points[("dbos.queue.depth", depth)] == 1
    meters.shutdown()


def test_recoveries_are_counted(backend: Backend) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    gate = Gate()

    def waits(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return "done"

    first = backend.context_with(waits, executor_id="e", meter_provider=meters)
    first.launch()
    dbos.run_workflow(first, waits, workflow_id="crashy")
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))
    gate.open()
    second = backend.context_with(waits, executor_id="e", meter_provider=meters)
    second.launch()
    assert dbos.retrieve_workflow[str](second, "crashy").get_result(timeout=PATIENCE) == "done"
    points = _points(reader)
    by_name = (("dbos.workflow.name", waits.__qualname__),)
    assert points[("dbos.workflow.recoveries", by_name)] == 1
    assert points[("dbos.workflow.started", by_name)] == 1
    meters.shutdown()


def _boom() -> None:
    raise RuntimeError("boom")


def _points(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """Sums, gauge values and histogram counts by (metric, sorted attributes but the app)."""
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    labels = tuple(
                        sorted(
                            (k, v)
                            for k, v in (point.attributes or {}).items()
                            if k != "dbos.application.name"
                        )
                    )
                    value = getattr(point, "count", None)
                    if value is None:
                        value = point.value  # type: ignore[union-attr]
                    found[(metric.name, labels)] = value
    return found


def test_nothing_is_traced_or_stored_when_off(backend: Backend, tracing: Tracing) -> None:
    ctx = backend.context_with(child, tracer_provider=tracing.provider, instrumentation=False)
    ctx.launch()
    with tracing.provider.get_tracer("test").start_as_current_span("request"):
        handle = dbos.run_workflow(ctx, child, 1)
    assert handle.get_result(timeout=PATIENCE) == 2
    assert [s.name for s in tracing.spans()] == ["request"]
    assert backend.query(
        "SELECT attributes FROM {s}.workflow_status WHERE workflow_uuid = %s", handle.workflow_id
    ) == [(None,)]


def test_without_a_provider_nothing_is_recorded(backend: Backend) -> None:
    ctx = backend.context_with(child)
    ctx.launch()
    assert not ctx._runtime.telemetry.active()
    handle = dbos.run_workflow(ctx, child, 1)
    assert handle.get_result(timeout=PATIENCE) == 2
    assert backend.query(
        "SELECT attributes FROM {s}.workflow_status WHERE workflow_uuid = %s", handle.workflow_id
    ) == [(None,)]


def test_log_records_name_the_workflow_step_and_span(
    backend: Backend, tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    library = logging.getLogger("dbos_typed")

    def logs(ctx: dbos.WorkflowContext) -> None:
        library.warning("in the body")
        dbos.run_as_step(ctx, lambda: library.warning("in a step"), name="talk")

    ctx = backend.context_with(logs, tracer_provider=tracing.provider)
    ctx.launch()
    with caplog.at_level(logging.WARNING, logger="dbos_typed"):
        dbos.run_workflow(ctx, logs, workflow_id="chatty").get_result(timeout=PATIENCE)
    body, step = (r for r in caplog.records if r.getMessage().startswith("in "))
    assert body.__dict__["workflow_id"] == "chatty"
    assert body.__dict__["workflow_name"] == logs.__qualname__
    assert "step_id" not in body.__dict__
    assert step.__dict__["step_id"] == 0
    workflow, talk = tracing.one(logs.__qualname__), tracing.one("talk")
    assert body.__dict__["span_id"] == format(_id(workflow), "016x")
    assert step.__dict__["span_id"] == format(_id(talk), "016x")
    assert step.__dict__["trace_id"] == format(_trace(workflow), "032x")


def test_providers_are_checked() -> None:
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.Config(app_name="a", tracer_provider=object())
    assert info.value.argument == "tracer_provider"
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.Config(app_name="a", meter_provider="meters")
    assert info.value.argument == "meter_provider"
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.Config(app_name="a", instrumentation=1)  # type: ignore[arg-type]
    assert info.value.argument == "instrumentation"


def test_without_the_opentelemetry_package_workflows_run(tmp_path: Path) -> None:
    script = f"""
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
import dbos_typed as dbos
from dbos_typed._core import telemetry
assert not telemetry.AVAILABLE
def wf(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n + 1, name="inc")
ctx = dbos.new_context(dbos.Config(app_name="plain",
    database_url="sqlite:///{tmp_path / "plain.sqlite"}", tracer_provider=None))
dbos.register_workflow(ctx, wf)
ctx.launch()
print(dbos.run_workflow(ctx, wf, 1).get_result())
ctx.shutdown()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"


def _run_script(script: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=None if env is None else {**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_global_provider_set_later_is_used_and_the_api_is_not_asked_per_workflow(
    tmp_path: Path,
) -> None:
    # In a process of its own: the API lets the global provider be set only once.
    script = f"""
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import dbos_typed as dbos
asked = []
def counted(getter):
    def ask():
        asked.append(getter.__name__)
        return getter()
    return ask
trace.get_tracer_provider = counted(trace.get_tracer_provider)
metrics.get_meter_provider = counted(metrics.get_meter_provider)
def wf(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n + 1, name="inc")
ctx = dbos.new_context(dbos.Config(app_name="late",
    database_url="sqlite:///{tmp_path / "late.sqlite"}"))
dbos.register_workflow(ctx, wf)
ctx.launch()
for n in range(20):
    assert dbos.run_workflow(ctx, wf, n).get_result() == n + 1
assert asked == [], asked
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
dbos.run_workflow(ctx, wf, 1).get_result()
print(sorted({{span.name for span in exporter.get_finished_spans()}}))
ctx.shutdown()
"""
    assert _run_script(script) == str(["inc", "start wf", "wf"])


def test_a_provider_named_by_the_environment_is_loaded(tmp_path: Path) -> None:
    script = f"""
from opentelemetry import trace
import dbos_typed as dbos
def wf(ctx: dbos.WorkflowContext) -> None:
    return None
ctx = dbos.new_context(dbos.Config(app_name="env",
    database_url="sqlite:///{tmp_path / "env.sqlite"}"))
dbos.register_workflow(ctx, wf)
ctx.launch()
dbos.run_workflow(ctx, wf).get_result()
print(type(trace.get_tracer_provider()).__module__, ctx._runtime.telemetry.tracer() is not None)
ctx.shutdown()
"""
    out = _run_script(script, {"OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"})
    assert out == "opentelemetry.sdk.trace True"


def _otel_worker(backend: Backend, executor_id: str, mode: str) -> WorkerProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.otel_worker", backend.url, backend.schema, executor_id, mode],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.strip() == "ready", first + process.stdout.read()
    return WorkerProcess(process)


def _worker_spans(worker: WorkerProcess) -> list[dict[str, Any]]:
    """Stop a serving worker and read the spans it printed."""
    assert worker.process.stdin is not None
    worker.process.stdin.close()
    worker.process.wait(60)
    worker._reader.join(10)
    worker._stdout.close()
    lines = []
    while not worker._lines.empty():
        lines.append(worker._lines.get())
    (line,) = [x for x in lines if x.startswith("spans ")]
    spans: list[dict[str, Any]] = json.loads(line.removeprefix("spans "))
    return spans


def test_a_client_enqueue_is_continued_by_a_worker_that_set_the_global_provider(
    backend: Backend, tracing: Tracing
) -> None:
    worker = _otel_worker(backend, "w1", "serve")
    config = backend.config("otel-test", tracer_provider=tracing.provider)
    with dbos.new_client(config) as client:
        with tracing.provider.get_tracer("test").start_as_current_span("request") as request:
            handle = dbos.enqueue[str](client, "traced", "traced", 1, workflow_id="remote")
        assert handle.get_result(timeout=PATIENCE) == "remote"
    spans = {s["name"]: s for s in _worker_spans(worker)}
    enqueue = tracing.one("enqueue traced")
    trace_id = format(request.get_span_context().trace_id, "032x")
    assert spans["traced"]["trace_id"] == trace_id
    assert spans["traced"]["parent_id"] == format(_id(enqueue), "016x")
    assert spans["traced"]["attributes"]["dbos.executor.id"] == "w1"
    assert spans["work"]["parent_id"] == spans["traced"]["span_id"]


def test_a_workflow_recovered_in_another_process_continues_the_trace(
    backend: Backend, tracing: Tracing
) -> None:
    crashing = _otel_worker(backend, "w", "crash")
    config = backend.config("otel-test", tracer_provider=tracing.provider)
    with dbos.new_client(config) as client:
        with tracing.provider.get_tracer("test").start_as_current_span("request") as request:
            handle = dbos.enqueue[str](client, "traced", "traced", 1, workflow_id="doomed")
        assert crashing.wait_entered(1) == {"doomed"}
        crashing.kill()
        serving = _otel_worker(backend, "w", "serve")  # the same executor, restarted
        assert handle.get_result(timeout=PATIENCE) == "doomed"
    spans = _worker_spans(serving)
    (run,) = [s for s in spans if s["name"] == "traced"]
    assert run["trace_id"] == format(request.get_span_context().trace_id, "032x")
    assert run["parent_id"] == format(_id(tracing.one("enqueue traced")), "016x")
    assert run["attributes"]["dbos.workflow.recovered"] is True
    assert run["attributes"]["dbos.workflow.attempt"] == 2


async def async_parent(ctx: dbos.WorkflowContext, n: int) -> int:
    me = dbos.get_workflow_id(ctx)
    await aio.send(ctx, me, "hello", "topic")
    assert await aio.recv[str](ctx, "topic", timeout=timedelta(seconds=5)) == "hello"
    await aio.set_event(ctx, "done", n)
    assert await aio.get_event[int](ctx, me, "done", timedelta(seconds=5)) == n
    await aio.sleep(ctx, timedelta(milliseconds=1))
    return await aio.run_as_step(ctx, lambda: n + 1, name="add")


def test_an_async_workflow_has_a_span_for_each_wait_too(backend: Backend, tracing: Tracing) -> None:
    ctx = backend.context_with(async_parent, tracer_provider=tracing.provider)
    ctx.launch()
    assert dbos.run_workflow(ctx, async_parent, 1).get_result(timeout=PATIENCE) == 2
    root = tracing.one("async_parent")
    below = {s.name: s for s in tracing.spans() if _parent(s) == _id(root)}
    assert {"DBOS.send", "DBOS.recv", "DBOS.getEvent", "DBOS.sleep", "add"} <= set(below)
    assert _attrs(below["DBOS.recv"])["dbos.operation"] == "recv"
    assert _attrs(below["DBOS.getEvent"])["dbos.operation"] == "get_event"
    assert _attrs(below["DBOS.sleep"])["dbos.operation"] == "sleep"
