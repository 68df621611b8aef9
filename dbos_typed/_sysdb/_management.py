"""Management statements: listing, forking, deleting and trimming workflows.

Listing (and the aggregates in `_aggregates`) composes its WHERE clause from fixed
fragments, one per filter, so the statement is still built only from constants; list
filters bind one parameter each (an array on Postgres, a JSON array on SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._rows import QueueRow, StatusRecord, StepRecord
from dbos_typed._sysdb._store_base import Transaction, queue_from, status_from_row, step_from
from dbos_typed._sysdb._workflow_store import WorkflowStore

_JOIN_INPUT: LiteralString = (
    "LEFT JOIN {s}.workflow_input wi ON wi.workflow_uuid = ws.workflow_uuid\n"
)
_JOIN_OUTPUT: LiteralString = (
    "LEFT JOIN {s}.workflow_output wo ON wo.workflow_uuid = ws.workflow_uuid\n"
)


@dataclass(frozen=True, slots=True)
class WorkflowFilter:
    """Which workflows to list or aggregate; None means "any".

    `application_name` selects that application's workflows and unclaimed ones;
    `application_names` selects exactly the named applications. `limit`, `offset`,
    `sort_desc` and the `load_*` flags shape a listing; aggregates ignore them.
    """

    workflow_ids: Sequence[str] | None = None
    workflow_id_prefix: str | None = None
    statuses: Sequence[str] | None = None
    names: Sequence[str] | None = None
    application_versions: Sequence[str] | None = None
    executor_ids: Sequence[str] | None = None
    users: Sequence[str] | None = None
    queue_names: Sequence[str] | None = None
    queues_only: bool = False
    parent_workflow_id: str | None = None
    forked_from: str | None = None
    created_after_ms: int | None = None
    created_before_ms: int | None = None
    completed_after_ms: int | None = None
    completed_before_ms: int | None = None
    dequeued_after_ms: int | None = None
    dequeued_before_ms: int | None = None
    was_forked_from: bool | None = None
    has_parent: bool | None = None
    schedule_names: Sequence[str] | None = None
    deduplication_ids: Sequence[str] | None = None
    is_debounced: bool | None = None
    attributes: Mapping[str, Any] | None = None
    application_name: str | None = None
    application_names: Sequence[str] | None = None
    limit: int | None = None
    offset: int | None = None
    sort_desc: bool = False
    load_input: bool = True
    load_output: bool = True


def _all_of(clauses: list[LiteralString]) -> LiteralString:
    joined: LiteralString = clauses[0]
    for clause in clauses[1:]:
        joined = joined + " AND " + clause
    return joined


# JSON containment of a flat object. Postgres has it natively; on SQLite every key of the
# wanted object must be present with a value of the same JSON type (integers and reals are
# both numbers) and the same value, which is exact for scalars. Nested values are refused
# before the statement is built (see `attributes_matchable`).
_ATTRIBUTES_PG: LiteralString = "ws.attributes @> %(attributes)s::jsonb"

_ATTRIBUTES_SQLITE: LiteralString = """json_type(
    CASE WHEN json_valid(ws.attributes) THEN ws.attributes END) = 'object'
