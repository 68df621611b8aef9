"""Reading workflows in bulk: `list_workflows`, `list_queued_workflows`, `get_workflow_steps`.

From a workflow body each read is a checkpointed operation holding the rows it read, so a
replay sees the same answer (decoded again with the workflow types registered then). The
filters are checked here once, in `workflow_filter`, for listing and aggregates alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypedDict, Unpack

from dbos_typed._core.context import Connected
from dbos_typed._core.durable import checkpointed
from dbos_typed._core.serialization import Codec, ErrorRecord, JsonValue, codec_for, decode_any
from dbos_typed._core.status import StatusName, WorkflowStatus, from_epoch_ms, status_from_record
from dbos_typed._core.validate import checked_name, epoch_ms
from dbos_typed._sysdb import _management as sysdb
from dbos_typed._sysdb._rows import StatusRecord, StepRecord
from dbos_typed.errors import InvalidOptionError, NonExistentWorkflowError

_STATUS_ROWS: Codec[list[StatusRecord]] = codec_for(list[StatusRecord])
_STEP_ROWS: Codec[list[StepRecord]] = codec_for(list[StepRecord])


@dataclass(frozen=True, slots=True)
class StepInfo:
    """One recorded step of a workflow.

    Attributes:
        step_id: Its 0-based position in the workflow.
        name: The recorded step name (`DBOS.*` for the library's own operations).
        output: Its result as plain JSON, if it succeeded and outputs were loaded.
        error: What it raised, if it failed.
        child_workflow_id: The workflow it started or awaited, if any.
        started_at: When it started.
        completed_at: When its result was recorded.
    """

    step_id: int
    name: str
    output: JsonValue
    error: ErrorRecord | None
    child_workflow_id: str | None
    started_at: datetime | None
    completed_at: datetime | None


def _names(value: str | Sequence[str] | None, argument: str) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in values):
        raise InvalidOptionError(argument, "expected a string or a sequence of strings")
    return values


def checked_ids(value: Sequence[str] | None, argument: str) -> list[str] | None:
    """Workflow IDs to filter on, each a non-empty string; a lone string is one ID."""
    values = _names(value, argument)
    return None if values is None else [checked_name(v, argument) for v in values]


def _statuses(value: str | Sequence[str] | None) -> list[str] | None:
    values = _names(value, "status")
    if values is None:
        return None
    valid = {s.value for s in StatusName}
    for v in values:
        if v not in valid:
            raise InvalidOptionError(
                "status", f"unknown status {v!r}; expected one of {sorted(valid)}"
            )
    return values


def _count(value: int | None, argument: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InvalidOptionError(argument, "expected an int >= 0 or None")
    return value


def _flag(value: bool | None, argument: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InvalidOptionError(argument, "expected True, False or None")
    return value


def _attributes(ctx: Connected, value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidOptionError("attributes", "expected a mapping with string keys")
    wanted = dict(value)
    try:
        text = json.dumps(wanted, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError("attributes", f"not JSON-serializable: {exc}") from exc
    if "\\u0000" in text:
        raise InvalidOptionError("attributes", "must not contain NUL characters")
    if not ctx._runtime.store.attributes_matchable(wanted):
        raise InvalidOptionError(
            "attributes",
            "SQLite matches only string, number (64-bit integer or float), boolean and null "
            "values; nested objects and arrays need Postgres",
        )
    return wanted


class WorkflowFilters(TypedDict, total=False):
    """The filters of `list_workflows` and `get_workflow_aggregates`, as keyword options.

    Each is described in `list_workflows`; `workflow_filter` gives each its default.
    """

    workflow_ids: Sequence[str] | None
    workflow_id_prefix: str | None
    status: str | Sequence[str] | None
    name: str | Sequence[str] | None
    application_version: str | Sequence[str] | None
    executor_id: str | Sequence[str] | None
    user: str | Sequence[str] | None
    queue_name: str | Sequence[str] | None
    queues_only: bool
    parent_workflow_id: str | None
    forked_from: str | None
    created_after: datetime | None
    created_before: datetime | None
    completed_after: datetime | None
    completed_before: datetime | None
    dequeued_after: datetime | None
    dequeued_before: datetime | None
    was_forked_from: bool | None
    has_parent: bool | None
    schedule_name: str | Sequence[str] | None
    deduplication_id: str | Sequence[str] | None
    is_debounced: bool | None
    application_name: str | Sequence[str] | None
    attributes: Mapping[str, Any] | None
    all_applications: bool


def unknown_filter(filters: Mapping[str, object], caller: str) -> None:
    """Refuse a keyword no filter has, as Python refuses an unknown keyword argument.

    Raises:
        TypeError: a key of `filters` is not a filter.
    """
    for key in filters:
        if key not in WorkflowFilters.__annotations__:
            raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")


def workflow_filter(
    ctx: Connected,
    *,
    workflow_ids: Sequence[str] | None = None,
    workflow_id_prefix: str | None = None,
    status: str | Sequence[str] | None = None,
    name: str | Sequence[str] | None = None,
    application_version: str | Sequence[str] | None = None,
    executor_id: str | Sequence[str] | None = None,
    user: str | Sequence[str] | None = None,
    queue_name: str | Sequence[str] | None = None,
    queues_only: bool = False,
    parent_workflow_id: str | None = None,
    forked_from: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    completed_after: datetime | None = None,
    completed_before: datetime | None = None,
    dequeued_after: datetime | None = None,
    dequeued_before: datetime | None = None,
    was_forked_from: bool | None = None,
    has_parent: bool | None = None,
    schedule_name: str | Sequence[str] | None = None,
    application_name: str | Sequence[str] | None = None,
    attributes: Mapping[str, Any] | None = None,
    all_applications: bool = False,
    deduplication_id: str | Sequence[str] | None = None,
    is_debounced: bool | None = None,
) -> sysdb.WorkflowFilter:
    """Check the filters of `list_workflows` and `get_workflow_aggregates`, all up front.

    Raises:
        InvalidOptionError: a filter is malformed, or cannot be matched exactly here.
    """
    if workflow_id_prefix is not None and not isinstance(workflow_id_prefix, str):
        raise InvalidOptionError("workflow_id_prefix", "expected a string")
    applications = _names(application_name, "application_name")
    if applications is not None and all_applications:
        raise InvalidOptionError(
            "application_name", "give either application names or all_applications, not both"
        )
    explicit = all_applications or applications is not None
    own_and_unclaimed = None if explicit else ctx._runtime.app_name
    return sysdb.WorkflowFilter(
        workflow_ids=checked_ids(workflow_ids, "workflow_ids"),
        workflow_id_prefix=workflow_id_prefix,
        statuses=_statuses(status),
        names=_names(name, "name"),
        application_versions=_names(application_version, "application_version"),
        executor_ids=_names(executor_id, "executor_id"),
        users=_names(user, "user"),
        queue_names=_names(queue_name, "queue_name"),
        queues_only=queues_only,
        parent_workflow_id=parent_workflow_id,
        forked_from=forked_from,
        created_after_ms=epoch_ms(created_after, "created_after"),
        created_before_ms=epoch_ms(created_before, "created_before"),
        completed_after_ms=epoch_ms(completed_after, "completed_after"),
        completed_before_ms=epoch_ms(completed_before, "completed_before"),
        dequeued_after_ms=epoch_ms(dequeued_after, "dequeued_after"),
        dequeued_before_ms=epoch_ms(dequeued_before, "dequeued_before"),
        was_forked_from=_flag(was_forked_from, "was_forked_from"),
        has_parent=_flag(has_parent, "has_parent"),
        schedule_names=_names(schedule_name, "schedule_name"),
        deduplication_ids=_names(deduplication_id, "deduplication_id"),
        is_debounced=_flag(is_debounced, "is_debounced"),
        attributes=_attributes(ctx, attributes),
        application_name=own_and_unclaimed,
        application_names=applications,
    )


def list_workflows(
    ctx: Connected,
    /,
    *,
    limit: int | None = None,
    offset: int | None = None,
    sort_desc: bool = False,
    load_input: bool = True,
    load_output: bool = True,
    **filters: Unpack[WorkflowFilters],
) -> list[WorkflowStatus]:
    """List workflows matching every given filter, oldest first (newest with `sort_desc`).

    Filters given as a sequence match any of its values; time bounds are inclusive.
    Workflows of this application and unclaimed ones are listed, unless `application_name`
    names the applications or `all_applications` asks for every one.

    Durability: from a workflow body the read is a checkpointed operation
    (`DBOS.listWorkflows`) that records the rows read; a replay returns them again.

    Args:
        ctx: Any context.
        workflow_ids: Only these IDs.
        workflow_id_prefix: Only IDs starting with this (matched literally).
        status: Only these statuses (`StatusName` values).
        name: Only these workflow names.
        application_version: Only these versions.
        executor_id: Only these executors.
        user: Only these authenticated users.
        queue_name: Only these queues.
        queues_only: Only queued workflows (unfinished ones unless `status` says otherwise).
        parent_workflow_id: Only children of this workflow.
        forked_from: Only forks of this workflow.
        created_after: Created at or after.
        created_before: Created at or before.
        completed_after: Finished at or after.
        completed_before: Finished at or before.
        dequeued_after: Last taken from a queue at or after.
        dequeued_before: Last taken from a queue at or before.
        was_forked_from: Only workflows that were (True) or were never (False) forked.
        has_parent: Only children (True) or only top-level workflows (False).
        schedule_name: Only ticks of these cron schedules.
        deduplication_id: Only workflows holding these queue deduplication IDs.
        is_debounced: Only debounced bursts' workflows (True) or only others (False).
        application_name: Only workflows of exactly these applications (unclaimed ones,
            which belong to none, are then left out).
        attributes: Only workflows whose attributes contain this JSON object: every key
            present with an equal value. Postgres matches any JSON (nested values by JSON
            containment); SQLite matches top-level string, number, boolean and null values
            exactly and refuses nested objects and arrays rather than match them loosely.
        limit: At most this many.
        offset: Skip this many first.
        sort_desc: Newest first.
        load_input: Decode inputs (off saves reading them).
        load_output: Decode outputs and errors.
        all_applications: Include workflows of other applications sharing the database.

    Returns:
        The matching workflows.

    Raises:
        InvalidOptionError: a filter is malformed, both `application_name` and
            `all_applications` are given, or `attributes` holds nested values on SQLite.
    """
    runtime = ctx._runtime
    unknown_filter(filters, "list_workflows")
    query = replace(
        workflow_filter(ctx, **filters),
        limit=_count(limit, "limit"),
        offset=_count(offset, "offset"),
        sort_desc=sort_desc,
        load_input=load_input,
        load_output=load_output,
    )
    records = checkpointed(
        ctx, "DBOS.listWorkflows", lambda: runtime.store.list_workflows(query), _STATUS_ROWS
    )
    return [status_from_record(r) for r in records]


def list_queued_workflows(
    ctx: Connected,
    /,
    *,
    queue_name: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    name: str | Sequence[str] | None = None,
    limit: int | None = None,
    offset: int | None = None,
    sort_desc: bool = False,
    load_input: bool = True,
) -> list[WorkflowStatus]:
    """List workflows waiting on or running from a queue (ENQUEUED, DELAYED or PENDING).

    The same as `list_workflows(..., queues_only=True)`.

    Durability: as `list_workflows` (a `DBOS.listWorkflows` operation in a workflow body).
    """
    return list_workflows(
        ctx,
        queue_name=queue_name,
        status=status,
        name=name,
        queues_only=True,
        limit=limit,
        offset=offset,
        sort_desc=sort_desc,
        load_input=load_input,
        load_output=False,
    )


def get_workflow_steps(
    ctx: Connected,
    workflow_id: str,
    /,
    *,
    load_output: bool = True,
    limit: int | None = None,
    offset: int | None = None,
) -> list[StepInfo]:
    """The recorded steps of a workflow, in order.

    Durability: from a workflow body the read is a checkpointed operation
    (`DBOS.getWorkflowSteps`); a replay returns the same steps.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
    """
    runtime = ctx._runtime
    workflow_id = checked_name(workflow_id, "workflow_id")
    page_size, skipped = _count(limit, "limit"), _count(offset, "offset")

    def read() -> list[StepRecord]:
        steps = runtime.store.list_steps_page(
            workflow_id, load_output=load_output, limit=page_size, offset=skipped
        )
        if not steps and runtime.store.workflow_status(workflow_id) is None:
            raise NonExistentWorkflowError(workflow_id)
        return steps

    steps = checkpointed(ctx, "DBOS.getWorkflowSteps", read, _STEP_ROWS)
    return [
        StepInfo(
            step_id=s.step_id,
            name=s.name,
            output=_decoded(s.output),
            error=None if s.error is None else ErrorRecord.decode(s.error),
            child_workflow_id=s.child_workflow_id,
            started_at=from_epoch_ms(s.started_at_ms),
            completed_at=from_epoch_ms(s.completed_at_ms),
        )
        for s in steps
    ]


def _decoded(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return decode_any(text)
    except ValueError:
        return text
