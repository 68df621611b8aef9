"""The `dbos-typed` command line: tables, JSON, actions and exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dbos_typed as dbos
from dbos_typed.cli import main
from tests.conftest import Backend, Gate


def double(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n * 2, name="double")


def _run(backend: Backend, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--db-url", backend.url, "--schema", backend.schema, *argv], out, err)
    return code, out.getvalue(), err.getvalue()


def _populated(backend: Backend) -> dbos.DBOSContext:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, double)
    ctx.launch()
    for n in range(3):
        dbos.run_workflow(ctx, double, n, workflow_id=f"cli-{n}").get_result()
    return ctx


def test_list_get_and_steps(backend: Backend) -> None:
    _populated(backend)
    code, out, err = _run(backend, "workflow", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATUS", "NAME"]
    assert [line.split()[0] for line in lines[1:]] == ["cli-0", "cli-1", "cli-2"]

    code, out, _ = _run(backend, "--json", "workflow", "list", "--limit", "2", "--sort-desc")
    rows = json.loads(out)
    assert [r["workflow_id"] for r in rows] == ["cli-2", "cli-1"]
    assert rows[0]["output"] == 4 and rows[0]["status"] == "SUCCESS"

    code, out, _ = _run(backend, "--json", "workflow", "get", "cli-1")
    assert code == 0 and json.loads(out)["input"] == 1

    code, out, _ = _run(backend, "workflow", "steps", "cli-2")
    assert code == 0 and "double" in out and "4" in out

    code, out, err = _run(backend, "workflow", "get", "missing")
    assert code == 1 and out == "" and err.startswith("dbos-typed: error:") and err.count("\n") == 1


def test_fork_onto_a_partition_of_a_queue(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, double)
    dbos.register_queue(ctx, "parts", partitioned=True)
    ctx.launch()
    dbos.run_workflow(ctx, double, 4, workflow_id="p").get_result()
    argv = ("--json", "workflow", "fork", "p", "--new-id", "p2", "--queue", "parts")
    code, out, _ = _run(backend, *argv, "--partition-key", "k1")
    assert code == 0 and json.loads(out)["workflow_id"] == "p2"
    assert dbos.retrieve_workflow[int](ctx, "p2").get_result(timeout=timedelta(seconds=20)) == 8
    status = dbos.retrieve_workflow(ctx, "p2").get_status()
    assert (status.queue_name, status.queue_partition_key) == ("parts", "k1")
    code, _, err = _run(backend, "workflow", "fork", "p", "--new-id", "p3", "--queue", "parts")
    assert code != 0 and "queue_partition_key" in err  # a partitioned queue needs a key
    assert dbos.list_workflows(ctx, workflow_ids=["p3"]) == []


def test_cancel_resume_fork_delete(backend: Backend) -> None:
    gate = Gate()

    def waits(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return dbos.run_as_step(ctx, lambda: "done", name="after")

    ctx = backend.new_context()
    dbos.register_workflow(ctx, double)
    dbos.register_workflow(ctx, waits)
    ctx.launch()
    handle = dbos.run_workflow(ctx, waits, workflow_id="w")
    gate.wait_entered()
    assert _run(backend, "workflow", "cancel", "w")[0] == 0
    gate.open()
    assert dbos.list_workflows(ctx, workflow_ids=["w"])[0].status is dbos.StatusName.CANCELLED
    assert _run(backend, "workflow", "resume", "w")[0] == 0
    assert handle.get_result() == "done"

    dbos.run_workflow(ctx, double, 5, workflow_id="d").get_result()
    code, out, _ = _run(backend, "--json", "workflow", "fork", "d", "--step", "1", "--new-id", "d2")
    assert code == 0 and json.loads(out)["workflow_id"] == "d2"
    assert dbos.retrieve_workflow[int](ctx, "d2").get_result() == 10
    original = json.loads(_run(backend, "--json", "workflow", "get", "d")[1])
    copy = json.loads(_run(backend, "--json", "workflow", "list", "--prefix", "d2")[1])[0]
    assert (original["was_forked_from"], original["forked_from"]) == (True, None)
    assert (copy["was_forked_from"], copy["forked_from"]) == (False, "d")
    assert original["serialization"] == copy["serialization"] == "portable_json"
    assert {"queue_partition_key", "delay_until", "schedule_name", "is_debounced"} <= set(copy)
    assert _run(backend, "workflow", "delete", "d", "d2")[0] == 0
    assert dbos.list_workflows(ctx, workflow_ids=["d", "d2"]) == []
    code, out, _ = _run(backend, "queue", "list")
    assert (code, out.strip()) == (0, "(none)")


def test_workflow_and_step_stats(backend: Backend) -> None:
    _populated(backend)
    hour_ms = 3_600_000
    start = 1_735_689_600_000  # 2025-01-01T00:00:00Z
    for n, created in enumerate((start, start + 10, start + hour_ms)):
        backend.query(
            "UPDATE {s}.workflow_status SET created_at = %s, completed_at = %s "
            "WHERE workflow_uuid = %s",
            created,
            created + 250,
            f"cli-{n}",
        )

    code, out, err = _run(backend, "workflow", "stats", "--group-by", "status,name")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "STATUS",
        "NAME",
        "COUNT",
        "FIRST_CREATED",
        "MAX_QUEUE_WAIT",
        "MAX_LATENCY",
    ]
    assert lines[1].split() == ["SUCCESS", "double", "3", "2025-01-01T00:00:00+00:00", "0.250s"]

    code, out, _ = _run(
        backend, "--json", "workflow", "stats", "--bucket", "1h", "--name", "double"
    )
    rows = json.loads(out)
    assert code == 0
    assert [(r["bucket_start"], r["count"], r["group"]) for r in rows] == [
        ("2025-01-01T00:00:00Z", 2, {}),
        ("2025-01-01T01:00:00Z", 1, {}),
    ]

    code, out, _ = _run(backend, "workflow", "step-stats", "--group-by", "name,status")
    assert code == 0
    assert out.splitlines()[1].split()[:3] == ["double", "SUCCESS", "3"]
    code, out, _ = _run(
        backend, "--json", "workflow", "step-stats", "--bucket", "1d", "--workflow", "cli-1"
    )
    assert code == 0 and [r["count"] for r in json.loads(out)] == [1]

    for argv in (
        ("workflow", "stats"),  # nothing to group by
        ("workflow", "stats", "--group-by", "colour"),
        ("workflow", "stats", "--bucket", "1 hour"),
        ("workflow", "step-stats", "--bucket", "0s"),
    ):
        code, out, err = _run(backend, *argv)
        assert code == 1 and out == "" and err.startswith("dbos-typed: error:"), argv
        assert err.count("\n") == 1


def test_queues_list_get_and_delete(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_queue(
        ctx, "orders", worker_concurrency=2, limiter=dbos.RateLimit(5, timedelta(seconds=2))
    )
    dbos.register_queue(backend.new_context("other-app"), "emails", partitioned=True)
    code, out, err = _run(backend, "queues", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == "NAME WORKERS GLOBAL RATE PRIORITY PARTITIONED POLLING APP".split()
    assert lines[1].split() == ["emails", "yes", "1s", "other-app"]
    assert lines[2].split() == ["orders", "2", "5/2s", "1s", "test-app"]

    code, out, _ = _run(backend, "--json", "queues", "list", "--app", "test-app")
    assert code == 0
    assert [(q["name"], q["worker_concurrency"]) for q in json.loads(out)] == [("orders", 2)]
    code, out, _ = _run(backend, "--json", "queues", "get", "emails")
    assert code == 0 and json.loads(out)["partitioned"] is True

    assert _run(backend, "queues", "delete", "orders") == (0, "deleted orders\n", "")
    assert [q.name for q in dbos.list_queues(ctx, all_applications=True)] == ["emails"]
    code, out, err = _run(backend, "queues", "get", "orders")
    assert (code, out) == (1, "") and "queue 'orders' does not exist" in err
    assert _run(backend, "queues", "delete", "orders")[0] == 0  # already gone: no error


def test_errors_are_one_line_and_nonzero(backend: Backend, tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    out, err = io.StringIO(), io.StringIO()
    assert main(["--db-url", empty, "workflow", "list"], out, err) == 1
    assert "no DBOS system tables" in err.getvalue()
    assert main(["--db-url", empty, "migrate"], io.StringIO(), io.StringIO()) == 0
    assert main(["--db-url", empty, "workflow", "list"], io.StringIO(), io.StringIO()) == 0
    assert main(["--db-url", empty, "reset"], io.StringIO(), err) == 1
    assert main(["--db-url", empty, "reset", "--yes"], io.StringIO(), io.StringIO()) == 0
    assert not (tmp_path / "empty.sqlite").exists()
    _populated(backend)
    code, _, err2 = _run(backend, "workflow", "cancel", "nope")
    assert code == 1 and "does not exist" in err2


def test_module_entry_point(backend: Backend) -> None:
    _populated(backend)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbos_typed",
            "--db-url",
            backend.url,
            "--schema",
            backend.schema,
            "workflow",
            "list",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "cli-0" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "dbos_typed", "--db-url", "mysql://x", "workflow", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "unsupported scheme" in bad.stderr


def test_rename_moves_an_applications_rows(backend: Backend) -> None:
    def job(ctx: dbos.WorkflowContext) -> int:
        return dbos.run_as_step(ctx, lambda: 1, name="one")

    ctx = backend.new_context("before")
    dbos.register_workflow(ctx, job, name="job")
    ctx.launch()
    dbos.run_workflow(ctx, job, workflow_id="moved").get_result()

    code, out, err = _run(backend, "--json", "rename", "--from", "before", "--to", "after")
    assert (code, err) == (0, "")
    counts = json.loads(out)
    assert (counts["workflows"], counts["steps"]) == (1, 1)
    owners = backend.query(
        "SELECT application_name FROM {s}.workflow_status WHERE workflow_uuid = 'moved'"
    )
    assert owners == [("after",)]
    code, out, err = _run(backend, "rename", "--to", "after", "--batch-size", "0")
    assert code == 1 and "old_name" in err and out == ""
    code, out, _ = _run(backend, "rename", "--to", "elsewhere", "--adopt-unclaimed")
    assert code == 0 and "WORKFLOWS" in out  # a table of counts


def test_cancel_and_resume_of_a_finished_workflow_say_nothing_changed(backend: Backend) -> None:
    _populated(backend)
    code, out, err = _run(backend, "workflow", "cancel", "cli-1")
    assert (code, err) == (0, "")
    assert out.startswith("workflow cli-1 is SUCCESS: nothing changed (")
    code, out, _ = _run(backend, "--json", "workflow", "resume", "cli-1")
    report = json.loads(out)
    assert code == 0 and (report["unchanged"], report["status"]) == ("cli-1", "SUCCESS")
    assert "fork" in report["reason"]
    code, out, _ = _run(backend, "--json", "workflow", "get", "cli-1")
    assert json.loads(out)["status"] == "SUCCESS"


def test_queue_list_shows_the_internal_queue_of_every_application(backend: Backend) -> None:
    _populated(backend).shutdown()
    # No context runs now: the fork stays ENQUEUED where the CLI can see it.
    dbos.fork_workflow(backend.new_context("operator"), "cli-2", 1, new_workflow_id="forked")
    code, out, err = _run(backend, "queue", "list")
    assert (code, err) == (0, "")
    row = out.splitlines()[1].split()
    assert row[:2] == ["forked", "ENQUEUED"]
    assert "_dbos_internal_queue" in row and "(internal)" in row
    code, out, _ = _run(backend, "--json", "queue", "list")
    assert [r["queue_name"] for r in json.loads(out)] == ["_dbos_internal_queue"]


def test_long_cells_end_in_an_ellipsis(backend: Backend) -> None:
    def long_text(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_step(ctx, lambda: "x" * 200, name="long")

    ctx = backend.new_context()
    dbos.register_workflow(ctx, long_text)
    ctx.launch()
    dbos.run_workflow(ctx, long_text, workflow_id="long").get_result()
    code, out, _ = _run(backend, "workflow", "steps", "long")
    cell = out.splitlines()[1].split()[2]
    assert code == 0 and cell.endswith("…") and len(cell) == 50
    code, out, _ = _run(backend, "workflow", "get", "long")
    assert code == 0 and '"' + "x" * 58 + "…" in out
    code, out, _ = _run(backend, "--json", "workflow", "steps", "long")
    assert json.loads(out)[0]["output"] == "x" * 200  # JSON output is never cut


def test_help_names_what_each_action_does() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dbos_typed", "workflow", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "list the recorded steps of one workflow" in done.stdout
    assert "steps one workflow" not in done.stdout


def test_a_closed_output_pipe_ends_quietly(backend: Backend) -> None:
    _populated(backend)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as with `| head -0`
    where = ["--db-url", backend.url, "--schema", backend.schema]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dbos_typed", *where, "workflow", "steps", "cli-1"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")
