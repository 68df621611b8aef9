"""Interoperation with DBOS's own tools (the `dbos` 3.4 package) on one Postgres database.

DBOS's command line lists and reads our workflows and its cancel, resume and fork are
carried out by our workers; DBOS's client enqueues a workflow our worker runs; our client
enqueues a workflow that a DBOS Python application runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import dbos_typed as dbos
from tests.conftest import Gate
from tests.fresh_databases import fresh_postgres_database

pytestmark = pytest.mark.postgres_only

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    """A fresh database with the default `dbos` schema, which DBOS's tools expect."""
    with fresh_postgres_database(postgres_url, "interop") as fresh:
        yield fresh


def dbos_cli(url: str, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "dbos.cli.cli", "workflow", *args, "-s", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip().startswith(("[", "{")) else done.stdout


trail: list[str] = []


def three_steps(ctx: dbos.WorkflowContext, n: int) -> dict[str, int]:
    a = dbos.run_as_step(ctx, lambda: trail.append("a") or n, name="a")  # type: ignore[func-returns-value]
    b = dbos.run_as_step(ctx, lambda: trail.append("b") or a + 1, name="b")  # type: ignore[func-returns-value]
    c = dbos.run_as_step(ctx, lambda: trail.append("c") or b + 1, name="c")  # type: ignore[func-returns-value]
    return {"sum": a + b + c}


def test_dbos_cli_reads_our_workflows(url: str) -> None:
    ctx = dbos.new_context(dbos.Config(app_name="interop", database_url=url))
    dbos.register_workflow(ctx, three_steps)
    ctx.launch()
    try:
        dbos.run_workflow(ctx, three_steps, 1, workflow_id="ours-1").get_result()
        [listed] = dbos_cli(url, "list")
        assert listed["workflow_id"] == "ours-1" and listed["status"] == "SUCCESS"
        assert listed["input"] == {"args": [1], "kwargs": {}}
        assert listed["output"] == {"sum": 6}
        got = dbos_cli(url, "get", "ours-1")
        assert got["output"] == {"sum": 6}
        steps = dbos_cli(url, "steps", "ours-1")
        assert [(s["function_id"], s["function_name"], s["output"]) for s in steps] == [
            (0, "a", 1),
            (1, "b", 2),
            (2, "c", 3),
        ]
    finally:
        ctx.shutdown()


def test_dbos_cli_cancel_resume_and_fork_are_carried_out_by_our_workers(url: str) -> None:
    gate = Gate()

    def gated(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, lambda: trail.append("before") or "x", name="before")  # type: ignore[func-returns-value]
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.run_as_step(ctx, lambda: trail.append("after") or "y", name="after")  # type: ignore[func-returns-value]
        return "finished"

    ctx = dbos.new_context(dbos.Config(app_name="interop", database_url=url))
    dbos.register_workflow(ctx, gated)
    dbos.register_workflow(ctx, three_steps)
    ctx.launch()
    try:
        trail.clear()
        handle = dbos.run_workflow(ctx, gated, workflow_id="steered")
        gate.wait_entered()
        dbos_cli(url, "cancel", "steered")
        gate.open()
        with pytest.raises(dbos.AwaitedWorkflowCancelledError):
            handle.get_result(timeout=timedelta(seconds=30))
        assert trail == ["before"]
        dbos_cli(url, "resume", "steered")
        resumed = dbos.retrieve_workflow[str](ctx, "steered")
        assert resumed.get_result(timeout=timedelta(seconds=30)) == "finished"
        assert trail == ["before", "after"]

        trail.clear()
        dbos.run_workflow(ctx, three_steps, 10, workflow_id="to-fork").get_result()
        # DBOS's --step copies the steps numbered below it; ours are numbered from 0.
        dbos_cli(url, "fork", "to-fork", "--step", "2", "--forked-workflow-id", "forked")
        forked = dbos.retrieve_workflow[dict[str, int]](ctx, "forked")
        assert forked.get_result(timeout=timedelta(seconds=30)) == {"sum": 33}
        assert trail == ["a", "b", "c", "c"]
    finally:
        ctx.shutdown()


def test_dbos_client_enqueues_a_workflow_our_worker_runs(url: str) -> None:
    from dbos import DBOSClient, WorkflowSerializationFormat  # the official package

    ctx = dbos.new_context(dbos.Config(app_name="interop", database_url=url))
    dbos.register_workflow(ctx, three_steps)
    dbos.register_queue(ctx, "work", polling_interval=timedelta(milliseconds=50))
    ctx.launch()
    client = DBOSClient(system_database_url=url, application_name="interop")
    try:
        handle = client.enqueue(
            {
                "workflow_name": "three_steps",
                "queue_name": "work",
                "serialization_type": WorkflowSerializationFormat.PORTABLE,
            },
            5,
        )
        assert handle.get_result(polling_interval_sec=0.05) == {"sum": 18}
        ours = dbos.retrieve_workflow[dict[str, int]](ctx, handle.get_workflow_id())
        assert ours.get_result() == {"sum": 18}
    finally:
        client.destroy()
        ctx.shutdown()


def test_our_client_enqueues_into_a_dbos_python_app(url: str) -> None:
    # Our schema, then DBOS's application on it (it finds the schema current).
    dbos.new_context(dbos.Config(app_name="setup", database_url=url)).shutdown()
    app = subprocess.Popen(
        [sys.executable, "-m", "tests.interop_dbos_app", url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert app.stdout is not None
        assert app.stdout.readline().strip() == "ready"
        with dbos.new_client(url, app_name="pyapp") as client:
            handle = dbos.enqueue[int](client, "pyq", "py_double", 21)
            assert handle.get_result(timeout=timedelta(seconds=60)) == 42
    finally:
        app.kill()
        app.communicate(timeout=30)


def test_the_dashboard_reads_what_a_dbos_python_app_wrote(url: str) -> None:
    from dbos_typed._app.dashboard.server import DashboardServer
    from dbos_typed._app.lifecycle import connect
    from tests.test_dashboard import Client

    dbos.new_context(dbos.Config(app_name="setup", database_url=url)).shutdown()
    app = subprocess.Popen(
        [sys.executable, "-m", "tests.interop_dbos_app", url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert app.stdout is not None
        assert app.stdout.readline().strip() == "ready"
        with dbos.new_client(url, app_name="pyapp") as client:
            handle = dbos.enqueue[int](client, "pyq", "py_double", 21, workflow_id="py-1")
            assert handle.get_result(timeout=timedelta(seconds=60)) == 42
    finally:
        app.kill()
        app.communicate(timeout=30)
    ctx = connect(dbos.Config(app_name="dashboard", database_url=url), migrate=False)
    server = DashboardServer(ctx, port=0)
    server.start()
    try:
        reader = Client(server.url)
        status, rows, _ = reader.call("POST", "/workflows", {"workflow_uuids": ["py-1"]})
        assert status == 200 and [(r["Status"], r["Output"]) for r in rows] == [("SUCCESS", "42")]
        assert reader.call("GET", "/workflows/py-1/steps")[0] == 200
        status, counts, _ = reader.call(
            "POST", "/workflow-aggregates", {"group_by": ["queue_name", "status"]}
        )
        assert status == 200 and {"queue_name": "pyq", "status": "SUCCESS"} in [
            c["group"] for c in counts
        ]
    finally:
        server.shutdown()
        ctx.shutdown()
