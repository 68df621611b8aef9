"""The optional admin HTTP server: health, recovery and workflow management over JSON.

It speaks the endpoints and field names of the DBOS Go SDK's admin server, so tools written
for it work here. It is off by default and binds to 127.0.0.1 unless configured otherwise.
It also serves the dashboard (`dbos_typed._app.dashboard`) under `/dashboard/`, with the
read endpoints that dashboard adds.

The checks every request passes (host, origin, token, route, body, fields) are those of
`dbos_typed._app.http_layer`; with `Config.admin_token` the token guards every request
but the dashboard's static files (they hold no data).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Any

from pydantic_core import to_jsonable_python

from dbos_typed._app import admin_fields as read
from dbos_typed._app.http_layer import (
    DEFAULT_LIMITS,
    MAX_BODY_BYTES,
    REQUEST_TIMEOUT_SECONDS,
    Handler,
    Limits,
    Listener,
    Naming,
    Policy,
    Raw,
    Route,
    RouteFn,
    route,
)
from dbos_typed._core.context import DBOSContext
from dbos_typed._core.status import WorkflowStatus
from dbos_typed._management.listing import get_workflow_steps, list_workflows
from dbos_typed._management.steering import (
    cancel_workflow,
    fork_workflow,
    garbage_collect,
    global_timeout,
    resume_workflow,
)
from dbos_typed._sysdb._rows import INTERNAL_QUEUE
from dbos_typed.errors import InvalidOptionError, NonExistentWorkflowError

__all__ = [
    "MAX_BODY_BYTES",
    "REQUEST_TIMEOUT_SECONDS",
    "AdminLimits",
    "AdminServer",
    "admin_routes",
    "workflow_json",
]

#: What one request may cost the admin server (the name it has always had here).
AdminLimits = Limits


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


def _list(handler: Handler, body: Any, *, queues_only: bool) -> tuple[int, Any]:
    fields = read.json_object(body)
    cap = handler.policy.max_page_size
    limit = read.count(fields, "limit") if cap is None else read.count_to(fields, "limit", cap)
    found = list_workflows(
        handler.ctx,
        workflow_ids=read.text_list(fields, "workflow_uuids") or None,
        user=read.texts(fields, "authenticated_user"),
        created_after=read.time_filter(fields, "start_time"),
        created_before=read.time_filter(fields, "end_time"),
        status=read.texts(fields, "status"),
        application_version=read.texts(fields, "application_version"),
        name=read.texts(fields, "workflow_name"),
        limit=limit,
        offset=read.count(fields, "offset"),
        sort_desc=read.flag(fields, "sort_desc", default=False),
        workflow_id_prefix=read.text_field(fields, "workflow_id_prefix"),
        load_input=read.flag(fields, "load_input", default=True),
        load_output=read.flag(fields, "load_output", default=True),
        queue_name=read.texts(fields, "queue_name"),
        parent_workflow_id=read.text_field(fields, "parent_workflow_id"),
        schedule_name=read.texts(fields, "schedule_name"),
        queues_only=queues_only,
        all_applications=True,
    )
    return HTTPStatus.OK, [workflow_json(s) for s in found]


def _get_workflow(handler: Handler, params: dict[str, str], _: Any) -> tuple[int, Any]:
    found = list_workflows(handler.ctx, workflow_ids=[params["workflow_id"]], all_applications=True)
    if not found:
        raise NonExistentWorkflowError(params["workflow_id"])
    return HTTPStatus.OK, workflow_json(found[0])


def _steps(handler: Handler, params: dict[str, str], _: Any) -> tuple[int, Any]:
    return HTTPStatus.OK, [
        {
            "function_id": s.step_id,
            "function_name": s.name,
            "child_workflow_id": s.child_workflow_id,
            "output": _json_text(s.output),
            "error": None if s.error is None else s.error.message,
            "error_name": None if s.error is None else s.error.name,
            "started_at_epoch_ms": _ms(s.started_at),
            "completed_at_epoch_ms": _ms(s.completed_at),
        }
        for s in get_workflow_steps(handler.ctx, params["workflow_id"])
    ]


def _fork(handler: Handler, params: dict[str, str], body: Any) -> tuple[int, Any]:
    fields = read.json_object(body)
    handle = fork_workflow(
        handler.ctx,
        params["workflow_id"],
        read.count(fields, "start_step") or 0,
        new_workflow_id=read.text_field(fields, "new_workflow_id") or None,
        application_version=read.text_field(fields, "application_version") or None,
        queue_name=read.text_field(fields, "queue_name") or None,
        queue_partition_key=read.text_field(fields, "queue_partition_key") or None,
    )
    return HTTPStatus.OK, {"workflow_id": handle.workflow_id}


def _recover(handler: Handler, _: dict[str, str], body: Any) -> tuple[int, Any]:
    if not isinstance(body, list):
        raise InvalidOptionError("body", "expected a JSON array of executor IDs")
    executor_ids = [read.text(entry, "body") for entry in body]
    runtime = handler.ctx._runtime
    recovered: list[str] = []
    for executor_id in executor_ids:
        recovered += runtime.store.recover_pending(
            executor_id, runtime.application_version, runtime.app_name, runtime.clock.now_ms()
        )
    runtime.announce_work()
    return HTTPStatus.OK, recovered


def _queues_metadata(handler: Handler, _: dict[str, str], __: Any) -> tuple[int, Any]:
    queues = [{"name": INTERNAL_QUEUE}]
    for row in handler.ctx._runtime.store.list_queues_of(None):
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


def _garbage_collect(handler: Handler, _: dict[str, str], body: Any) -> tuple[int, Any]:
    fields = read.json_object(body)
    cutoff = read.instant(fields, "cutoff_epoch_timestamp_ms")
    keep_rows = read.count(fields, "rows_threshold", low=1)
    if cutoff is None and keep_rows is None:
        raise InvalidOptionError("cutoff_epoch_timestamp_ms", "give it, rows_threshold, or both")
    garbage_collect(handler.ctx, cutoff=cutoff, keep_rows=keep_rows)
    return HTTPStatus.NO_CONTENT, None


def _global_timeout(handler: Handler, _: dict[str, str], body: Any) -> tuple[int, Any]:
    cutoff = read.instant(read.json_object(body), "cutoff_epoch_timestamp_ms")
    if cutoff is None:
        raise InvalidOptionError("cutoff_epoch_timestamp_ms", "expected epoch milliseconds")
    global_timeout(handler.ctx, cutoff)
    return HTTPStatus.NO_CONTENT, None


def _no_content(action: Callable[[DBOSContext, str], object]) -> RouteFn:
    def run(handler: Handler, params: dict[str, str], _: Any) -> tuple[int, Any]:
        action(handler.ctx, params["workflow_id"])
        return HTTPStatus.NO_CONTENT, None

    return run


def _deactivate(handler: Handler, _: dict[str, str], __: Any) -> tuple[int, Any]:
    # As Go answers it: plain text, once the runner and the scheduler have stopped.
    handler.ctx._runtime.deactivate(_DEACTIVATE_WAIT_SECONDS)
    return HTTPStatus.OK, Raw(b"deactivated", "text/plain; charset=utf-8", {})


_DEACTIVATE_WAIT_SECONDS = 10.0


def _health(handler: Handler, _: dict[str, str], __: Any) -> tuple[int, Any]:
    return HTTPStatus.OK, {"status": "healthy"}


_ID = r"(?P<workflow_id>[^/]+)"

#: The routes a dashboard may serve too: reads, and the three actions it offers.
WORKFLOW_ROUTES: tuple[Route, ...] = (
    route("GET", r"/dbos-healthz", _health),
    route("GET", r"/dbos-workflow-queues-metadata", _queues_metadata),
    route("POST", r"/workflows", lambda h, p, b: _list(h, b, queues_only=False)),
    route("POST", r"/queues", lambda h, p, b: _list(h, b, queues_only=True)),
    route("GET", rf"/workflows/{_ID}", _get_workflow),
    route("GET", rf"/workflows/{_ID}/steps", _steps),
    route("POST", rf"/workflows/{_ID}/cancel", _no_content(cancel_workflow), "write"),
    route("POST", rf"/workflows/{_ID}/resume", _no_content(resume_workflow), "write"),
    route("POST", rf"/workflows/{_ID}/fork", _fork, "write"),
)

#: The routes only the admin server of a running application serves.
_MAINTENANCE_ROUTES: tuple[Route, ...] = (
    route("POST", r"/dbos-workflow-recovery", _recover, "write"),
    route("POST", r"/dbos-garbage-collect", _garbage_collect, "write"),
    route("POST", r"/dbos-global-timeout", _global_timeout, "write"),
    # A GET, as in Go, yet a change of state: the token and the cross-site checks apply.
    route("GET", r"/deactivate", _deactivate, "write"),
)


def admin_routes() -> tuple[Route, ...]:
    """Every route of the admin server: its own, then the dashboard's pages and reads."""
    from dbos_typed._app.dashboard import dashboard_routes

    return (*WORKFLOW_ROUTES, *_MAINTENANCE_ROUTES, *dashboard_routes())


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
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """Bind to `host`:`port`.

        Raises:
            InitializationError: the host is not a loopback one and no token is set, the
                host does not resolve, or the port cannot be bound (taken, or not allowed).
        """
        self._listener = Listener(
            host,
            port,
            has_token=token is not None,
            naming=_NAMING,
        )
        policy = Policy(
            label="admin server",
            token=None if token is None else token.encode("ascii"),
            token_for_reads=True,
            hosts=self._listener.hosts,
            limits=limits,
        )
        self._listener.handle_with(ctx, policy, admin_routes())
        self._thread = threading.Thread(
            target=self._listener.server.serve_forever, name="dbos-admin", daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL the server listens on."""
        return self._listener.url

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (if it started) and release the port."""
        if self._thread.is_alive():
            self._listener.server.shutdown()
        self._listener.server.server_close()


_NAMING = Naming(
    server="the admin server",
    host_setting="admin_host",
    port_setting="admin_port",
    token_fix="set admin_token",
)
