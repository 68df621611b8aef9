"""Where a one-step workflow's CPU goes: the client's and the server's, per workflow.

Usage: python -m benchmarks.cpu_budget [--url postgresql://...] [--threads 1,16,64]
       [--workflows N]

For each thread count, the threads run one-step workflows one after another (as in
`benchmarks.concurrency`), and the figures are CPU milliseconds per workflow: the client's
from `time.process_time()`, the server's from the `postgres` processes in `/proc` (so run
it on the database's machine, with nothing else on that server). Four contenders:

- dbos_typed as it is, and with group commit off;
- the library alone: the same workflows with the three checkpoint writes answered without
  the database, which isolates the Python around the statements;
- the floor: plain psycopg threads making the same three single-row commits.

Two cores give 2 ms of CPU per millisecond; one interpreter lock at most 1 to the client.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

import dbos_typed as dbos
from benchmarks._harness import (
    as_url,
    base_parser,
    drop_database,
    fresh_database,
    group_commit_off,
)
from benchmarks.concurrency import _drive, steps_wf

Run = Callable[[int], object]


def server_cpu_seconds() -> float:
    """CPU seconds used so far by every process named postgres on this machine."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() != "postgres":
                    continue
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(threads: int, total: int, run: Run) -> tuple[float, float, float]:
    """(workflows/s, client ms per workflow, server ms per workflow)."""
    server, client = server_cpu_seconds(), time.process_time()
    rate = _drive(threads, total, run)
    client_ms = (time.process_time() - client) / total * 1000
    return rate, client_ms, (server_cpu_seconds() - server) / total * 1000


@contextmanager
def _ours(url: str, threads: int, *, batched: bool, library_alone: bool) -> Iterator[Run]:
    config = dbos.Config(app_name="bench", database_url=url, max_connections=threads + 6)
    with contextlib.nullcontext() if batched else group_commit_off():
        ctx = dbos.new_context(config)
    dbos.register_workflow(ctx, steps_wf)
    ctx.launch()
    if library_alone:

        def written(kind: Any, params: Any) -> object:
            if kind.name == "start":  # the row a new workflow's insert returns
                return (
                    "PENDING",
                    params["name"],
                    params["queue_name"],
                    params["creator_xid"],
                    None,
                )
            return True

        store: Any = ctx._runtime.store  # the Postgres store's group commit, replaced
        store._group.write = written
    try:
        yield lambda _: dbos.run_workflow(ctx, steps_wf, 1).get_result()
    finally:
        ctx.shutdown()


@contextmanager
def _floor(url: str, threads: int) -> Iterator[Run]:
    idle: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS floor (k text, n int, PRIMARY KEY (k, n))")
    for _ in range(threads):
        idle.put(psycopg.connect(url, autocommit=True))

    def run(n: int) -> None:
        conn = idle.get()
        key = f"{threading.get_ident()}-{n}-{time.perf_counter_ns()}"
        for i in range(3):
            conn.execute("INSERT INTO floor VALUES (%s, %s)", (key, i))
        idle.put(conn)

    try:
        yield run
    finally:
        while not idle.empty():
            idle.get().close()


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--threads", default="1,16,64")
    parser.add_argument("--workflows", type=int, default=5000)
    args = parser.parse_args()
    contenders: dict[str, Callable[[str, int], Any]] = {
        "dbos_typed": lambda url, t: _ours(url, t, batched=True, library_alone=False),
        "group commit off": lambda url, t: _ours(url, t, batched=False, library_alone=False),
        "library alone": lambda url, t: _ours(url, t, batched=True, library_alone=True),
        "floor": _floor,
    }
    print(f"CPU ms per one-step workflow, {args.workflows} per cell (client / server)\n")
    print(f"{'':>18}" + "".join(f"{t:>24}" for t in args.threads.split(",")))
    for name, contender in contenders.items():
        cells = []
        for threads in (int(t) for t in args.threads.split(",")):
            target = fresh_database(args.url)
            try:
                with contender(as_url(target), threads) as run:
                    _drive(4, 200, run)  # warm up connections and threads
                    rate, client, server = measure(threads, args.workflows, run)
            finally:
                drop_database(args.url, target)
            cells.append(f"{client:.3f} / {server:.3f} ({rate:,.0f}/s)")
        print(f"{name:>18}" + "".join(f"{c:>24}" for c in cells))


if __name__ == "__main__":
    main()
