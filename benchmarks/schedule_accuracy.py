"""Tick accuracy of a per-second schedule on Postgres: how late each tick is enqueued and run.

Usage: python -m benchmarks.schedule_accuracy [--url postgresql://...] [--seconds 30]
       [--executors 2]

Runs `--executors` contexts (distinct executor IDs, one process) against a fresh database,
all firing the same `* * * * * *` schedule, for `--seconds`. For every tick it reports, in
milliseconds after the scheduled time: when the ENQUEUED row was created (`created_at`),
when an executor claimed it (`started_at_epoch_ms`), and when the workflow body started
(measured inside the workflow). Also checks that every tick ran exactly once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

import dbos_typed as dbos
from benchmarks._harness import DEFAULT_URL, as_url, drop_database, fresh_database

_lock = threading.Lock()
_body_lag_ms: dict[str, float] = {}
_runs: dict[str, int] = {}


def every_second(ctx: dbos.WorkflowContext, scheduled_time: datetime) -> None:
    lag = (datetime.now(UTC) - scheduled_time).total_seconds() * 1000
    workflow_id = dbos.get_workflow_id(ctx)
    with _lock:
        _body_lag_ms[workflow_id] = lag
        _runs[workflow_id] = _runs.get(workflow_id, 0) + 1


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {p50:7.1f}  p99 {p99:7.1f}  max {ordered[-1]:7.1f}  (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--url",
        default=os.environ.get("DBOS_BENCH_DATABASE_URL", DEFAULT_URL),
        help="a Postgres server; a fresh database is created on it and dropped afterwards",
    )
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--executors", type=int, default=2)
    args = parser.parse_args()

    target = fresh_database(args.url)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    contexts: list[dbos.DBOSContext] = []
    try:
        for n in range(args.executors):
            ctx = dbos.new_context(
                dbos.Config(
                    app_name="schedule-bench",
                    database_url=as_url(target),
                    database_schema=schema,
                    executor_id=f"executor-{n}",
                    application_version="bench",
                )
            )
            dbos.register_workflow(ctx, every_second, schedule="* * * * * *")
            contexts.append(ctx)
        for ctx in contexts:
            ctx.launch()
        time.sleep(args.seconds + 1.5)  # the measured period itself, not a synchronisation
        for ctx in contexts:
            ctx.shutdown(timeout=timedelta(seconds=2))
        with psycopg.connect(target, autocommit=True) as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT workflow_uuid, created_at, started_at_epoch_ms, status "
                    "FROM {}.workflow_status WHERE schedule_name = 'every_second'"
                ).format(sql.Identifier(schema))
            ).fetchall()
    finally:
        for ctx in contexts:
            ctx.shutdown()
        drop_database(args.url, target)

    created: list[float] = []
    started: list[float] = []
    body: list[float] = []
    succeeded = sum(1 for row in rows if row[3] == "SUCCESS")
    for workflow_id, created_at, started_at, _ in rows:
        tick = datetime.fromisoformat(str(workflow_id).removeprefix("sched-every_second-"))
        tick_ms = tick.timestamp() * 1000
        created.append(created_at - tick_ms)
        if started_at is not None:
            started.append(started_at - tick_ms)
        if workflow_id in _body_lag_ms:
            body.append(_body_lag_ms[workflow_id])
    twice = [w for w, n in _runs.items() if n != 1]
    print(f"per-second schedule, {args.executors} executor(s), {args.seconds} s, Postgres")
    print(
        f"ticks enqueued: {len(rows)}; succeeded: {succeeded}; ran: {len(_runs)}; "
        f"ran more than once: {len(twice)}"
    )
    print(f"enqueued (created_at - tick) ms: {_percentiles(created)}")
    print(f"claimed  (started_at - tick) ms: {_percentiles(started)}")
    print(f"body started (now - tick)    ms: {_percentiles(body)}")


if __name__ == "__main__":
    main()
