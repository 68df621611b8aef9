"""Sequential workflows of 0, 1 and 10 no-op steps: dbos_typed against the official dbos.

Usage: python -m benchmarks.steps [--url postgresql://...] [--workflows N]

Both libraries run against the same Postgres server in the same run, each in its own
process and its own fresh database. Prints ms per workflow, the per-step overhead
((t10 - t0) / 10, p50 over repeated rounds) and the ratio between the two.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import psycopg

import dbos_typed
from benchmarks._harness import (
    as_url,
    base_parser,
    drop_database,
    fresh_database,
    official_steps_workflow,
    run_child,
)

STEP_COUNTS = (0, 1, 10)


def _time_rounds(
    run: Callable[[int], object], workflows: int, rounds: int
) -> dict[int, list[float]]:
    """ms per workflow for each step count, one sample per round."""
    samples: dict[int, list[float]] = {n: [] for n in STEP_COUNTS}
    for n in STEP_COUNTS:  # warm up connections, prepared statements and caches
        for _ in range(20):
            run(n)
    for _ in range(rounds):
        for n in STEP_COUNTS:
            start = time.perf_counter()
            for _ in range(workflows):
                run(n)
            samples[n].append((time.perf_counter() - start) * 1000 / workflows)
    return samples


def run_ours(url: str, workflows: int, rounds: int) -> dict[int, list[float]]:
    def noop() -> None:
        return None

    def wf(ctx: dbos_typed.WorkflowContext, steps: int) -> int:
        for _ in range(steps):
            dbos_typed.run_as_step(ctx, noop, name="noop")
        return steps

    ctx = dbos_typed.new_context(dbos_typed.Config(app_name="bench", database_url=url))
    dbos_typed.register_workflow(ctx, wf)
    ctx.launch()
    try:
        return _time_rounds(
            lambda n: dbos_typed.run_workflow(ctx, wf, n).get_result(), workflows, rounds
        )
    finally:
        ctx.shutdown()


def run_official(url: str, workflows: int, rounds: int) -> dict[int, list[float]]:
    from dbos import DBOS  # the official package

    DBOS(config={"name": "bench", "system_database_url": url, "log_level": "WARNING"})

    wf = official_steps_workflow()

    DBOS.launch()
    try:
        return _time_rounds(lambda n: DBOS.start_workflow(wf, n).get_result(), workflows, rounds)
    finally:
        DBOS.destroy()


def commit_floor(admin_url: str, samples: int = 2000) -> float:
    """ms for one single-row INSERT and durable commit: the floor under any checkpoint."""
    target = fresh_database(admin_url)
    try:
        with psycopg.connect(as_url(target), autocommit=True) as conn:
            conn.execute("CREATE TABLE floor (k text, n int, PRIMARY KEY (k, n))")
            timings = []
            for n in range(samples):
                start = time.perf_counter()
                conn.execute("INSERT INTO floor VALUES (%s, %s) ON CONFLICT DO NOTHING", ("k", n))
                timings.append((time.perf_counter() - start) * 1000)
        return statistics.median(timings)
    finally:
        drop_database(admin_url, target)


def _child(impl: str, url: str, workflows: int, rounds: int) -> None:
    runner = run_ours if impl == "dbos_typed" else run_official
    print(json.dumps(runner(url, workflows, rounds)))


def _measure(impl: str, admin_url: str, workflows: int, rounds: int) -> dict[int, list[float]]:
    raw = run_child(
        "benchmarks.steps", impl, admin_url, "--workflows", str(workflows), "--rounds", str(rounds)
    )
    return {int(k): v for k, v in raw.items()}


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, args.workflows, args.rounds)
        return
    results = {
        impl: _measure(impl, args.url, args.workflows, args.rounds)
        for impl in ("dbos_typed", "dbos")
    }
    print(
        f"{args.workflows} sequential workflows per sample, {args.rounds} rounds, p50 of rounds\n"
    )
    print(f"{'':24}{'dbos_typed':>12}{'dbos 3.4.0':>12}{'ratio':>8}")
    medians = {impl: {n: statistics.median(v) for n, v in r.items()} for impl, r in results.items()}
    for n in STEP_COUNTS:
        ours, theirs = medians["dbos_typed"][n], medians["dbos"][n]
        print(f"{f'ms/workflow, {n} steps':24}{ours:12.3f}{theirs:12.3f}{theirs / ours:7.1f}x")
    per_step = {
        impl: statistics.median((r[10][i] - r[0][i]) / 10 for i in range(len(r[0])))
        for impl, r in results.items()
    }
    ours, theirs = per_step["dbos_typed"], per_step["dbos"]
    print(f"{'ms/step (10-step - 0)':24}{ours:12.3f}{theirs:12.3f}{theirs / ours:7.1f}x")
    floor = commit_floor(args.url)
    print(f"\none INSERT + durable commit on this server (p50): {floor:.3f} ms")
    print(
        f"per-step overhead above that floor: dbos_typed {ours - floor:.3f} ms, "
        f"dbos {theirs - floor:.3f} ms"
    )


if __name__ == "__main__":
    main()
