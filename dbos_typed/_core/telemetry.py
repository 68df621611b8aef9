"""Tracing and metrics through the OpenTelemetry API, and workflow fields on log records.

The library behaves as an instrumentation library: it never configures an SDK or an
exporter. It looks for the tracer and meter providers (`Config.tracer_provider` and
`Config.meter_provider`, else the global ones) each time a workflow starts running, until
one is set, so a provider the application sets later is picked up. When
`opentelemetry-api` is missing, `Config.instrumentation` is False, or no provider is set,
a workflow's run carries no telemetry (`WorkflowState.telemetry` is None) and every hook
below returns at its first attribute check.

The W3C trace context of the span that started a workflow is stored in the workflow's
`attributes` column under `TRACE_ATTRIBUTE`, the key DBOS's Python SDK uses, so every run
of the workflow (claimed from a queue elsewhere, recovered, resumed, forked) is a span of
the same trace. The key is hidden from `WorkflowStatus.attributes`.

Names are listed in docs/observability.md; every attribute is in the `dbos.*` namespace.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from dbos_typed._core.version import __version__
from dbos_typed._sysdb._management import WorkflowFilter
from dbos_typed.errors import WorkflowCancelledError

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
    from opentelemetry.metrics import _internal as otel_metrics_internal
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    AVAILABLE = True
except ImportError:  # the `otel` extra is not installed
    AVAILABLE = False

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import Span, Tracer

    from dbos_typed._core.context import WorkflowState
    from dbos_typed._core.runtime import Runtime

logger = logging.getLogger("dbos_typed")

#: The reserved key of the `attributes` column holding the W3C trace context, as DBOS's
#: Python SDK writes and reads it: `{"traceparent": "...", "tracestate": "..."}`.
TRACE_ATTRIBUTE: Final = "dbos.otelContext"

SCOPE: Final = "dbos_typed"

# Span attributes.
WORKFLOW_ID: Final = "dbos.workflow.id"
WORKFLOW_NAME: Final = "dbos.workflow.name"
WORKFLOW_STATUS: Final = "dbos.workflow.status"
WORKFLOW_ATTEMPT: Final = "dbos.workflow.attempt"
WORKFLOW_RECOVERED: Final = "dbos.workflow.recovered"
STEP_ID: Final = "dbos.step.id"
STEP_NAME: Final = "dbos.step.name"
STEP_ATTEMPT: Final = "dbos.step.attempt"
OPERATION: Final = "dbos.operation"
QUEUE_NAME: Final = "dbos.queue.name"
CANCELLED: Final = "dbos.cancelled"
KEY: Final = "dbos.key"
TARGET_WORKFLOW_ID: Final = "dbos.target.workflow.id"
APPLICATION_NAME: Final = "dbos.application.name"
APPLICATION_VERSION: Final = "dbos.application.version"
EXECUTOR_ID: Final = "dbos.executor.id"

_PROPAGATOR: Any = TraceContextTextMapPropagator() if AVAILABLE else None


# The workflow whose code runs where this is read; log records take their fields from it.
current_workflow: ContextVar[WorkflowState | None] = ContextVar(
    "dbos_typed_current_workflow", default=None
)


class Telemetry:
    """One context's instrumentation settings and the providers it resolved."""

    __slots__ = (
        "_instruments",
        "_meter_provider",
        "_tracer",
        "_tracer_provider",
        "enabled",
    )

    def __init__(self, tracer_provider: object, meter_provider: object, enabled: bool) -> None:
        self.enabled = enabled and AVAILABLE
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        # What a real provider resolved to, once one is seen. A provider in the config is
        # fixed, and the API lets a global one be set only once, so neither changes after;
        # until one is seen, every call asks again, so a provider set later is picked up.
        self._tracer: Tracer | None = None
        self._instruments: Instruments | None = None

    def tracer(self) -> Tracer | None:
        """The tracer of the provider in force, or None when no provider is set."""
        if not self.enabled:
            return None
        if self._tracer is not None:
            return self._tracer
        provider: Any = self._tracer_provider or _global_provider(
            otel_trace, "_TRACER_PROVIDER", otel_trace.get_tracer_provider
        )
        # None, or the API's stand-ins until the application sets a provider: spans from
        # them are never recorded, so none are made at all.
        if provider is None or isinstance(
            provider, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider
        ):
            return None
        tracer: Tracer = _cached(
            _tracers, provider, lambda: provider.get_tracer(SCOPE, __version__)
        )
        self._tracer = tracer
        return tracer

    def instruments(self) -> Instruments | None:
        """The metric instruments of the meter provider in force, or None when none is set."""
        if not self.enabled:
            return None
        if self._instruments is not None:
            return self._instruments
        provider: Any = self._meter_provider or _global_provider(
            otel_metrics_internal, "_METER_PROVIDER", otel_metrics.get_meter_provider
        )
        if (
            provider is None
            or isinstance(provider, otel_metrics.NoOpMeterProvider)
            or type(provider).__name__ == "_ProxyMeterProvider"  # the API's stand-in
        ):
            return None
        instruments: Instruments = _cached(
            _instruments, provider, lambda: Instruments(provider.get_meter(SCOPE, __version__))
        )
        self._instruments = instruments
        return instruments

    def active(self) -> bool:
        """Whether anything would be traced or measured now."""
        return self.tracer() is not None or self.instruments() is not None

    def watch_queues(self, runtime: Runtime) -> None:
        """Report this context's queue depths through the meter provider in force."""
        instruments = self.instruments()
        if instruments is not None:
            instruments.depth_sources.add(runtime)


