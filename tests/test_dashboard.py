"""The dashboard's server: its pages, its read endpoints, its actions and its guards."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from dbos_typed._app.dashboard.server import MAX_PAGE_SIZE, DashboardServer
from tests.conftest import Backend, Gate


def leaf(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n * 10, name="leaf_step")


def shipped(ctx: dbos.WorkflowContext, n: int) -> int:
    first = dbos.run_as_step(ctx, lambda: n + 1, name="first")
    dbos.set_event(ctx, "stage", {"done": first})
    dbos.write_stream(ctx, "log", f"line {n}")
    child = dbos.run_workflow(ctx, leaf, n, workflow_id=f"leaf-{n}").get_result()
    total = child + dbos.run_as_step(ctx, lambda: 1, name="second")
    dbos.close_stream(ctx, "log")
    return total


def inbox(ctx: dbos.WorkflowContext, topic: str) -> str:
    return dbos.recv[str](ctx, topic, timeout=timedelta(seconds=20))


def nightly(ctx: dbos.WorkflowContext, tick: datetime) -> str:
    return "ran"


class _Unredirected(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer to look at, not to follow


_OPENER = urllib.request.build_opener(_Unredirected)


class Client:
    """Requests to one server, as a script would send them."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with _OPENER.open(request, timeout=10) as response:
                raw, status, got = response.read(), response.status, response.headers
        except urllib.error.HTTPError as exc:
            raw, status, got = exc.read(), exc.code, exc.headers
        kind = got.get("Content-Type", "")
        value = json.loads(raw) if raw and kind == "application/json" else raw
        return status, value, {k.lower(): v for k, v in got.items()}


def _seeded(backend: Backend) -> dbos.DBOSContext:
    ctx = backend.new_context()
    for workflow in (leaf, shipped, inbox, nightly):
        dbos.register_workflow(ctx, workflow)
    dbos.register_queue(ctx, "slow", concurrency=3)
    ctx.launch()
    for n in (1, 2):
        dbos.run_workflow(ctx, shipped, n, workflow_id=f"ship-{n}").get_result()
    waiting = dbos.run_workflow(ctx, inbox, "greeting", workflow_id="inbox-1")
    dbos.send(ctx, "inbox-1", "hello", "greeting")
    assert waiting.get_result() == "hello"
    dbos.create_schedule(ctx, "nightly", nightly, "0 0 2 * * *")
    dbos.create_schedule(ctx, "weekly", nightly, "0 0 3 * * 1")
    dbos.pause_schedule(ctx, "weekly")
    dbos.trigger_schedule(ctx, "nightly").get_result()
    return ctx


@pytest.fixture
def dashboard(backend: Backend) -> Iterator[tuple[dbos.DBOSContext, Client]]:
    ctx = _seeded(backend)
    server = DashboardServer(ctx, port=0)
    server.start()
    try:
        yield ctx, Client(server.url)
    finally:
        server.shutdown()


