"""A workflow's span tree, printed with OpenTelemetry's console exporter.

Run it with `python -m examples.tracing` (it needs `pip install 'dbos_typed[otel]'` and
`opentelemetry-sdk`). The application sets the global tracer provider; dbos_typed needs
no configuration of its own to use it. See docs/observability.md for an OTLP exporter.
"""

from __future__ import annotations

import os
from datetime import timedelta

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dbos_typed as dbos


def reserve(item: str) -> str:
    return f"reserved {item}"


def charge(amount: int) -> str:
    return f"charged {amount}"


def notify(ctx: dbos.WorkflowContext, message: str) -> None:
    dbos.run_as_step(ctx, lambda: print("notify:", message), name="print")


def checkout(ctx: dbos.WorkflowContext, item: str) -> str:
    dbos.run_as_step(ctx, lambda: reserve(item), name="reserve")
    receipt = dbos.run_as_step(ctx, lambda: charge(42), name="charge")
    dbos.run_workflow(ctx, notify, receipt).get_result()
    dbos.sleep(ctx, timedelta(milliseconds=10))
    return receipt


def _one_line(span: ReadableSpan) -> str:
    assert span.context is not None
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else "-"
    return (
        f"span {span.name!r} trace={span.context.trace_id:032x} "
        f"id={span.context.span_id:016x} parent={parent}\n"
    )


def print_tree(spans: list[ReadableSpan]) -> None:
    """Each span under its parent, indented, with the step or workflow it stands for."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans if s.context is not None}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None else None
        by_parent.setdefault(parent if parent in ids else None, []).append(span)

    def show(parent: int | None, depth: int) -> None:
        for span in by_parent.get(parent, []):
            attributes = span.attributes or {}
            what = attributes.get("dbos.operation", "")
            ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            print(f"{'  ' * depth}{span.name} [{what}] {ms:.1f} ms")
            assert span.context is not None
            show(span.context.span_id, depth + 1)

    show(None, 0)


def main() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    # The console exporter prints each span as it ends (in full with TRACING_FULL=1);
    # the in-memory one keeps them for the tree printed at the end.
    full = bool(os.environ.get("TRACING_FULL"))
    console = ConsoleSpanExporter() if full else ConsoleSpanExporter(formatter=_one_line)
    provider.add_span_processor(SimpleSpanProcessor(console))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)

    ctx = dbos.new_context(
        dbos.Config(app_name="tracing", database_url=os.environ.get("DBOS_DATABASE_URL"))
    )
    dbos.register_workflow(ctx, checkout)
    dbos.register_workflow(ctx, notify)
    ctx.launch()
    try:
        with trace.get_tracer("shop").start_as_current_span("POST /checkout"):
            handle = dbos.run_workflow(ctx, checkout, "book")
        print("result:", handle.get_result())
    finally:
        ctx.shutdown()
    print("\nspan tree:")
    print_tree(list(memory.get_finished_spans()))


if __name__ == "__main__":
    main()
