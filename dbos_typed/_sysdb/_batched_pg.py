"""The batched checkpoint statements of Postgres: any mix of starts, steps and outcomes.

Group commit (`_group_commit`) writes the checkpoints that coincide as one statement:
each kind contributes data-modifying CTEs that take its rows as one JSON array of objects
(`json_to_recordset` turns it into rows) and a branch of the final `UNION ALL`, which
returns the rows each kind wrote with the kind's tag, so that each caller learns its own
outcome. One statement in autocommit is atomic, so a batch needs no `BEGIN` and `COMMIT`
round trips, and all of it commits or none.

Each row is guarded exactly as the single statement of its kind is (`_queries`:
`INSERT_WORKFLOW_PG`, `RECORD_STEP`, `COMPLETE_WORKFLOW_PG`). The CTEs of one statement
share a snapshot, so a batch must not hold two kinds of write for one workflow that
depend on each other; none can: a workflow's steps are written after its start returns
and its outcome after its steps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, LiteralString

_PARAM = re.compile(r"%\((\w+)\)s")
Row = tuple[Any, ...]
Batch = Sequence[Mapping[str, Any]]


class BatchSql:
    """One kind's part of a batched statement.

    Every kind's branch of the final `UNION ALL` returns the same columns: its tag, then
    workflow_uuid, function_id, status, name, queue_name, creator_xid and deadline, NULL
    where the kind has none.
    """

    __slots__ = ("columns", "ctes", "read", "result", "tag")

    def __init__(
        self,
        tag: str,
        columns: Sequence[str],
        ctes: LiteralString,
        result: LiteralString,
        read: Callable[[list[Row], Sequence[Mapping[str, Any]]], list[Any]],
    ) -> None:
        self.tag = tag  # also the prefix of its parameters and CTE names
        self.columns = tuple(columns)
        self.ctes = ctes
        self.result = result
        # Each write's result, in the batch's order, from the rows returned with the tag.
        self.read = read

    def params(self, batch: Batch) -> dict[str, str]:
        """This kind's one parameter: the batch's rows as a JSON array of objects.

        The encoder is C and the server unpacks it (`json_to_recordset`) on its own core;
        the driver's adaptation of one array per column costs more Python than that.
        """
        return {self.tag: json.dumps([{name: row[name] for name in self.columns} for row in batch])}


def _written(rows: list[Row], batch: Batch, key: tuple[str, ...]) -> list[Any]:
    """Whether each write's row was written: its key is among the returned ones."""
    keys = {row[: len(key)] for row in rows}
    return [tuple(params[name] for name in key) in keys for params in batch]


def _found(rows: list[Row], batch: Batch) -> list[Any]:
    """The row each start found or created, as the single insert returns it."""
    by_id = {row[0]: row[2:] for row in rows}
    return [by_id[params["workflow_id"]] for params in batch]


def _rows(tag: str, fields: Sequence[tuple[str, str]]) -> str:
    columns = ", ".join(f"{name} {kind}" for name, kind in fields)
    return f"{tag}_u AS (SELECT * FROM json_to_recordset(%({tag})s::json) AS u({columns}))"


_STEP_FIELDS: Final = (
    ("workflow_id", "text"),
    ("step_id", "int"),
    ("name", "text"),
    ("output", "text"),
    ("error", "text"),
    ("child_workflow_id", "text"),
    ("started_at_ms", "bigint"),
    ("completed_at_ms", "bigint"),
    ("application_name", "text"),
    ("owner_xid", "text"),
)

STEPS: Final = BatchSql(
    "st",
    [name for name, _ in _STEP_FIELDS],
    _rows("st", _STEP_FIELDS)
    + """,
st_written AS (
    INSERT INTO {s}.operation_outputs (
        workflow_uuid, function_id, function_name, output, error, child_workflow_id,
        started_at_epoch_ms, completed_at_epoch_ms, serialization, application_name,
        retention_timestamp
    )
    SELECT u.workflow_id, u.step_id, u.name, u.output, u.error, u.child_workflow_id,
           u.started_at_ms, u.completed_at_ms, 'portable_json', u.application_name,
           u.completed_at_ms
    FROM st_u u
    WHERE EXISTS (
        SELECT 1 FROM {s}.workflow_status ws
        WHERE ws.workflow_uuid = u.workflow_id AND ws.status = 'PENDING'
          AND (u.owner_xid IS NULL OR ws.owner_xid = u.owner_xid)
    )
    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
    RETURNING workflow_uuid, function_id
)""",
    "SELECT 'st', workflow_uuid, function_id, NULL, NULL, NULL, NULL, NULL::bigint FROM st_written",
    lambda rows, batch: _written(rows, batch, ("workflow_id", "step_id")),
)

_OUTCOME_FIELDS: Final = (
    ("workflow_id", "text"),
    ("status", "text"),
    ("output", "text"),
    ("error", "text"),
    ("now_ms", "bigint"),
    ("owner_xid", "text"),
)

