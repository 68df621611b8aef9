"""Server time of the dashboard's requests over a Postgres system database of many workflows.

Usage: python -m benchmarks.dashboard [--url postgresql://...] [--rows 100000] [--repeat 20]

The rows are written by one bulk INSERT ... SELECT FROM generate_series into
workflow_status (no workflow runs): statuses, names, queues and creation times spread as in
a busy application over the last week. Then the dashboard serves that schema, and each
request the pages make is sent `--repeat` times; the median of the server's own
`Server-Timing` and of the round trip is printed, with the plan Postgres chose for the
workflows page's main query.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

import dbos_typed as dbos
from dbos_typed._app.dashboard.server import DashboardServer
from dbos_typed._app.lifecycle import connect

_SEED = """
INSERT INTO {s}.workflow_status (
    workflow_uuid, status, name, queue_name, executor_id, application_version,
    application_name, created_at, updated_at, started_at_epoch_ms, completed_at, priority
)
SELECT
    'wf-' || lpad(i::text, 7, '0'),
    CASE WHEN i %% 100 < 90 THEN 'SUCCESS' WHEN i %% 100 < 95 THEN 'ERROR'
         WHEN i %% 100 < 98 THEN 'PENDING' ELSE 'ENQUEUED' END,
    'workflow_' || (i %% 10),
    CASE WHEN i %% 3 = 0 THEN 'queue_' || (i %% 4) END,
    'executor-' || (i %% 5),
    'v1',
    'bench',
    %(start)s + i * %(step)s,
    %(start)s + i * %(step)s + 50,
    %(start)s + i * %(step)s + 5,
    CASE WHEN i %% 100 < 95 THEN %(start)s + i * %(step)s + 40 END,
    0
FROM generate_series(1, %(rows)s) AS i
"""


def _post(base: str, path: str, body: Any | None) -> tuple[float, float]:
    """One request; (server ms from Server-Timing, round-trip ms)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
        timing = response.headers["Server-Timing"]
    wall = (time.perf_counter() - start) * 1000
    return float(timing.split("dur=")[1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("DBOS_BENCH_DATABASE_URL")
        or os.environ.get("DBOS_TYPED_TEST_DATABASE_URL"),
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set DBOS_BENCH_DATABASE_URL to a Postgres URL")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    config = dbos.Config(app_name="bench", database_url=args.url, database_schema=schema)
    connect(config, migrate=True).shutdown()
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    week_ms = int(timedelta(days=7).total_seconds() * 1000)
    identifier = sql.Identifier(schema)
    try:
        with psycopg.connect(args.url, autocommit=True) as conn:
            started = time.perf_counter()
            seed = sql.SQL(_SEED).format(s=identifier)
            conn.execute(
                seed,
                {"start": now_ms - week_ms, "step": week_ms // args.rows, "rows": args.rows},
            )
            conn.execute(sql.SQL("ANALYZE {}.workflow_status").format(identifier))
            print(f"seeded {args.rows} rows in {time.perf_counter() - started:.1f} s")
        _measure(config, args.repeat)
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(identifier))


def _measure(config: dbos.Config, repeat: int) -> None:
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    page = {"limit": 51, "sort_desc": True, "load_input": False, "load_output": False}
    requests: list[tuple[str, str, Any]] = [
        ("workflows page: newest 50", "/workflows", page),
        ("workflows page: counts by status", "/workflow-aggregates", {"group_by": ["status"]}),
        ("  filtered by status ERROR", "/workflows", {**page, "status": ["ERROR"]}),
        ("  filtered by name", "/workflows", {**page, "workflow_name": "workflow_3"}),
        ("  filtered by queue", "/workflows", {**page, "queue_name": "queue_1"}),
        ("  filtered by ID prefix", "/workflows", {**page, "workflow_id_prefix": "wf-00123"}),
        ("  filtered by last hour", "/workflows", {**page, "start_time": hour_ago}),
        ("  page 20 (offset 1000)", "/workflows", {**page, "offset": 1000}),
        (
            "  counts, name filter",
            "/workflow-aggregates",
            {"group_by": ["status"], "workflow_name": "workflow_3"},
        ),
        (
            "  counts, created in the last day",
            "/workflow-aggregates",
            {"group_by": ["status"], "start_time": day_ago},
        ),
        (
            "overview: per minute, last hour",
            "/workflow-aggregates",
            {"group_by": ["status"], "bucket_ms": 60_000, "start_time": hour_ago},
        ),
        (
            "queues: backlog by queue and status",
            "/workflow-aggregates",
            {"group_by": ["queue_name", "status"], "queues_only": True},
        ),
        ("one workflow", "/workflows/wf-0050000", None),
    ]
    ctx = connect(config, migrate=False)
    server = DashboardServer(ctx, port=0)
    server.start()
    try:
        print(f"{'request':40} {'server p50':>11} {'round trip p50':>15}")
        for label, path, body in requests:
            for _ in range(3):  # warm the pool, the plan cache and the page cache
                _post(server.url, path, body)
            samples = [_post(server.url, path, body) for _ in range(repeat)]
            server_ms = statistics.median(s for s, _ in samples)
            wall_ms = statistics.median(w for _, w in samples)
            print(f"{label:40} {server_ms:>8.1f} ms {wall_ms:>12.1f} ms")
    finally:
        server.shutdown()
        ctx.shutdown()
    _explain(config)


def _explain(config: dbos.Config) -> None:
    url = config.database_url or ""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(config.database_schema))
        )
        for label, where in (
            ("newest 50", ""),
            ("status ERROR", "WHERE status = 'ERROR'"),
            ("ID prefix", "WHERE workflow_uuid >= 'wf-00123' AND workflow_uuid < 'wf-00124'"),
        ):
            query = (
                "EXPLAIN SELECT workflow_uuid FROM workflow_status "
                + where
                + " ORDER BY created_at DESC, workflow_uuid DESC LIMIT 51"
            )
            plan = [row[0] for row in conn.execute(query)]
            print(f"plan ({label}): " + " / ".join(line.strip() for line in plan[:3]))


if __name__ == "__main__":
    main()