AND NOT EXISTS (
    SELECT 1 FROM json_each(%(attributes)s) AS want
    WHERE NOT EXISTS (
        SELECT 1
        FROM json_each(CASE WHEN json_valid(ws.attributes) THEN ws.attributes END) AS have
        WHERE have.key = want.key
          AND (have.type = want.type
               OR (have.type IN ('integer', 'real') AND want.type IN ('integer', 'real')))
          AND (want.type IN ('null', 'true', 'false') OR have.atom = want.atom)
    )
)"""

_INT64 = range(-(2**63), 2**63)


def where(clauses: list[LiteralString]) -> LiteralString:
    """A WHERE clause requiring every condition (nothing when there are none)."""
    return "WHERE " + _all_of(clauses) + "\n" if clauses else ""


_LIST_STEPS_PAGED: LiteralString = q.STEP_SELECT + "ORDER BY function_id\n"


_CHILDREN: LiteralString = """
SELECT workflow_uuid FROM {s}.workflow_status WHERE parent_workflow_id = %(workflow_id)s
"""


_DELETE_STATEMENTS: tuple[LiteralString, ...] = (
    # operation_outputs, workflow_input and workflow_output have no foreign key in the
    # DBOS 3.x schema, so they are deleted explicitly; the rest cascade.
    "DELETE FROM {s}.operation_outputs WHERE workflow_uuid = %(workflow_id)s",
    "DELETE FROM {s}.workflow_input WHERE workflow_uuid = %(workflow_id)s",
    "DELETE FROM {s}.workflow_output WHERE workflow_uuid = %(workflow_id)s",
    "DELETE FROM {s}.workflow_status WHERE workflow_uuid = %(workflow_id)s",
)


_FORK_STATUS: LiteralString = """
INSERT INTO {s}.workflow_status (
    workflow_uuid, status, name, class_name, config_name, authenticated_user, assumed_role,
    authenticated_roles, application_version, application_id, application_name, queue_name,
    queue_partition_key, recovery_attempts, workflow_timeout_ms, priority, forked_from,
    serialization, attributes, created_at, updated_at, owner_xid
)
SELECT %(new_id)s, 'ENQUEUED', name, class_name, config_name, authenticated_user,
       assumed_role, authenticated_roles, %(version)s, application_id, application_name,
       %(queue)s, %(partition_key)s, 0, workflow_timeout_ms, priority, workflow_uuid,
       serialization,
       attributes, %(now_ms)s, %(now_ms)s, NULL
FROM {s}.workflow_status WHERE workflow_uuid = %(workflow_id)s
"""

_FORK_INPUT: LiteralString = """
INSERT INTO {s}.workflow_input (workflow_uuid, inputs, retention_timestamp)
SELECT %(new_id)s, COALESCE(wi.inputs, ws.inputs), %(now_ms)s
FROM {s}.workflow_status ws
LEFT JOIN {s}.workflow_input wi ON wi.workflow_uuid = ws.workflow_uuid
WHERE ws.workflow_uuid = %(workflow_id)s
"""

_FORK_STEPS: LiteralString = """
INSERT INTO {s}.operation_outputs (
    workflow_uuid, function_id, function_name, output, error, child_workflow_id,
    started_at_epoch_ms, completed_at_epoch_ms, serialization, application_name,
    retention_timestamp
)
SELECT %(new_id)s, function_id, function_name, output, error, child_workflow_id,
       started_at_epoch_ms, completed_at_epoch_ms, serialization, application_name,
       %(now_ms)s
FROM {s}.operation_outputs
WHERE workflow_uuid = %(workflow_id)s AND function_id < %(start_step)s
"""

_FORK_EVENT_HISTORY: LiteralString = """
INSERT INTO {s}.workflow_events_history (workflow_uuid, function_id, key, value, serialization)
SELECT %(new_id)s, function_id, key, value, serialization
FROM {s}.workflow_events_history
WHERE workflow_uuid = %(workflow_id)s AND function_id < %(start_step)s
"""

# The latest value of each key among the copied history is the fork's current event.
_FORK_EVENTS: LiteralString = """
INSERT INTO {s}.workflow_events (workflow_uuid, key, value, serialization)
SELECT %(new_id)s, h.key, h.value, h.serialization
FROM {s}.workflow_events_history h
WHERE h.workflow_uuid = %(new_id)s AND h.function_id = (
    SELECT max(h2.function_id) FROM {s}.workflow_events_history h2
    WHERE h2.workflow_uuid = %(new_id)s AND h2.key = h.key
)
"""

_FORK_STREAMS: LiteralString = """
INSERT INTO {s}.streams (workflow_uuid, key, value, "offset", function_id, serialization)
SELECT %(new_id)s, key, value, "offset", function_id, serialization
FROM {s}.streams
WHERE workflow_uuid = %(workflow_id)s AND function_id < %(start_step)s
"""

_MARK_FORKED: LiteralString = """
UPDATE {s}.workflow_status SET was_forked_from = TRUE WHERE workflow_uuid = %(workflow_id)s
"""


class _MissingOriginal(Exception):
    """Rolls a batch of forks back: one of the originals does not exist."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id