def _global_provider(module: Any, name: str, getter: Any) -> Any:
    """The API's global provider, or None while none is set.

    Until a provider is set, the API's getter looks an environment variable up on every
    call (a few microseconds on every workflow); the module variable it returns is read
    instead. The getter is asked where that variable is missing (another API version),
    and when the environment named a provider at import, which the getter then loads.
    """
    provider = getattr(module, name, _MISSING)
    if provider is None and not _PROVIDERS_FROM_ENVIRONMENT:
        return None
    return getter() if provider is None or provider is _MISSING else provider


_MISSING: Final = object()
# OTEL_PYTHON_TRACER_PROVIDER and OTEL_PYTHON_METER_PROVIDER name an entry point to load.
_PROVIDERS_FROM_ENVIRONMENT: Final = any(
    key in os.environ for key in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
)

_cache_lock = threading.Lock()
_tracers: dict[int, tuple[object, Any]] = {}
_instruments: dict[int, tuple[object, Any]] = {}


def _cached(cache: dict[int, tuple[object, Any]], provider: object, make: Any) -> Any:
    # By identity, holding the provider so its id is not reused; providers are few.
    hit = cache.get(id(provider))
    if hit is not None:
        return hit[1]
    with _cache_lock:
        hit = cache.get(id(provider))
        if hit is None:
            hit = (provider, make())
            cache[id(provider)] = hit
        return hit[1]


