"""A worker process for the tracing tests: the application sets the global tracer provider.

Usage: python -m tests.otel_worker <database_url> <schema> <executor_id> <mode>

The worker configures nothing in dbos_typed for tracing: it only calls
`trace.set_tracer_provider` with an in-memory exporter, then serves the queue `traced`.
It prints "ready" once launched. In `crash` mode the `work` step prints "entered <id>" and
never returns (the test kills the process there); in `serve` mode the step returns, and
when stdin closes the worker shuts down and prints every span it finished as one JSON line
`spans [...]`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dbos_typed as dbos

MODE = sys.argv[4] if len(sys.argv) > 4 else "serve"


def _work(workflow_id: str) -> str:
    if MODE == "crash":
        os.write(1, f"entered {workflow_id}\n".encode())
        time.sleep(3600)  # killed here
    return workflow_id


def traced(ctx: dbos.WorkflowContext, value: int) -> str:
    """One step; in crash mode the process is killed inside it."""
    wid = dbos.get_workflow_id(ctx)
    return dbos.run_as_step(ctx, lambda: _work(wid), name="work")


def main() -> None:
    url, schema, executor_id = sys.argv[1:4]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    ctx = dbos.new_context(
        dbos.Config(
            app_name="otel-test",
            database_url=url,
            database_schema=schema,
            executor_id=executor_id,
            application_version="otel-test",
        )
    )
    dbos.register_workflow(ctx, traced)
    dbos.register_queue(ctx, "traced", polling_interval=timedelta(milliseconds=50))
    ctx.launch()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    ctx.shutdown(timeout=timedelta(seconds=10))
    spans = [
        {
            "name": span.name,
            "trace_id": format(span.context.trace_id, "032x"),
            "span_id": format(span.context.span_id, "016x"),
            "parent_id": None if span.parent is None else format(span.parent.span_id, "016x"),
            "attributes": dict(span.attributes or {}),
        }
        for span in exporter.get_finished_spans()
        if span.context is not None
    ]
    print("spans " + json.dumps(spans), flush=True)


if __name__ == "__main__":
    main()
