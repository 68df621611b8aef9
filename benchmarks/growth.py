"""Flat cost with history: the hot calls on an empty database and on one with a long past.

Usage: python -m benchmarks.growth [--url postgresql://...] [--sizes 0,100000,1000000]
       [--samples N] [--explain]

For each size, a fresh database gets that many finished workflows (each with its input,
output and one step; written in bulk by `benchmarks._history`), plus 10,000 ENQUEUED
workflows on a queue this process does not serve. Then, p50 over `--samples`:

- start: a workflow of no steps, started and finished (`run_workflow(...).get_result()`);
- step: the cost of one step, (10-step workflow - 0-step workflow) / 10;
- list by name: `list_workflows(name=..., limit=20, sort_desc=True)`, for a name one
  finished workflow in ten has, and for a rare one (one in 10,000, or none);
- steps: `get_workflow_steps` of a finished workflow;
- enqueue-to-start: a one-step workflow enqueued on an idle served queue until its body
  runs, while the unserved backlog waits.

Ratios are against the empty database (the target is within 1.2x). With `--explain`,
the plans of the listing, the runner's probe and its claim are printed at each size.
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

import dbos_typed as dbos
from benchmarks._harness import as_url, base_parser, drop_database, fresh_database
from benchmarks._history import fill
from dbos_typed._sysdb import _queries as q

APP = "bench"
VERSION = "growth-v1"
BACKLOG = 10_000
HOT = "zero"
RARE = "rare_history"

_started: dict[int, float] = {}
_start_lock = threading.Lock()


def _noop() -> None:
    return None


def zero(ctx: dbos.WorkflowContext, n: int) -> int:
    return n


def ten(ctx: dbos.WorkflowContext, n: int) -> int:
    for _ in range(10):
        dbos.run_as_step(ctx, _noop, name="noop")
    return n


def queued(ctx: dbos.WorkflowContext, n: int) -> int:
    with _start_lock:
        _started[n] = time.perf_counter()
    dbos.run_as_step(ctx, _noop, name="noop")
    return n


def _p50(run: Callable[[int], object], samples: int, warmup: int = 10) -> float:
    for i in range(warmup):
        run(-1 - i)
    timings = []
    for i in range(samples):
        begin = time.perf_counter()
        run(i)
        timings.append((time.perf_counter() - begin) * 1000)
    return statistics.median(timings)


def _explain(url: str) -> dict[str, str]:
    """EXPLAIN ANALYZE of the hot reads, as the runtime words them, on this database."""
    from dbos_typed._sysdb._management import ManagementStore, WorkflowFilter

    listing: list[tuple[str, dict[str, Any]]] = []
    ctx = dbos.new_context(dbos.Config(app_name=APP, database_url=url, application_version=VERSION))
    store = ctx._runtime.store
    original = store._query

    def capture(statement: Any, params: Any) -> Any:
        listing.append((statement, dict(params)))
        return original(statement, params)

    setattr(store, "_query", capture)  # noqa: B010 - an instance attribute, for one call
    assert isinstance(store, ManagementStore)
    for name in (HOT, RARE):
        store.list_workflows(
            WorkflowFilter(names=[name], application_name=APP, limit=20, sort_desc=True)
        )
    delattr(store, "_query")  # back to the method
    ctx.shutdown()
    statements = {
        "list_workflows(name=<1 in 10>, limit=20, sort_desc=True)": listing[0],
        "list_workflows(name=<rare>, limit=20, sort_desc=True)": listing[1],
        "get_workflow_steps": (q.LIST_STEPS, {"workflow_id": "done-5"}),
        "queue runner probe (QUEUE_BACKLOG)": (q.QUEUE_BACKLOG, {"application_name": APP}),
        "recovery (RECOVER_PENDING)": (
            q.RECOVER_PENDING,
            {
                "executor_id": "local",
                "application_version": VERSION,
                "application_name": APP,
                "now_ms": 0,
                "launched_ms": 0,
            },
        ),
    }
    plans = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for label, (statement, params) in statements.items():
            text = sql.SQL("EXPLAIN (ANALYZE, COSTS OFF) " + statement).format(
                s=sql.Identifier("dbos")
            )
            with conn.transaction(force_rollback=True):  # ANALYZE runs the UPDATE
                rows = conn.execute(text, params).fetchall()
            plans[label] = "\n".join(str(r[0]) for r in rows)
    return plans


def measure(url: str, size: int, samples: int, explain: bool) -> dict[str, Any]:
    """Fill a fresh database with `size` finished workflows and time the hot calls."""
    # The schema first, then the history under it, then the process that measures.
    dbos.new_context(
        dbos.Config(app_name=APP, database_url=url, application_version=VERSION)
    ).shutdown()
    fill_seconds = fill(
        url,
        finished=size,
        enqueued=BACKLOG,
        hot_name=HOT,
        rare_name=RARE,
        app=APP,
        version=VERSION,
        backlog_queue="unserved",
    )
    ctx = dbos.new_context(
        dbos.Config(app_name=APP, database_url=url, application_version=VERSION, max_connections=30)
    )
    for workflow in (zero, ten, queued):
        dbos.register_workflow(ctx, workflow)
    queue = dbos.register_queue(ctx, "served")
    ctx.launch()
    try:
        start = _p50(lambda n: dbos.run_workflow(ctx, zero, n).get_result(), samples)
        rounds = []
        for _ in range(5):
            t0 = _p50(lambda n: dbos.run_workflow(ctx, zero, n).get_result(), samples // 5, 2)
            t10 = _p50(lambda n: dbos.run_workflow(ctx, ten, n).get_result(), samples // 5, 2)
            rounds.append((t10 - t0) / 10)
        step = statistics.median(rounds)
        by_name = _p50(
            lambda _: dbos.list_workflows(ctx, name=HOT, limit=20, sort_desc=True), samples
        )
        by_rare = _p50(
            lambda _: dbos.list_workflows(ctx, name=RARE, limit=20, sort_desc=True), samples
        )
        ids = [f"done-{random.randint(1, size)}" for _ in range(samples + 10)] if size else []
        if not ids:
            ids = [h.workflow_id for h in dbos.list_workflows(ctx, name="ten", limit=10)]
        steps = _p50(lambda i: dbos.get_workflow_steps(ctx, ids[i % len(ids)]), samples)
        latencies = []
        for i in range(samples):
            n = 10_000_000 + i
            at = time.perf_counter()
            dbos.run_workflow(ctx, queued, n, queue=queue).get_result()
            latencies.append((_started[n] - at) * 1000)
    finally:
        ctx.shutdown()
    result: dict[str, Any] = {
        "size": size,
        "fill_seconds": fill_seconds,
        "start_ms": start,
        "step_ms": step,
        "list_by_name_ms": by_name,
        "list_by_rare_name_ms": by_rare,
        "get_workflow_steps_ms": steps,
        "enqueue_to_start_ms": statistics.median(latencies),
    }
    if explain:
        result["plans"] = _explain(url)
    return result


LABELS = (
    ("start_ms", "start + finish, 0 steps"),
    ("step_ms", "one step"),
    ("list_by_name_ms", "list_workflows by name (1 in 10)"),
    ("list_by_rare_name_ms", "list_workflows by rare name"),
    ("get_workflow_steps_ms", "get_workflow_steps"),
    ("enqueue_to_start_ms", "enqueue-to-start"),
)


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--sizes", default="0,100000,1000000")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        target = fresh_database(args.url)
        try:
            results.append(measure(as_url(target), size, args.samples, args.explain))
        finally:
            drop_database(args.url, target)
    base = results[0]
    print(
        f"ms, p50 of {args.samples} samples; {BACKLOG:,} ENQUEUED on an unserved queue "
        f"at every size; ratio against {base['size']:,} finished workflows\n"
    )
    header = "".join(f"{r['size']:>20,}" for r in results[1:])
    print(f"{'finished workflows':34}{base['size']:>10,}{header}")
    for key, label in LABELS:
        cells = "".join(f"{f'{r[key]:.3f} ({r[key] / base[key]:.2f}x)':>20}" for r in results[1:])
        print(f"{label:34}{base[key]:10.3f}{cells}")
    print("\nbulk fill seconds: " + ", ".join(f"{r['fill_seconds']:.0f}" for r in results))
    for r in results:
        for label, text in r.get("plans", {}).items():
            print(f"\n-- {r['size']:,} finished workflows: {label}\n{text}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
