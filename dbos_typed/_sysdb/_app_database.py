"""The application's own Postgres database, as a data source uses it.

dbos_typed keeps one table there, `transaction_completion`: a row per workflow step whose
transaction committed (or finally failed), written in the same transaction as the user's
own writes, so that the two commit together or not at all. This module creates that table
and runs one transaction at a time, running it again on a fresh transaction after a
serialization failure, a deadlock or a lost connection. It knows nothing of workflows: the
caller's body decides what the transaction does.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._create_database import ensure_database, libpq_connect_timeout
from dbos_typed._sysdb._postgres import is_outage
from dbos_typed._sysdb._retry import OutageBackoff, StoreClosedError, retry_outages
from dbos_typed.errors import InitializationError, SystemDatabaseError

T = TypeVar("T")

logger = logging.getLogger("dbos_typed")

# SQLSTATEs after which the same transaction, run again, may well succeed.
_CONFLICT_CODES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_FIRST_CONFLICT_DELAY = 0.005
_MAX_CONFLICT_DELAY = 1.0
_FORGET_BATCH = 1000  # workflow IDs per DELETE, to bound each statement


class Conflict(Exception):
    """Raised by a transaction's body to roll it back and run it again at once.

    For a row that another transaction committed first: the next run sees it.
    """


def _is_conflict(exc: BaseException) -> bool:
    if isinstance(exc, Conflict):
        return True
    return isinstance(exc, psycopg.Error) and exc.sqlstate in _CONFLICT_CODES


def _conflict_delay(conflicts: int) -> float:
    """Seconds to wait before running a transaction again after its `conflicts`-th conflict."""
    delay: float = min(_FIRST_CONFLICT_DELAY * 2.0 ** (conflicts - 1), _MAX_CONFLICT_DELAY)
    return delay * random.uniform(0.5, 1.5)


def is_transient(exc: BaseException) -> bool:
    """Whether a fresh transaction may succeed where this one failed.

    True for serialization failures, deadlocks and lost or refused connections: failures
    of the moment, not of the code that ran.
    """
    return _is_conflict(exc) or is_outage(exc)


class AppTransaction:
    """One open transaction on the application database.

    Attributes:
        retried: Whether an earlier run of the same body was rolled back by a conflict or
            an outage (its commit may have happened before the connection was lost).
    """

    __slots__ = ("_conn", "_database", "retried")

    def __init__(self, conn: psycopg.Connection[Any], database: AppDatabase, retried: bool):
        self._conn = conn
        self._database = database
        self.retried = retried

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The connection the transaction is open on."""
        return self._conn

    def completion(self, workflow_id: str, step_id: int) -> tuple[str | None, str | None] | None:
        """The (output, error) recorded for a step, or None."""
        with self._conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(
                self._database.statement(q.FIND_COMPLETION_PG),
                {"workflow_id": workflow_id, "step_id": step_id},
            )
            row = cur.fetchone()
        return None if row is None else (row[0], row[1])

    def complete(
        self, workflow_id: str, step_id: int, output: str | None, error: str | None
    ) -> None:
        """Record a step's outcome in this transaction.

        Raises:
            Conflict: another execution of the step committed its row first; the next run
                of the body will find it.
        """
        params = {"workflow_id": workflow_id, "step_id": step_id, "output": output, "error": error}
        with self._conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(self._database.statement(q.INSERT_COMPLETION_PG), params)
            if cur.fetchone() is None:
                raise Conflict(f"step {step_id} of workflow {workflow_id!r} completed elsewhere")

    def run_isolated(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `fn` (once per transaction): if it raises, its writes are undone, the rest stays.

        Every transaction opens with a savepoint, which this releases on success or rolls
        back to on failure. Deferred constraints are checked before `fn` counts as done,
        so that their violation is its failure rather than the commit's.
        """
        try:
            value = fn(self._conn)
            # Parameterless and unprepared: both statements go in one round trip.
            self._conn.execute(q.END_USER_WRITES_PG, prepare=False)
        except Exception:
            self._conn.execute(q.UNDO_USER_WRITES_PG, prepare=False)
            raise
        return value


class AsyncAppTransaction:
    """One open transaction on an asyncio connection to the application database.

    The awaitable twin of `AppTransaction`: the same statements, awaited.

    Attributes:
        retried: As for `AppTransaction`.
    """

    __slots__ = ("_conn", "_database", "retried")

    def __init__(
        self, conn: psycopg.AsyncConnection[Any], database: AppDatabase, retried: bool
    ) -> None:
        self._conn = conn
        self._database = database
        self.retried = retried

    @property
    def connection(self) -> psycopg.AsyncConnection[Any]:
        """The connection the transaction is open on."""
        return self._conn

    async def fetch_one(
        self, statement: bytes, params: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row `statement` returns, if any."""
        async with self._conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(statement, params)
            return await cur.fetchone() if cur.description else None

    async def completion(
        self, workflow_id: str, step_id: int
    ) -> tuple[str | None, str | None] | None:
        """The (output, error) recorded for a step, or None."""
        row = await self.fetch_one(
            self._database.statement(q.FIND_COMPLETION_PG),
            {"workflow_id": workflow_id, "step_id": step_id},
        )
        return None if row is None else (row[0], row[1])

    async def complete(
        self, workflow_id: str, step_id: int, output: str | None, error: str | None
    ) -> None:
        """Record a step's outcome in this transaction.

        Raises:
            Conflict: another execution of the step committed its row first.
        """
        params = {"workflow_id": workflow_id, "step_id": step_id, "output": output, "error": error}
        if await self.fetch_one(self._database.statement(q.INSERT_COMPLETION_PG), params) is None:
            raise Conflict(f"step {step_id} of workflow {workflow_id!r} completed elsewhere")

    async def run_isolated(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Await `fn` (once per transaction), as `AppTransaction.run_isolated` calls it."""
        try:
            value = await fn(self._conn)
            await self._conn.execute(q.END_USER_WRITES_PG, prepare=False)
        except Exception:
            await self._conn.execute(q.UNDO_USER_WRITES_PG, prepare=False)
            raise
        return value


class AppDatabase:
    """A data source's connection pool and the bookkeeping table in its database."""

    def __init__(self, pool: ConnectionPool[Any], *, schema: str, owns_pool: bool) -> None:
        self.pool = pool
        self.schema = schema
        self._owns_pool = owns_pool
        self._schema_id = sql.Identifier(schema)
        self._compiled: dict[str, bytes] = {}
        self._closed = threading.Event()

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        schema: str,
        application_name: str,
        max_connections: int,
        connect_timeout: float,
    ) -> AppDatabase:
        """Open a pool of its own on the database at `url`.

        Raises:
            InitializationError: the URL is malformed or the database cannot be reached.
        """
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise InitializationError(f"invalid application database URL: {exc}") from exc
        params.setdefault("application_name", application_name[:63])
        params.setdefault("connect_timeout", libpq_connect_timeout(connect_timeout))
        conninfo = make_conninfo("", **params)
        ensure_database(conninfo, params, what="the application database", wait=connect_timeout)
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            timeout=connect_timeout,
            open=False,
            name="dbos_typed-data-source",
        )
        try:
            pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            pool.close()
            raise InitializationError(f"cannot connect to the application database: {exc}") from exc
        return cls(pool, schema=schema, owns_pool=True)

    def statement(self, query: LiteralString) -> bytes:
        """`query` with this data source's schema in place of `{s}`."""
        compiled = self._compiled.get(query)
        if compiled is None:
            compiled = sql.SQL(query).format(s=self._schema_id).as_bytes(None)
            self._compiled[query] = compiled
        return compiled

    def _exists(self, conn: psycopg.Connection[Any], query: LiteralString) -> bool:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(query, {"schema": self.schema})
            row = cur.fetchone()
        return bool(row and row[0])

    def ensure_completion_table(self) -> None:
        """Create `transaction_completion` (and its schema) unless the table exists.

        A table that exists is used as it is, so a role allowed only to read and insert
        works once the table was created for it.

        Raises:
            InitializationError: the database cannot be reached, or the table is missing
                and this role cannot create it; the message gives the statements to run.
        """
        try:
            with self.pool.connection() as conn:
                if self._exists(conn, q.COMPLETION_TABLE_EXISTS_PG):
                    return
                try:
                    with conn.transaction():
                        if not self._exists(conn, q.SCHEMA_EXISTS_PG):
                            conn.execute(self.statement(q.CREATE_SCHEMA_PG))
                        conn.execute(self.statement(q.CREATE_COMPLETION_TABLE_PG))
                except psycopg.Error as exc:
                    # Another process may have created it at the same moment.
                    if self._exists(conn, q.COMPLETION_TABLE_EXISTS_PG):
                        return
                    raise InitializationError(self._cannot_create(exc)) from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise InitializationError(f"cannot reach the application database: {exc}") from exc

    def _cannot_create(self, exc: psycopg.Error) -> str:
        statements = ";\n".join(
            sql.SQL(query).format(s=self._schema_id).as_string(None).strip()
            for query in (q.CREATE_SCHEMA_PG, q.CREATE_COMPLETION_TABLE_PG)
        )
        reason = exc.diag.message_primary or str(exc)
        return (
            f"the application database has no {self._schema_id.as_string(None)}."
            f"transaction_completion table and this role cannot create it ({reason}). "
            "Create it once as a role that may, and grant this role SELECT and INSERT "
            f"on it:\n{statements};"
        )

    def database_identity(self) -> tuple[str, ...] | None:
        """Which database this is, and as whom (as `PostgresStore.database_identity`)."""
        try:
            with (
                self.pool.connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=tuple_row) as cur,
            ):
                cur.execute(q.DATABASE_IDENTITY_PG)
                row = cur.fetchone()
        except (psycopg.Error, PoolTimeout):
            return None
        return None if row is None else tuple(str(value) for value in row)

    def transaction(self, isolation: str, body: Callable[[AppTransaction], T]) -> T:
        """Run `body` in one transaction at `isolation` (a `START_ATTEMPT_PG` key); commit.

        A serialization failure, a deadlock, a lost connection or a `Conflict`, in `body`
        or at commit, rolls the transaction back and runs `body` again on a fresh one, for
        as long as it takes. Any other exception rolls it back and propagates.

        Raises:
            StoreClosedError: the data source was closed (the context shut down).
            SystemDatabaseError: a statement failed for another reason than the moment
                (the bookkeeping table was dropped, a privilege revoked).
        """
        retried = False

        def until_no_conflict() -> T:
            nonlocal retried
            conflicts = 0
            while True:
                if self._closed.is_set():
                    raise StoreClosedError("the data source was closed (the context shut down)")
                try:
                    return self._once(isolation, body, retried)
                except Exception as exc:
                    retried = True
                    if not _is_conflict(exc):
                        raise  # outages are retried around this loop, the rest propagates
                    conflicts += 1
                    logger.debug(
                        "transaction conflict (attempt %d), running it again: %s", conflicts, exc
                    )
                    if self._closed.wait(_conflict_delay(conflicts)):
                        raise StoreClosedError("the data source was closed") from exc

        try:
            return retry_outages(
                until_no_conflict,
                is_outage=is_outage,
                closed=self._closed,
                what="a transaction",
                on_outage=self.pool.check,
                database="application database",
            )
        except psycopg.Error as exc:
            raise SystemDatabaseError(
                f"the application database refused an operation: {exc}", sqlstate=exc.sqlstate
            ) from exc

    def _once(self, isolation: str, body: Callable[[AppTransaction], T], retried: bool) -> T:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(q.START_ATTEMPT_PG[isolation], prepare=False)
            return body(AppTransaction(conn, self, retried))

    async def async_transaction(
        self,
        isolation: str,
        body: Callable[[AsyncAppTransaction], Awaitable[T]],
        pause: Callable[[float], Awaitable[None]],
    ) -> T:
        """The awaitable `transaction`: `body` in one transaction on an asyncio connection.

        Each run of `body` has a connection of its own, opened for it and closed after it,
        so no connection outlives the event loop it was opened on (an async workflow's loop
        lasts one run). Conflicts and outages run `body` again on a fresh transaction, as
        `transaction` does, after awaiting `pause(seconds)`.

        Raises:
            StoreClosedError: the data source was closed (the context shut down).
            SystemDatabaseError: a statement failed for another reason than the moment.
        """
        retried = False
        conflicts = 0
        outages = OutageBackoff("a transaction", "application database")
        while True:
            if self._closed.is_set():
                raise StoreClosedError("the data source was closed (the context shut down)")
            try:
                return await self._async_once(isolation, body, retried)
            except Exception as exc:
                retried = True
                if _is_conflict(exc):
                    conflicts += 1
                    logger.debug(
                        "transaction conflict (attempt %d), running it again: %s", conflicts, exc
                    )
                    delay = _conflict_delay(conflicts)
                elif is_outage(exc):
                    if self._closed.is_set():
                        raise outages.closed_error() from exc
                    delay = outages.next_delay(exc)
                elif isinstance(exc, psycopg.Error):
                    raise SystemDatabaseError(
                        f"the application database refused an operation: {exc}",
                        sqlstate=exc.sqlstate,
                    ) from exc
                else:
                    raise
            await pause(delay)

    async def _async_once(
        self,
        isolation: str,
        body: Callable[[AsyncAppTransaction], Awaitable[T]],
        retried: bool,
    ) -> T:
        # The pool's own settings (its conninfo and kwargs may be callables).
        pool = self.pool
        conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
        kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs
        conn = await psycopg.AsyncConnection.connect(
            conninfo or "", **{**(kwargs or {}), "autocommit": True}
        )
        async with conn, conn.transaction():
            await conn.execute(q.START_ATTEMPT_PG[isolation], prepare=False)
            return await body(AsyncAppTransaction(conn, self, retried))

    def forget_workflows(self, workflow_ids: Sequence[str]) -> int:
        """Delete the completion rows of these workflows; how many were deleted.

        Raises:
            StoreClosedError: the data source was closed.
            SystemDatabaseError: the statement was refused (this role may not delete).
        """
        deleted = 0
        for start in range(0, len(workflow_ids), _FORGET_BATCH):
            batch = list(workflow_ids[start : start + _FORGET_BATCH])

            def body(tx: AppTransaction, batch: list[str] = batch) -> int:
                cur = tx.connection.execute(
                    self.statement(q.DELETE_COMPLETIONS_PG), {"workflow_ids": batch}
                )
                return cur.rowcount

            deleted += self.transaction("read_committed", body)
        return deleted

    def close(self) -> None:
        """Stop retrying; close the pool if this data source opened it."""
        self._closed.set()
        if self._owns_pool:
            self.pool.close()
