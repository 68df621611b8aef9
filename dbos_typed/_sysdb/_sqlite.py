"""The embedded SQLite backend: one file, WAL mode, writes under `BEGIN IMMEDIATE`."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, LiteralString, TypeVar

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._retry import StoreClosedError, retry_outages
from dbos_typed._sysdb._rows import (
    ClaimedWorkflow,
    ClaimRequest,
    Deduplicated,
    InsertedWorkflow,
    NewWorkflow,
    StatusName,
)
from dbos_typed._sysdb._schema_sqlite import SCHEMA_VERSION, SQLITE_ADDITIONS, SQLITE_BASELINE
from dbos_typed._sysdb._store import SystemStore
from dbos_typed._sysdb._store_base import (
    Row,
    Transaction,
    claim_params,
    claimed_from,
    driver_error,
    global_capacity,
    outcome_params,
)
from dbos_typed.errors import InitializationError, SystemDatabaseError

T = TypeVar("T")

_PARAM = re.compile(r"%\((\w+)\)s")
_BUSY_TIMEOUT_MS = 30_000
_HAS_MIGRATIONS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dbos_migrations'"


def _is_busy(exc: BaseException) -> bool:
    # Another process holds the write lock for longer than busy_timeout: wait again.
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise SystemDatabaseError(
            f"the system database refused an operation: {exc}",
            sqlstate=getattr(exc, "sqlite_errorname", None),
        ) from exc


class _SqliteTransaction:
    __slots__ = ("_compile", "_conn")

    def __init__(self, conn: sqlite3.Connection, compile_: Callable[[str], str]) -> None:
        self._conn = conn
        self._compile = compile_

    def execute(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        return self._conn.execute(self._compile(query), params).fetchall()


class SqliteStore(SystemStore):
    """System database in a local SQLite file.

    One connection serves the whole process behind a lock: SQLite runs one writer at a time
    anyway, and WAL mode lets other processes read while this one writes.
    """

    backend = "sqlite"

    def __init__(self, path: str) -> None:
        self._path = path
        self._compiled: dict[str, str] = {}
        self._lock = threading.RLock()
        self._closed = threading.Event()
        if path != ":memory:":
            parent = Path(path).parent
            if not parent.is_dir():
                raise InitializationError(
                    f"cannot open SQLite system database {path!r}: "
                    f"directory {str(parent)!r} does not exist"
                )
        try:
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
            )
            self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            # Switching to WAL can report "locked" without waiting on the busy timeout
            # while another process opens the same new file; wait for it like any lock.
            retry_outages(
                lambda: self._conn.execute("PRAGMA journal_mode=WAL"),
                is_outage=_is_busy,
                closed=self._closed,
                what="opening the database",
            )
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise InitializationError(
                f"cannot open SQLite system database {path!r}: {exc}"
            ) from exc

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise StoreClosedError("the system database was closed (the context shut down)")

    def _compile(self, query: str) -> str:
        compiled = self._compiled.get(query)
        if compiled is None:
            compiled = _PARAM.sub(r":\1", query.replace("{s}.", "main."))
            self._compiled[query] = compiled
        return compiled

    def _query(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        compiled = self._compile(query)

        def action() -> list[Row]:
            with self._lock:
                self._check_open()
                return self._conn.execute(compiled, params).fetchall()

        with _translated_errors():
            return retry_outages(action, is_outage=_is_busy, closed=self._closed, what="a query")

    def _transaction(self, body: Callable[[Transaction], T]) -> T:
        def action() -> T:
            with self._lock:
                self._check_open()
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = body(_SqliteTransaction(self._conn, self._compile))
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                return result

        with _translated_errors():
            return retry_outages(
                action, is_outage=_is_busy, closed=self._closed, what="a transaction"
            )

    def schema_version(self) -> int | None:
        """The recorded DBOS migration level, or None without system tables."""
        if not self._query(_HAS_MIGRATIONS, {}):
            return None
        rows = self._query("SELECT max(version) FROM {s}.dbos_migrations", {})
        return int(rows[0][0] or 0)

    def migrate(self) -> None:
        """Create the tables at DBOS level 125 if the file has none yet.

        Either way, then create the indexes of `SQLITE_ADDITIONS` that are missing.
        """

        def body(tx: Transaction) -> None:
            if not tx.execute(_HAS_MIGRATIONS, {}):
                for statement in SQLITE_BASELINE:
                    tx.execute(statement, {})
            for statement in SQLITE_ADDITIONS:
                tx.execute(statement, {})

        self._transaction(body)

    def check_schema(self) -> None:
        """Check the file holds the DBOS tables, without changing anything."""
        found = self._query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dbos_migrations'", {}
        )
        if not found or int(self._query(q.CHECK_SCHEMA, {})[0][0] or 0) < SCHEMA_VERSION:
            raise InitializationError(
                f"the SQLite system database {self._path!r} has no DBOS schema; launch an "
                "application on it first"
            )

    def _is_deduplicated(self, exc: BaseException) -> bool:
        cause = driver_error(exc)
        return isinstance(cause, sqlite3.IntegrityError) and "deduplication_id" in str(cause)

    def insert_workflow(self, row: NewWorkflow) -> InsertedWorkflow:
        """Insert status and input in one transaction."""
        try:
            return self._transaction(lambda tx: self._insert_in(tx, row))
        except SystemDatabaseError as exc:
            if self._is_deduplicated(exc):
                raise Deduplicated(row.deduplication_id) from exc
            raise

    def complete_workflow(
        self,
        workflow_id: str,
        status: StatusName,
        output: str | None,
        error: str | None,
        now_ms: int,
        owner_xid: str | None = None,
    ) -> bool:
        """Record the outcome, and its payload only if the workflow was still PENDING."""
        params = outcome_params(workflow_id, status, output, error, now_ms, owner_xid)

        def body(tx: Transaction) -> bool:
            if not tx.execute(q.COMPLETE_STATUS, params):
                return False
            tx.execute(q.UPSERT_OUTPUT, params)
            return True

        return self._transaction(body)

    def claim_queued(self, request: ClaimRequest) -> list[ClaimedWorkflow]:
        """Count and claim under the database write lock.

        The lock excludes every other process, so global limits hold without more locking.
        """
        params = claim_params(request)

        def body(tx: Transaction) -> list[ClaimedWorkflow]:
            limit = global_capacity(tx, request)
            if limit <= 0:
                return []
            claimed = [
                claimed_from(r, params["owner_xid"])
                for r in tx.execute(q.CLAIM_QUEUED_SQLITE, {**params, "limit": limit})
            ]
            return [
                dataclasses.replace(
                    c,
                    inputs=_first(tx.execute(q.GET_INPUTS, {"workflow_id": c.workflow_id})),
                    has_steps=bool(tx.execute(q.HAS_STEPS, {"workflow_id": c.workflow_id})),
                )
                for c in claimed
            ]

        return self._transaction(body)

    def _is_foreign_key_violation(self, exc: BaseException) -> bool:
        cause = driver_error(exc)
        return isinstance(cause, sqlite3.IntegrityError) and "FOREIGN KEY" in str(cause)

    def _is_unique_violation(self, exc: BaseException) -> bool:
        cause = driver_error(exc)
        return isinstance(cause, sqlite3.IntegrityError) and "UNIQUE" in str(cause)

    def close(self) -> None:
        """Close the file."""
        self._closed.set()
        with self._lock:
            self._conn.close()


def _first(rows: list[Row]) -> Any:
    return rows[0][0] if rows else None
