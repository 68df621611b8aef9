"""The hot statements read the status table through an index, never by scanning it.

Each test records the statements a public call really runs (through the store's `_query`
and the transactions it opens), over a database holding thousands of finished workflows,
a backlog on a queue nobody serves and other executors' PENDING rows, and asks each
backend for its plan: Postgres `EXPLAIN`, SQLite `EXPLAIN QUERY PLAN`.

On Postgres the plans are asked for with `enable_seqscan` off for the transaction: at a
test's size the planner may rightly prefer reading a small table whole, and the question
here is whether an index can serve the statement, which a plan with a sequential scan
even then answers with no. The figures at a million rows are in docs/performance.md.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, LiteralString

import pytest

import dbos_typed as dbos
from dbos_typed._sysdb._store import SystemStore
from dbos_typed._sysdb._store_base import Row, Transaction
from tests.conftest import Backend

WAIT = timedelta(seconds=20)
HISTORY = 5_000
BACKLOG = 500

Statement = tuple[LiteralString, dict[str, Any]]


def noop() -> None:
    return None


def hot(ctx: dbos.WorkflowContext, n: int) -> int:
    dbos.run_as_step(ctx, noop, name="noop")
    return n


# --- a database with history ---------------------------------------------------------

_FILL_PG = """
INSERT INTO {s}.workflow_status (
    workflow_uuid, status, name, executor_id, application_version, application_name,
    queue_name, created_at, updated_at, started_at_epoch_ms, completed_at
)
SELECT 'done-' || i, 'SUCCESS', CASE WHEN i %% 100 = 0 THEN 'hot' ELSE 'other_' || (i %% 10) END,
       'local', 'test-version', 'test-app', NULL, i, i, i, i
FROM generate_series(1, %s) AS i
UNION ALL
SELECT 'queued-' || i, 'ENQUEUED', 'backlogged', NULL, 'test-version', 'test-app', 'unserved',
       100000 + i, 100000 + i, NULL, NULL
FROM generate_series(1, %s) AS i
UNION ALL
SELECT 'stale-' || i, 'PENDING', 'stale', 'local', 'old-version', 'test-app', NULL,
       200000 + i, 200000 + i, 200000 + i, NULL
FROM generate_series(1, 50) AS i
"""

_STEPS_PG = """
INSERT INTO {s}.operation_outputs (workflow_uuid, function_id, function_name, output)
SELECT workflow_uuid, 0, 'noop', 'null' FROM {s}.workflow_status
"""

_FILL_SQLITE = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s)
INSERT INTO {s}.workflow_status (
    workflow_uuid, status, name, executor_id, application_version, application_name,
    queue_name, created_at, updated_at, started_at_epoch_ms, completed_at
)
SELECT 'done-' || i, 'SUCCESS', CASE WHEN i % 100 = 0 THEN 'hot' ELSE 'other_' || (i % 10) END,
       'local', 'test-version', 'test-app', NULL, i, i, i, i
FROM n
UNION ALL
SELECT 'queued-' || i, 'ENQUEUED', 'backlogged', NULL, 'test-version', 'test-app', 'unserved',
       100000 + i, 100000 + i, NULL, NULL
FROM n WHERE i <= %s
UNION ALL
SELECT 'stale-' || i, 'PENDING', 'stale', 'local', 'old-version', 'test-app', NULL,
       200000 + i, 200000 + i, 200000 + i, NULL
FROM n WHERE i <= 50
"""


def with_history(backend: Backend) -> dbos.DBOSContext:
    """A launched context with `hot` registered, on a database holding the history."""
    ctx = backend.new_context()  # creates the schema
    dbos.register_workflow(ctx, hot, name="hot")
    dbos.register_queue(ctx, "served")
    if backend.name == "postgres":
        backend.query(_FILL_PG, HISTORY, BACKLOG)
        backend.query(_STEPS_PG)
        backend.query("ANALYZE {s}.workflow_status")
        backend.query("ANALYZE {s}.operation_outputs")
    else:
        backend.query(_FILL_SQLITE.replace("%s", str(HISTORY), 1).replace("%s", str(BACKLOG)))
        backend.query(_STEPS_PG)
        backend.query("ANALYZE")
    ctx.launch()
    return ctx


# --- recording and explaining ----------------------------------------------------------


