"""What tracing costs per step: on (SDK, batch processor), off, and with no provider set.

Usage: python -m benchmarks.tracing [--url postgresql://...] [--workflows N] [--rounds N]

One process, one fresh database, three contexts that differ only in instrumentation:

- `off`: `Config(instrumentation=False)`;
- `no provider`: the default, with no tracer or meter provider set anywhere;
- `on`: an SDK `TracerProvider` with a `BatchSpanProcessor` and an exporter that drops
  what it is given, and an SDK `MeterProvider` (no reader).

Rounds alternate between them, so a slower moment of the machine hits all three alike.
Prints ms per workflow of 0 and 10 no-op steps, the per-step cost ((t10 - t0) / 10, p50
over rounds) and each mode's ratio to `off`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import dbos_typed
from benchmarks._harness import as_url, base_parser, drop_database, fresh_database

STEP_COUNTS = (0, 10)
MODES = ("off", "no provider", "on")


class _Dropping(SpanExporter):
    """Exports nowhere: the cost measured is the library's and the SDK's, not a network's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _noop() -> None:
    return None


def wf(ctx: dbos_typed.WorkflowContext, steps: int) -> int:
    for _ in range(steps):
        dbos_typed.run_as_step(ctx, _noop, name="noop")
    return steps


def _context(url: str, mode: str) -> dbos_typed.DBOSContext:
    settings: dict[str, object] = {}
    if mode == "off":
        settings["instrumentation"] = False
    elif mode == "on":
        tracer = TracerProvider()
        tracer.add_span_processor(BatchSpanProcessor(_Dropping()))
        settings["tracer_provider"] = tracer
        settings["meter_provider"] = MeterProvider()
    config = dbos_typed.Config(
        app_name=f"bench-{mode.replace(' ', '-')}",
        database_url=url,
        **settings,  # type: ignore[arg-type]
    )
    ctx = dbos_typed.new_context(config)
    dbos_typed.register_workflow(ctx, wf)
    ctx.launch()
    return ctx


def _sample(ctx: dbos_typed.DBOSContext, steps: int, workflows: int) -> float:
    start = time.perf_counter()
    for _ in range(workflows):
        dbos_typed.run_workflow(ctx, wf, steps).get_result()
    return (time.perf_counter() - start) * 1000 / workflows


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    target = fresh_database(args.url)
    contexts = {mode: _context(as_url(target), mode) for mode in MODES}
    try:
        samples: dict[str, dict[int, list[float]]] = {
            mode: {n: [] for n in STEP_COUNTS} for mode in MODES
        }
        for ctx in contexts.values():  # warm up connections, prepared statements, caches
            for n in STEP_COUNTS:
                _sample(ctx, n, 20)
        for _ in range(args.rounds):
            for n in STEP_COUNTS:
                for mode, ctx in contexts.items():
                    samples[mode][n].append(_sample(ctx, n, args.workflows))
    finally:
        for ctx in contexts.values():
            ctx.shutdown()
        drop_database(args.url, target)
    print(f"{args.workflows} sequential workflows per sample, {args.rounds} rounds, p50\n")
    print(f"{'':14}{'ms/wf 0':>10}{'ms/wf 10':>10}{'ms/step':>10}{'vs off':>9}")
    per_step = {
        mode: statistics.median((s[10][i] - s[0][i]) / 10 for i in range(args.rounds))
        for mode, s in samples.items()
    }
    for mode in MODES:
        zero = statistics.median(samples[mode][0])
        ten = statistics.median(samples[mode][10])
        ratio = per_step[mode] / per_step["off"]
        print(f"{mode:14}{zero:10.3f}{ten:10.3f}{per_step[mode]:10.3f}{ratio:8.2f}x")


if __name__ == "__main__":
    main()
