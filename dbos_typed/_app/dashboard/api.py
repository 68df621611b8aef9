"""The read endpoints the dashboard adds to the admin server's, in the same JSON style.

`docs/dashboard.md` documents each with an example answer. Every one is a GET or a POST
that changes nothing, is bounded (a page size, or a fixed cap on rows per workflow), and
reads through the public management calls where one exists.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Final

from dbos_typed._app import admin_fields as read
from dbos_typed._app.dashboard import queries
from dbos_typed._app.http_layer import Handler, Route, route
from dbos_typed._core.version import __version__
from dbos_typed._management.aggregates import get_workflow_aggregates
from dbos_typed._management.listing import list_workflows
from dbos_typed._schedules.cron import CronSchedule, parse_fired_at
from dbos_typed._sysdb._rows import NULL_TOPIC, STREAM_CLOSED
from dbos_typed.errors import InvalidOptionError, NonExistentWorkflowError

#: At most this many events, stream entries or messages are shown for one workflow.
MAX_ROWS_PER_WORKFLOW: Final = 500
#: At most this many schedules are listed, each with its last `RECENT_RUNS` runs.
MAX_SCHEDULES: Final = 500
RECENT_RUNS: Final = 5

_GROUP_COLUMNS = (
    "status",
    "name",
    "queue_name",
    "executor_id",
    "application_version",
    "application_name",
)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _span_ms(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds() * 1000)


def _decoded(text: object) -> Any:
    """A stored value as plain JSON, decoded as the listing decodes inputs and outputs.

    Values another SDK serialized otherwise (pickle, say) are shown as their stored text.
    """
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _info(handler: Handler, _: dict[str, str], __: Any) -> tuple[int, Any]:
    policy = handler.policy
    if policy.token is None:
        token = "none"
    else:
        token = "all" if policy.token_for_reads else "actions"
    return HTTPStatus.OK, {
        "server": policy.label,
        "version": __version__,
        # The page offers actions only where they run and a token guards them.
        "actions": policy.writes_refused is None and policy.token is not None,
        "actions_refused": policy.writes_refused,
        "token_required": token,
        "max_page_size": policy.max_page_size,
    }


def _group_by(fields: dict[str, Any]) -> list[Any]:
    columns = read.text_list(fields, "group_by") or []
    for column in columns:
        if column not in _GROUP_COLUMNS:
            raise InvalidOptionError("group_by", f"expected some of {', '.join(_GROUP_COLUMNS)}")
    return columns


def _aggregates(handler: Handler, _: dict[str, str], body: Any) -> tuple[int, Any]:
    fields = read.json_object(body)
    bucket_ms = read.count(fields, "bucket_ms", low=1000)
    found = get_workflow_aggregates(
        handler.ctx,
        group_by=_group_by(fields),
        bucket=None if bucket_ms is None else timedelta(milliseconds=bucket_ms),
        status=read.texts(fields, "status"),
        name=read.texts(fields, "workflow_name"),
        queue_name=read.texts(fields, "queue_name"),
        application_version=read.texts(fields, "application_version"),
        workflow_id_prefix=read.text_field(fields, "workflow_id_prefix"),
        created_after=read.time_filter(fields, "start_time"),
        created_before=read.time_filter(fields, "end_time"),
        queues_only=read.flag(fields, "queues_only", default=False),
        all_applications=True,
    )
    return HTTPStatus.OK, [
        {
            "group": dict(row.group),
            "bucket_start_epoch_ms": _ms(row.bucket_start),
            "count": row.count,
            "first_created_epoch_ms": _ms(row.first_created_at),
            "max_queue_wait_ms": _span_ms(row.max_queue_wait),
            "max_latency_ms": _span_ms(row.max_latency),
        }
        for row in found
    ]


def _existing(handler: Handler, workflow_id: str) -> str:
    if handler.ctx._runtime.store.workflow_status(workflow_id) is None:
        raise NonExistentWorkflowError(workflow_id)
    return workflow_id


def _events(handler: Handler, params: dict[str, str], _: Any) -> tuple[int, Any]:
    workflow_id = _existing(handler, params["workflow_id"])
    found = queries.rows(
        handler.ctx._runtime.store,
        queries.EVENTS,
        workflow_id=workflow_id,
        limit=MAX_ROWS_PER_WORKFLOW,
    )
    return HTTPStatus.OK, [{"key": r[0], "value": _decoded(r[1])} for r in found]


def _streams(handler: Handler, params: dict[str, str], _: Any) -> tuple[int, Any]:
    workflow_id = _existing(handler, params["workflow_id"])
    found = queries.rows(
        handler.ctx._runtime.store,
        queries.STREAMS,
        workflow_id=workflow_id,
        limit=MAX_ROWS_PER_WORKFLOW,
    )
    # The marker `close_stream` writes is the stream's end, not one of its values.
    return HTTPStatus.OK, [
        {
            "key": r[0],
            "offset": r[1],
            "value": None if r[2] == STREAM_CLOSED else _decoded(r[2]),
            "closed": r[2] == STREAM_CLOSED,
            "function_id": r[3],
        }
        for r in found
    ]


def _messages(handler: Handler, params: dict[str, str], _: Any) -> tuple[int, Any]:
    workflow_id = _existing(handler, params["workflow_id"])
    found = queries.rows(
        handler.ctx._runtime.store,
        queries.MESSAGES,
        workflow_id=workflow_id,
        limit=MAX_ROWS_PER_WORKFLOW,
    )
    return HTTPStatus.OK, [
        {
            "message_uuid": r[0],
            # DBOS stores a message sent without a topic under its null-topic marker.
            "topic": None if r[1] in (None, NULL_TOPIC) else r[1],
            "message": _decoded(r[2]),
            "created_at_epoch_ms": r[3],
            "consumed": bool(r[4]),
        }
        for r in found
    ]


def _next_tick(row: queries.ScheduleRow, now: datetime) -> int | None:
    if row.status != "ACTIVE":
        return None
    try:
        return _ms(CronSchedule(row.schedule, row.cron_timezone).next_after(now))
    except InvalidOptionError:
        return None  # an expression or zone this library cannot read (another SDK's)


def _schedules(handler: Handler, _: dict[str, str], __: Any) -> tuple[int, Any]:
    now = datetime.now(UTC)
    answer = []
    for row in queries.schedules(handler.ctx._runtime.store, MAX_SCHEDULES):
        recent = list_workflows(
            handler.ctx,
            schedule_name=row.schedule_name,
            limit=RECENT_RUNS,
            sort_desc=True,
            load_input=False,
            load_output=False,
            all_applications=True,
        )
        answer.append(
            {
                "schedule_name": row.schedule_name,
                "workflow_name": row.workflow_name,
                "workflow_class_name": row.workflow_class_name,
                "schedule": row.schedule,
                "cron_timezone": row.cron_timezone,
                "status": row.status,
                "paused": row.status != "ACTIVE",
                "queue_name": row.queue_name,
                "application_name": row.application_name,
                "automatic_backfill": row.automatic_backfill,
                "last_fired_at_epoch_ms": _ms(parse_fired_at(row.last_fired_at)),
                "next_tick_epoch_ms": _next_tick(row, now),
                "recent_runs": [
                    {
                        "WorkflowUUID": s.workflow_id,
                        "Status": s.status.value,
                        "CreatedAt": _ms(s.created_at),
                    }
                    for s in recent
                ],
            }
        )
    return HTTPStatus.OK, answer


_ID = r"(?P<workflow_id>[^/]+)"

#: The dashboard's own read endpoints.
ROUTES: tuple[Route, ...] = (
    route("GET", r"/dbos-dashboard-info", _info, "public"),
    route("POST", r"/workflow-aggregates", _aggregates),
    route("GET", rf"/workflows/{_ID}/events", _events),
    route("GET", rf"/workflows/{_ID}/streams", _streams),
    route("GET", rf"/workflows/{_ID}/messages", _messages),
    route("GET", r"/schedules", _schedules),
)
