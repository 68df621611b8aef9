"""The embedded SQLite backend: one file, WAL mode, writes under `BEGIN IMMEDIATE`."""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, LiteralString, TypeVar

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._retry import retry_outages
from dbos_typed._sysdb._rows import ClaimedWorkflow, InsertedWorkflow, NewWorkflow, StatusName
from dbos_typed._sysdb._schema_sqlite import SQLITE_BASELINE
from dbos_typed._sysdb._store import Row, SystemStore, Transaction, claimed_from
from dbos_typed.errors import InitializationError

T = TypeVar("T")

_PARAM = re.compile(r"%\((\w+)\)s")
_BUSY_TIMEOUT_MS = 30_000


def _is_busy(exc: BaseException) -> bool:
    # Another process holds the write lock for longer than busy_timeout: wait again.
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


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
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise InitializationError(
                f"cannot open SQLite system database {path!r}: {exc}"
            ) from exc

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
                return self._conn.execute(compiled, params).fetchall()

        return retry_outages(action, is_outage=_is_busy, closed=self._closed, what="a query")

    def _transaction(self, body: Callable[[Transaction], T]) -> T:
        def action() -> T:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = body(_SqliteTransaction(self._conn, self._compile))
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                return result

        return retry_outages(action, is_outage=_is_busy, closed=self._closed, what="a transaction")

    def migrate(self) -> None:
        """Create the tables at DBOS level 125 if the file has none yet."""

        def body(tx: Transaction) -> None:
            found = tx.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dbos_migrations'", {}
            )
            if found:
                return
            for statement in SQLITE_BASELINE:
                tx.execute(statement, {})

        self._transaction(body)

    def insert_workflow(self, row: NewWorkflow) -> InsertedWorkflow:
        """Insert status and input in one transaction."""
        return self._transaction(lambda tx: self._insert_in(tx, row))

    def complete_workflow(
        self,
        workflow_id: str,
        status: StatusName,
        output: str | None,
        error: str | None,
        now_ms: int,
    ) -> bool:
        """Record the outcome, and its payload only if the workflow was still PENDING."""
        params = {
            "workflow_id": workflow_id,
            "status": status.value,
            "output": output,
            "error": error,
            "now_ms": now_ms,
        }

        def body(tx: Transaction) -> bool:
            if not tx.execute(q.COMPLETE_STATUS, params):
                return False
            tx.execute(q.UPSERT_OUTPUT, params)
            return True

        return self._transaction(body)

    def claim_queued(
        self,
        queue_name: str,
        *,
        limit: int,
        executor_id: str,
        application_version: str,
        application_name: str,
        accept_unversioned: bool,
        now_ms: int,
    ) -> list[ClaimedWorkflow]:
        """Claim under the database write lock, which excludes every other process."""
        params = {
            "queue_name": queue_name,
            "limit": limit,
            "executor_id": executor_id,
            "application_version": application_version,
            "application_name": application_name,
            "accept_unversioned": accept_unversioned,
            "owner_xid": str(uuid.uuid4()),
            "now_ms": now_ms,
        }

        def body(tx: Transaction) -> list[ClaimedWorkflow]:
            claimed = [claimed_from(r) for r in tx.execute(q.CLAIM_QUEUED_SQLITE, params)]
            return [
                ClaimedWorkflow(
                    workflow_id=c.workflow_id,
                    name=c.name,
                    inputs=_first(tx.execute(q.GET_INPUTS, {"workflow_id": c.workflow_id})),
                    recovery_attempts=c.recovery_attempts,
                    deadline_ms=c.deadline_ms,
                )
                for c in claimed
            ]

        return self._transaction(body)

    def _is_foreign_key_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in str(exc)

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def close(self) -> None:
        """Close the file."""
        self._closed.set()
        with self._lock:
            self._conn.close()


def _first(rows: list[Row]) -> Any:
    return rows[0][0] if rows else None
