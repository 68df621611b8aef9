"""An executor only claims queued workflows it can run; the rest wait for one that can."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

import dbos_typed as dbos
from dbos_typed.cli import main
from tests.conftest import Backend, wait_for


def alpha(ctx: dbos.WorkflowContext, n: int) -> str:
    return f"alpha {n}"


def beta(ctx: dbos.WorkflowContext, n: int) -> str:
    return f"beta {n}"


def test_each_process_takes_only_the_workflows_it_registered(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    first = backend.new_context()
    second = backend.new_context()
    dbos.register_workflow(first, alpha)
    dbos.register_workflow(second, beta)
    for ctx in (first, second):
        dbos.register_queue(ctx, "shared", polling_interval=timedelta(milliseconds=20))
    with caplog.at_level("WARNING", logger="dbos_typed"):
        first.launch()
        second.launch()
        handles = [dbos.run_workflow(first, alpha, i, queue="shared") for i in range(5)]
        handles += [dbos.run_workflow(second, beta, i, queue="shared") for i in range(5)]
        results = [h.get_result(timeout=timedelta(seconds=30)) for h in handles]
    assert results == [f"alpha {i}" for i in range(5)] + [f"beta {i}" for i in range(5)]
    assert not [r for r in caplog.records if "not registered" in r.getMessage()]
    executors = {
        w.name: w.recovery_attempts for w in dbos.list_workflows(first, all_applications=True)
    }
    assert executors == {"alpha": 1, "beta": 1}  # each claimed once, by the right process


@pytest.mark.postgres_only
def test_work_enqueued_elsewhere_wakes_the_runner_by_notification(postgres_url: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    config = dbos.Config(
        app_name="test-app",
        database_url=postgres_url,
        database_schema=schema,
        application_version="test-version",
    )
    worker = dbos.new_context(config)
    try:
        dbos.register_workflow(worker, alpha)
        dbos.register_queue(worker, "slow-poll", polling_interval=timedelta(minutes=10))
        worker.launch()
        before = worker._runtime.queue_notifications
        with dbos.new_client(config) as client:
            handle = dbos.enqueue[str](client, "slow-poll", "alpha", 7)
            assert handle.get_result(timeout=timedelta(seconds=20)) == "alpha 7"
        # The worker heard of it by notification (its runner also polls, as a safety net).
        assert worker._runtime.queue_notifications > before
    finally:
        worker.shutdown()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_work_nobody_here_can_run_is_reported_once_and_marked_in_the_cli(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    worker = backend.new_context()
    dbos.register_workflow(worker, alpha)
    dbos.register_queue(worker, "shared", polling_interval=timedelta(milliseconds=20))
    with dbos.new_client(backend.config()) as client:
        dbos.enqueue(client, "shared", "nobody_registers_this", 1, workflow_id="lost")
        dbos.enqueue(client, "shared", "nobody_registers_this", 2, workflow_id="lost-too")
        dbos.enqueue(client, "shared", "alpha", 3, workflow_id="found")
    # Enqueued two minutes ago, as far as the rows say.
    backend.query("UPDATE {s}.workflow_status SET updated_at = updated_at - 120000")
    with caplog.at_level("WARNING", logger="dbos_typed"):
        worker.launch()
        done = dbos.retrieve_workflow[str](worker, "found")
        assert done.get_result(timeout=timedelta(seconds=20)) == "alpha 3"

        def reported() -> list[str]:
            return [r.getMessage() for r in caplog.records if "not registered" in r.getMessage()]

        wait_for(lambda: bool(reported()))
    assert reported() == [
        "queue 'shared' has held 2 workflow(s) named 'nobody_registers_this' for over a "
        "minute; this process has not registered that name, and no executor that has took them"
    ]
    out = io.StringIO()
    assert main(["--db-url", backend.url, "--schema", backend.schema, "queue", "list"], out) == 0
    lost = [line for line in out.getvalue().splitlines() if line.startswith("lost")]
    assert len(lost) == 2 and all(line.endswith("no executor has run this name") for line in lost)
