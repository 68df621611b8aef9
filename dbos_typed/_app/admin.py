"""The optional admin HTTP server: health, recovery and workflow management over JSON.

It speaks the endpoints and field names of the DBOS Go SDK's admin server, so tools written
for it work here. It is off by default and binds to localhost unless configured otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic_core import to_jsonable_python

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
from dbos_typed.errors import DBOSError, InvalidOptionError, NonExistentWorkflowError

logger = logging.getLogger("dbos_typed")

_Route = Callable[["_Handler", dict[str, str], Any], tuple[int, Any]]


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


def _time_filter(body: dict[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidOptionError(key, "expected an RFC 3339 timestamp") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _list(handler: _Handler, body: Any, *, queues_only: bool) -> tuple[int, Any]:
    body = body if isinstance(body, dict) else {}
    found = list_workflows(
        handler.ctx,
        workflow_ids=body.get("workflow_uuids") or None,
        user=body.get("authenticated_user"),
        created_after=_time_filter(body, "start_time"),
        created_before=_time_filter(body, "end_time"),
        status=body.get("status"),
        application_version=body.get("application_version"),
        name=body.get("workflow_name"),
        limit=body.get("limit"),
        offset=body.get("offset"),
        sort_desc=bool(body.get("sort_desc", False)),
        workflow_id_prefix=body.get("workflow_id_prefix"),
        load_input=bool(body.get("load_input", True)),
        load_output=bool(body.get("load_output", True)),
        queue_name=body.get("queue_name"),
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
    body = body if isinstance(body, dict) else {}
    handle = fork_workflow(
        handler.ctx,
        params["id"],
        int(body.get("start_step", 0)),
        new_workflow_id=body.get("new_workflow_id") or None,
        application_version=body.get("application_version") or None,
    )
    return HTTPStatus.OK, {"workflow_id": handle.workflow_id}


def _recover(handler: _Handler, _: dict[str, str], body: Any) -> tuple[int, Any]:
    if not isinstance(body, list) or not all(isinstance(e, str) for e in body):
        raise InvalidOptionError("body", "expected a JSON array of executor IDs")
    runtime = handler.ctx._runtime
    recovered: list[str] = []
    for executor_id in body:
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
    body = body if isinstance(body, dict) else {}
    cutoff = body.get("cutoff_epoch_timestamp_ms")
    garbage_collect(
        handler.ctx,
        cutoff=None if cutoff is None else datetime.fromtimestamp(int(cutoff) / 1000, tz=UTC),
        keep_rows=body.get("rows_threshold"),
    )
    return HTTPStatus.NO_CONTENT, None


def _global_timeout(handler: _Handler, _: dict[str, str], body: Any) -> tuple[int, Any]:
    cutoff = body.get("cutoff_epoch_timestamp_ms") if isinstance(body, dict) else None
    if not isinstance(cutoff, int):
        raise InvalidOptionError("cutoff_epoch_timestamp_ms", "expected epoch milliseconds")
    global_timeout(handler.ctx, datetime.fromtimestamp(cutoff / 1000, tz=UTC))
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


class _Handler(BaseHTTPRequestHandler):
    ctx: DBOSContext  # set on the subclass made for each server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("admin server: " + format, *args)

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        for route_method, pattern, route in _ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                try:
                    status, payload = route(self, params, self._body())
                except NonExistentWorkflowError as exc:
                    status, payload = HTTPStatus.NOT_FOUND, {"error": str(exc)}
                except (InvalidOptionError, ValueError, TypeError) as exc:
                    status, payload = HTTPStatus.BAD_REQUEST, {"error": str(exc)}
                except DBOSError as exc:
                    status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}
                self._reply(status, payload)
                return
        self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route for {method} {path}"})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length == 0:
            return None
        return json.loads(self.rfile.read(length))

    def _reply(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")


class AdminServer:
    """Serves the admin endpoints for one context on a background thread."""

    def __init__(self, ctx: DBOSContext, host: str, port: int) -> None:
        handler = type("AdminHandler", (_Handler,), {"ctx": ctx})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dbos-admin", daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL the server listens on."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
