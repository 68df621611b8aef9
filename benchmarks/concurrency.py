"""Throughput against concurrency: dbos_typed, the official dbos and a plain-psycopg floor.

Usage: python -m benchmarks.concurrency [--url postgresql://...] [--threads 1,4,16,64]
       [--workflows N] [--json FILE]

For each thread count, that many threads each run workflows one after another (start,
wait for the result) until `--workflows` one-step workflows (and a quarter as many
ten-step ones) are done; the figure is workflows per second over the whole batch. Each
library runs in its own process on its own fresh database.

The floor is what the database alone allows: the same threads, each with its own
psycopg connection, making as many single-row INSERT commits as dbos_typed makes per
workflow (start, each step, the outcome: 3 for one step, 12 for ten), with no library
code at all.

dbos_typed runs twice: as it is, with group commit (checkpoints that coincide share one
statement), and with group commit off (`--single-commits`: every checkpoint its own
commit, as the floor makes them), to show the statement path on its own.

Then asyncio: 1,000 one-step workflows in flight at once, started and awaited from one
event loop through `dbos_typed.aio` (the workflows are coroutines too), against the same
1,000 started with the blocking calls and waited on one by one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

import dbos_typed as dbos
from benchmarks._harness import (
    as_url,
    base_parser,
    drop_database,
    fresh_database,
    group_commit_off,
    official_steps_workflow,
    run_child,
)
from dbos_typed import aio

STEPS = (1, 10)
COMMITS = {1: 3, 10: 12}  # dbos_typed's commits per workflow: start, steps, outcome
IN_FLIGHT = 1000


def _drive(threads: int, total: int, run: Callable[[int], object]) -> float:
    """Workflows per second: `threads` threads running `total` workflows in all."""
    counter = iter(range(total))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            run(n)

    begin = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return total / (time.perf_counter() - begin)


def _sweep(
    thread_counts: list[int], workflows: int, run: Callable[[int, int], object]
) -> dict[str, list[float]]:
    """{steps: [workflows/s at each thread count]}; `run(steps, n)` runs one workflow."""
    figures: dict[str, list[float]] = {}
    for steps in STEPS:

        def one(n: int, steps: int = steps) -> object:
            return run(steps, n)

        _drive(4, 40, one)  # warm up connections, prepared statements, threads
        total = workflows if steps == 1 else workflows // 4
        figures[str(steps)] = [_drive(t, total, one) for t in thread_counts]
    return figures


def _noop() -> None:
    return None


def steps_wf(ctx: dbos.WorkflowContext, steps: int) -> int:
    for _ in range(steps):
        dbos.run_as_step(ctx, _noop, name="noop")
    return steps


async def async_one_step(ctx: dbos.WorkflowContext, n: int) -> int:
    await aio.run_as_step(ctx, _noop, name="noop")
    return n


def _asyncio_figures(ctx: dbos.DBOSContext) -> dict[str, float]:
    async def many() -> None:
        async def one(n: int) -> int:
            handle = await aio.run_workflow(ctx, async_one_step, n)
            return await handle.get_result()

        await asyncio.gather(*(one(n) for n in range(IN_FLIGHT)))

    asyncio.run(many())  # warm-up
    begin = time.perf_counter()
    asyncio.run(many())
    on_loop = IN_FLIGHT / (time.perf_counter() - begin)
    begin = time.perf_counter()
    handles = [dbos.run_workflow(ctx, steps_wf, 1) for _ in range(IN_FLIGHT)]
    for handle in handles:
        handle.get_result()
    blocking = IN_FLIGHT / (time.perf_counter() - begin)
    return {"aio_per_s": on_loop, "threads_per_s": blocking}


def run_ours(
    url: str, thread_counts: list[int], workflows: int, *, single_commits: bool = False
) -> dict[str, Any]:
    pool = max(thread_counts) + 6
    with group_commit_off() if single_commits else contextlib.nullcontext():
        ctx = dbos.new_context(
            dbos.Config(app_name="bench", database_url=url, max_connections=pool)
        )
    dbos.register_workflow(ctx, steps_wf)
    dbos.register_workflow(ctx, async_one_step)
    ctx.launch()
    try:
        sweep = _sweep(
            thread_counts,
            workflows,
            lambda steps, _: dbos.run_workflow(ctx, steps_wf, steps).get_result(),
        )
        return {"sweep": sweep, "asyncio": _asyncio_figures(ctx)}
    finally:
        ctx.shutdown()


def run_official(url: str, thread_counts: list[int], workflows: int) -> dict[str, Any]:
    from dbos import DBOS

    DBOS(
        config={
            "name": "bench",
            "system_database_url": url,
            "log_level": "WARNING",
            "sys_db_pool_size": max(thread_counts) + 6,
        }
    )

    wf = official_steps_workflow()

    DBOS.launch()
    try:
        sweep = _sweep(
            thread_counts, workflows, lambda steps, _: DBOS.start_workflow(wf, steps).get_result()
        )
        return {"sweep": sweep}
    finally:
        DBOS.destroy()


def run_floor(admin_url: str, thread_counts: list[int], workflows: int) -> dict[str, Any]:
    target = fresh_database(admin_url)
    url = as_url(target)
    # Opened before the clock starts, as a library's pool would be.
    idle: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE floor (k text, n int, PRIMARY KEY (k, n))")
        for _ in range(max(thread_counts)):
            idle.put(psycopg.connect(url, autocommit=True))

        def run(steps: int, n: int) -> None:
            conn = idle.get()
            key = f"{threading.get_ident()}-{n}-{steps}-{time.perf_counter_ns()}"
            for i in range(COMMITS[steps]):
                conn.execute("INSERT INTO floor VALUES (%s, %s)", (key, i))
            idle.put(conn)

        return {"sweep": _sweep(thread_counts, workflows, run)}
    finally:
        while not idle.empty():
            idle.get().close()
        drop_database(admin_url, target)


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--threads", default="1,4,16,64")
    parser.add_argument("--workflows", type=int, default=800)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--single-commits", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    if args.child == "dbos_typed":
        figures = run_ours(
            args.url, thread_counts, args.workflows, single_commits=args.single_commits
        )
        print(json.dumps(figures))
        return
    if args.child:
        print(json.dumps(run_official(args.url, thread_counts, args.workflows)))
        return
    options = ("--threads", args.threads, "--workflows", str(args.workflows))
    module = "benchmarks.concurrency"
    results: dict[str, Any] = {
        "dbos_typed": run_child(module, "dbos_typed", args.url, *options),
        "dbos_typed_single": run_child(
            module, "dbos_typed", args.url, *options, "--single-commits"
        ),
        "dbos": run_child(module, "dbos", args.url, *options),
    }
    results["floor"] = run_floor(args.url, thread_counts, args.workflows)
    print(
        f"workflows/s; {args.workflows} one-step and {args.workflows // 4} ten-step "
        "workflows per cell; floor = the same commits from plain psycopg\n"
    )
    for steps in STEPS:
        print(f"{steps}-step workflows")
        print(
            f"{'threads':>8}{'dbos_typed':>12}{'no batches':>12}{'dbos 3.4.0':>12}{'floor':>10}"
            f"{'vs dbos':>10}{'of floor':>10}{'unbatched':>11}"
        )
        for i, threads in enumerate(thread_counts):
            ours = results["dbos_typed"]["sweep"][str(steps)][i]
            single = results["dbos_typed_single"]["sweep"][str(steps)][i]
            theirs = results["dbos"]["sweep"][str(steps)][i]
            floor = results["floor"]["sweep"][str(steps)][i]
            print(
                f"{threads:>8}{ours:12.0f}{single:12.0f}{theirs:12.0f}{floor:10.0f}"
                f"{ours / theirs:9.1f}x{ours / floor:9.0%}{single / floor:10.0%}"
            )
        print()
    figures = results["dbos_typed"]["asyncio"]
    print(
        f"{IN_FLIGHT} one-step workflows in flight: {figures['aio_per_s']:.0f}/s from one event "
        f"loop (dbos_typed.aio), {figures['threads_per_s']:.0f}/s with the blocking calls "
        f"({figures['aio_per_s'] / figures['threads_per_s']:.2f}x)"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"threads": thread_counts, **results}, out, indent=2)


if __name__ == "__main__":
    main()