def test_pages_are_served_as_files_with_a_strict_policy(
    dashboard: tuple[dbos.DBOSContext, Client],
) -> None:
    _, client = dashboard
    status, _, headers = client.call("GET", "/")
    assert (status, headers["location"]) == (308, "/dashboard/")
    assert client.call("GET", "/dashboard")[2]["location"] == "/dashboard/"
    status, page, headers = client.call("GET", "/dashboard/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'src="app.js"' in page and b"vendor/uplot/uPlot.iife.min.js" in page
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert headers["x-frame-options"] == "DENY"
    status, script, headers = client.call("GET", "/dashboard/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert b"textContent" in script
    status, chart, _ = client.call("GET", "/dashboard/vendor/uplot/uPlot.iife.min.js")
    assert status == 200 and chart.startswith(b"/*! https://github.com/leeoniya/uPlot")
    status, licence, _ = client.call("GET", "/dashboard/vendor/uplot/LICENSE")
    assert status == 200 and b"MIT License" in licence
    for path in (
        "/dashboard/nope.js",
        "/dashboard/../admin.py",
        "/dashboard/%2e%2e/admin.py",
        "/dashboard/vendor/../app.js",
        "/dashboard//etc/passwd",
    ):
        status, body, _ = client.call("GET", path)
        assert status == 404 and body["error"], path


def test_read_endpoints(dashboard: tuple[dbos.DBOSContext, Client]) -> None:
    _, client = dashboard
    status, info, _ = client.call("GET", "/dbos-dashboard-info")
    assert status == 200 and info["server"] == "dashboard"
    assert (info["actions"], info["token_required"], info["max_page_size"]) == (
        False,
        "none",
        MAX_PAGE_SIZE,
    )
    status, rows, headers = client.call(
        "POST", "/workflows", {"sort_desc": True, "limit": 2, "load_input": False}
    )
    assert status == 200 and len(rows) == 2 and headers["server-timing"].startswith("app;dur=")
    status, counts, _ = client.call("POST", "/workflow-aggregates", {"group_by": ["status"]})
    assert status == 200 and {(r["group"]["status"], r["count"]) for r in counts} == {
        ("SUCCESS", 6)
    }
    status, per_minute, _ = client.call(
        "POST",
        "/workflow-aggregates",
        {
            "group_by": ["name"],
            "bucket_ms": 60_000,
            "start_time": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "workflow_name": "shipped",
        },
    )
    assert status == 200 and sum(r["count"] for r in per_minute) == 2
    assert all(r["bucket_start_epoch_ms"] % 60_000 == 0 for r in per_minute)

    status, children, _ = client.call("POST", "/workflows", {"parent_workflow_id": "ship-1"})
    assert status == 200 and [c["WorkflowUUID"] for c in children] == ["leaf-1"]
    assert client.call("GET", "/workflows/ship-1/events")[1] == [
        {"key": "stage", "value": {"done": 2}}
    ]
    status, entries, _ = client.call("GET", "/workflows/ship-1/streams")
    assert status == 200 and [
        (e["key"], e["offset"], e["value"], e["closed"]) for e in entries
    ] == [
        ("log", 0, "line 1", False),
        ("log", 1, None, True),  # the end marker, shown as the stream's end, not as a value
    ]
    status, messages, _ = client.call("GET", "/workflows/inbox-1/messages")
    assert status == 200 and [(m["topic"], m["message"], m["consumed"]) for m in messages] == [
        ("greeting", "hello", True)
    ]
    status, steps, _ = client.call("GET", "/workflows/ship-1/steps")
    names = [s["function_name"] for s in steps]
    assert status == 200 and names[0] == "first" and names[-2:] == ["second", "DBOS.closeStream"]
    assert all(s["started_at_epoch_ms"] and s["error_name"] is None for s in steps)

    status, schedules, _ = client.call("GET", "/schedules")
    by_name = {s["schedule_name"]: s for s in schedules}
    assert status == 200 and sorted(by_name) == ["nightly", "weekly"]
    nightly_row, weekly = by_name["nightly"], by_name["weekly"]
    assert (nightly_row["paused"], weekly["paused"]) == (False, True)
    assert nightly_row["next_tick_epoch_ms"] > datetime.now(UTC).timestamp() * 1000
    assert weekly["next_tick_epoch_ms"] is None and weekly["recent_runs"] == []
    assert [r["Status"] for r in nightly_row["recent_runs"]] == ["SUCCESS"]


def test_bad_input_gets_a_clear_4xx(dashboard: tuple[dbos.DBOSContext, Client]) -> None:
    _, client = dashboard
    cases: list[tuple[str, str, Any, int, str]] = [
        ("GET", "/workflows/missing", None, 404, "missing"),
        ("GET", "/workflows/missing/steps", None, 404, "missing"),
        ("GET", "/workflows/missing/events", None, 404, "missing"),
        ("GET", "/workflows/missing/streams", None, 404, "missing"),
        ("GET", "/workflows/missing/messages", None, 404, "missing"),
        ("POST", "/workflows", {"status": "BOGUS"}, 400, "status"),
        ("POST", "/workflows", {"limit": MAX_PAGE_SIZE + 1}, 400, "limit"),
        ("POST", "/workflows", {"limit": 10**12}, 400, "limit"),
        ("POST", "/workflows", {"offset": -1}, 400, "offset"),
        ("POST", "/workflows", {"start_time": "yesterday"}, 400, "start_time"),
        ("POST", "/workflows", {"workflow_id_prefix": 7}, 400, "workflow_id_prefix"),
        ("POST", "/workflows", [1, 2], 400, "body"),
        ("POST", "/workflow-aggregates", {}, 400, "group_by"),
        ("POST", "/workflow-aggregates", {"group_by": ["colour"]}, 400, "group_by"),
        ("POST", "/workflow-aggregates", {"group_by": "status"}, 400, "group_by"),
        ("POST", "/workflow-aggregates", {"bucket_ms": 5}, 400, "bucket_ms"),
        ("POST", "/workflow-aggregates", {"bucket_ms": 1.5}, 400, "bucket_ms"),
        ("GET", "/workflows", None, 405, "POST"),
        ("GET", "/workflows/ship-1/cancel", None, 405, "POST"),
        ("POST", "/schedules", {}, 405, "GET"),
        ("GET", "/nope", None, 404, "no route"),
    ]
    answers = {}
    for method, path, body, _, _ in cases:
        status, answer, headers = client.call(method, path, body)
        assert headers["content-type"] == "application/json", path
        answers[(method, path, json.dumps(body))] = (status, answer["error"])
    for method, path, body, expected, mention in cases:
        status, error = answers[(method, path, json.dumps(body))]
        assert status == expected and mention in error and "Traceback" not in error, (path, body)


def test_actions_are_off_unless_allowed(backend: Backend) -> None:
    gate = Gate()

    def held(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_step(ctx, lambda: "done" if gate() else "late", name="gate")

    ctx = backend.new_context()
    dbos.register_workflow(ctx, held)
    dbos.register_workflow(ctx, shipped)
    dbos.register_workflow(ctx, leaf)
    ctx.launch()
    handle = dbos.run_workflow(ctx, held, workflow_id="held")
    gate.wait_entered()
    dbos.run_workflow(ctx, shipped, 5, workflow_id="ship-5").get_result()

    read_only = DashboardServer(ctx, port=0)
    read_only.start()
    try:
        assert read_only.token is None and read_only.page_url.endswith("/dashboard/")
        refused = Client(read_only.url).call("POST", "/workflows/held/cancel")
        assert refused[0] == 403 and "--allow-actions" in refused[1]["error"]
        for path in ("/dbos-garbage-collect", "/dbos-global-timeout", "/dbos-workflow-recovery"):
            assert Client(read_only.url).call("POST", path, {})[0] == 404, path
    finally:
        read_only.shutdown()

    server = DashboardServer(ctx, port=0, allow_actions=True)
    server.start()
    try:
        assert server.token is not None and server.page_url.endswith("#token=" + server.token)
        anonymous, wrong = Client(server.url), Client(server.url, "not-the-token")
        assert anonymous.call("GET", "/dbos-dashboard-info")[1]["actions"] is True
        # Reads stay open on loopback; every change needs the token.
        assert anonymous.call("GET", "/workflows/held")[0] == 200
        for client in (anonymous, wrong):
            status, _, headers = client.call("POST", "/workflows/held/cancel")
            assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        owner = Client(server.url, server.token)
        evil = {"Origin": "http://evil.example"}
        assert owner.call("POST", "/workflows/held/cancel", None, evil)[0] == 403
        assert dbos.retrieve_workflow[str](ctx, "held").get_status().status == "PENDING"

        assert owner.call("POST", "/workflows/held/cancel")[0] == 204
        gate.open()
        with pytest.raises(dbos.AwaitedWorkflowCancelledError):
            handle.get_result()
        assert owner.call("POST", "/workflows/held/resume")[0] == 204
        status, forked, _ = owner.call("POST", "/workflows/ship-5/fork", {"start_step": 2})
        assert status == 200 and forked["workflow_id"] != "ship-5"
        result = dbos.retrieve_workflow[int](ctx, forked["workflow_id"]).get_result()
        assert result == 51
        assert owner.call("POST", "/workflows/ship-5/fork", {"start_step": -1})[0] == 400
        assert owner.call("POST", "/workflows/missing/cancel")[0] == 404
    finally:
        server.shutdown()


def test_a_non_loopback_host_needs_every_request_to_carry_the_token(backend: Backend) -> None:
    ctx = backend.new_context()
    ctx.launch()
    for allow in (False, True):
        with pytest.raises(dbos.InitializationError, match="--require-token"):
            DashboardServer(ctx, "0.0.0.0", 0, allow_actions=allow)
    server = DashboardServer(ctx, "0.0.0.0", 0, require_token=True)
    server.start()
    try:
        base = "http://127.0.0.1:" + server.url.rsplit(":", 1)[1]
        assert server.token is not None
        assert Client(base).call("POST", "/workflows", {})[0] == 401
        assert Client(base).call("GET", "/dashboard/")[0] == 200  # the files hold no data
        info = Client(base).call("GET", "/dbos-dashboard-info")[1]
        assert (info["token_required"], info["actions"]) == ("all", False)
        assert Client(base, server.token).call("POST", "/workflows", {})[0] == 200
        assert Client(base, server.token).call("POST", "/workflows/x/cancel")[0] == 403
    finally:
        server.shutdown()


def test_the_admin_server_mounts_the_dashboard(backend: Backend) -> None:
    ctx = backend.new_context(admin_server=True, admin_port=0)
    dbos.register_workflow(ctx, leaf)
    ctx.launch()
    assert ctx.admin_url is not None
    dbos.run_workflow(ctx, leaf, 1, workflow_id="l1").get_result()
    client = Client(ctx.admin_url)
    status, page, _ = client.call("GET", "/dashboard/")
    assert status == 200 and b"app.js" in page
    info = client.call("GET", "/dbos-dashboard-info")[1]
    assert (info["server"], info["actions"], info["token_required"]) == (
        "admin server",
        False,
        "none",
    )
    status, counts, _ = client.call("POST", "/workflow-aggregates", {"group_by": ["name"]})
    assert status == 200 and [(r["group"]["name"], r["count"]) for r in counts] == [("leaf", 1)]
    # The admin server's own maintenance routes are still there.
    assert client.call("POST", "/dbos-workflow-recovery", [])[0] == 200

    guarded = backend.new_context("guarded", admin_server=True, admin_port=0, admin_token="t0k")
    guarded.launch()
    assert guarded.admin_url is not None
    anonymous = Client(guarded.admin_url)
    assert anonymous.call("GET", "/dashboard/")[0] == 200
    assert anonymous.call("GET", "/dbos-dashboard-info")[1]["actions"] is True
    assert anonymous.call("GET", "/workflows/l1/events")[0] == 401
    assert Client(guarded.admin_url, "t0k").call("GET", "/workflows/l1/events")[0:2] == (200, [])


def test_the_cli_serves_the_dashboard(backend: Backend) -> None:
    ctx = _seeded(backend)
    ctx.shutdown()
    command = [
        sys.executable,
        "-m",
        "dbos_typed",
        "--db-url",
        backend.url,
        "--schema",
        backend.schema,
        "dashboard",
        "--port",
        "0",
        "--allow-actions",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        try:
            labels = [line.split(":", 1)[0] for line in lines]
            assert labels == ["dashboard", "actions", "token", "open"], lines
            url = lines[0].split(": ", 1)[1].strip().removesuffix("/dashboard/")
            assert url.startswith("http://127.0.0.1:")
            token = lines[2].split(": ", 1)[1].strip()
            assert lines[3].strip().endswith(f"/dashboard/#token={token}")
            client = Client(url, token)
            status, rows, _ = client.call("POST", "/workflows", {"workflow_id_prefix": "ship-"})
            assert status == 200 and [r["WorkflowUUID"] for r in rows] == ["ship-1", "ship-2"]
            assert Client(url).call("POST", "/workflows/ship-1/cancel")[0] == 401
        finally:
            process.terminate()
        assert process.wait(timeout=20) == 0
        assert process.stderr is not None and "Traceback" not in process.stderr.read()


def test_the_cli_refuses_bad_dashboard_options(backend: Backend) -> None:
    backend.new_context().launch()
    base = [sys.executable, "-m", "dbos_typed", "--db-url", backend.url, "--schema"]
    for extra, message in (
        (["--port", "70000"], "--port"),
        (["--host", "0.0.0.0", "--allow-actions"], "--require-token"),
    ):
        done = subprocess.run(
            [*base, backend.schema, "dashboard", *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
