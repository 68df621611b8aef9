"""The Postgres backend: psycopg 3 with a connection pool, one round trip per checkpoint."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, LiteralString, TypeVar

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._retry import retry_outages
from dbos_typed._sysdb._rows import (
    STREAM_CLOSED,
    ClaimedWorkflow,
    InsertedWorkflow,
    NewMessage,
    NewWorkflow,
    RecordResult,
    StatusName,
    StepRecord,
)
from dbos_typed._sysdb._schema_postgres import SCHEMA_VERSION, baseline_statements
from dbos_typed._sysdb._store import (
    Row,
    SystemStore,
    Transaction,
    claimed_from,
    insert_params,
    inserted_from,
)
from dbos_typed.errors import InitializationError, NonExistentWorkflowError

T = TypeVar("T")

# Any constant works; it only has to be the same in every process migrating this database.
_MIGRATION_LOCK_KEY = 0x64626F73  # "dbos"

# SQLSTATE classes and codes that mean "the server is unreachable or restarting".
_OUTAGE_CLASSES = ("08",)
_OUTAGE_CODES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _step_params(
    workflow_id: str, step: StepRecord, application_name: str | None
) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "step_id": step.step_id,
        "name": step.name,
        "started_at_ms": step.started_at_ms,
        "completed_at_ms": step.completed_at_ms,
        "application_name": application_name,
    }


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` is a lost or refused connection rather than a failed statement."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    code = exc.sqlstate
    if code is None:
        # No SQLSTATE: the connection itself failed (refused, reset, closed).
        return True
    return code.startswith(_OUTAGE_CLASSES) or code in _OUTAGE_CODES


class _PgTransaction:
    __slots__ = ("_compile", "_cursor")

    def __init__(self, cursor: psycopg.Cursor[Row], compile_: Callable[[LiteralString], bytes]):
        self._cursor = cursor
        self._compile = compile_

    def execute(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        self._cursor.execute(self._compile(query), params)
        return self._cursor.fetchall() if self._cursor.description else []


class PostgresStore(SystemStore):
    """System database on Postgres."""

    backend = "postgres"

    def __init__(
        self,
        url: str,
        *,
        schema: str,
        application_name: str,
        max_connections: int = 20,
        connect_timeout: float = 10.0,
    ) -> None:
        self._schema = schema
        self._schema_id = sql.Identifier(schema)
        self._compiled: dict[str, bytes] = {}
        self._closed = threading.Event()
        params = conninfo_to_dict(url)
        params.setdefault("application_name", application_name[:63])
        params.setdefault("connect_timeout", str(int(connect_timeout)))
        self._conninfo = make_conninfo("", **params)
        self._ensure_database(params)
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            timeout=connect_timeout,
            open=False,
            name="dbos_typed",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise InitializationError(
                f"cannot connect to the Postgres system database: {exc}"
            ) from exc

    def _ensure_database(self, params: dict[str, Any]) -> None:
        """Create the database if it does not exist, as a convenience on first start."""
        try:
            psycopg.connect(self._conninfo, autocommit=True).close()
            return
        except psycopg.errors.InvalidCatalogName:
            pass
        except psycopg.OperationalError as exc:
            raise InitializationError(
                f"cannot connect to the Postgres system database: {exc}"
            ) from exc
        name = params.get("dbname") or "postgres"
        admin = make_conninfo(self._conninfo, dbname="postgres")
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            pass
        except psycopg.Error as exc:
            raise InitializationError(f"cannot create database {name!r}: {exc}") from exc

    def _compile(self, query: LiteralString) -> bytes:
        compiled = self._compiled.get(query)
        if compiled is None:
            compiled = sql.SQL(query).format(s=self._schema_id).as_bytes(None)
            self._compiled[query] = compiled
        return compiled

    def _query(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        compiled = self._compile(query)

        def action() -> list[Row]:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute(compiled, params)
                return cur.fetchall() if cur.description else []

        return retry_outages(action, is_outage=is_outage, closed=self._closed, what="a query")

    def _transaction(self, body: Callable[[Transaction], T]) -> T:
        def action() -> T:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                return body(_PgTransaction(cur, self._compile))

        return retry_outages(action, is_outage=is_outage, closed=self._closed, what="a transaction")

    def migrate(self) -> None:
        """Create the schema at DBOS level 125, or check that it is already there."""

        def body(tx: Transaction) -> None:
            tx.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": _MIGRATION_LOCK_KEY})
            found = tx.execute(
                "SELECT to_regclass(%(table)s) IS NOT NULL",
                {"table": f"{sql.Identifier(self._schema).as_string(None)}.dbos_migrations"},
            )
            version = 0
            if found and found[0][0]:
                rows = tx.execute("SELECT max(version) FROM {s}.dbos_migrations", {})
                version = int(rows[0][0] or 0)
            if version >= SCHEMA_VERSION:
                return
            if version != 0:
                raise InitializationError(
                    f"the system database schema {self._schema!r} is at DBOS migration "
                    f"{version}; upgrade it to {SCHEMA_VERSION} first (for example with "
                    "`dbos migrate` from the dbos 3.4 package)"
                )
            cur = tx._cursor if isinstance(tx, _PgTransaction) else None
            assert cur is not None
            for statement in baseline_statements(self._schema):
                cur.execute(statement)

        self._transaction(body)

    def insert_workflow(self, row: NewWorkflow) -> InsertedWorkflow:
        """Insert status and input in one statement."""
        rows = self._query(q.INSERT_WORKFLOW_PG, insert_params(row))
        return inserted_from(rows[0], row.creator_xid)

    def complete_workflow(
        self,
        workflow_id: str,
        status: StatusName,
        output: str | None,
        error: str | None,
        now_ms: int,
    ) -> bool:
        """Record the outcome and its payload in one statement."""
        rows = self._query(
            q.COMPLETE_WORKFLOW_PG,
            {
                "workflow_id": workflow_id,
                "status": status.value,
                "output": output,
                "error": error,
                "now_ms": now_ms,
            },
        )
        return bool(rows and rows[0][0])

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
        """Claim with SKIP LOCKED so concurrent executors never take the same row."""
        rows = self._query(
            q.CLAIM_QUEUED_PG,
            {
                "queue_name": queue_name,
                "limit": limit,
                "executor_id": executor_id,
                "application_version": application_version,
                "application_name": application_name,
                "accept_unversioned": accept_unversioned,
                "owner_xid": str(uuid.uuid4()),
                "now_ms": now_ms,
            },
        )
        return [claimed_from(r) for r in rows]

    def send_message(
        self,
        message: NewMessage,
        checkpoint: tuple[str, StepRecord, str | None] | None = None,
    ) -> RecordResult:
        """Insert a message, with its checkpoint in the same statement when given."""
        if checkpoint is None:
            return super().send_message(message)
        workflow_id, step, application_name = checkpoint
        params = {
            **_step_params(workflow_id, step, application_name),
            "message_id": message.message_id,
            "destination_id": message.destination_id,
            "topic": message.topic,
            "message": message.message,
            "now_ms": message.now_ms,
        }
        try:
            rows = self._query(q.SEND_FROM_WORKFLOW_PG, params)
        except psycopg.errors.ForeignKeyViolation:
            raise NonExistentWorkflowError(message.destination_id) from None
        if rows and rows[0][0]:
            return RecordResult.WRITTEN
        return self._why_not_recorded(workflow_id, step.step_id)

    def receive_message(
        self, workflow_id: str, topic: str, step: StepRecord, application_name: str | None
    ) -> tuple[RecordResult | None, str | None]:
        """Consume and checkpoint the oldest message in one round trip."""
        params = {**_step_params(workflow_id, step, application_name), "topic": topic}
        rows = self._query(q.RECEIVE_MESSAGE_PG, params)
        message, recorded = rows[0]
        if message is None:
            return None, None
        if recorded:
            return RecordResult.WRITTEN, message
        return self._why_not_recorded(workflow_id, step.step_id), None

    def set_event(
        self,
        workflow_id: str,
        key: str,
        value: str,
        step_id: int,
        checkpoint: tuple[StepRecord, str | None] | None,
    ) -> RecordResult:
        """Publish an event, with its checkpoint in the same statement when given."""
        if checkpoint is None:
            return super().set_event(workflow_id, key, value, step_id, None)
        step, application_name = checkpoint
        params = {**_step_params(workflow_id, step, application_name), "key": key, "value": value}
        rows = self._query(q.SET_EVENT_FROM_WORKFLOW_PG, params)
        if rows and rows[0][0]:
            return RecordResult.WRITTEN
        return self._why_not_recorded(workflow_id, step_id)

    def _append_once(
        self,
        workflow_id: str,
        key: str,
        value: str,
        step_id: int,
        checkpoint: tuple[StepRecord, str | None] | None,
    ) -> RecordResult | None:
        if checkpoint is None:
            return super()._append_once(workflow_id, key, value, step_id, None)
        step, application_name = checkpoint
        params = {
            **_step_params(workflow_id, step, application_name),
            "key": key,
            "value": value,
            "closed": STREAM_CLOSED,
        }
        rows = self._query(q.APPEND_STREAM_FROM_WORKFLOW_PG, params)
        is_open, recorded = rows[0]
        if not is_open:
            return None
        if recorded:
            return RecordResult.WRITTEN
        return self._why_not_recorded(workflow_id, step_id)

    @property
    def conninfo(self) -> str:
        """The connection string, for the dedicated LISTEN connection."""
        return self._conninfo

    def _is_foreign_key_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.ForeignKeyViolation)

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    def notify(self, channel: str, payloads: Sequence[str]) -> None:
        """NOTIFY every payload on `channel` in one round trip."""
        if payloads:
            self._query(q.NOTIFY_BATCH_PG, {"channel": channel, "payloads": list(payloads)})

    def close(self) -> None:
        """Stop retrying and close the pool."""
        self._closed.set()
        self._pool.close()