_GC_BY_TIME: LiteralString = """
SELECT workflow_uuid FROM {s}.workflow_status
WHERE created_at < %(cutoff)s AND status NOT IN ('PENDING', 'ENQUEUED', 'DELAYED')
"""

_GC_BY_ROWS: LiteralString = """
SELECT workflow_uuid FROM {s}.workflow_status
WHERE status NOT IN ('PENDING', 'ENQUEUED', 'DELAYED')
  AND created_at < (
    SELECT min(created_at) FROM (
        SELECT created_at FROM {s}.workflow_status ORDER BY created_at DESC LIMIT %(keep)s
    ) newest
)
"""


_TIMEOUT_OLD: LiteralString = """
UPDATE {s}.workflow_status
SET status = 'CANCELLED', queue_name = NULL, deduplication_id = NULL,
    started_at_epoch_ms = NULL, owner_xid = NULL, updated_at = %(now_ms)s,
    completed_at = %(now_ms)s
WHERE created_at < %(cutoff)s AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')
RETURNING workflow_uuid
"""


_SET_ATTRIBUTES_PG: LiteralString = """
UPDATE {s}.workflow_status SET attributes = %(attributes)s::jsonb, updated_at = %(now_ms)s
WHERE workflow_uuid = %(workflow_id)s RETURNING 1
"""

_SET_ATTRIBUTES_SQLITE: LiteralString = """
UPDATE {s}.workflow_status SET attributes = %(attributes)s, updated_at = %(now_ms)s
WHERE workflow_uuid = %(workflow_id)s RETURNING 1
"""


_LIST_QUEUES: LiteralString = q.QUEUE_COLUMNS + "WHERE name <> '_dbos_internal_queue'\n"


_ADOPT_PENDING: LiteralString = """
UPDATE {s}.workflow_status
SET status = 'ENQUEUED', started_at_epoch_ms = NULL, owner_xid = NULL,
    queue_name = COALESCE(NULLIF(queue_name, ''), '_dbos_internal_queue'),
    application_version = %(new_version)s, updated_at = %(now_ms)s
WHERE status = 'PENDING'
  AND (application_name = %(app)s OR application_name IS NULL)
"""


_STRANDED: LiteralString = """
SELECT application_version, count(*), min(workflow_uuid)
FROM {s}.workflow_status
WHERE status = 'PENDING' AND executor_id = %(executor_id)s
  AND application_version <> %(version)s
  AND (application_name = %(app)s OR application_name IS NULL)
GROUP BY application_version
ORDER BY application_version
"""


