"""`GET /deactivate`: a process stops dequeuing and scheduling, and only its admin may ask."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import dbos_typed as dbos
from tests.conftest import Backend, wait_for

TOKEN = "s3cr3t-t0ken"
WAIT = timedelta(seconds=20)


def ping(ctx: dbos.WorkflowContext) -> str:
    return "pong"


def every_second(ctx: dbos.WorkflowContext, scheduled_time: datetime) -> None:
    pass


def _get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, method="GET", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _threads(name: str) -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == name and thread.is_alive())


def _app(backend: Backend, executor: str, **overrides: Any) -> dbos.DBOSContext:
    ctx = backend.new_context(executor_id=executor, **overrides)
    dbos.register_workflow(ctx, ping, name="ping")
    dbos.register_workflow(ctx, every_second, schedule="* * * * * *")
    dbos.register_queue(ctx, "q")
    return ctx


def test_deactivate_needs_the_token_and_refuses_cross_site_requests(backend: Backend) -> None:
    ctx = _app(backend, "leaving", admin_server=True, admin_port=0, admin_token=TOKEN)
    ctx.launch()
    assert ctx.admin_url is not None
    base, auth = ctx.admin_url, {"Authorization": f"Bearer {TOKEN}"}
    refused = [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({**auth, "Sec-Fetch-Site": "cross-site"}, 403),
        ({**auth, "Origin": "http://evil.example"}, 403),
    ]
    for headers, status in refused:
        assert _get(base, "/deactivate", headers)[0] == status, headers
    assert not ctx._runtime.deactivated
    # Same-origin and tool requests (no Sec-Fetch-Site at all) are accepted.
    assert _get(base, "/deactivate", {**auth, "Sec-Fetch-Site": "same-origin"}) == (
        200,
        b"deactivated",
    )
    assert ctx._runtime.deactivated
    assert _get(base, "/deactivate", auth) == (200, b"deactivated")  # once is enough
    request = urllib.request.Request(base + "/deactivate", method="POST", headers=auth)
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("POST /deactivate was served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 405


def test_a_deactivated_process_leaves_new_work_and_ticks_to_the_others(
    backend: Backend,
) -> None:
    leaving = _app(backend, "leaving", admin_server=True, admin_port=0)
    leaving.launch()
    assert leaving.admin_url is not None
    runners, schedulers = _threads("dbos-queue-runner"), _threads("dbos-scheduler")
    assert _get(leaving.admin_url, "/deactivate") == (200, b"deactivated")
    # The answer comes once both threads have stopped: nothing more is claimed or fired.
    assert _threads("dbos-queue-runner") == runners - 1
    assert _threads("dbos-scheduler") == schedulers - 1

    handle = dbos.run_workflow(leaving, ping, queue="q", workflow_id="after")
    assert handle.get_status().status == dbos.StatusName.ENQUEUED
    # A direct start still runs here: deactivation stops taking work, not doing it.
    assert dbos.run_workflow(leaving, ping).get_result(timeout=WAIT) == "pong"

    staying = _app(backend, "staying")
    staying.launch()
    assert handle.get_result(timeout=WAIT) == "pong"
    assert handle.get_status().executor_id == "staying"
    # The schedule goes on firing, from the process still active.
    since = datetime.now(UTC)

    def fired_since() -> bool:
        ticks = dbos.list_workflows(staying, name="every_second", created_after=since)
        return any(t.status == dbos.StatusName.SUCCESS for t in ticks)

    wait_for(fired_since, seconds=WAIT.total_seconds())
