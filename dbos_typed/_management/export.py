"""export_workflow and import_workflow: moving workflows between system databases.

An export is plain JSON data (a list with one entry per workflow; see `_sysdb._export` for
the layout), so it can be written to a file, sent over a network and imported into another
system database, of either backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dbos_typed._core.context import Connected
from dbos_typed._core.durable import in_workflow_body
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.validate import checked_name
from dbos_typed._sysdb._export import SINGLE_ROW, TABLES
from dbos_typed.errors import InvalidOptionError, NonExistentWorkflowError, WorkflowExistsError

ExportedWorkflows = list[dict[str, Any]]

_SCALARS = (str, int, float, bool, type(None))


def export_workflow(
    ctx: Connected, workflow_id: str, /, *, children: bool = False
) -> ExportedWorkflows:
    """Every row of a workflow, as plain JSON data another system database can import.

    The export holds the workflow's status row, its input and output, its steps, its
    events and their history, and its streams, with every column as stored (Go's and
    DBOS Conductor's export). `json.dumps` writes it; `import_workflow` reads it back.

    Durability: a read; the rows are read in one transaction, so the export is a
    consistent picture of the workflow even while it runs.

    Args:
        ctx: A context or a `Client` (not a workflow body; call it from a step there).
        workflow_id: The workflow.
        children: Also export the workflows it started, theirs, and so on.

    Returns:
        One entry per workflow, the given one first, parents before their children.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
    """
    runtime = _outside_workflow(ctx, "export_workflow")
    workflow_id = checked_name(workflow_id, "workflow_id")
    if not isinstance(children, bool):
        raise InvalidOptionError("children", "expected a bool")
    ids = [workflow_id] + (runtime.store.descendants(workflow_id) if children else [])
    exported = runtime.store.export_rows(ids)
    if not exported or exported[0]["workflow_status"]["workflow_uuid"] != workflow_id:
        raise NonExistentWorkflowError(workflow_id)
    return exported


def import_workflow(ctx: Connected, exported: ExportedWorkflows | str, /) -> None:
    """Insert workflows exported by `export_workflow` (possibly from another database).

    The rows are written as exported: a finished workflow reads as finished (its result,
    steps, events and streams included), and one that was PENDING or ENQUEUED is recovered
    or dequeued here like any other.

    Durability: all or nothing: every row of every workflow is inserted in one
    transaction. If any workflow's ID already exists here, nothing is written.

    Args:
        ctx: A context or a `Client` (not a workflow body; call it from a step there).
        exported: What `export_workflow` returned, or its JSON text.

    Raises:
        InvalidOptionError: the document is malformed (the message says where and what).
        WorkflowExistsError: a workflow with one of its IDs exists here already.
    """
    runtime = _outside_workflow(ctx, "import_workflow")
    workflows = checked_export(exported)
    taken = runtime.store.import_rows(workflows)
    if taken is not None:
        raise WorkflowExistsError(taken)
    runtime.announce_work()  # an imported ENQUEUED workflow is work for the runners


def checked_export(exported: object) -> list[dict[str, Any]]:
    """The exported workflows, after checking every table, row and column.

    Raises:
        InvalidOptionError: naming the workflow, table, row and column that is wrong.
    """
    if isinstance(exported, str):
        try:
            exported = json.loads(exported)
        except ValueError as exc:
            raise InvalidOptionError("exported", f"not JSON: {exc}") from exc
    if not isinstance(exported, list) or not exported:
        raise InvalidOptionError("exported", "expected the non-empty list export_workflow returns")
    seen: set[str] = set()
    for index, workflow in enumerate(exported):
        where = f"workflow [{index}]"
        if not isinstance(workflow, Mapping):
            raise InvalidOptionError("exported", f"{where}: expected an object of tables")
        _check_tables(where, workflow)
        workflow_id = workflow["workflow_status"]["workflow_uuid"]
        if workflow_id in seen:
            raise InvalidOptionError("exported", f"{where}: workflow {workflow_id!r} appears twice")
        seen.add(workflow_id)
    return exported


def _check_tables(where: str, workflow: Mapping[str, Any]) -> None:
    extra = sorted(set(workflow) - set(TABLES))
    if extra:
        raise InvalidOptionError("exported", f"{where}: unknown table {extra[0]!r}")
    for table in TABLES:
        if table not in workflow:
            raise InvalidOptionError("exported", f"{where}: missing table {table!r}")
    status = workflow["workflow_status"]
    if not isinstance(status, Mapping):
        raise InvalidOptionError("exported", f"{where}: 'workflow_status' must be an object")
    _check_row(f"{where} 'workflow_status'", "workflow_status", status, None)
    workflow_id = status["workflow_uuid"]
    if not isinstance(workflow_id, str) or not workflow_id:
        raise InvalidOptionError("exported", f"{where}: 'workflow_uuid' must be a non-empty string")
    for table in TABLES:
        if table == "workflow_status":
            continue
        value = workflow[table]
        if table in SINGLE_ROW:
            if value is not None and not isinstance(value, Mapping):
                raise InvalidOptionError(
                    "exported", f"{where}: {table!r} must be an object or null"
                )
            rows = [] if value is None else [value]
        elif isinstance(value, list):
            rows = value
        else:
            raise InvalidOptionError("exported", f"{where}: {table!r} must be a list of rows")
        for number, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InvalidOptionError(
                    "exported", f"{where} {table!r} row {number}: not an object"
                )
            _check_row(f"{where} {table!r} row {number}", table, row, workflow_id)


def _check_row(where: str, table: str, row: Mapping[str, Any], workflow_id: str | None) -> None:
    columns = TABLES[table]
    for column in columns:
        if column not in row:
            raise InvalidOptionError("exported", f"{where}: missing column {column!r}")
    extra = sorted(set(row) - set(columns))
    if extra:
        raise InvalidOptionError("exported", f"{where}: unknown column {extra[0]!r}")
    for column in columns:
        if not isinstance(row[column], _SCALARS):
            raise InvalidOptionError(
                "exported", f"{where}: column {column!r} must be a JSON scalar"
            )
    if workflow_id is not None and row["workflow_uuid"] != workflow_id:
        raise InvalidOptionError(
            "exported", f"{where}: 'workflow_uuid' is not the workflow's ID {workflow_id!r}"
        )


def _outside_workflow(ctx: object, call: str) -> Runtime:
    if not isinstance(ctx, Connected):
        raise InvalidOptionError("ctx", "expected a DBOSContext or a Client")
    if in_workflow_body(ctx):
        raise InvalidOptionError(
            "ctx", f"{call} cannot be called from a workflow; call it from a step"
        )
    return ctx._runtime
