"""Queues: enqueue rate, end-to-end throughput and enqueue-to-start latency, against dbos.

Usage: python -m benchmarks.queues [--url postgresql://...] [--workflows N]
       [--official-polling SECONDS]

Both libraries run against the same Postgres server in the same run, each in its own
process and its own fresh database (helpers from `benchmarks.steps`). Measured:

- enqueue rate: enqueues per second from 8 threads while the queue is being served;
- throughput: N one-step workflows on a queue with worker concurrency 50, from the first
  enqueue until every result is in;
- latency: enqueue-to-start of a single workflow on an idle queue (p50/p99), measured
  inside the process that enqueues and runs it.

The official package polls its queues (default every 1 s, set with --official-polling);
dbos_typed wakes its runner at once on a local enqueue and polls only for remote work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dbos_typed as dbos
from benchmarks._harness import base_parser, run_child

CONCURRENCY = 50
ENQUEUERS = 8
LATENCY_SAMPLES = 50


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _measure(
    enqueue: Callable[[int], Any],
    result: Callable[[Any], object],
    started: dict[int, float],
    workflows: int,
    latency_samples: int,
) -> dict[str, Any]:
    """Drive one library through the three measurements; `started` is filled by workflows."""
    for i in range(20):  # warm up connections, prepared statements and threads
        result(enqueue(-1 - i))
    begin = time.perf_counter()
    # Several callers enqueue at once, as request handlers of a web service would.
    with ThreadPoolExecutor(ENQUEUERS) as pool:
        handles = list(pool.map(enqueue, range(workflows)))
    enqueued = time.perf_counter()
    for handle in handles:
        result(handle)
    done = time.perf_counter()
    latencies = []
    for i in range(latency_samples):
        n = workflows + i
        at = time.perf_counter()
        result(enqueue(n))
        latencies.append((started[n] - at) * 1000)
    return {
        "enqueue_per_s": workflows / (enqueued - begin),
        "throughput_per_s": workflows / (done - begin),
        "latency_ms": latencies,
    }


def run_ours(url: str, workflows: int, samples: int, _: float) -> dict[str, Any]:
    started: dict[int, float] = {}

    def noop() -> None:
        return None

    def one_step(ctx: dbos.WorkflowContext, n: int) -> int:
        started[n] = time.perf_counter()
        dbos.run_as_step(ctx, noop, name="noop")
        return n

    ctx = dbos.new_context(dbos.Config(app_name="bench", database_url=url, max_connections=60))
    dbos.register_workflow(ctx, one_step)
    queue = dbos.register_queue(ctx, "bench", worker_concurrency=CONCURRENCY)
    ctx.launch()
    try:
        return _measure(
            lambda n: dbos.run_workflow(ctx, one_step, n, queue=queue),
            lambda handle: handle.get_result(),
            started,
            workflows,
            samples,
        )
    finally:
        ctx.shutdown()


def run_official(url: str, workflows: int, samples: int, polling: float) -> dict[str, Any]:
    from dbos import DBOS

    started: dict[int, float] = {}
    DBOS(config={"name": "bench", "system_database_url": url, "log_level": "WARNING"})

    @DBOS.step()
    def noop() -> None:
        return None

    @DBOS.workflow()
    def one_step(n: int) -> int:
        started[n] = time.perf_counter()
        noop()
        return n

    DBOS.launch()
    # Its queues are registered in the database, which it opens only at launch.
    queue = DBOS.register_queue(
        "bench", worker_concurrency=CONCURRENCY, polling_interval_sec=polling
    )
    try:
        return _measure(
            lambda n: queue.enqueue(one_step, n),
            lambda handle: handle.get_result(),
            started,
            workflows,
            samples,
        )
    finally:
        DBOS.destroy()


def _child(impl: str, url: str, workflows: int, samples: int, polling: float) -> None:
    runner = run_ours if impl == "dbos_typed" else run_official
    print(json.dumps(runner(url, workflows, samples, polling)))


def _run(impl: str, admin_url: str, args: argparse.Namespace) -> dict[str, Any]:
    options = ("--workflows", str(args.workflows), "--samples", str(args.samples))
    polling = ("--official-polling", str(args.official_polling))
    result: dict[str, Any] = run_child("benchmarks.queues", impl, admin_url, *options, *polling)
    return result


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=LATENCY_SAMPLES)
    parser.add_argument("--official-polling", type=float, default=1.0)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, args.workflows, args.samples, args.official_polling)
        return
    results = {impl: _run(impl, args.url, args) for impl in ("dbos_typed", "dbos")}
    ours, theirs = results["dbos_typed"], results["dbos"]
    print(
        f"{args.workflows} one-step workflows enqueued by {ENQUEUERS} threads, worker "
        f"concurrency {CONCURRENCY}; "
        f"{args.samples} latency samples; official polling interval {args.official_polling}s\n"
    )
    print(f"{'':28}{'dbos_typed':>12}{'dbos 3.4.0':>12}{'ratio':>8}")
    for label, key in (
        ("enqueues/s", "enqueue_per_s"),
        ("workflows/s end to end", "throughput_per_s"),
    ):
        a, b = ours[key], theirs[key]
        print(f"{label:28}{a:12.0f}{b:12.0f}{a / b:7.1f}x")
    for label, fraction in (("enqueue-to-start p50 ms", 0.5), ("enqueue-to-start p99 ms", 0.99)):
        a = _percentile(ours["latency_ms"], fraction)
        b = _percentile(theirs["latency_ms"], fraction)
        print(f"{label:28}{a:12.2f}{b:12.2f}{b / a:7.1f}x")
    mean = statistics.mean(ours["latency_ms"])
    print(f"\n(dbos_typed mean enqueue-to-start {mean:.2f} ms)")


if __name__ == "__main__":
    main()