class ManagementStore(WorkflowStore):
    """Listing, forks, deletion, retention, attributes, adoption: operations across workflows."""

    def _in_list(self, column: LiteralString, param: LiteralString) -> LiteralString:
        if self.backend == "postgres":
            return column + " = ANY(%(" + param + ")s)"
        return column + " IN (SELECT value FROM json_each(%(" + param + ")s))"

    def _list_param(self, values: Sequence[str]) -> Any:
        return list(values) if self.backend == "postgres" else json.dumps(list(values))

    def attributes_matchable(self, attributes: Mapping[str, Any]) -> bool:
        """Whether this backend can match `attributes` by containment exactly.

        Postgres matches any JSON. SQLite matches top-level keys whose values are strings,
        numbers that fit its integers or floats, booleans and null.
        """
        if self.backend == "postgres":
            return True
        return all(
            v is None or isinstance(v, bool | str | float) or (isinstance(v, int) and v in _INT64)
            for v in attributes.values()
        )

    def workflow_conditions(self, f: WorkflowFilter) -> tuple[list[LiteralString], dict[str, Any]]:
        """The conditions selecting `f`'s workflows (table alias `ws`), and their parameters."""
        clauses: list[LiteralString] = []
        params: dict[str, Any] = {}
        lists: tuple[tuple[Sequence[str] | None, LiteralString, LiteralString], ...] = (
            (f.workflow_ids, "ws.workflow_uuid", "ids"),
            (f.statuses, "ws.status", "statuses"),
            (f.names, "ws.name", "names"),
            (f.application_versions, "ws.application_version", "versions"),
            (f.executor_ids, "ws.executor_id", "executors"),
            (f.users, "ws.authenticated_user", "users"),
            (f.queue_names, "ws.queue_name", "queues"),
            (f.schedule_names, "ws.schedule_name", "schedules"),
            (f.deduplication_ids, "ws.deduplication_id", "dedup_ids"),
            (f.application_names, "ws.application_name", "apps"),
        )
        for values, column, param in lists:
            if values is None:
                continue
            if len(values) == 1:
                # `=` rather than a list: the planner then uses an index in its order
                # (name, created_at) and proves partial indexes (status = 'PENDING').
                clauses.append(column + " = %(" + param + ")s")
                params[param] = values[0]
            else:
                clauses.append(self._in_list(column, param))
                params[param] = self._list_param(values)
        scalars: tuple[tuple[object, LiteralString, LiteralString], ...] = (
            (f.parent_workflow_id, "ws.parent_workflow_id = %(parent)s", "parent"),
            (f.forked_from, "ws.forked_from = %(forked_from)s", "forked_from"),
            (f.created_after_ms, "ws.created_at >= %(created_after)s", "created_after"),
            (f.created_before_ms, "ws.created_at <= %(created_before)s", "created_before"),
            (f.completed_after_ms, "ws.completed_at >= %(completed_after)s", "completed_after"),
            (f.completed_before_ms, "ws.completed_at <= %(completed_before)s", "completed_before"),
            (f.dequeued_after_ms, "ws.started_at_epoch_ms >= %(dequeued_after)s", "dequeued_after"),
            (
                f.dequeued_before_ms,
                "ws.started_at_epoch_ms <= %(dequeued_before)s",
                "dequeued_before",
            ),
            (f.was_forked_from, "ws.was_forked_from = %(was_forked_from)s", "was_forked_from"),
            (f.is_debounced, "ws.is_debounced = %(is_debounced)s", "is_debounced"),
            (
                f.application_name,
                "(ws.application_name = %(app)s OR ws.application_name IS NULL)",
                "app",
            ),
        )
        for value, clause, param in scalars:
            if value is not None:
                clauses.append(clause)
                params[param] = value
        if f.has_parent is not None:
            clauses.append(
                "ws.parent_workflow_id IS NOT NULL"
                if f.has_parent
                else "ws.parent_workflow_id IS NULL"
            )
        if f.attributes is not None:
            clauses.append(_ATTRIBUTES_PG if self.backend == "postgres" else _ATTRIBUTES_SQLITE)
            params["attributes"] = json.dumps(dict(f.attributes), separators=(",", ":"))
        if f.workflow_id_prefix is not None:
            # A range instead of LIKE, so '%' and '_' in IDs are data, never patterns.
            clauses.append("ws.workflow_uuid >= %(prefix)s AND ws.workflow_uuid < %(prefix_end)s")
            params["prefix"] = f.workflow_id_prefix
            params["prefix_end"] = f.workflow_id_prefix + "\U0010ffff"
        if f.queues_only:
            clauses.append("ws.queue_name IS NOT NULL")
            if f.statuses is None:
                clauses.append("ws.status IN ('ENQUEUED', 'PENDING', 'DELAYED')")
        return clauses, params

    def list_workflows(self, f: WorkflowFilter) -> list[StatusRecord]:
        """The workflows matching `f`, oldest first unless `sort_desc`."""
        inputs: LiteralString = "COALESCE(wi.inputs, ws.inputs)" if f.load_input else "NULL"
        output: LiteralString = "COALESCE(wo.output, ws.output)" if f.load_output else "NULL"
        error: LiteralString = "COALESCE(wo.error, ws.error)" if f.load_output else "NULL"
        query: LiteralString = (
            q.STATUS_SELECT.replace("{inputs}", inputs)
            .replace("{output}", output)
            .replace("{error}", error)
        )
        if f.load_input:
            query += _JOIN_INPUT
        if f.load_output:
            query += _JOIN_OUTPUT
        clauses, params = self.workflow_conditions(f)
        query += where(clauses)
        query += (
            "ORDER BY ws.created_at DESC, ws.workflow_uuid DESC\n"
            if f.sort_desc
            else ("ORDER BY ws.created_at, ws.workflow_uuid\n")
        )
        if f.limit is not None:
            query += "LIMIT %(limit)s\n"
            params["limit"] = f.limit
        if f.offset is not None:
            if f.limit is None:
                query += "LIMIT -1\n" if self.backend == "sqlite" else ""
            query += "OFFSET %(offset)s\n"
            params["offset"] = f.offset
        return [status_from_row(r) for r in self._query(query, params)]

    def list_steps_page(
        self,
        workflow_id: str,
        *,
        load_output: bool,
        limit: int | None,
        offset: int | None,
    ) -> list[StepRecord]:
        """A workflow's recorded steps in order, optionally without payloads, one page."""
        query: LiteralString = _LIST_STEPS_PAGED.replace(
            "{output}", "output" if load_output else "NULL"
        ).replace("{error}", "error" if load_output else "NULL")
        params: dict[str, Any] = {"workflow_id": workflow_id}
        if limit is not None:
            query += "LIMIT %(limit)s\n"
            params["limit"] = limit
        if offset is not None:
            if limit is None and self.backend == "sqlite":
                query += "LIMIT -1\n"
            query += "OFFSET %(offset)s\n"
            params["offset"] = offset
        return [step_from(r) for r in self._query(query, params)]

    def with_descendants(
        self,
        workflow_ids: Sequence[str],
        *,
        visit: Callable[[str], object] = lambda _: None,
    ) -> list[str]:
        """The given workflows followed by all their descendants, breadth first.

        `visit` is called on each workflow before its children are looked up, so a change it
        makes (a cancel) is committed before the listing that follows it.
        """
        seen: dict[str, None] = dict.fromkeys(workflow_ids)
        frontier = list(workflow_ids)
        while frontier:
            children: list[str] = []
            for workflow_id in frontier:
                visit(workflow_id)
                for (child,) in self._query(_CHILDREN, {"workflow_id": workflow_id}):
                    if child not in seen:
                        seen[child] = None
                        children.append(child)
            frontier = children
        return list(seen)

    def cancel_tree(self, workflow_ids: Sequence[str], now_ms: int) -> list[str]:
        """Cancel workflows and every descendant; returns them all, breadth first.

        Complete even while the tree grows: each workflow is cancelled before its children are
        listed, and a child start holds its parent's row while checking that it is PENDING
        (`insert_child_workflow`), so a child either starts before the cancel and is listed,
        or is refused.
        """
        return self.with_descendants(
            workflow_ids, visit=lambda workflow_id: self.cancel_workflow(workflow_id, now_ms)
        )

    def delete_workflows(self, workflow_ids: Sequence[str]) -> None:
        """Delete workflows and everything recorded for them, in one transaction."""

        def body(tx: Transaction) -> None:
            for workflow_id in workflow_ids:
                for statement in _DELETE_STATEMENTS:
                    tx.execute(statement, {"workflow_id": workflow_id})

        self._transaction(body)

    def fork_workflows(
        self,
        forks: Sequence[tuple[str, str, int]],
        *,
        application_version: str | None,
        queue_name: str,
        partition_key: str | None = None,
        now_ms: int,
    ) -> str | None:
        """Copy workflows as new ENQUEUED ones, each with what it recorded before its start step.

        `forks` holds (original ID, new ID, start step) triples, all made in one transaction:
        the steps, event history and stream entries before the start step are copied, and the
        original is marked as forked. The copies go to `queue_name`, under `partition_key`
        when it is given.

        Returns:
            None, or the ID of an original that does not exist (then nothing was written).
        """

        def body(tx: Transaction) -> None:
            for workflow_id, new_id, start_step in forks:
                params = {
                    "workflow_id": workflow_id,
                    "new_id": new_id,
                    "start_step": start_step,
                    "version": application_version,
                    "queue": queue_name,
                    "partition_key": partition_key,
                    "now_ms": now_ms,
                }
                if not tx.execute(_MARK_FORKED + "RETURNING 1", params):
                    raise _MissingOriginal(workflow_id)
                for statement in (
                    _FORK_STATUS,
                    _FORK_INPUT,
                    _FORK_STEPS,
                    _FORK_EVENT_HISTORY,
                    _FORK_EVENTS,
                    _FORK_STREAMS,
                ):
                    tx.execute(statement, params)

        try:
            self._transaction(body)
        except _MissingOriginal as missing:
            return missing.workflow_id
        return None

    def garbage_collect(self, *, cutoff_ms: int | None, keep_rows: int | None) -> list[str]:
        """Delete finished workflows older than the cutoff, or beyond the newest `keep_rows`.

        Returns:
            The IDs of the workflows deleted.
        """
        doomed: set[str] = set()
        if cutoff_ms is not None:
            doomed.update(r[0] for r in self._query(_GC_BY_TIME, {"cutoff": cutoff_ms}))
        if keep_rows is not None:
            doomed.update(r[0] for r in self._query(_GC_BY_ROWS, {"keep": keep_rows}))
        ordered = sorted(doomed)
        for start in range(0, len(ordered), 1000):
            self.delete_workflows(ordered[start : start + 1000])
        return ordered

    def cancel_created_before(self, cutoff_ms: int, now_ms: int) -> list[str]:
        """Cancel every unfinished workflow created before the cutoff; returns their IDs."""
        return [r[0] for r in self._query(_TIMEOUT_OLD, {"cutoff": cutoff_ms, "now_ms": now_ms})]

    def set_attributes(self, workflow_id: str, attributes: str, now_ms: int) -> bool:
        """Replace a workflow's JSON attributes; False if it does not exist."""
        query = _SET_ATTRIBUTES_PG if self.backend == "postgres" else _SET_ATTRIBUTES_SQLITE
        params = {"workflow_id": workflow_id, "attributes": attributes, "now_ms": now_ms}
        return bool(self._query(query, params))

    def list_queues_of(self, application_names: Sequence[str] | None) -> list[QueueRow]:
        """Declared queues by name: those of these applications and the unclaimed ones, or all.

        The internal queue is never listed, even if a row of that name was written.
        """
        query: LiteralString = _LIST_QUEUES
        params: dict[str, Any] = {}
        if application_names is not None:
            owned = self._in_list("application_name", "apps")
            query += "  AND (application_name IS NULL OR " + owned + ")\n"
            params["apps"] = self._list_param(application_names)
        return [queue_from(r) for r in self._query(query + "ORDER BY name", params)]

    def adopt_pending(
        self,
        *,
        executor_ids: Sequence[str],
        application_versions: Sequence[str] | None,
        new_version: str,
        application_name: str,
        now_ms: int,
    ) -> list[str]:
        """Re-enqueue PENDING workflows of the given executors (and versions) as `new_version`."""
        query: LiteralString = _ADOPT_PENDING + "  AND " + self._in_list("executor_id", "executors")
        params: dict[str, Any] = {
            "new_version": new_version,
            "now_ms": now_ms,
            "app": application_name,
            "executors": self._list_param(executor_ids),
        }
        if application_versions is not None:
            query += "\n  AND " + self._in_list("application_version", "versions")
            params["versions"] = self._list_param(application_versions)
        return [r[0] for r in self._query(query + "\nRETURNING workflow_uuid", params)]

    def stranded_versions(
        self, *, executor_id: str, version: str, application_name: str
    ) -> list[tuple[str, int, str]]:
        """(version, count, an example ID) of this executor's PENDING work of other versions."""
        rows = self._query(
            _STRANDED, {"executor_id": executor_id, "version": version, "app": application_name}
        )
        return [(r[0], int(r[1]), r[2]) for r in rows]
