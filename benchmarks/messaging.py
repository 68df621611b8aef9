"""Send-to-recv wake latency and durable-sleep oversleep: dbos_typed against the official dbos.

Usage: python -m benchmarks.messaging [--url postgresql://...] [--messages N] [--sleeps N]

Both libraries run against the same Postgres server in the same run, each in its own
process and its own fresh database (as `benchmarks.steps` does). Latency is measured from
just before `send` (called outside any workflow) to the moment `recv` returns inside a
workflow that was already blocked waiting; oversleep is the time a `sleep` of a few
milliseconds took beyond what was asked, measured inside the workflow.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dbos_typed as dbos
from benchmarks._harness import base_parser, run_child

SLEEP_MS = 5.0
WARMUP = 20
# Let the receiver reach its blocking wait before each send, so the wake-up is measured.
SETTLE_SECONDS = 0.002


class _Probe:
    """What the receiving workflow and the sending loop share within one process."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.received = threading.Event()
        self.received_at = 0.0

    def before_recv(self) -> None:
        self.waiting.set()

    def after_recv(self) -> None:
        self.received_at = time.perf_counter()
        self.received.set()

    def measure(self, count: int, send: Callable[[], None]) -> list[float]:
        latencies: list[float] = []
        for i in range(WARMUP + count):
            assert self.waiting.wait(30), "the receiver never waited"
            self.waiting.clear()
            time.sleep(SETTLE_SECONDS)
            sent_at = time.perf_counter()
            send()
            assert self.received.wait(30), "the message was never received"
            self.received.clear()
            if i >= WARMUP:
                latencies.append((self.received_at - sent_at) * 1000)
        return latencies


def run_ours(url: str, messages: int, sleeps: int) -> dict[str, list[float]]:
    probe = _Probe()

    def receiver(ctx: dbos.WorkflowContext, count: int) -> int:
        for _ in range(count):
            probe.before_recv()
            dbos.recv[int](ctx, "bench", timeout=timedelta(seconds=30))
            probe.after_recv()
        return count

    def sleeper(ctx: dbos.WorkflowContext, count: int) -> list[float]:
        over: list[float] = []
        for _ in range(count):
            start = time.perf_counter()
            dbos.sleep(ctx, timedelta(milliseconds=SLEEP_MS))
            over.append((time.perf_counter() - start) * 1000 - SLEEP_MS)
        return over

    ctx = dbos.new_context(dbos.Config(app_name="bench", database_url=url))
    dbos.register_workflow(ctx, receiver)
    dbos.register_workflow(ctx, sleeper)
    ctx.launch()
    try:
        handle = dbos.run_workflow(ctx, receiver, WARMUP + messages)
        latencies = probe.measure(messages, lambda: dbos.send(ctx, handle.workflow_id, 1, "bench"))
        handle.get_result()
        oversleep = dbos.run_workflow(ctx, sleeper, WARMUP + sleeps).get_result()[WARMUP:]
        return {"latency": latencies, "oversleep": oversleep}
    finally:
        ctx.shutdown()


def run_official(url: str, messages: int, sleeps: int) -> dict[str, list[float]]:
    from dbos import DBOS

    DBOS(config={"name": "bench", "system_database_url": url, "log_level": "WARNING"})
    probe = _Probe()

    @DBOS.workflow()
    def receiver(count: int) -> int:
        for _ in range(count):
            probe.before_recv()
            DBOS.recv("bench", timeout_seconds=30)
            probe.after_recv()
        return count

    @DBOS.workflow()
    def sleeper(count: int) -> list[float]:
        over: list[float] = []
        for _ in range(count):
            start = time.perf_counter()
            DBOS.sleep(SLEEP_MS / 1000)
            over.append((time.perf_counter() - start) * 1000 - SLEEP_MS)
        return over

    DBOS.launch()
    try:
        handle: Any = DBOS.start_workflow(receiver, WARMUP + messages)
        latencies = probe.measure(messages, lambda: DBOS.send(handle.workflow_id, 1, "bench"))
        handle.get_result()
        oversleep = DBOS.start_workflow(sleeper, WARMUP + sleeps).get_result()[WARMUP:]
        return {"latency": latencies, "oversleep": oversleep}
    finally:
        DBOS.destroy()


def _measure(impl: str, admin_url: str, messages: int, sleeps: int) -> dict[str, list[float]]:
    options = ("--messages", str(messages), "--sleeps", str(sleeps))
    raw: dict[str, list[float]] = run_child("benchmarks.messaging", impl, admin_url, *options)
    return raw


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--sleeps", type=int, default=200)
    args = parser.parse_args()
    if args.child:
        runner = run_ours if args.child == "dbos_typed" else run_official
        print(json.dumps(runner(args.url, args.messages, args.sleeps)))
        return
    results = {
        impl: _measure(impl, args.url, args.messages, args.sleeps)
        for impl in ("dbos_typed", "dbos")
    }
    print(
        f"{args.messages} send-to-recv wake-ups, {args.sleeps} sleeps of {SLEEP_MS:g} ms, "
        "Postgres, in ms\n"
    )
    print(f"{'':28}{'dbos_typed':>12}{'dbos 3.4.0':>12}{'ratio':>8}")
    rows = [
        ("send-to-recv p50", "latency", 0.5),
        ("send-to-recv p99", "latency", 0.99),
        ("sleep oversleep p50", "oversleep", 0.5),
        ("sleep oversleep p99", "oversleep", 0.99),
    ]
    for label, key, q in rows:
        ours = _percentile(results["dbos_typed"][key], q)
        theirs = _percentile(results["dbos"][key], q)
        ratio = f"{theirs / ours:7.1f}x" if ours > 0 else "      -"
        print(f"{label:28}{ours:12.3f}{theirs:12.3f}{ratio}")
    mean = {impl: statistics.fmean(r["latency"]) for impl, r in results.items()}
    print(f"{'send-to-recv mean':28}{mean['dbos_typed']:12.3f}{mean['dbos']:12.3f}")


if __name__ == "__main__":
    main()