class _Recording:
    """A transaction that notes each statement before running it."""

    def __init__(self, tx: Transaction, seen: list[Statement]) -> None:
        self._tx = tx
        self._seen = seen

    def execute(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        self._seen.append((query, dict(params)))
        return self._tx.execute(query, params)


@contextmanager
def recorded(store: SystemStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Statement]]:
    """The statements the store runs inside the block, from any thread."""
    seen: list[Statement] = []
    lock = threading.Lock()
    query, transaction = store._query, store._transaction

    def recording_query(statement: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        with lock:
            seen.append((statement, dict(params)))
        return query(statement, params)

    def recording_transaction(body: Callable[[Transaction], Any]) -> Any:
        return transaction(lambda tx: body(_Recording(tx, seen)))

    with monkeypatch.context() as patch:
        patch.setattr(store, "_query", recording_query)
        patch.setattr(store, "_transaction", recording_transaction)
        yield seen


_EXPLAINABLE = re.compile(r"^\s*(WITH|SELECT|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def plan(store: SystemStore, statement: Statement) -> str:
    """The backend's plan of one recorded statement, one line per node."""
    query, params = statement
    if store.backend == "postgres":

        def body(tx: Transaction) -> list[Row]:
            tx.execute("SET LOCAL enable_seqscan = off", {})
            return tx.execute("EXPLAIN " + query, params)

        return "\n".join(str(row[0]) for row in store._transaction(body))
    return "\n".join(str(row[3]) for row in store._query("EXPLAIN QUERY PLAN " + query, params))


# A scan of one of these tables reads every row it has: on Postgres any sequential scan,
# on SQLite a SCAN of the table (by its name or its alias in these statements), unless it
# walks a partial index that holds only unfinished rows.
_PG_SCAN = re.compile(r"Seq Scan on (workflow_status|operation_outputs)\b")
_SQLITE_SCAN = re.compile(r"^SCAN (ws|oo|main\.workflow_status|main\.operation_outputs)\b(.*)$")
_BOUNDED = ("idx_workflow_status_pending", "idx_workflow_status_in_flight_v2")


def full_scans(store: SystemStore, text: str) -> list[str]:
    """The lines of a plan that read a whole history table."""
    if store.backend == "postgres":
        return [line for line in text.splitlines() if _PG_SCAN.search(line)]
    found = []
    for line in text.splitlines():
        match = _SQLITE_SCAN.match(line.strip())
        if match and not any(index in match.group(2) for index in _BOUNDED):
            found.append(line)
    return found


def explained(store: SystemStore, statements: list[Statement]) -> list[tuple[str, str]]:
    """(statement, plan) for every recorded statement on the history tables."""
    return [
        (statement[0], plan(store, statement))
        for statement in statements
        if _EXPLAINABLE.match(statement[0])
        and ("workflow_status" in statement[0] or "operation_outputs" in statement[0])
    ]


def assert_no_full_scans(store: SystemStore, plans: list[tuple[str, str]]) -> None:
    assert plans, "no statement on the history tables was recorded"
    for query, text in plans:
        assert not full_scans(store, text), f"{query}\nscans the table:\n{text}"


def uses(plans: list[tuple[str, str]], marker: str, index: str) -> str:
    """The plan of the one statement containing `marker`, which must use `index`."""
    matching = [text for query, text in plans if marker in query]
    assert matching, f"no recorded statement contains {marker!r}"
    for text in matching:
        assert index in text, f"expected {index} in:\n{text}"
    return matching[0]


# --- the hot calls ---------------------------------------------------------------------


@pytest.mark.parametrize("sort_desc", [False, True])
def test_listing_by_name_reads_the_name_index(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, sort_desc: bool
) -> None:
    ctx = with_history(backend)
    store = ctx._runtime.store
    with recorded(store, monkeypatch) as seen:
        listed = dbos.list_workflows(ctx, name="hot", limit=10, sort_desc=sort_desc)
    assert len(listed) == 10 and {w.name for w in listed} == {"hot"}
    plans = explained(store, seen)
    assert_no_full_scans(store, plans)
    uses(plans, "ws.name", "dbos_typed_workflow_status_name_created_at")
    # One name is compared with `=`, so the index order serves ORDER BY ... LIMIT.
    assert not any("ANY(" in query or "json_each" in query for query, _ in plans)


def test_listing_pending_workflows_reads_a_partial_index(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = with_history(backend)
    store = ctx._runtime.store
    with recorded(store, monkeypatch) as seen:
        listed = dbos.list_workflows(ctx, status="PENDING", limit=5)
    assert len(listed) == 5
    plans = explained(store, seen)
    assert_no_full_scans(store, plans)
    uses(plans, "ws.status", "idx_workflow_status_pending")


def test_steps_of_a_workflow_are_read_by_key(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = with_history(backend)
    store = ctx._runtime.store
    with recorded(store, monkeypatch) as seen:
        steps = dbos.get_workflow_steps(ctx, "done-100")
        with pytest.raises(dbos.NonExistentWorkflowError):
            dbos.get_workflow_steps(ctx, "no-such-workflow")
    assert [s.name for s in steps] == ["noop"]
    plans = explained(store, seen)
    assert_no_full_scans(store, plans)
    key = "operation_outputs_pkey" if backend.name == "postgres" else "(workflow_uuid=?)"
    uses(plans, "FROM {s}.operation_outputs", key)


def test_enqueue_to_start_never_scans_history_or_backlog(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = with_history(backend)
    store = ctx._runtime.store
    with recorded(store, monkeypatch) as seen:
        handle = dbos.run_workflow(ctx, hot, 7, queue="served")
        assert handle.get_result(timeout=WAIT) == 7
    plans = explained(store, seen)
    assert_no_full_scans(store, plans)
    # The runner's probe walks queue names, and the claim reads the served queue alone.
    uses(plans, "WITH RECURSIVE queues", "idx_workflow_status_in_flight_v2")
    uses(plans, "SET status = 'PENDING'", "idx_workflow_status_in_flight_v2")


def test_the_backlog_probe_reads_a_few_entries_per_queue(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = with_history(backend)
    store = ctx._runtime.store
    with recorded(store, monkeypatch) as seen:
        backlog = store.queue_backlog("test-app")
    # The unserved queue is reported (the runner decides what it serves), with no partition.
    assert backlog.ready == frozenset({("unserved", None)})
    plans = explained(store, seen)
    assert_no_full_scans(store, plans)
    text = uses(plans, "WITH RECURSIVE queues", "idx_workflow_status_in_flight_v2")
    if backend.name == "postgres":
        # No aggregate over the backlog: each name is one index lookup with LIMIT 1.
        assert "HashAggregate" not in text and "GroupAggregate" not in text


def test_recovery_reads_only_pending_rows(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = with_history(backend)
    store = ctx._runtime.store
    with recorded(store, monkeypatch) as seen:
        # What launch runs: this executor's PENDING rows of this version.
        recovered = store.recover_pending("local", "test-version", "test-app", 10**13)
    assert recovered == []  # the stale rows are of another version
    plans = explained(store, seen)
    assert_no_full_scans(store, plans)
    uses(plans, "status = 'PENDING'", "idx_workflow_status_pending")


def test_migrate_adds_a_missing_index_to_an_existing_schema(backend: Backend) -> None:
    # A schema DBOS's own migrations made has no such index; the next start creates it.
    backend.new_context().shutdown()
    drop = "DROP INDEX {s}.dbos_typed_workflow_status_name_created_at"
    backend.query(drop if backend.name == "postgres" else drop.replace("{s}.", ""))
    backend.new_context()
    if backend.name == "postgres":
        found = backend.query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
            backend.schema,
            "dbos_typed_workflow_status_name_created_at",
        )
    else:
        found = backend.query(
            "SELECT sql FROM sqlite_master WHERE name = %s",
            "dbos_typed_workflow_status_name_created_at",
        )
    assert len(found) == 1 and "(name, created_at, workflow_uuid)" in str(found[0][0])
    assert backend.query("SELECT version FROM {s}.dbos_migrations") == [(125,)]


def test_a_claim_walks_the_backlog_in_order_and_stops_at_its_limit(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = with_history(backend)
    store = ctx._runtime.store
    with recorded(store, monkeypatch) as seen:
        assert dbos.run_workflow(ctx, hot, 7, queue="served").get_result(timeout=WAIT) == 7
    query, params = next(s for s in seen if "SET status = 'PENDING'" in s[0])
    # The same claim of 10 from the unserved queue's backlog of 500, as a server of it.
    backlog = {
        **params,
        "queue_name": "unserved",
        "names": json.dumps([["backlogged", ""]]),
        "limit": 10,
    }
    text = plan(store, (query, backlog))
    assert "idx_workflow_status_in_flight_v2" in text, text
    # No node sorts the backlog: the index gives the order, so the scan ends at the limit
    # rather than reading every waiting row at every claim.
    sorts = "Sort" if backend.name == "postgres" else "TEMP B-TREE"
    assert sorts not in text, text
