"""Aggregate statements: counts and extremes of workflows and steps, grouped and bucketed.

A subquery computes each row's group keys and measures, and the outer query groups by the
subquery's column names, so the bucket expression (which holds the width as a parameter)
is written once. Grouped columns come from fixed tables keyed by the names the public API
accepts, and rows are filtered by the same conditions as listing, so every statement is
still built from constants only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, LiteralString

from dbos_typed._sysdb._management import ManagementStore, WorkflowFilter, where
from dbos_typed._sysdb._rows import StepAggregateRecord, WorkflowAggregateRecord

#: What a workflow aggregate may be grouped by: (expression, column alias) per name.
WORKFLOW_GROUPS: Final[dict[str, tuple[LiteralString, LiteralString]]] = {
    "status": ("ws.status", "g_status"),
    "name": ("ws.name", "g_name"),
    "queue_name": ("ws.queue_name", "g_queue_name"),
    "executor_id": ("ws.executor_id", "g_executor_id"),
    "application_version": ("ws.application_version", "g_application_version"),
    "application_name": ("ws.application_name", "g_application_name"),
}

#: What a step aggregate may be grouped by; a step's status is derived from its error.
STEP_GROUPS: Final[dict[str, tuple[LiteralString, LiteralString]]] = {
    "name": ("oo.function_name", "g_name"),
    "status": ("CASE WHEN oo.error IS NULL THEN 'SUCCESS' ELSE 'ERROR' END", "g_status"),
}

_NO_BUCKET: LiteralString = "CAST(NULL AS BIGINT)"

_WORKFLOW_MEASURES: LiteralString = """,
       ws.created_at,
       ws.started_at_epoch_ms - ws.created_at AS queue_wait,
       ws.completed_at - ws.created_at AS latency
FROM {s}.workflow_status ws
"""

_STEP_MEASURES: LiteralString = """,
       oo.completed_at_epoch_ms - oo.started_at_epoch_ms AS duration
FROM {s}.operation_outputs oo
JOIN {s}.workflow_status ws ON ws.workflow_uuid = oo.workflow_uuid
"""


def _keys(
    bucket: LiteralString,
    groups: dict[str, tuple[LiteralString, LiteralString]],
    group_by: Sequence[str],
) -> tuple[LiteralString, LiteralString]:
    """The subquery's key columns and the outer query's list of them."""
    columns: LiteralString = "SELECT " + bucket + " AS bucket"
    names: LiteralString = "bucket"
    for name in group_by:
        expression, alias = groups[name]
        columns += ", " + expression + " AS " + alias
        names += ", " + alias
    return columns, names


def _in_order(bucket: int | None, group: dict[str, str | None]) -> tuple[Any, ...]:
    # Sorted here rather than in SQL, so both backends give the same order whatever the
    # database's collation: by bucket, then by each group value, NULLs last.
    return (bucket is None, bucket or 0, *((v is None, v or "") for v in group.values()))


def _group(group_by: Sequence[str], values: Sequence[Any]) -> dict[str, str | None]:
    return {name: None if v is None else str(v) for name, v in zip(group_by, values, strict=True)}


def _bucket_start(index: Any, bucket_ms: int | None) -> int | None:
    return None if index is None or bucket_ms is None else int(index) * bucket_ms


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


class AggregateStore(ManagementStore):
    """Grouped counts and extremes over workflows and steps."""

    def workflow_aggregates(
        self, f: WorkflowFilter, *, group_by: Sequence[str], bucket_ms: int | None
    ) -> list[WorkflowAggregateRecord]:
        """Count the workflows matching `f` per group and per `bucket_ms` of creation time."""
        bucket: LiteralString = "ws.created_at / %(bucket_ms)s" if bucket_ms else _NO_BUCKET
        columns, names = _keys(bucket, WORKFLOW_GROUPS, group_by)
        clauses, params = self.workflow_conditions(f)
        if bucket_ms:
            params["bucket_ms"] = bucket_ms
        query: LiteralString = (
            "SELECT "
            + names
            + ", count(*), min(created_at), max(queue_wait), max(latency)\nFROM (\n"
            + columns
            + _WORKFLOW_MEASURES
            + where(clauses)
            + ") AS w\nGROUP BY "
            + names
        )
        width = len(group_by)
        records = []
        for row in self._query(query, params):
            records.append(
                WorkflowAggregateRecord(
                    group=_group(group_by, row[1 : 1 + width]),
                    bucket_start_ms=_bucket_start(row[0], bucket_ms),
                    count=int(row[1 + width]),
                    first_created_at_ms=int(row[2 + width]),
                    max_queue_wait_ms=_optional_int(row[3 + width]),
                    max_latency_ms=_optional_int(row[4 + width]),
                )
            )
        return sorted(records, key=lambda r: _in_order(r.bucket_start_ms, r.group))

    def step_aggregates(
        self,
        f: WorkflowFilter,
        *,
        group_by: Sequence[str],
        bucket_ms: int | None,
        completed_after_ms: int | None,
        completed_before_ms: int | None,
    ) -> list[StepAggregateRecord]:
        """Count the recorded steps of `f`'s workflows per group and per completion bucket."""
        bucket: LiteralString = (
            "oo.completed_at_epoch_ms / %(bucket_ms)s" if bucket_ms else _NO_BUCKET
        )
        columns, names = _keys(bucket, STEP_GROUPS, group_by)
        clauses, params = self.workflow_conditions(f)
        if bucket_ms:
            params["bucket_ms"] = bucket_ms
        if completed_after_ms is not None:
            clauses.append("oo.completed_at_epoch_ms >= %(step_completed_after)s")
            params["step_completed_after"] = completed_after_ms
        if completed_before_ms is not None:
            clauses.append("oo.completed_at_epoch_ms <= %(step_completed_before)s")
            params["step_completed_before"] = completed_before_ms
        query: LiteralString = (
            "SELECT "
            + names
            + ", count(*), max(duration)\nFROM (\n"
            + columns
            + _STEP_MEASURES
            + where(clauses)
            + ") AS st\nGROUP BY "
            + names
        )
        width = len(group_by)
        records = []
        for row in self._query(query, params):
            records.append(
                StepAggregateRecord(
                    group=_group(group_by, row[1 : 1 + width]),
                    bucket_start_ms=_bucket_start(row[0], bucket_ms),
                    count=int(row[1 + width]),
                    max_duration_ms=_optional_int(row[2 + width]),
                )
            )
        return sorted(records, key=lambda r: _in_order(r.bucket_start_ms, r.group))
