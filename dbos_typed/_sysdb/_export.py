"""Copying workflows between system databases: their rows out as plain data, and back in.

A workflow's export is one dict per table it has rows in: its `workflow_status` row, its
`workflow_input` and `workflow_output` rows, and lists of its `operation_outputs`,
`workflow_events`, `workflow_events_history` and `streams` rows, with every column by name
(Go's `ExportedWorkflow`, with the 3.x input and output tables added). Values are made
portable between the backends: booleans are booleans, `attributes` is JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, LiteralString

from dbos_typed._sysdb._store_base import StoreBase, Transaction

#: The tables of one workflow, with their columns, in the order they are written.
STATUS_COLUMNS: Final[tuple[LiteralString, ...]] = (
    "workflow_uuid", "status", "name", "authenticated_user", "assumed_role",
    "authenticated_roles", "request", "output", "error", "executor_id", "created_at",
    "updated_at", "application_version", "application_id", "class_name", "config_name",
    "recovery_attempts", "queue_name", "workflow_timeout_ms", "workflow_deadline_epoch_ms",
    "inputs", "started_at_epoch_ms", "deduplication_id", "priority", "queue_partition_key",
    "forked_from", "owner_xid", "parent_workflow_id", "serialization",
    "delay_until_epoch_ms", "was_forked_from", "rate_limited", "completed_at", "attributes",
    "schedule_name", "debounce_deadline_epoch_ms", "is_debounced", "application_name",
    "creator_xid",
)  # fmt: skip
TABLES: Final[dict[LiteralString, tuple[LiteralString, ...]]] = {
    "workflow_status": STATUS_COLUMNS,
    "workflow_input": ("workflow_uuid", "inputs", "retention_timestamp"),
    "workflow_output": ("workflow_uuid", "output", "error", "retention_timestamp"),
    "operation_outputs": (
        "workflow_uuid", "function_id", "function_name", "output", "error",
        "child_workflow_id", "started_at_epoch_ms", "completed_at_epoch_ms", "serialization",
        "application_name", "retention_timestamp",
    ),
    "workflow_events": ("workflow_uuid", "key", "value", "serialization"),
    "workflow_events_history": ("workflow_uuid", "function_id", "key", "value", "serialization"),
    "streams": ("workflow_uuid", "key", "value", "offset", "function_id", "serialization"),
}  # fmt: skip
#: Tables holding at most one row per workflow (exported as a dict or None, not a list).
SINGLE_ROW: Final = frozenset({"workflow_status", "workflow_input", "workflow_output"})
_BOOLEANS: Final = frozenset({"was_forked_from", "rate_limited", "is_debounced"})


def _column_list(columns: Sequence[LiteralString]) -> LiteralString:
    return ", ".join('"offset"' if c == "offset" else c for c in columns)


def _select(table: LiteralString) -> LiteralString:
    return (
        "SELECT "
        + _column_list(TABLES[table])
        + " FROM {s}."
        + table
        + " WHERE workflow_uuid = %(workflow_id)s"
    )


def _insert(table: LiteralString) -> LiteralString:
    columns = TABLES[table]
    values = ", ".join("%(" + c + ")s" for c in columns)
    return "INSERT INTO {s}." + table + " (" + _column_list(columns) + ") VALUES (" + values + ")"


_SELECTS: Final = {table: _select(table) for table in TABLES}
_INSERTS: Final = {table: _insert(table) for table in TABLES}
_CHILDREN: Final = "SELECT workflow_uuid FROM {s}.workflow_status WHERE parent_workflow_id = %(workflow_id)s ORDER BY created_at, workflow_uuid"  # noqa: E501
_EXISTS: Final = "SELECT 1 FROM {s}.workflow_status WHERE workflow_uuid = %(workflow_id)s"


def _portable(column: str, value: Any) -> Any:
    if column in _BOOLEANS and value is not None:
        return bool(value)
    if column == "attributes" and value is not None and not isinstance(value, str):
        return json.dumps(value, separators=(",", ":"))  # Postgres hands jsonb back decoded
    return value


class ExportStore(StoreBase):
    """Reading a workflow's rows out, and writing exported rows in."""

    def export_rows(self, workflow_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Every row of each workflow, read in one transaction; missing ones are skipped."""

        def body(tx: Transaction) -> list[dict[str, Any]]:
            exported: list[dict[str, Any]] = []
            for workflow_id in workflow_ids:
                tables: dict[str, Any] = {}
                for table, columns in TABLES.items():
                    rows = [
                        {c: _portable(c, v) for c, v in zip(columns, row, strict=True)}
                        for row in tx.execute(_SELECTS[table], {"workflow_id": workflow_id})
                    ]
                    tables[table] = (rows[0] if rows else None) if table in SINGLE_ROW else rows
                if tables["workflow_status"] is not None:
                    exported.append(tables)
            return exported

        return self._transaction(body)

    def descendants(self, workflow_id: str) -> list[str]:
        """The IDs of a workflow's children, theirs, and so on, parents before children."""
        found: list[str] = []
        frontier = [workflow_id]
        while frontier:
            children = [
                str(row[0])
                for parent in frontier
                for row in self._query(_CHILDREN, {"workflow_id": parent})
            ]
            found.extend(children)
            frontier = children
        return found

    def import_rows(self, workflows: Sequence[Mapping[str, Any]]) -> str | None:
        """Insert exported workflows in one transaction.

        Returns:
            None, or the ID of a workflow that already exists, in which case nothing was
            written.
        """

        class _Taken(Exception):
            pass

        def body(tx: Transaction) -> None:
            for workflow in workflows:
                workflow_id = workflow["workflow_status"]["workflow_uuid"]
                if tx.execute(_EXISTS, {"workflow_id": workflow_id}):
                    raise _Taken(workflow_id)  # rolls every insert back
                for table in TABLES:
                    value = workflow[table]
                    rows = ([] if value is None else [value]) if table in SINGLE_ROW else value
                    for row in rows:
                        tx.execute(_INSERTS[table], row)

        try:
            self._transaction(body)
        except _Taken as exc:
            return str(exc.args[0])
        return None
