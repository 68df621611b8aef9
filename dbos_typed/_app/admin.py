"""The optional admin HTTP server: health, recovery and workflow management over JSON.

It speaks the endpoints and field names of the DBOS Go SDK's admin server, so tools written
for it work here. It is off by default and binds to 127.0.0.1 unless configured otherwise.

Every request passes these checks in order, and the first that fails answers it, in JSON:

1. Host names this server (one of its loopback names, its configured host or its address,
   with its port), else 421: a page that reached it through DNS rebinding names its own.
2. Origin, on every method but GET, is absent or this server's own, else 403: browsers
   name the page's origin, tools send none, so no web page can change state here.
3. With `Config.admin_token`, `Authorization: Bearer <token>`, else 401 (GETs too: they
   show workflow inputs and outputs).
4. A route for the path (404) and the method (405).
5. A body, if any: `Content-Type: application/json` (415), a valid Content-Length (400;
   chunked bodies get 411) of at most `MAX_BODY_BYTES` (413), arriving within
   `REQUEST_TIMEOUT_SECONDS` (408), holding UTF-8 JSON (400).
6. Each field of the body: its JSON type, and for numbers a range (400 naming the field).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic_core import to_jsonable_python

from dbos_typed._app import admin_fields as read
from dbos_typed._core.context import DBOSContext
from dbos_typed._core.runtime import now_ms
from dbos_typed._core.status import WorkflowStatus
from dbos_typed._management.listing import get_workflow_steps, list_workflows
from dbos_typed._management.steering import (
    cancel_workflow,
    fork_workflow,
    garbage_collect,
    global_timeout,
    resume_workflow,
)
from dbos_typed._sysdb import _management as sysdb
from dbos_typed._sysdb._rows import INTERNAL_QUEUE
from dbos_typed.errors import (
    DBOSError,
    InitializationError,
    InvalidOptionError,
    NonExistentWorkflowError,
)

logger = logging.getLogger("dbos_typed")

#: The largest request body read, in bytes; DBOS tools send a few hundred.
MAX_BODY_BYTES = 1 << 20
#: Seconds a client has for each read of its request line and headers, and for its whole
#: body; a slower one is disconnected, so it cannot hold a handler thread.
REQUEST_TIMEOUT_SECONDS = 5.0

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# A Host header or an origin's authority: a name or bracketed IPv6 address, then a port.
_AUTHORITY = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._~-]+)(?::([0-9]{1,5}))?")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")

_Route = Callable[["_Handler", dict[str, str], Any], tuple[int, Any]]


@dataclass(frozen=True, slots=True)
class AdminLimits:
    """What one request may cost the server.

    Attributes:
        max_body_bytes: The largest body read; a larger one is refused unread (413).
        request_timeout: Seconds allowed for each read of the request line and headers,
            and for the whole body; a slower client is disconnected.
    """

    max_body_bytes: int = MAX_BODY_BYTES
    request_timeout: float = REQUEST_TIMEOUT_SECONDS


class _Refusal(Exception):
    """A request answered with an error status without running its route."""

    def __init__(
        self, status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


def _ms(value: datetime | None) -> str | None:
    return None if value is None else str(int(value.timestamp() * 1000))


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(to_jsonable_python(value), separators=(",", ":"))


def workflow_json(status: WorkflowStatus) -> dict[str, Any]:
    """A workflow in the admin API's shape (PascalCase keys, epoch-ms strings).

    The keys are those of DBOS's workflow output; the last three (serialization and
    debounce) have no DBOS key and are named in the same style.
    """
    return {
        "WorkflowUUID": status.workflow_id,
        "Status": status.status.value,
        "WorkflowName": status.name,
        "WorkflowClassName": status.class_name,
        "WorkflowConfigName": status.config_name,
        "AuthenticatedUser": status.authenticated_user,
        "AssumedRole": status.assumed_role,
        "AuthenticatedRoles": _json_text(list(status.authenticated_roles) or None),
        "Input": _json_text(status.input),
        "Output": _json_text(status.output),
        "Error": None if status.error is None else json.dumps(status.error.message),
        "CreatedAt": _ms(status.created_at),
        "UpdatedAt": _ms(status.updated_at),
        "QueueName": status.queue_name,
        "ApplicationVersion": status.application_version,
        "ExecutorID": status.executor_id,
        "WorkflowTimeoutMS": (
            None if status.timeout is None else str(int(status.timeout.total_seconds() * 1000))
        ),
        "WorkflowDeadlineEpochMS": _ms(status.deadline),
        "DeduplicationID": status.deduplication_id,
        "Priority": str(status.priority),
        "QueuePartitionKey": status.queue_partition_key,
        "ForkedFrom": status.forked_from,
        "WasForkedFrom": status.was_forked_from,
        "ParentWorkflowID": status.parent_workflow_id,
        "DequeuedAt": _ms(status.started_at),
        "DelayUntilEpochMS": _ms(status.delay_until),
        "CompletedAt": _ms(status.completed_at),
        "RecoveryAttempts": str(status.recovery_attempts),
        "Attributes": _json_text(status.attributes),
        "ScheduleName": status.schedule_name,
        "ApplicationName": status.application_name,
        "Serialization": status.serialization,
        "IsDebounced": status.is_debounced,
        "DebounceDeadlineEpochMS": _ms(status.debounce_deadline),
    }


# The routes. Each gets the path's parameters (checked as text) and the parsed body.


def _list(handler: _Handler, body: Any, *, queues_only: bool) -> tuple[int, Any]:
    fields = read.json_object(body)
    found = list_workflows(
        handler.ctx,
        workflow_ids=read.text_list(fields, "workflow_uuids") or None,
        user=read.texts(fields, "authenticated_user"),
        created_after=read.time_filter(fields, "start_time"),
        created_before=read.time_filter(fields, "end_time"),
        status=read.texts(fields, "status"),
        application_version=read.texts(fields, "application_version"),
        name=read.texts(fields, "workflow_name"),
        limit=read.count(fields, "limit"),
        offset=read.count(fields, "offset"),
        sort_desc=read.flag(fields, "sort_desc", default=False),
        workflow_id_prefix=read.text_field(fields, "workflow_id_prefix"),
        load_input=read.flag(fields, "load_input", default=True),
        load_output=read.flag(fields, "load_output", default=True),
        queue_name=read.texts(fields, "queue_name"),
        queues_only=queues_only,
        all_applications=True,
    )
    return HTTPStatus.OK, [workflow_json(s) for s in found]


def _get_workflow(handler: _Handler, params: dict[str, str], _: Any) -> tuple[int, Any]:
    found = list_workflows(handler.ctx, workflow_ids=[params["id"]], all_applications=True)
    if not found:
        raise NonExistentWorkflowError(params["id"])
    return HTTPStatus.OK, workflow_json(found[0])


def _steps(handler: _Handler, params: dict[str, str], _: Any) -> tuple[int, Any]:
    return HTTPStatus.OK, [
        {
            "function_id": s.step_id,
            "function_name": s.name,
            "child_workflow_id": s.child_workflow_id,
            "output": _json_text(s.output),
            "error": None if s.error is None else s.error.message,
            "started_at_epoch_ms": _ms(s.started_at),
            "completed_at_epoch_ms": _ms(s.completed_at),
        }
        for s in get_workflow_steps(handler.ctx, params["id"])
    ]


def _fork(handler: _Handler, params: dict[str, str], body: Any) -> tuple[int, Any]:
    fields = read.json_object(body)
    handle = fork_workflow(
        handler.ctx,
        params["id"],
        read.count(fields, "start_step") or 0,
        new_workflow_id=read.text_field(fields, "new_workflow_id") or None,
        application_version=read.text_field(fields, "application_version") or None,
    )
    return HTTPStatus.OK, {"workflow_id": handle.workflow_id}


def _recover(handler: _Handler, _: dict[str, str], body: Any) -> tuple[int, Any]:
    if not isinstance(body, list):
        raise InvalidOptionError("body", "expected a JSON array of executor IDs")
    executor_ids = [read.text(entry, "body") for entry in body]
    runtime = handler.ctx._runtime
    recovered: list[str] = []
    for executor_id in executor_ids:
        recovered += runtime.store.recover_pending(
            executor_id, runtime.application_version, runtime.app_name, now_ms()
        )
    runtime.announce_work()
    return HTTPStatus.OK, recovered


def _queues_metadata(handler: _Handler, _: dict[str, str], __: Any) -> tuple[int, Any]:
    queues = [{"name": INTERNAL_QUEUE}]
    for row in sysdb.list_queues(handler.ctx._runtime.store, None):
        entry: dict[str, Any] = {"name": row.name, "priorityEnabled": row.priority_enabled}
        if row.worker_concurrency is not None:
            entry["workerConcurrency"] = row.worker_concurrency
        if row.concurrency is not None:
            entry["concurrency"] = row.concurrency
        if row.rate_limit_max is not None:
            entry["rateLimit"] = {"limit": row.rate_limit_max, "period": row.rate_limit_period_sec}
        entry["partitionQueue"] = row.partition_queue
        queues.append(entry)
    return HTTPStatus.OK, queues


def _garbage_collect(handler: _Handler, _: dict[str, str], body: Any) -> tuple[int, Any]:
    fields = read.json_object(body)
    cutoff = read.instant(fields, "cutoff_epoch_timestamp_ms")
    keep_rows = read.count(fields, "rows_threshold", low=1)
    if cutoff is None and keep_rows is None:
        raise InvalidOptionError("cutoff_epoch_timestamp_ms", "give it, rows_threshold, or both")
    garbage_collect(handler.ctx, cutoff=cutoff, keep_rows=keep_rows)
    return HTTPStatus.NO_CONTENT, None


def _global_timeout(handler: _Handler, _: dict[str, str], body: Any) -> tuple[int, Any]:
    cutoff = read.instant(read.json_object(body), "cutoff_epoch_timestamp_ms")
    if cutoff is None:
        raise InvalidOptionError("cutoff_epoch_timestamp_ms", "expected epoch milliseconds")
    global_timeout(handler.ctx, cutoff)
    return HTTPStatus.NO_CONTENT, None


def _no_content(action: Callable[[DBOSContext, str], object]) -> _Route:
    def route(handler: _Handler, params: dict[str, str], _: Any) -> tuple[int, Any]:
        action(handler.ctx, params["id"])
        return HTTPStatus.NO_CONTENT, None

    return route


_ROUTES: list[tuple[str, re.Pattern[str], _Route]] = [
    ("GET", re.compile(r"/dbos-healthz"), lambda h, p, b: (HTTPStatus.OK, {"status": "healthy"})),
    ("POST", re.compile(r"/dbos-workflow-recovery"), _recover),
    ("GET", re.compile(r"/dbos-workflow-queues-metadata"), _queues_metadata),
    ("POST", re.compile(r"/dbos-garbage-collect"), _garbage_collect),
    ("POST", re.compile(r"/dbos-global-timeout"), _global_timeout),
    ("POST", re.compile(r"/workflows"), lambda h, p, b: _list(h, b, queues_only=False)),
    ("POST", re.compile(r"/queues"), lambda h, p, b: _list(h, b, queues_only=True)),
    ("GET", re.compile(r"/workflows/(?P<id>[^/]+)"), _get_workflow),
    ("GET", re.compile(r"/workflows/(?P<id>[^/]+)/steps"), _steps),
    ("POST", re.compile(r"/workflows/(?P<id>[^/]+)/cancel"), _no_content(cancel_workflow)),
    ("POST", re.compile(r"/workflows/(?P<id>[^/]+)/resume"), _no_content(resume_workflow)),
    ("POST", re.compile(r"/workflows/(?P<id>[^/]+)/fork"), _fork),
]


# The HTTP layer: who may call, and what a request may cost.


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise _Refusal(HTTPStatus.BAD_REQUEST, "the body is not UTF-8 text") from None
    except RecursionError:
        raise _Refusal(HTTPStatus.BAD_REQUEST, "the body's JSON nests too deeply") from None
    except ValueError as exc:  # malformed JSON, NaN or Infinity, an int of 4300+ digits
        raise _Refusal(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {exc}") from None


def _authority(value: str) -> tuple[str, int] | None:
    """The (name, port) a Host header or an origin names; None if it is malformed."""
    match = _AUTHORITY.fullmatch(value.strip().lower())
    return None if match is None else (match[1], int(match[2] or 80))


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True, slots=True)
class _Policy:
    """What one server accepts; shared, read-only, by its handler threads."""

    token: bytes | None
    # The (name, port) pairs a Host header may give; None when the server listens on every
    # address and cannot know its names (it then requires a token, and the token decides).
    hosts: frozenset[tuple[str, int]] | None
    limits: AdminLimits


class _Handler(BaseHTTPRequestHandler):
    ctx: DBOSContext  # these three are set on the subclass made for each server
    policy: _Policy
    timeout = REQUEST_TIMEOUT_SECONDS  # applied to the socket by StreamRequestHandler
    # HTTP/1.0 (the base class's default): one request per connection, so a refused request
    # whose body was left unread cannot be taken for the next one.
    protocol_version = "HTTP/1.0"
    # The version assumed until the request line is parsed; the base class's HTTP/0.9
    # would answer a malformed line with a bare body and no status line.
    default_request_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("admin server: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def parse_request(self) -> bool:
        # Other methods go through the same dispatcher, so they get a JSON 405 (or 404, or
        # whichever check fails first) instead of the base class's HTML 501.
        if not super().parse_request():
            return False
        if self.command in ("GET", "POST"):
            return True
        self._dispatch()
        return False

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a request the base class could not parse, in JSON like every answer."""
        self.log_error("code %d, message %s", code, message)
        text = message or HTTPStatus(code).phrase
        self._reply(code, {"error": text}, {"Connection": "close"})

    def _dispatch(self) -> None:
        try:
            status, payload = self._answer()
        except _Refusal as refusal:
            headers = {"Connection": "close", **refusal.headers}
            self._reply(refusal.status, {"error": str(refusal)}, headers)
            return
        self._reply(status, payload)

    def _answer(self) -> tuple[int, Any]:
        self._check_host()
        self._check_origin()
        self._check_token()
        route, params = self._route()
        body = self._body()
        return self._run(route, params, body)

    def _check_host(self) -> None:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            raise _Refusal(HTTPStatus.BAD_REQUEST, "expected one Host header")
        allowed = self.policy.hosts
        if allowed is not None and _authority(hosts[0]) not in allowed:
            raise _Refusal(
                HTTPStatus.MISDIRECTED_REQUEST, f"this server does not answer to {hosts[0]!r}"
            )

    def _check_origin(self) -> None:
        # Browsers send Origin with every cross-origin request that can change state; tools
        # send none. GETs are left alone: without CORS headers no page can read the answer.
        origin = self.headers.get("Origin")
        if self.command == "GET" or origin is None or self._own_origin(origin):
            return
        raise _Refusal(HTTPStatus.FORBIDDEN, f"requests from origin {origin!r} are refused")

    def _own_origin(self, origin: str) -> bool:
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if parts.scheme != "http" or "@" in parts.netloc or parts.path or parts.query:
            return False
        if self.policy.hosts is None:
            # Names unknown: the origin must be the one the request itself was sent to.
            return parts.netloc.lower() == str(self.headers.get("Host", "")).strip().lower()
        return _authority(parts.netloc) in self.policy.hosts

    def _check_token(self) -> None:
        expected = self.policy.token
        if expected is None:
            return
        scheme, _, supplied = str(self.headers.get("Authorization", "")).strip().partition(" ")
        # compare_digest takes as long whatever the first differing byte: no timing oracle.
        given = supplied.strip().encode("latin-1", "replace")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
            raise _Refusal(
                HTTPStatus.UNAUTHORIZED,
                "this server requires Authorization: Bearer <admin_token>",
                {"WWW-Authenticate": 'Bearer realm="dbos-admin"'},
            )

    def _route(self) -> tuple[_Route, dict[str, str]]:
        path = urlsplit(self.path).path
        allowed: list[str] = []
        for method, pattern, route in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method == self.command:
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
            allowed.append(method)
        if allowed:
            raise _Refusal(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{self.command} is not allowed on {path}; use {' or '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        raise _Refusal(HTTPStatus.NOT_FOUND, f"no route for {self.command} {path}")

    def _body(self) -> Any:
        """The request's JSON body (None without one), within the size and time limits."""
        if "Transfer-Encoding" in self.headers:
            raise _Refusal(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not a chunked body")
        length = self._content_length()
        if length == 0:
            return None
        if "Content-Type" not in self.headers or (
            self.headers.get_content_type() != "application/json"
        ):
            # Also a guard: a page can send text/plain anywhere without asking, but not JSON.
            raise _Refusal(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json"
            )
        limit = self.policy.limits.max_body_bytes
        if length > limit:
            raise _Refusal(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body has {length} bytes; at most {limit} are accepted",
            )
        return _parse_json(self._read(length))

    def _content_length(self) -> int:
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return 0
        if len(set(values)) != 1 or not _CONTENT_LENGTH.fullmatch(values[0].strip()):
            raise _Refusal(
                HTTPStatus.BAD_REQUEST, "invalid Content-Length: expected one non-negative integer"
            )
        return int(values[0])

    def _read(self, length: int) -> bytes:
        # One deadline for the whole body, and one socket read at a time against it: a
        # client trickling a byte at a time cannot hold the thread past the timeout.
        timeout = self.policy.limits.request_timeout
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        remaining = length
        try:
            while remaining:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(remaining, 1 << 16))
                if not chunk:
                    raise _Refusal(HTTPStatus.BAD_REQUEST, "the body ended before Content-Length")
                chunks.append(chunk)
                remaining -= len(chunk)
        except TimeoutError:
            raise _Refusal(
                HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {timeout:g} s"
            ) from None
        finally:
            self.connection.settimeout(timeout)
        return b"".join(chunks)

    def _run(self, route: _Route, params: dict[str, str], body: Any) -> tuple[int, Any]:
        try:
            checked = {key: read.text(value, "workflow_id") for key, value in params.items()}
            return route(self, checked, body)
        except NonExistentWorkflowError as exc:
            return HTTPStatus.NOT_FOUND, {"error": str(exc)}
        except InvalidOptionError as exc:
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        except DBOSError as exc:
            logger.warning("admin server: %s %s failed: %s", self.command, self.path, exc)
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}
        except Exception:
            # A defect here, not in the request: the log gets the traceback, the client not.
            logger.exception("admin server: %s %s failed", self.command, self.path)
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; see the log"}

    def _reply(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is routine; anything else is a defect worth a
        # traceback in the log (never on stderr, where the base class prints it).
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logger.debug("admin server: connection from %s ended: %s", client_address, error)
        else:
            logger.error("admin server: unexpected error", exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False


def _addresses(host: str, port: int, family: socket.AddressFamily) -> list[str]:
    """The addresses binding to `host` may use."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, family, socket.SOCK_STREAM)
    except OSError as exc:
        raise InitializationError(
            f"the admin server cannot resolve admin_host {host!r}: {exc}"
        ) from exc
    return [str(info[4][0]).split("%", 1)[0] for info in infos]


def _loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


class AdminServer:
    """Serves the admin endpoints for one context on a background thread.

    The port is bound when it is made, so a taken port is known before anything starts.
    """

    def __init__(
        self,
        ctx: DBOSContext,
        host: str,
        port: int,
        *,
        token: str | None = None,
        limits: AdminLimits = AdminLimits(),
    ) -> None:
        """Bind to `host`:`port`.

        Raises:
            InitializationError: the host is not a loopback one and no token is set, the
                host does not resolve, or the port cannot be bound (taken, or not allowed).
        """
        family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
        if token is None and not all(_loopback(a) for a in _addresses(host, port, family)):
            raise InitializationError(
                f"the admin server would listen on {host!r}, which is not a loopback address, "
                "without a token: set admin_token, or keep admin_host on 127.0.0.1"
            )
        server_class = _Server6 if family == socket.AF_INET6 else _Server
        try:
            self._server = server_class((host.strip("[]"), port), _Handler)
        except OSError as exc:
            raise InitializationError(
                f"the admin server cannot listen on {host}:{port} (admin_port {port}): "
                f"{exc.strerror or exc}; free the port or choose another admin_port"
            ) from exc
        bound, self._port = str(self._server.server_address[0]), int(self._server.server_address[1])
        self._host = _bracketed(bound)
        policy = _Policy(
            token=None if token is None else token.encode("ascii"),
            hosts=_allowed_hosts(host, bound, self._port),
            limits=limits,
        )
        attributes = {"ctx": ctx, "policy": policy, "timeout": limits.request_timeout}
        self._server.RequestHandlerClass = type("AdminHandler", (_Handler,), attributes)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dbos-admin", daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL the server listens on."""
        return f"http://{self._host}:{self._port}"

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (if it started) and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _allowed_hosts(host: str, bound: str, port: int) -> frozenset[tuple[str, int]] | None:
    if ipaddress.ip_address(bound).is_unspecified:
        return None
    names = {*_LOOPBACK_NAMES, _bracketed(host.lower()), _bracketed(bound)}
    return frozenset((name, port) for name in names)
