"""The admin server over real HTTP on localhost."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from dbos_typed._app import admin
from tests.conftest import Backend, Gate


def add_one(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n + 1, name="add")


def _call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(base + path, data=data, method=method, headers=sent)
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


def test_fork_onto_a_partition_of_a_queue(backend: Backend) -> None:
    ctx = backend.new_context(admin_server=True, admin_port=0)
    dbos.register_workflow(ctx, add_one)
    dbos.register_queue(ctx, "parts", partitioned=True)
    ctx.launch()
    base = ctx.admin_url
    assert base is not None
    dbos.run_workflow(ctx, add_one, 1, workflow_id="a1").get_result()
    fork = {"new_workflow_id": "f", "queue_name": "parts", "queue_partition_key": "k1"}
    assert _call(base, "POST", "/workflows/a1/fork", fork) == (200, {"workflow_id": "f"})
    assert dbos.retrieve_workflow[int](ctx, "f").get_result(timeout=timedelta(seconds=20)) == 2
    status = dbos.retrieve_workflow(ctx, "f").get_status()
    assert (status.queue_name, status.queue_partition_key) == ("parts", "k1")
    unkeyed = {"new_workflow_id": "g", "queue_name": "parts"}
    status_code, body = _call(base, "POST", "/workflows/a1/fork", unkeyed)
    assert status_code == 400 and "queue_partition_key" in body["error"]
    assert dbos.list_workflows(ctx, workflow_ids=["g"]) == []


def test_workflow_json_carries_every_status_field(backend: Backend) -> None:
    ctx = backend.new_context(admin_server=True, admin_port=0)
    dbos.register_workflow(ctx, add_one)
    dbos.register_queue(ctx, "later")
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


# Raw HTTP: requests no well-behaved client would send, read until the server hangs up.

Headers = Sequence[tuple[str, str]]
JSON: Headers = (("Content-Type", "application/json"),)


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _exchange(base: str, request: bytes, *, wait: float = 10) -> bytes:
    """Send `request` as it is; return all the server sent until it closed the connection.

    A server that never closes fails the test after `wait` seconds (a socket timeout).
    """
    with socket.create_connection(_address(base), timeout=wait) as conn:
        conn.sendall(request)
        return _read_until_closed(conn)


def _read_until_closed(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def _request(
    base: str, method: str, path: str, headers: Headers = (), body: bytes = b"", **host: str
) -> bytes:
    """An HTTP/1.1 request with the server's own Host, or `host=...` (`""` leaves it out)."""
    name = host.get("host", base.removeprefix("http://"))
    lines = [f"{method} {path} HTTP/1.1", *([f"Host: {name}"] if name else [])]
    lines += [f"{key}: {value}" for key, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _answer(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Status, headers (lower-case names) and decoded JSON body of an HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


def _send(
    base: str, method: str, path: str, headers: Headers = (), body: bytes = b"", **host: str
) -> tuple[int, dict[str, str], Any]:
    return _answer(_exchange(base, _request(base, method, path, headers, body, **host)))


def _post(base: str, path: str, text: str | bytes, headers: Headers = JSON) -> tuple[int, Any]:
    """POST a body given as JSON text (or bytes), with a correct Content-Length."""
    data = text.encode() if isinstance(text, str) else text
    length = [("Content-Length", str(len(data)))]
    status, _, body = _send(base, "POST", path, [*headers, *length], data)
    return status, body


def test_content_length_is_checked_before_the_body_is_read(
    served: tuple[dbos.DBOSContext, str],
) -> None:
    _, base = served
    cases: dict[str, Headers] = {
        "-1": [("Content-Length", "-1")],
        "not a number": [("Content-Length", "ten")],
        "100 GiB": [("Content-Length", "107374182400")],
        "one byte over the cap": [("Content-Length", str(admin.MAX_BODY_BYTES + 1))],
        "two lengths": [("Content-Length", "2"), ("Content-Length", "3")],
        "chunked": [("Transfer-Encoding", "chunked")],
    }
    answers = {}
    for case, headers in cases.items():
        # Headers only: the server must answer without waiting for (or holding) a body.
        status, reply_headers, body = _send(base, "POST", "/workflows", [*JSON, *headers])
        assert reply_headers["content-type"] == "application/json" and body["error"], case
        answers[case] = status
    assert answers == {
        "-1": 400,
        "not a number": 400,
        "100 GiB": 413,
        "one byte over the cap": 413,
        "two lengths": 400,
        "chunked": 411,
    }
    assert _post(base, "/workflows", " " * 1000 + "{}") == (200, [])


def test_slow_clients_are_disconnected(backend: Backend) -> None:
    ctx = backend.new_context()
    server = admin.AdminServer(ctx, "127.0.0.1", 0, limits=admin.AdminLimits(request_timeout=0.3))
    server.start()
    try:
        base = server.url
        with socket.create_connection(_address(base), timeout=10) as stalled:
            # Headers promising ten bytes, three of them, then nothing.
            stalled.sendall(_request(base, "POST", "/workflows", [*JSON, ("Content-Length", "10")]))
            stalled.sendall(b"{ }")
            status, _, body = _answer(_read_until_closed(stalled))
        assert status == 408 and "0.3 s" in body["error"]
        # Half a request line and headers, or nothing at all: closed without an answer.
        assert _exchange(base, b"POST /workflows HTTP/1.1\r\nHost: x") == b""
        assert _exchange(base, b"") == b""
        assert _send(base, "GET", "/dbos-healthz")[0] == 200
    finally:
        server.stop()


def test_every_number_is_checked(served: tuple[dbos.DBOSContext, str]) -> None:
    _, base = served
    fork, gc, timeout, listing = (
        "/workflows/a1/fork",
        "/dbos-garbage-collect",
        "/dbos-global-timeout",
        "/workflows",
    )
    cases = [
        (fork, "start_step", "1e400"),
        (fork, "start_step", "1.0"),
        (fork, "start_step", "-1"),
        (fork, "start_step", "true"),
        (fork, "start_step", str(2**40)),
        (fork, "start_step", '"3"'),
        (gc, "cutoff_epoch_timestamp_ms", "1e30"),
        (gc, "cutoff_epoch_timestamp_ms", str(10**30)),
        (gc, "cutoff_epoch_timestamp_ms", "-5"),
        (gc, "cutoff_epoch_timestamp_ms", "false"),
        (gc, "rows_threshold", "0"),
        (gc, "rows_threshold", "1e3"),
        (timeout, "cutoff_epoch_timestamp_ms", "1e30"),
        (timeout, "cutoff_epoch_timestamp_ms", str(2**70)),
        (timeout, "cutoff_epoch_timestamp_ms", "true"),
        (timeout, "cutoff_epoch_timestamp_ms", "null"),
        (listing, "limit", "1e30"),
        (listing, "limit", str(10**30)),
        (listing, "offset", "-1"),
        (listing, "offset", "true"),
        (listing, "sort_desc", '"false"'),
        (listing, "load_input", "0"),
    ]
    refused = {}
    for path, field, value in cases:
        status, body = _post(base, path, f'{{"{field}": {value}}}')
        refused[(path, field, value)] = status == 400 and repr(field) in body["error"]
    assert refused == {case: True for case in cases}
    # In range, the same fields work.
    assert _post(base, gc, '{"rows_threshold": 1000}')[0] == 204
    assert _post(base, listing, '{"limit": 2147483647, "offset": 0, "sort_desc": true}') == (
        200,
        [],
    )


def test_malformed_requests_get_clear_json_answers(
    served: tuple[dbos.DBOSContext, str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _, base = served
    bodies: dict[str, str | bytes] = {
        "malformed": "{bad",
        "truncated": '{"limit": 1',
        "NaN": '{"limit": NaN}',
        "Infinity": "Infinity",
        "nested a million deep": "[" * 1_000_000,
        "a 5000-digit number": '{"limit": ' + "9" * 5000 + "}",
        "not UTF-8": b'{"x": "\xff"}',
        "an array": "[1]",
        "a string": '"x"',
        "a list as a string filter": '{"workflow_id_prefix": ["a"]}',
        "a number as a string filter": '{"workflow_name": 5}',
        "an object as an ID list": '{"workflow_uuids": {"a": 1}}',
        "a number in an ID list": '{"workflow_uuids": [1]}',
        "a number as a time": '{"start_time": 5}',
        "a malformed time": '{"end_time": "yesterday"}',
    }
    with caplog.at_level(logging.DEBUG, logger="dbos_typed"):
        answers = {case: _post(base, "/workflows", text)[0] for case, text in bodies.items()}
        assert answers == dict.fromkeys(bodies, 400)
        assert _post(base, "/workflows/a1/fork", "[0]")[0] == 400
        assert _post(base, "/dbos-workflow-recovery", '{"x": 1}')[0] == 400
        assert _post(base, "/dbos-workflow-recovery", "[1]")[0] == 400
        wrong = [
            ("GET", "/nope", 404),
            ("PUT", "/workflows", 405),
            ("DELETE", "/workflows/a1", 405),
            ("PATCH", "/dbos-healthz", 405),
            ("GET", "/workflows", 405),
            ("POST", "/workflows/a1", 405),
            ("FROB", "/nope", 404),
            ("FROB", "/workflows", 405),
        ]
        for method, path, expected in wrong:
            status, headers, body = _send(base, method, path)
            assert (status, headers["content-type"]) == (expected, "application/json"), path
            assert body["error"]
            if expected == 405:
                assert headers["allow"] in ("GET", "POST")
        head = _answer(_exchange(base, _request(base, "HEAD", "/dbos-healthz")))
        assert head[0] == 405 and head[2] is None
        for line in (b"garbage", b"GET /x HTTX/1.1", b"GET / HTTP/1.1 extra"):
            status, headers, body = _answer(_exchange(base, line + b"\r\n\r\n"))
            assert status == 400 and "Bad request" in body["error"]
    # Nothing above is a fault of the server: no error or traceback in its log or on stderr.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
    assert "Traceback" not in capfd.readouterr().err


def test_nul_and_lone_surrogates_in_strings_are_400s(served: tuple[dbos.DBOSContext, str]) -> None:
    _, base = served
    listing = "/workflows"
    cases = [
        (listing, "workflow_id_prefix", "a\x00b"),
        (listing, "workflow_id_prefix", "\udcff"),
        (listing, "status", ["SUCCESS", "\x00"]),
        (listing, "workflow_name", "\ud800x"),
        (listing, "application_version", "v\x00"),
        (listing, "authenticated_user", ["\x00"]),
        (listing, "queue_name", "q\udcff"),
        (listing, "workflow_uuids", ["a", "b\x00"]),
        (listing, "start_time", "2024-01-01\x00"),
        ("/queues", "workflow_id_prefix", "\x00"),
        ("/workflows/a1/fork", "new_workflow_id", "\udcff"),
        ("/workflows/a1/fork", "application_version", "\x00"),
    ]
    refused = {}
    for path, field, value in cases:
        # json.dumps writes both as escapes (\u0000, \udcff), as a client would.
        status, body = _post(base, path, json.dumps({field: value}))
        refused[(path, field, repr(value))] = status == 400 and repr(field) in body["error"]
    assert refused == {(p, f, repr(v)): True for p, f, v in cases}
    assert _post(base, "/dbos-workflow-recovery", '["local", "\\u0000"]')[0] == 400
    for path in ("/workflows/a%00b", "/workflows/a%00b/steps"):
        status, _, body = _send(base, "GET", path)
        assert status == 400 and "'workflow_id'" in body["error"]
    assert _send(base, "POST", "/workflows/a%00b/cancel")[0] == 400


def test_other_origins_cannot_change_state(backend: Backend) -> None:
    gate = Gate()

    def held(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_step(ctx, lambda: "done" if gate() else "late", name="gate")

    ctx = backend.new_context(admin_server=True, admin_port=0)
    dbos.register_workflow(ctx, held)
    ctx.launch()
    base = ctx.admin_url
    assert base is not None
    handle = dbos.run_workflow(ctx, held, workflow_id="h")
    gate.wait_entered()
    # What a web page on another origin can send without asking: a "simple" POST.
    page = [("Content-Type", "text/plain"), ("Content-Length", "2")]
    for origin in ("http://evil.example", "null", "https://" + base[7:], base + ".evil.example"):
        status, _, body = _send(
            base, "POST", "/workflows/h/cancel", [("Origin", origin), *page], b"{}"
        )
        assert status == 403 and "origin" in body["error"], origin
        assert _send(base, "POST", "/dbos-global-timeout", [("Origin", origin)])[0] == 403
    assert dbos.retrieve_workflow[str](ctx, "h").get_status().status == "PENDING"
    # Reads stay open to any origin: without CORS headers the page cannot see the answer.
    assert _send(base, "GET", "/dbos-healthz", [("Origin", "http://evil.example")])[0] == 200
    # The server's own origin, under any name it answers to, may.
    port = _address(base)[1]
    own = [("Origin", f"http://localhost:{port}")]
    assert _send(base, "POST", "/workflows/h/cancel", own, host=f"localhost:{port}")[0] == 204
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result()


def test_a_body_needs_a_json_content_type(served: tuple[dbos.DBOSContext, str]) -> None:
    _, base = served
    kinds = {
        "text/plain": [("Content-Type", "text/plain")],
        "form": [("Content-Type", "application/x-www-form-urlencoded")],
        "multipart": [("Content-Type", "multipart/form-data; boundary=x")],
        "none": [],
    }
    for kind, headers in kinds.items():
        status, body = _post(base, "/workflows", "{}", headers)
        assert status == 415 and "application/json" in body["error"], kind
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        assert _post(base, "/workflows", "{}", [("Content-Type", content_type)]) == (200, [])
    # No body, no content type needed: DBOS tools cancel and resume with an empty POST.
    assert _send(base, "POST", "/workflows/missing/cancel")[0] == 404


def test_host_must_name_this_server(served: tuple[dbos.DBOSContext, str]) -> None:
    _, base = served
    port = _address(base)[1]
    answers = {
        host: _send(base, "GET", "/dbos-healthz", host=host)[0]
        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            f"LocalHost:{port}",
            f"[::1]:{port}",
            f"evil.example:{port}",
            f"127.0.0.1:{port + 1}",
            "127.0.0.1",
            f"127.0.0.1.evil.example:{port}",
            "",
        )
    }
    assert answers == {
        f"127.0.0.1:{port}": 200,
        f"localhost:{port}": 200,
        f"LocalHost:{port}": 200,
        f"[::1]:{port}": 200,
        f"evil.example:{port}": 421,
        f"127.0.0.1:{port + 1}": 421,
        "127.0.0.1": 421,
        f"127.0.0.1.evil.example:{port}": 421,
        "": 400,
    }
    rebound = _send(base, "POST", "/dbos-global-timeout", host=f"evil.example:{port}")
    assert rebound[0] == 421 and "evil.example" in rebound[2]["error"]


def test_the_token_guards_every_request(backend: Backend) -> None:
    ctx = backend.new_context(admin_server=True, admin_port=0, admin_token="s3cr3t-t0ken")
    dbos.register_workflow(ctx, add_one)
    ctx.launch()
    base = ctx.admin_url
    assert base is not None
    dbos.run_workflow(ctx, add_one, 1, workflow_id="a1").get_result()
    refused = [
        [],
        [("Authorization", "Bearer wrong")],
        [("Authorization", "Bearer s3cr3t-t0ke")],
        [("Authorization", "Bearer s3cr3t-t0ken-and-more")],
        [("Authorization", "Basic s3cr3t-t0ken")],
        [("Authorization", "s3cr3t-t0ken")],
        [("Authorization", "Bearer \xe9")],
    ]
    for headers in refused:
        for method, path in (
            ("GET", "/dbos-healthz"),
            ("GET", "/workflows/a1"),
            ("POST", "/workflows"),
        ):
            status, reply_headers, body = _send(base, method, path, headers)
            assert status == 401 and reply_headers["www-authenticate"].startswith("Bearer"), headers
            assert "a1" not in json.dumps(body)
    token = {"Authorization": "Bearer s3cr3t-t0ken"}
    assert _call(base, "GET", "/dbos-healthz", headers=token) == (200, {"status": "healthy"})
    assert _call(base, "GET", "/workflows/a1", headers=token)[1]["Output"] == "2"
    status, rows = _call(base, "POST", "/workflows", {}, headers=token)
    assert status == 200 and [r["WorkflowUUID"] for r in rows] == ["a1"]
    lower = {"Authorization": "bearer s3cr3t-t0ken"}
    assert _call(base, "POST", "/workflows/a1/fork", {"new_workflow_id": "f"}, lower)[0] == 200


@pytest.mark.parametrize("token", ["", "a b", "a\x00b", "tab\there", "line\n", "caf\xe9", 5, b"x"])
def test_admin_token_is_validated(token: object) -> None:
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.Config(app_name="x", admin_token=token)  # type: ignore[arg-type]
    assert info.value.argument == "admin_token"


def test_the_token_stays_out_of_the_config_repr() -> None:
    config = dbos.Config(app_name="x", admin_token="hunter2")
    assert config.admin_token == "hunter2" and "hunter2" not in repr(config)
    for kwargs, argument in (
        ({"admin_port": True}, "admin_port"),
        ({"admin_host": "local host"}, "admin_host"),
        ({"admin_host": "a\x00"}, "admin_host"),
    ):
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.Config(app_name="x", **kwargs)
        assert info.value.argument == argument


def test_a_non_loopback_bind_needs_a_token(backend: Backend) -> None:
    open_ctx = backend.new_context(admin_server=True, admin_port=0, admin_host="0.0.0.0")
    with pytest.raises(dbos.InitializationError, match="admin_token"):
        open_ctx.launch()
    assert open_ctx.admin_url is None
    ctx = backend.new_context(
        "guarded", admin_server=True, admin_port=0, admin_host="0.0.0.0", admin_token="t"
    )
    ctx.launch()
    assert ctx.admin_url is not None
    base = "http://127.0.0.1:" + ctx.admin_url.rsplit(":", 1)[1]
    token = [("Authorization", "Bearer t")]
    # Listening everywhere, the server cannot know its names: the token decides, and an
    # origin must be the one the request was sent to.
    assert _send(base, "GET", "/dbos-healthz", token, host="db.internal:1")[0] == 200
    assert _send(base, "GET", "/dbos-healthz", host="db.internal:1")[0] == 401
    evil = [*token, ("Origin", "http://evil.example")]
    assert _send(base, "POST", "/workflows/x/cancel", evil, host="db.internal:1")[0] == 403
    own = [*token, ("Origin", "http://db.internal:1")]
    assert _send(base, "POST", "/workflows/x/cancel", own, host="db.internal:1")[0] == 404


def test_a_taken_port_leaves_the_context_launchable(backend: Backend) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ctx = backend.new_context(admin_server=True, admin_port=port)
        dbos.register_workflow(ctx, add_one)
        with pytest.raises(dbos.InitializationError) as info:
            ctx.launch()
        assert str(port) in str(info.value) and "admin_port" in str(info.value)
        before = ctx.admin_url
        assert before is None
        with pytest.raises(dbos.InitializationError):
            ctx.launch()  # still taken
    ctx.launch()
    base = ctx.admin_url
    assert base == f"http://127.0.0.1:{port}"
    assert _call(base, "GET", "/dbos-healthz")[0] == 200
    assert dbos.run_workflow(ctx, add_one, 1).get_result() == 2
