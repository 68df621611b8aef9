"""`get_workflow_aggregates`, `get_step_aggregates`: counts, waits and latencies per group.

Workflow aggregates take the filters of `list_workflows` (checked by the same code) and
group by status, name, queue, executor, version or application, and/or by buckets of
creation time. Step aggregates group recorded steps by name and/or outcome, and/or by
buckets of completion time. From a workflow body each is a checkpointed operation holding
the rows it computed, so a replay sees the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Unpack

from dbos_typed._core.context import Connected
from dbos_typed._core.durable import checkpointed
from dbos_typed._core.serialization import Codec, codec_for
from dbos_typed._core.status import from_epoch_ms
from dbos_typed._core.validate import epoch_ms
from dbos_typed._management.listing import (
    WorkflowFilters,
    checked_ids,
    unknown_filter,
    workflow_filter,
)
from dbos_typed._sysdb import _aggregates as sysdb
from dbos_typed._sysdb._management import WorkflowFilter
from dbos_typed._sysdb._rows import StepAggregateRecord, WorkflowAggregateRecord
from dbos_typed.errors import InvalidOptionError

_WORKFLOW_ROWS: Codec[list[WorkflowAggregateRecord]] = codec_for(list[WorkflowAggregateRecord])
_STEP_ROWS: Codec[list[StepAggregateRecord]] = codec_for(list[StepAggregateRecord])

_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class WorkflowAggregate:
    """One group of workflows and its metrics, a row of `get_workflow_aggregates`.

    Attributes:
        group: The group's value of each `group_by` column, keyed by column name (empty
            when only bucketed). A value is None where the column is NULL, such as the
            queue of a workflow that was never queued.
        bucket_start: The start of the group's creation-time bucket (UTC), when bucketed.
        count: How many workflows the group holds.
        first_created_at: When the group's earliest workflow was created.
        max_queue_wait: The longest time from creation to being taken from a queue, among
            the group's workflows that were dequeued; None if none was.
        max_latency: The longest time from creation to finishing, among the group's
            workflows that finished; None if none has.
    """

    group: Mapping[str, str | None]
    bucket_start: datetime | None
    count: int
    first_created_at: datetime
    max_queue_wait: timedelta | None
    max_latency: timedelta | None


@dataclass(frozen=True, slots=True)
class StepAggregate:
    """One group of recorded steps and its metrics, a row of `get_step_aggregates`.

    Attributes:
        group: The group's value of each `group_by` column, keyed by column name (empty
            when only bucketed): the step name, and/or "SUCCESS" or "ERROR".
        bucket_start: The start of the group's completion-time bucket (UTC), when bucketed.
        count: How many steps the group holds.
        max_duration: The longest time from a step's start to its completion; None if no
            step of the group recorded both.
    """

    group: Mapping[str, str | None]
    bucket_start: datetime | None
    count: int
    max_duration: timedelta | None


def _bucket_ms(bucket: timedelta | None) -> int | None:
    if bucket is None:
        return None
    if not isinstance(bucket, timedelta) or bucket < _MS or bucket % _MS:
        raise InvalidOptionError("bucket", "expected a positive timedelta of whole milliseconds")
    return bucket // _MS


def _group_by(value: Sequence[str], allowed: tuple[str, ...], bucket_ms: int | None) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidOptionError("group_by", f"expected a list of column names out of {allowed}")
    columns = list(value)
    for column in columns:
        if column not in allowed:
            raise InvalidOptionError(
                "group_by", f"unknown column {column!r}; expected some of {list(allowed)}"
            )
    if len(set(columns)) != len(columns):
        raise InvalidOptionError("group_by", "name each column once")
    if not columns and bucket_ms is None:
        raise InvalidOptionError("group_by", "give group_by columns, a bucket, or both")
    return columns


def _duration(ms: int | None) -> timedelta | None:
    return None if ms is None else timedelta(milliseconds=ms)


def get_workflow_aggregates(
    ctx: Connected,
    /,
    *,
    group_by: Sequence[
        Literal[
            "status",
            "name",
            "queue_name",
            "executor_id",
            "application_version",
            "application_name",
        ]
    ] = (),
    bucket: timedelta | None = None,
    **filters: Unpack[WorkflowFilters],
) -> list[WorkflowAggregate]:
    """Count workflows per group and per creation-time bucket, with their waits and latencies.

    The filters are those of `list_workflows`, with the same meaning (and the same scope:
    this application's workflows and unclaimed ones unless `application_name` or
    `all_applications` says otherwise). A bucket starts at a multiple of its width since
    the Unix epoch, so one-hour buckets start on the hour and one-day buckets at midnight
    UTC.

    Durability: from a workflow body the read is a checkpointed operation
    (`DBOS.getWorkflowAggregates`) that records the rows computed; a replay returns them
    again, whatever has changed since.

    Args:
        ctx: Any context.
        group_by: Columns to group by: "status", "name", "queue_name", "executor_id",
            "application_version", "application_name".
        bucket: Also group by creation time, in buckets of this width (whole
            milliseconds).
        filters: The filters of `list_workflows` (`WorkflowFilters`), with the same meaning.

    Returns:
        One row per non-empty group, ordered by bucket, then by the group values in
        `group_by` order (None last).

    Raises:
        InvalidOptionError: neither `group_by` nor `bucket` is given, a column is unknown
            or repeated, `bucket` is not a positive whole number of milliseconds, or a
            filter is malformed (as for `list_workflows`).
    """
    runtime = ctx._runtime
    width = _bucket_ms(bucket)
    columns = _group_by(group_by, tuple(sysdb.WORKFLOW_GROUPS), width)
    unknown_filter(filters, "get_workflow_aggregates")
    query = workflow_filter(ctx, **filters)
    records = checkpointed(
        ctx,
        "DBOS.getWorkflowAggregates",
        lambda: runtime.store.workflow_aggregates(query, group_by=columns, bucket_ms=width),
        _WORKFLOW_ROWS,
    )
    return [
        WorkflowAggregate(
            group=r.group,
            bucket_start=from_epoch_ms(r.bucket_start_ms),
            count=r.count,
            first_created_at=datetime.fromtimestamp(r.first_created_at_ms / 1000, tz=UTC),
            max_queue_wait=_duration(r.max_queue_wait_ms),
            max_latency=_duration(r.max_latency_ms),
        )
        for r in records
    ]


def get_step_aggregates(
    ctx: Connected,
    /,
    *,
    group_by: Sequence[Literal["name", "status"]] = (),
    bucket: timedelta | None = None,
    workflow_ids: Sequence[str] | None = None,
    completed_after: datetime | None = None,
    completed_before: datetime | None = None,
    all_applications: bool = False,
) -> list[StepAggregate]:
    """Count recorded steps per name and/or outcome and per completion-time bucket.

    A step's status is "SUCCESS" if it recorded no error and "ERROR" if it did. Steps
    include the library's own recorded operations (`DBOS.sleep`, `DBOS.getResult`, ...).
    Only steps of this application's workflows and unclaimed ones are counted, unless
    `all_applications`. Buckets are aligned as in `get_workflow_aggregates`.

    Durability: from a workflow body the read is a checkpointed operation
    (`DBOS.getStepAggregates`) that records the rows computed; a replay returns them again,
    whatever has changed since.

    Args:
        ctx: Any context.
        group_by: Columns to group by: "name" (the step name) and/or "status".
        bucket: Also group by completion time, in buckets of this width (whole
            milliseconds).
        workflow_ids: Only steps of these workflows.
        completed_after: Only steps completed at or after.
        completed_before: Only steps completed at or before.
        all_applications: Include steps of other applications sharing the database.

    Returns:
        One row per non-empty group, ordered by bucket, then by the group values in
        `group_by` order.

    Raises:
        InvalidOptionError: neither `group_by` nor `bucket` is given, a column is unknown
            or repeated, `bucket` is not a positive whole number of milliseconds, or a
            filter is malformed.
    """
    runtime = ctx._runtime
    width = _bucket_ms(bucket)
    columns = _group_by(group_by, tuple(sysdb.STEP_GROUPS), width)
    scope = WorkflowFilter(
        workflow_ids=checked_ids(workflow_ids, "workflow_ids"),
        application_name=None if all_applications else runtime.app_name,
    )
    after = epoch_ms(completed_after, "completed_after")
    before = epoch_ms(completed_before, "completed_before")
    records = checkpointed(
        ctx,
        "DBOS.getStepAggregates",
        lambda: runtime.store.step_aggregates(
            scope,
            group_by=columns,
            bucket_ms=width,
            completed_after_ms=after,
            completed_before_ms=before,
        ),
        _STEP_ROWS,
    )
    return [
        StepAggregate(
            group=r.group,
            bucket_start=from_epoch_ms(r.bucket_start_ms),
            count=r.count,
            max_duration=_duration(r.max_duration_ms),
        )
        for r in records
    ]
