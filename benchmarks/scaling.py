"""Scaling out: 1, 2 and 4 processes draining one queue of 5,000 one-step workflows.

Usage: python -m benchmarks.scaling [--url postgresql://...] [--processes 1,2,4]
       [--workflows N] [--official-polling SECONDS]

For each process count and each contender, a fresh database gets the whole backlog first
(through the library's own client), then that many worker processes start, each serving
the queue with worker concurrency 50; the clock runs from the signal that lets them
launch until every workflow is SUCCESS (read from the database every 20 ms).

The floor is a plain table drained with `FOR UPDATE SKIP LOCKED` by the same number of
processes, 8 threads each: every thread claims 10 rows in one statement, then makes the
two commits per row a durable step and its outcome need, with no library code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import psycopg

import dbos_typed as dbos
from benchmarks._harness import as_url, base_parser, drop_database, fresh_database

VERSION = "scaling-v1"
CONCURRENCY = 50
FLOOR_THREADS = 8
FLOOR_BATCH = 10


def _noop() -> None:
    return None


def one_step(ctx: dbos.WorkflowContext, n: int) -> int:
    dbos.run_as_step(ctx, _noop, name="noop")
    return n


# --- the workers, one process each --------------------------------------------------------


def _ours_worker(url: str) -> None:
    ctx = dbos.new_context(
        dbos.Config(app_name="bench", database_url=url, application_version=VERSION)
    )
    dbos.register_workflow(ctx, one_step)
    dbos.register_queue(ctx, "drain", worker_concurrency=CONCURRENCY)
    print("ready", flush=True)
    sys.stdin.readline()
    ctx.launch()
    sys.stdin.readline()  # until told to stop
    ctx.shutdown()


def _official_worker(url: str, polling: float) -> None:
    from dbos import DBOS

    DBOS(
        config={
            "name": "bench",
            "system_database_url": url,
            "log_level": "WARNING",
            "application_version": VERSION,
        }
    )

    @DBOS.step()
    def noop() -> None:
        return None

    @DBOS.workflow(name="one_step")
    def official_one_step(n: int) -> int:
        noop()
        return n

    print("ready", flush=True)
    sys.stdin.readline()
    DBOS.launch()
    # Its queues are registered in the database, which it opens only at launch.
    DBOS.register_queue("drain", worker_concurrency=CONCURRENCY, polling_interval_sec=polling)
    sys.stdin.readline()
    DBOS.destroy()


def _floor_worker(url: str) -> None:
    def drain() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                claimed = conn.execute(
                    "UPDATE jobs SET status = 'running' WHERE id IN ("
                    " SELECT id FROM jobs WHERE status = 'queued' ORDER BY id"
                    " FOR UPDATE SKIP LOCKED LIMIT %s) RETURNING id",
                    (FLOOR_BATCH,),
                ).fetchall()
                if not claimed:
                    return
                for (job,) in claimed:
                    conn.execute("INSERT INTO steps VALUES (%s, 0)", (job,))
                    conn.execute("UPDATE jobs SET status = 'done' WHERE id = %s", (job,))

    print("ready", flush=True)
    sys.stdin.readline()
    threads = [threading.Thread(target=drain) for _ in range(FLOOR_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stdin.readline()


# --- the backlog and the clock -----------------------------------------------------------


def _enqueue(impl: str, url: str, workflows: int) -> None:
    if impl == "dbos_typed":
        client = dbos.new_client(dbos.Config(app_name="bench", database_url=url))
        try:
            for n in range(workflows):
                dbos.enqueue(client, "drain", "one_step", n, application_version=VERSION)
        finally:
            client.close()
    elif impl == "dbos":
        from dbos import DBOSClient

        official = DBOSClient(system_database_url=url)
        try:
            for n in range(workflows):
                official.enqueue(
                    {"queue_name": "drain", "workflow_name": "one_step", "app_version": VERSION},
                    n,
                )
        finally:
            official.destroy()
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE jobs (id int PRIMARY KEY, status text NOT NULL)")
            conn.execute("CREATE TABLE steps (id int, step int, PRIMARY KEY (id, step))")
            conn.execute(
                "INSERT INTO jobs SELECT i, 'queued' FROM generate_series(1, %s) AS i",
                (workflows,),
            )


_DONE = {
    "dbos_typed": "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'",
    "dbos": "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'",
    "floor": "SELECT count(*) FROM jobs WHERE status = 'done'",
}


def drain_seconds(
    impl: str, admin_url: str, processes: int, workflows: int, polling: float
) -> float:
    target = fresh_database(admin_url)
    url = as_url(target)
    workers: list[subprocess.Popen[str]] = []
    try:
        if impl == "dbos_typed":  # the schema and the queue's row, which the client checks
            setup = dbos.new_context(
                dbos.Config(app_name="bench", database_url=url, application_version=VERSION)
            )
            dbos.register_queue(setup, "drain", worker_concurrency=CONCURRENCY)
            setup.shutdown()
        elif impl == "dbos":
            from dbos import DBOS

            DBOS.migrate(url)
        _enqueue(impl, url, workflows)
        for _ in range(processes):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.scaling",
                        "--worker",
                        impl,
                        "--url",
                        url,
                        "--official-polling",
                        str(polling),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        with psycopg.connect(url, autocommit=True) as conn:
            begin = time.perf_counter()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            while True:
                row = conn.execute(_DONE[impl]).fetchone()
                if row is not None and row[0] >= workflows:
                    break
                if time.perf_counter() - begin > 600:
                    raise RuntimeError(f"{impl} did not drain the queue in 10 minutes")
                time.sleep(0.02)
            seconds = time.perf_counter() - begin
    finally:
        for worker in workers:
            if worker.stdin is not None:
                try:
                    worker.stdin.write("stop\n")
                    worker.stdin.close()
                except BrokenPipeError:
                    pass
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()
        drop_database(admin_url, target)
    return seconds


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--workflows", type=int, default=5000)
    parser.add_argument("--official-polling", type=float, default=1.0)
    parser.add_argument("--worker", choices=("dbos_typed", "dbos", "floor"))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.worker == "dbos_typed":
        _ours_worker(args.url)
        return
    if args.worker == "dbos":
        _official_worker(args.url, args.official_polling)
        return
    if args.worker == "floor":
        _floor_worker(args.url)
        return
    counts = [int(p) for p in args.processes.split(",")]
    results: dict[str, list[float]] = {}
    for impl in ("dbos_typed", "dbos", "floor"):
        results[impl] = [
            args.workflows / drain_seconds(impl, args.url, p, args.workflows, args.official_polling)
            for p in counts
        ]
    print(
        f"workflows/s draining {args.workflows} one-step workflows from one queue "
        f"(worker concurrency {CONCURRENCY} per process; official polling "
        f"{args.official_polling}s)\n"
    )
    print(
        f"{'processes':>10}{'dbos_typed':>12}{'dbos 3.4.0':>12}{'floor':>10}{'vs dbos':>10}"
        f"{'of floor':>10}"
    )
    for i, p in enumerate(counts):
        ours, theirs, floor = (results[k][i] for k in ("dbos_typed", "dbos", "floor"))
        print(
            f"{p:>10}{ours:12.0f}{theirs:12.0f}{floor:10.0f}{ours / theirs:9.1f}x"
            f"{ours / floor:9.0%}"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"processes": counts, **results}, out, indent=2)


if __name__ == "__main__":
    main()
