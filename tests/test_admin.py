"""The admin server over real HTTP on localhost."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, Gate


def add_one(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n + 1, name="add")


def _call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


@pytest.fixture
def served(backend: Backend) -> tuple[dbos.DBOSContext, str]:
    ctx = backend.new_context(admin_server=True, admin_port=0)
    dbos.register_workflow(ctx, add_one)
    assert ctx.admin_url is None
    ctx.launch()
    assert ctx.admin_url is not None and ctx.admin_url.startswith("http://127.0.0.1:")
    return ctx, ctx.admin_url


def test_health_and_unknown_routes(served: tuple[dbos.DBOSContext, str]) -> None:
    _, base = served
    assert _call(base, "GET", "/dbos-healthz") == (200, {"status": "healthy"})
    status, body = _call(base, "GET", "/nope")
    assert status == 404 and "no route" in body["error"]


def test_list_get_steps_fork(served: tuple[dbos.DBOSContext, str]) -> None:
    ctx, base = served
    dbos.run_workflow(ctx, add_one, 1, workflow_id="a1").get_result()
    dbos.run_workflow(ctx, add_one, 2, workflow_id="a2").get_result()
    status, rows = _call(base, "POST", "/workflows", {"sort_desc": True, "limit": 1})
    assert status == 200 and [r["WorkflowUUID"] for r in rows] == ["a2"]
    assert rows[0]["Status"] == "SUCCESS" and rows[0]["Output"] == "3" and rows[0]["Input"] == "2"
    status, one = _call(base, "GET", "/workflows/a1")
    assert status == 200 and one["WorkflowName"] == "add_one" and one["Output"] == "2"
    assert {
        k: one[k] for k in ("QueuePartitionKey", "WorkflowClassName", "AuthenticatedRoles")
    } == {
        "QueuePartitionKey": None,
        "WorkflowClassName": None,
        "AuthenticatedRoles": None,
    }
    assert _call(base, "GET", "/workflows/missing")[0] == 404
    status, steps = _call(base, "GET", "/workflows/a1/steps")
    assert status == 200 and [(s["function_id"], s["function_name"]) for s in steps] == [(0, "add")]
    status, forked = _call(
        base, "POST", "/workflows/a1/fork", {"start_step": 0, "new_workflow_id": "f"}
    )
    assert (status, forked) == (200, {"workflow_id": "f"})
    assert dbos.retrieve_workflow[int](ctx, "f").get_result(timeout=timedelta(seconds=20)) == 2
    status, body = _call(base, "POST", "/workflows", {"status": "BOGUS"})
    assert status == 400 and "status" in body["error"]


def test_workflow_json_carries_every_status_field(backend: Backend) -> None:
    ctx = backend.new_context(admin_server=True, admin_port=0)
    dbos.register_workflow(ctx, add_one)
    dbos.new_workflow_queue(ctx, "later")
    debouncer = dbos.new_debouncer(ctx, add_one, max_wait=timedelta(hours=2))
    ctx.launch()
    base = ctx.admin_url
    assert base is not None
    hour = timedelta(hours=1)
    dbos.run_workflow(ctx, add_one, 1, workflow_id="a1").get_result()
    dbos.fork_workflow(ctx, "a1", 0, new_workflow_id="f").get_result()
    dbos.set_workflow_attributes(ctx, "a1", {"team": "payments"})
    backend.query(
        "UPDATE {s}.workflow_status SET schedule_name = 'nightly' WHERE workflow_uuid = 'a1'"
    )
    dbos.run_workflow(ctx, add_one, 2, workflow_id="d", queue="later", delay=hour)
    burst = debouncer.debounce(ctx, "k", 3, delay=hour)
    by_id = {s.workflow_id: s for s in dbos.list_workflows(ctx)}

    def ms(value: datetime | None) -> str:
        assert value is not None
        return str(int(value.timestamp() * 1000))

    keys = (
        "WasForkedFrom",
        "ForkedFrom",
        "DelayUntilEpochMS",
        "Attributes",
        "ScheduleName",
        "ApplicationName",
        "Serialization",
        "IsDebounced",
        "DebounceDeadlineEpochMS",
    )
    rows = {r["WorkflowUUID"]: r for r in _call(base, "POST", "/workflows", {})[1]}
    assert {k: rows["a1"][k] for k in keys} == {
        "WasForkedFrom": True,
        "ForkedFrom": None,
        "DelayUntilEpochMS": None,
        "Attributes": '{"team":"payments"}',
        "ScheduleName": "nightly",
        "ApplicationName": "test-app",
        "Serialization": "portable_json",
        "IsDebounced": False,
        "DebounceDeadlineEpochMS": None,
    }
    assert (rows["f"]["WasForkedFrom"], rows["f"]["ForkedFrom"]) == (False, "a1")
    delayed = _call(base, "GET", "/workflows/d")[1]
    assert delayed["Status"] == "DELAYED"
    assert delayed["DelayUntilEpochMS"] == ms(by_id["d"].delay_until)
    debounced = _call(base, "GET", f"/workflows/{burst.workflow_id}")[1]
    assert debounced["IsDebounced"] is True
    assert debounced["DebounceDeadlineEpochMS"] == ms(by_id[burst.workflow_id].debounce_deadline)
    assert debounced["DelayUntilEpochMS"] == ms(by_id[burst.workflow_id].delay_until)


def test_cancel_resume_recovery_and_timeouts(backend: Backend) -> None:
    gate = Gate()

    def gated(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return dbos.run_as_step(ctx, lambda: "ok", name="after")

    ctx = backend.new_context(admin_server=True, admin_port=0)
    dbos.register_workflow(ctx, gated)
    ctx.launch()
    base = ctx.admin_url
    assert base is not None
    handle = dbos.run_workflow(ctx, gated, workflow_id="g")
    gate.wait_entered()
    assert _call(base, "POST", "/workflows/g/cancel")[0] == 204
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result()
    assert _call(base, "GET", "/workflows/g")[1]["Status"] == "CANCELLED"
    assert _call(base, "POST", "/workflows/g/resume")[0] == 204
    assert dbos.retrieve_workflow[str](ctx, "g").get_result(timeout=timedelta(seconds=20)) == "ok"

    status, recovered = _call(base, "POST", "/dbos-workflow-recovery", ["local"])
    assert (status, recovered) == (200, [])
    assert _call(base, "POST", "/dbos-workflow-recovery", {"x": 1})[0] == 400
    cutoff = int((datetime.now(UTC) + timedelta(seconds=1)).timestamp() * 1000)
    body = {"cutoff_epoch_timestamp_ms": cutoff}
    assert _call(base, "POST", "/dbos-global-timeout", body)[0] == 204
    assert _call(base, "POST", "/dbos-garbage-collect", body)[0] == 204
    assert _call(base, "POST", "/workflows", {})[1] == []
    status, queues = _call(base, "GET", "/dbos-workflow-queues-metadata")
    assert status == 200 and queues[0]["name"] == "_dbos_internal_queue"


def test_admin_server_stops_at_shutdown(backend: Backend) -> None:
    ctx = backend.new_context(admin_server=True, admin_port=0)
    ctx.launch()
    base = ctx.admin_url
    assert base is not None
    assert _call(base, "GET", "/dbos-healthz")[0] == 200
    ctx.shutdown()
    assert ctx.admin_url is None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base + "/dbos-healthz", timeout=2)