OUTCOMES: Final = BatchSql(
    "oc",
    [name for name, _ in _OUTCOME_FIELDS],
    _rows("oc", _OUTCOME_FIELDS)
    + """,
oc_done AS (
    UPDATE {s}.workflow_status ws
    SET status = u.status, deduplication_id = NULL, owner_xid = NULL,
        updated_at = u.now_ms, completed_at = u.now_ms
    FROM oc_u u
    WHERE ws.workflow_uuid = u.workflow_id AND ws.status = 'PENDING'
      AND (u.owner_xid IS NULL OR ws.owner_xid = u.owner_xid)
    RETURNING ws.workflow_uuid
),
oc_stored AS (
    INSERT INTO {s}.workflow_output (workflow_uuid, output, error, retention_timestamp)
    SELECT u.workflow_id, u.output, u.error, u.now_ms
    FROM oc_u u JOIN oc_done d ON d.workflow_uuid = u.workflow_id
    ON CONFLICT (workflow_uuid) DO UPDATE SET output = EXCLUDED.output, error = EXCLUDED.error
)""",
    "SELECT 'oc', workflow_uuid, NULL::int, NULL, NULL, NULL, NULL, NULL::bigint FROM oc_done",
    lambda rows, batch: _written(rows, batch, ("workflow_id",)),
)

# (workflow_status column, parameter, array type) for each value a start writes.
_START_FIELDS: Final = (
    ("workflow_uuid", "workflow_id", "text"),
    ("status", "status", "text"),
    ("name", "name", "text"),
    ("executor_id", "executor_id", "text"),
    ("application_version", "application_version", "text"),
    ("application_id", "application_id", "text"),
    ("application_name", "application_name", "text"),
    ("queue_name", "queue_name", "text"),
    ("recovery_attempts", "recovery_attempts", "bigint"),
    ("workflow_timeout_ms", "timeout_ms", "bigint"),
    ("workflow_deadline_epoch_ms", "deadline_ms", "bigint"),
    ("deduplication_id", "deduplication_id", "text"),
    ("priority", "priority", "int"),
    ("queue_partition_key", "partition_key", "text"),
    ("delay_until_epoch_ms", "delay_until_ms", "bigint"),
    ("parent_workflow_id", "parent_workflow_id", "text"),
    ("creator_xid", "creator_xid", "text"),
    ("owner_xid", "owner_xid", "text"),
    ("is_debounced", "is_debounced", "boolean"),
    ("debounce_deadline_epoch_ms", "debounce_deadline_ms", "bigint"),
    ("authenticated_user", "authenticated_user", "text"),
    ("assumed_role", "assumed_role", "text"),
    ("authenticated_roles", "authenticated_roles", "text"),
    ("attributes", "attributes", "text"),  # JSON text, cast to jsonb per row below
    ("class_name", "class_name", "text"),
    ("config_name", "config_name", "text"),
    ("created_at", "now_ms", "bigint"),
)


def _start_values() -> str:
    return ", ".join(
        f"u.{param}::jsonb" if column == "attributes" else f"u.{param}"
        for column, param, _ in _START_FIELDS
    )


STARTS: Final = BatchSql(
    "sw",
    [*(param for _, param, _ in _START_FIELDS), "inputs"],
    _rows("sw", [*((param, kind) for _, param, kind in _START_FIELDS), ("inputs", "text")])
    + """,
sw_ins AS (
    INSERT INTO {s}.workflow_status AS ws ("""
    + ", ".join(column for column, _, _ in _START_FIELDS)
    + """, serialization, updated_at)
    SELECT """
    + _start_values()
    + """, 'portable_json', u.now_ms
    FROM sw_u u
    ON CONFLICT (workflow_uuid) DO UPDATE SET creator_xid = ws.creator_xid
    RETURNING workflow_uuid, status, name, queue_name, creator_xid, workflow_deadline_epoch_ms
),
sw_inp AS (
    INSERT INTO {s}.workflow_input (workflow_uuid, inputs, retention_timestamp)
    SELECT u.workflow_id, u.inputs, u.now_ms
    FROM sw_u u JOIN sw_ins i ON i.workflow_uuid = u.workflow_id AND i.creator_xid = u.creator_xid
    ON CONFLICT (workflow_uuid) DO NOTHING
)""",
    "SELECT 'sw', workflow_uuid, NULL::int, status, name, queue_name, creator_xid,"
    " workflow_deadline_epoch_ms FROM sw_ins",
    _found,
)


def statement(parts: Iterable[BatchSql]) -> tuple[LiteralString, list[str]]:
    """The one statement writing a batch of each of `parts`, and its parameters' names.

    The statement takes positional parameters (`$1`, ...) in the order of the names: it
    is long, and the driver re-parses named parameters of long statements every time.
    """
    chosen = sorted(parts, key=lambda part: part.tag)
    ctes = ",\n".join(part.ctes for part in chosen)
    results = "\nUNION ALL\n".join(part.result for part in chosen)
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    return _PARAM.sub(positional, f"WITH {ctes}\n{results}"), names