class Instruments:
    """The metric instruments of one meter, shared by every context that uses it.

    An observable gauge registered twice under one name keeps only its first callback, so
    the queue depth gauge is made once per meter and reports every context watching it.
    """

    def __init__(self, meter: Any) -> None:
        self.started = meter.create_counter(
            "dbos.workflow.started", unit="{workflow}", description="Workflow runs started"
        )
        self.finished = meter.create_counter(
            "dbos.workflow.finished",
            unit="{workflow}",
            description="Workflows finished, by final status",
        )
        self.recoveries = meter.create_counter(
            "dbos.workflow.recoveries",
            unit="{workflow}",
            description="Runs of workflows recovered after their executor stopped",
        )
        self.workflow_duration = meter.create_histogram(
            "dbos.workflow.duration", unit="s", description="Duration of a workflow run"
        )
        self.step_duration = meter.create_histogram(
            "dbos.step.duration", unit="s", description="Duration of a step attempt"
        )
        self.queue_latency = meter.create_histogram(
            "dbos.queue.latency",
            unit="s",
            description="From enqueue (or the end of its delay) to the start of the run",
        )
        self.depth_sources: weakref.WeakSet[Runtime] = weakref.WeakSet()
        meter.create_observable_gauge(
            "dbos.queue.depth",
            callbacks=[self._observe_depth],
            unit="{workflow}",
            description="Workflows on a queue, by status",
        )

    def _observe_depth(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for runtime in list(self.depth_sources):
            if runtime.shutting_down.is_set():
                continue
            try:
                observations.extend(_queue_depth(runtime))
            except Exception:  # a metrics reader must never see the database's errors
                logger.debug("could not read queue depths", exc_info=True)
        return observations


def _queue_depth(runtime: Runtime) -> list[Observation]:
    wanted = WorkflowFilter(
        statuses=["ENQUEUED", "PENDING", "DELAYED"],
        queues_only=True,
        application_name=runtime.app_name,
    )
    records = runtime.store.workflow_aggregates(
        wanted, group_by=["queue_name", "status"], bucket_ms=None
    )
    return [
        otel_metrics.Observation(
            record.count,
            {
                QUEUE_NAME: record.group["queue_name"] or "",
                WORKFLOW_STATUS: record.group["status"] or "",
                APPLICATION_NAME: runtime.app_name,
            },
        )
        for record in records
    ]


@dataclass(frozen=True, slots=True)
class Origin:
    """How a run of a workflow came about, as far as its telemetry cares."""

    carrier: Mapping[str, Any] | None = None  # the stored W3C trace context
    attempt: int = 1  # the row's recovery_attempts after the claim; above 1, a recovery
    queue_name: str | None = None
    ready_ms: int | None = None  # when a queued run could first have started


#: A run with nothing known about its origin: a new trace, a first attempt, no queue.
NO_ORIGIN: Final = Origin()


class WorkflowRun:
    """The telemetry of one workflow run: its span, and the instruments to record on."""

    __slots__ = ("attributes", "identity", "instruments", "span", "started", "tracer")

    def __init__(
        self,
        tracer: Tracer | None,
        instruments: Instruments | None,
        span: Span | None,
        attributes: dict[str, Any],
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.span = span
        self.attributes = attributes
        self.identity: dict[str, Any] = {
            key: attributes[key] for key in (WORKFLOW_ID, WORKFLOW_NAME) if key in attributes
        }
        self.started = time.perf_counter()


class WorkflowScope:
    """Wraps one run of a workflow body: its span, metrics and log fields.

    Entering makes the workflow span the current span of the thread (so spans the body
    makes, with or without this library, are its children) and the workflow the one log
    records name. `ended` is told the outcome the run recorded.
    """

    __slots__ = ("_log_token", "_otel_token", "_run", "_runtime", "_state", "_status")

    def __init__(self, runtime: Runtime, state: WorkflowState, origin: Origin) -> None:
        self._runtime = runtime
        self._state = state
        self._run: WorkflowRun | None = None
        self._otel_token: Token[Context] | None = None
        self._status: str | None = None
        telemetry = runtime.telemetry
        if not telemetry.enabled:
            return
        tracer, instruments = telemetry.tracer(), telemetry.instruments()
        if tracer is None and instruments is None:
            return
        name = state.spec.name
        attributes: dict[str, Any] = {
            WORKFLOW_ID: state.workflow_id,
            WORKFLOW_NAME: name,
            APPLICATION_NAME: runtime.app_name,
            APPLICATION_VERSION: runtime.application_version,
            EXECUTOR_ID: runtime.executor_id,
            WORKFLOW_ATTEMPT: origin.attempt,
        }
        if origin.queue_name is not None:
            attributes[QUEUE_NAME] = origin.queue_name
        recovered = origin.attempt > 1
        if recovered:
            attributes[WORKFLOW_RECOVERED] = True
        span = None
        if tracer is not None:
            parent = extract(origin.carrier)
            span = tracer.start_span(
                name, context=parent, attributes={**attributes, OPERATION: "workflow"}
            )
        self._run = state.telemetry = WorkflowRun(tracer, instruments, span, attributes)
        if instruments is not None:
            instruments.depth_sources.add(runtime)
            by_name = {WORKFLOW_NAME: name, APPLICATION_NAME: runtime.app_name}
            if recovered:
                instruments.recoveries.add(1, by_name)
            else:
                instruments.started.add(1, by_name)
            if origin.ready_ms is not None and not recovered:
                waited = max(0.0, (time.time_ns() // 1_000_000 - origin.ready_ms) / 1000)
                instruments.queue_latency.record(waited, {QUEUE_NAME: origin.queue_name or ""})

    def __enter__(self) -> WorkflowScope:
        self._log_token = current_workflow.set(self._state)
        run = self._run
        if run is not None and run.span is not None:
            self._otel_token = otel_context.attach(otel_trace.set_span_in_context(run.span))
        return self

    def ended(self, outcome: tuple[str, Any]) -> None:
        """Note the outcome the run returns: ("ok", value), ("error", exc) or ("database", _)."""
        if self._run is None:
            return
        kind, value = outcome
        if kind == "ok":
            self._status = "SUCCESS"
        elif kind == "error":
            self._status = "ERROR"
            _record_error(self._run.span, value.__cause__ or value)
        else:
            # Cancelled, superseded or stopped by shutdown: what the row says now.
            if self._runtime.shutting_down.is_set():
                return
            try:
                status = self._runtime.store.workflow_status(self._state.workflow_id)
            except Exception:  # telemetry never fails a run
                return
            self._status = None if status is None else str(status.value)

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        current_workflow.reset(self._log_token)
        run = self._run
        if run is None:
            return
        if self._otel_token is not None:
            otel_context.detach(self._otel_token)
        status = self._status
        if exc is not None:
            _record_error(run.span, exc)
        finished = status not in (None, "PENDING", "ENQUEUED", "DELAYED")
        if run.span is not None:
            if status is not None:
                run.span.set_attribute(WORKFLOW_STATUS, status)
            run.span.end()
        instruments = run.instruments
        if instruments is not None and finished:
            labels = {
                WORKFLOW_NAME: self._state.spec.name,
                WORKFLOW_STATUS: status,
                APPLICATION_NAME: self._runtime.app_name,
            }
            instruments.finished.add(1, labels)
            instruments.workflow_duration.record(time.perf_counter() - run.started, labels)


class _NoScope:
    """What an operation's hook returns when nothing is traced: a do-nothing `with`."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


NO_SCOPE: Final = _NoScope()


class OperationScope:
    """A span (and, for steps, a duration) around one operation of a running workflow."""

    __slots__ = ("_kind", "_labels", "_run", "_span", "_started", "_token")

    def __init__(self, run: WorkflowRun, kind: str, name: str, attributes: dict[str, Any]) -> None:
        self._run = run
        self._kind = kind
        self._span: Span | None = None
        self._token: Token[Context] | None = None
        self._labels: dict[str, Any] | None = None
        if run.tracer is not None:
            # The workflow's ID and name only: the rest is on the workflow's span, and each
            # attribute adds to the cost of every step.
            self._span = run.tracer.start_span(
                name, attributes={**run.identity, **attributes, OPERATION: kind}
            )
        if run.instruments is not None and kind in ("step", "transaction"):
            self._labels = {
                STEP_NAME: name,
                WORKFLOW_NAME: run.attributes[WORKFLOW_NAME],
                OPERATION: kind,
            }
        self._started = time.perf_counter()

    def __enter__(self) -> OperationScope:
        if self._span is not None:
            self._token = otel_context.attach(otel_trace.set_span_in_context(self._span))
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
        if self._span is not None:
            if isinstance(exc, WorkflowCancelledError):
                self._span.set_attribute(CANCELLED, True)  # stopped, not failed
            elif exc is not None:
                _record_error(self._span, exc)
            self._span.end()
        if self._labels is not None:
            assert self._run.instruments is not None
            status = "SUCCESS" if exc is None else "ERROR"
            self._run.instruments.step_duration.record(
                time.perf_counter() - self._started, {**self._labels, WORKFLOW_STATUS: status}
            )


def step_scope(
    state: WorkflowState, name: str, attempt: int, kind: str = "step"
) -> OperationScope | _NoScope:
    """The span of one attempt of a step (or transaction) running now in `state`'s workflow."""
    run = state.telemetry
    if run is None:
        return NO_SCOPE
    attributes = {STEP_ID: state.running_step_id, STEP_NAME: name, STEP_ATTEMPT: attempt}
    return OperationScope(run, kind, name, attributes)


def operation_scope(
    ctx: object,
    kind: str,
    name: str,
    step_id: int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> OperationScope | _NoScope:
    """The span `name` of a durable operation (`send`, `recv`, `sleep`, ...) from `ctx`.

    Inside a workflow it is a child of the workflow's span; elsewhere (a `send` from
    application code) a child of the current span, when a provider is set. `name` is the
    step name the operation records (`DBOS.send`, ...).
    """
    return _scope_in(_run_for(ctx), kind, name, step_id, attributes)


def _run_for(ctx: object) -> WorkflowRun | None:
    """The run whose spans an operation from `ctx` joins; None when nothing is traced."""
    state: WorkflowState | None = getattr(ctx, "_state", None)
    return state.telemetry if state is not None else _outside_run(ctx)


def _scope_in(
    run: WorkflowRun | None,
    kind: str,
    name: str,
    step_id: int | None,
    attributes: Mapping[str, Any] | None,
) -> OperationScope | _NoScope:
    if run is None:
        return NO_SCOPE
    extra = {} if attributes is None else dict(attributes)
    if step_id is not None:
        extra[STEP_ID] = step_id
    return OperationScope(run, kind, name, extra)


def _outside_run(ctx: object) -> WorkflowRun | None:
    runtime: Runtime | None = getattr(ctx, "_runtime", None)
    if runtime is None or not runtime.telemetry.enabled:
        return None
    tracer = runtime.telemetry.tracer()
    if tracer is None:
        return None
    attributes = {APPLICATION_NAME: runtime.app_name, EXECUTOR_ID: runtime.executor_id}
    # Outside a workflow there is no run to time; an empty name keeps the labels apart.
    return WorkflowRun(tracer, None, None, {**attributes, WORKFLOW_NAME: ""})


class StartScope:
    """The span of starting or enqueueing a workflow; its context is stored with the row."""

    __slots__ = ("_scope", "carrier")

    def __init__(self, scope: OperationScope | _NoScope) -> None:
        self._scope = scope
        self.carrier: dict[str, str] | None = None

    def __enter__(self) -> StartScope:
        if self._scope.__enter__() is not None:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            self.carrier = carrier or None
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self._scope.__exit__(kind, exc, tb)

    def stamp(self, attributes: str | None) -> str | None:
        """`attributes` (a row's JSON object text) with the trace context added."""
        if self.carrier is None:
            return attributes
        return with_carrier(attributes, self.carrier)


def start_scope(
    ctx: object,
    workflow_name: str,
    workflow_id: str,
    queue_name: str | None,
    step_id: int | None = None,
) -> StartScope:
    """The span of a start (`start <name>`) or an enqueue (`enqueue <name>`) from `ctx`."""
    run = _run_for(ctx)
    if run is None:
        return _UNTRACED_START  # nothing traced: no names or attributes to build
    kind = "start" if queue_name is None else "enqueue"
    attributes: dict[str, Any] = {TARGET_WORKFLOW_ID: workflow_id}
    if queue_name is not None:
        attributes[QUEUE_NAME] = queue_name
    return StartScope(_scope_in(run, kind, f"{kind} {workflow_name}", step_id, attributes))


#: The start span of a start nothing traces: it never enters a span, so it is never changed.
_UNTRACED_START: Final = StartScope(NO_SCOPE)


def with_carrier(attributes: str | None, carrier: Mapping[str, str]) -> str:
    """The JSON object text `attributes` with `carrier` under `TRACE_ATTRIBUTE`."""
    value: Any = {} if attributes is None else json.loads(attributes)
    value[TRACE_ATTRIBUTE] = dict(carrier)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def carrier_of(attributes: object) -> Mapping[str, Any] | None:
    """The trace context stored in a row's attributes (JSON text or a mapping), if any."""
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes)
        except ValueError:
            return None
    if not isinstance(attributes, dict):
        return None
    carrier = attributes.get(TRACE_ATTRIBUTE)
    return carrier if isinstance(carrier, dict) else None


def without_carrier(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    """The attributes as users see them: without the stored trace context."""
    if attributes is None or TRACE_ATTRIBUTE not in attributes:
        return attributes
    shown = {k: v for k, v in attributes.items() if k != TRACE_ATTRIBUTE}
    return shown or None


def extract(carrier: Mapping[str, Any] | None) -> Any:
    """The OpenTelemetry context a stored carrier names; None (a new trace) if unusable."""
    if not carrier:
        return None
    try:
        extracted = _PROPAGATOR.extract(dict(carrier))
    except Exception:  # attributes are user-writable: a bad value must not stop a run
        logger.warning("ignoring a malformed %s workflow attribute", TRACE_ATTRIBUTE)
        return None
    if not otel_trace.get_current_span(extracted).get_span_context().is_valid:
        return None
    return extracted


def _record_error(span: Span | None, exc: BaseException) -> None:
    if span is None:
        return
    span.record_exception(exc)
    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, f"{type(exc).__name__}"))


class _WorkflowFields(logging.Filter):
    """Adds the running workflow's fields, and the current trace, to `dbos_typed` records."""

    def filter(self, record: logging.LogRecord) -> bool:
        state = current_workflow.get()
        fields = record.__dict__
        if state is not None:
            fields.setdefault("workflow_id", state.workflow_id)
            fields.setdefault("workflow_name", state.spec.name)
            if state.in_step:
                fields.setdefault("step_id", state.running_step_id)
        if AVAILABLE and "trace_id" not in fields:
            context = otel_trace.get_current_span().get_span_context()
            if context.is_valid:
                fields["trace_id"] = format(context.trace_id, "032x")
                fields["span_id"] = format(context.span_id, "016x")
        return True


def log_fields(workflow_id: str, **fields: Any) -> dict[str, Any]:
    """The `extra` of a record about a workflow, logged where it does not run."""
    return {"workflow_id": workflow_id, **fields}


def install_log_fields(target: logging.Logger = logger) -> None:
    """Put the workflow fields on every record of a logger (`dbos_typed`'s by default; once)."""
    if not any(isinstance(f, _WorkflowFields) for f in target.filters):
        target.addFilter(_WorkflowFields())


install_log_fields()
