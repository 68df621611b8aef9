"""Cancelling a tree of workflows is complete, even while the tree grows."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

import dbos_typed as dbos
from tests.conftest import Backend, Gate

FOREVER = timedelta(hours=1)
PATIENCE = timedelta(seconds=30)


def test_a_cancelled_tree_that_keeps_growing_leaves_nothing_running(backend: Backend) -> None:
    enough = threading.Event()
    started = [0]

    def leaf(ctx: dbos.WorkflowContext) -> None:
        dbos.recv[str](ctx, "never", timeout=FOREVER)

    def branch(ctx: dbos.WorkflowContext) -> None:
        dbos.run_workflow(ctx, leaf)
        dbos.recv[str](ctx, "never", timeout=FOREVER)

    def count() -> None:
        started[0] += 1
        if started[0] == 10:
            enough.set()

    def root(ctx: dbos.WorkflowContext) -> None:
        while True:  # starts children until it is cancelled
            dbos.run_as_step(ctx, count, name="count")
            dbos.run_workflow(ctx, branch)

    ctx = backend.context_with(leaf, branch, root)
    ctx.launch()
    handle = dbos.run_workflow(ctx, root, workflow_id="root")
    assert enough.wait(PATIENCE.total_seconds())
    dbos.cancel_workflow(ctx, "root", cancel_children=True)
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=PATIENCE)
    ctx.shutdown()  # every run has stopped: the table holds the tree's final shape
    statuses = backend.query("SELECT status, count(*) FROM {s}.workflow_status GROUP BY status")
    assert [status for status, _ in statuses] == ["CANCELLED"]
    assert int(str(statuses[0][1])) >= 10  # the root and the branches it had started


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.mark.postgres_only
def test_a_child_start_waits_for_a_cancel_in_flight_and_is_refused(
    postgres_url: str, schema: str
) -> None:
    gate = Gate()

    def child(ctx: dbos.WorkflowContext) -> str:
        return "escaped"

    def parent(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return dbos.run_workflow(ctx, child, workflow_id="late-child").get_result()

    config = dbos.Config(app_name="test-app", database_url=postgres_url, database_schema=schema)
    ctx = dbos.new_context(config)
    try:
        dbos.register_workflow(ctx, child)
        dbos.register_workflow(ctx, parent)
        ctx.launch()
        handle = dbos.run_workflow(ctx, parent, workflow_id="parent")
        gate.wait_entered()
        status = sql.Identifier(schema, "workflow_status")
        with (
            psycopg.connect(postgres_url) as cancelling,
            psycopg.connect(postgres_url, autocommit=True) as observer,
        ):
            # A cancel of the parent, made but not yet committed, holds the parent's row.
            cancelling.execute(
                sql.SQL("UPDATE {} SET status = 'CANCELLED' WHERE workflow_uuid = 'parent'").format(
                    status
                )
            )
            gate.open()

            def blocked_or_escaped() -> bool:
                waiting = observer.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE '%%FOR SHARE%%'"
                ).fetchone()
                started = observer.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE workflow_uuid = 'late-child'").format(
                        status
                    )
                ).fetchone()
                return bool(waiting and waiting[0]) or bool(started and started[0])

            give_up = time.monotonic() + PATIENCE.total_seconds()
            while not blocked_or_escaped():
                assert time.monotonic() < give_up, "the child start neither waited nor ran"
                time.sleep(0.01)  # polling the server for a condition, not timing a race
            cancelling.commit()
        with pytest.raises(dbos.AwaitedWorkflowCancelledError):
            handle.get_result(timeout=PATIENCE)
        assert dbos.list_workflows(ctx, workflow_ids=["late-child"]) == []
    finally:
        ctx.shutdown()
