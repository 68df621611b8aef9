"""The Postgres backend: psycopg 3 with a connection pool, one round trip per checkpoint."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, LiteralString, TypeVar

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from dbos_typed._sysdb import _batched_pg as batched
from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._batched_pg import BatchSql
from dbos_typed._sysdb._create_database import ensure_database, libpq_connect_timeout
from dbos_typed._sysdb._group_commit import BatchKind, GroupCommit
from dbos_typed._sysdb._pg_direct import Positional, positional
from dbos_typed._sysdb._pg_lane import Lane
from dbos_typed._sysdb._retry import StoreClosedError, retry_outages
from dbos_typed._sysdb._rows import (
    STREAM_CLOSED,
    Checkpoint,
    ClaimedWorkflow,
    ClaimRequest,
    Deduplicated,
    InsertedWorkflow,
    NewMessage,
    NewWorkflow,
    RecordResult,
    StatusName,
)
from dbos_typed._sysdb._schema_postgres import (
    SCHEMA_VERSION,
    addition_statements,
    baseline_statements,
)
from dbos_typed._sysdb._store import SystemStore
from dbos_typed._sysdb._store_base import (
    Row,
    Transaction,
    checkpoint_params,
    claim_params,
    claimed_from,
    driver_error,
    global_capacity,
    has_global_limit,
    insert_params,
    inserted_from,
    outcome_params,
)
from dbos_typed.errors import (
    InitializationError,
    InvalidOptionError,
    NonExistentWorkflowError,
    SystemDatabaseError,
)

T = TypeVar("T")

# Any constant works; it only has to be the same in every process migrating this database.
_MIGRATION_LOCK_KEY = 0x64626F73  # "dbos"
# The first key of the two-key advisory locks that serialise dequeuers of one queue.
_QUEUE_LOCK_CLASS = 0x64627175  # "dbqu"
_DEDUP_INDEX = "uq_workflow_status_dedup_id"
# At most this many checkpoint batches in flight at once (and at most half the pool).
_LEADERS = 2

# SQLSTATE classes and codes that mean "the server is unreachable or restarting".
_OUTAGE_CLASSES = ("08",)
_OUTAGE_CODES = frozenset({"57P01", "57P02", "57P03", "53300"})


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


def _translated(exc: psycopg.Error) -> SystemDatabaseError:
    # The one boundary where driver errors become the library's own.
    return SystemDatabaseError(
        f"the system database refused an operation: {exc}", sqlstate=exc.sqlstate
    )


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
        create_database: bool = True,
        pool: ConnectionPool[Any] | None = None,
    ) -> None:
        self._schema = schema
        self._schema_id = sql.Identifier(schema)
        self._compiled: dict[str, bytes] = {}
        self._positional: dict[bytes, Positional | None] = {}
        self._closed = threading.Event()
        # A pool the caller made is the caller's to close (Go's SystemDBPool).
        self._owns_pool = pool is None
        if pool is not None:
            self._pool: ConnectionPool[psycopg.Connection[Row]] = pool
            self._lane = Lane(pool, keep=False, timeout=connect_timeout)
            self._group = self._group_commit(max(pool.max_size, 1))
            self._conninfo = _listen_conninfo(pool)
            _check_caller_pool(pool, connect_timeout)
            return
        params = conninfo_to_dict(url)
        params.setdefault("application_name", application_name[:63])
        params.setdefault("connect_timeout", libpq_connect_timeout(connect_timeout))
        self._conninfo = make_conninfo("", **params)
        ensure_database(
            self._conninfo,
            params,
            what="the Postgres system database",
            create=create_database,
            wait=connect_timeout,
        )
        self._pool = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            timeout=connect_timeout,
            open=False,
            name="dbos_typed",
        )
        self._lane = Lane(self._pool, keep=True, timeout=connect_timeout)
        self._group = self._group_commit(max_connections)
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise InitializationError(
                f"cannot connect to the Postgres system database: {exc}"
            ) from exc

    def _group_commit(self, max_connections: int) -> GroupCommit:
        self._starts = BatchKind("start", alone=self._insert_one, key=lambda p: p["workflow_id"])
        self._steps = BatchKind(
            "step",
            alone=lambda p: bool(self._query(q.RECORD_STEP, p)),
            key=lambda p: (p["workflow_id"], p["step_id"]),
        )
        self._outcomes = BatchKind(
            "outcome",
            alone=lambda p: bool((rows := self._query(q.COMPLETE_WORKFLOW_PG, p)) and rows[0][0]),
            key=lambda p: p["workflow_id"],
        )
        self._batched: dict[BatchKind[Any], BatchSql] = {
            self._starts: batched.STARTS,
            self._steps: batched.STEPS,
            self._outcomes: batched.OUTCOMES,
        }
        self._batch_statements: dict[frozenset[str], Positional] = {}
        # Some connections stay free for reads, claims and transactions beside the batches.
        return GroupCommit(self._write_batch, leaders=max(1, min(_LEADERS, max_connections // 2)))

    def _write_batch(
        self, groups: list[tuple[BatchKind[Any], list[Mapping[str, Any]]]]
    ) -> list[Sequence[Any]]:
        """Write a batch of checkpoints as one statement (no retries: see GroupCommit)."""
        parts = [self._batched[kind] for kind, _ in groups]
        tags = frozenset(part.tag for part in parts)
        statement = self._batch_statements.get(tags)
        if statement is None:
            text, names = batched.statement(parts)
            statement = Positional(self._compile(text), tuple(names))
            self._batch_statements[tags] = statement
        rows: dict[str, str] = {}
        for part, (_, batch) in zip(parts, groups, strict=True):
            rows.update(part.params(batch))
        self._check_open()
        lease = self._lane.take()
        try:
            found = lease[2].run(statement, rows)
        finally:
            self._lane.give_back(lease)
        assert found is not None  # every parameter is text
        written: dict[str, list[Row]] = {part.tag: [] for part in parts}
        for row in found:
            written[row[0]].append(row[1:])
        return [
            part.read(written[part.tag], batch)
            for part, (_, batch) in zip(parts, groups, strict=True)
        ]

    def _write_step(self, params: Mapping[str, Any]) -> bool:
        """Write a step's row, in a batch with other workflows' checkpoints when they coincide."""
        return bool(self._group.write(self._steps, params))

    def _compile(self, query: LiteralString) -> bytes:
        compiled = self._compiled.get(query)
        if compiled is None:
            compiled = sql.SQL(query).format(s=self._schema_id).as_bytes(None)
            self._compiled[query] = compiled
        return compiled

    def _query(self, query: LiteralString, params: Mapping[str, Any]) -> list[Row]:
        compiled = self._compile(query)
        try:
            try:
                return self._run_once(compiled, params)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                failed = exc
            return retry_outages(
                lambda: self._run_once(compiled, params),
                is_outage=is_outage,
                closed=self._closed,
                what="a query",
                on_outage=self._after_outage,
                failed=failed,
            )
        except psycopg.Error as exc:
            raise _translated(exc) from exc

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise StoreClosedError("the system database was closed (the context shut down)")

    def _run_once(self, compiled: bytes, params: Mapping[str, Any]) -> list[Row]:
        # The hot path of every checkpoint: a connection from the lane, one autocommit
        # statement (straight through libpq when its values allow), no transaction block.
        self._check_open()
        try:
            statement = self._positional[compiled]
        except KeyError:
            statement = self._positional[compiled] = positional(compiled)
        lease = self._lane.take()
        try:
            if statement is not None:
                rows = lease[2].run(statement, params)
                if rows is not None:
                    return rows
            cur = lease[1]
            cur.execute(compiled, params)
            return cur.fetchall() if cur.pgresult and cur.pgresult.ntuples else []
        finally:
            self._lane.give_back(lease)

    def _transaction(self, body: Callable[[Transaction], T]) -> T:
        def action() -> T:
            self._check_open()
            lease = self._lane.take()
            try:
                with lease[0].transaction():
                    return body(_PgTransaction(lease[1], self._compile))
            finally:
                self._lane.give_back(lease)

        try:
            return retry_outages(
                action,
                is_outage=is_outage,
                closed=self._closed,
                what="a transaction",
                on_outage=self._after_outage,
            )
        except psycopg.Error as exc:
            raise _translated(exc) from exc

    def _after_outage(self) -> None:
        # After a restart every pooled connection is dead: drop them all at once rather
        # than discovering them one failed attempt at a time.
        self._lane.drain()
        self._pool.check()

    def _version_in(self, tx: Transaction) -> int | None:
        found = tx.execute(
            "SELECT to_regclass(%(table)s) IS NOT NULL",
            {"table": f"{sql.Identifier(self._schema).as_string(None)}.dbos_migrations"},
        )
        if not (found and found[0][0]):
            return None
        rows = tx.execute("SELECT max(version) FROM {s}.dbos_migrations", {})
        return int(rows[0][0] or 0)

    def schema_version(self) -> int | None:
        """The recorded DBOS migration level, or None without system tables."""
        return self._transaction(self._version_in)

    def migrate(self) -> None:
        """Create the schema at DBOS level 125, or check that it is already there.

        Either way, then create the indexes of `ADDITIONS` that are missing (see
        `_add_indexes`).
        """

        def body(tx: Transaction) -> None:
            tx.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": _MIGRATION_LOCK_KEY})
            version = self._version_in(tx) or 0
            if 0 < version < SCHEMA_VERSION:
                raise InitializationError(
                    f"the system database schema {self._schema!r} is at DBOS migration "
                    f"{version}; upgrade it to {SCHEMA_VERSION} first (for example with "
                    "`dbos migrate` from the dbos 3.4 package)"
                )
            cur = tx._cursor if isinstance(tx, _PgTransaction) else None
            assert cur is not None
            if version == 0:
                for statement in baseline_statements(self._schema):
                    cur.execute(statement)
            self._add_indexes(tx, cur)

        self._transaction(body)

    def _add_indexes(self, tx: Transaction, cur: psycopg.Cursor[Row]) -> None:
        """Create the missing indexes of `ADDITIONS`, if this role may.

        An index that exists is looked up, not re-created: `CREATE INDEX IF NOT EXISTS`
        would take a lock that waits for every open write on the table. Building one on a
        large existing table holds writes to it for the time of the build, once. A role
        that does not own the table (a schema another role made) cannot create indexes on
        it; the runtime then works without them, only with slower listings by name.
        """
        quoted = sql.Identifier(self._schema).as_string(None)
        for index, statement in addition_statements(self._schema):
            found = tx.execute(
                "SELECT to_regclass(%(index)s) IS NOT NULL,"
                " pg_has_role(c.relowner, 'USAGE') FROM pg_class c"
                " WHERE c.oid = to_regclass(%(table)s)",
                {"index": f"{quoted}.{index}", "table": f"{quoted}.workflow_status"},
            )
            exists, owner = found[0] if found else (True, False)
            if not exists and owner:
                cur.execute(statement)

    def check_schema(self) -> None:
        """Check the schema is at DBOS level 125 or newer, without changing anything."""
        qualified = f"{sql.Identifier(self._schema).as_string(None)}.dbos_migrations"
        found = self._query("SELECT to_regclass(%(table)s) IS NOT NULL", {"table": qualified})
        version = int(self._query(q.CHECK_SCHEMA, {})[0][0] or 0) if found[0][0] else 0
        if version < SCHEMA_VERSION:
            raise InitializationError(
                f"the system database schema {self._schema!r} is missing or at DBOS migration "
                f"{version}; launch an application (or run `dbos migrate`) to create it"
            )

    def _lock_workflow_in(self, tx: Transaction, workflow_id: str) -> None:
        tx.execute(q.LOCK_WORKFLOW_ROW_PG, {"workflow_id": workflow_id})

    def _is_deduplicated(self, exc: BaseException) -> bool:
        cause = driver_error(exc)
        return (
            isinstance(cause, psycopg.errors.UniqueViolation)
            and cause.diag.constraint_name == _DEDUP_INDEX
        )

    def insert_workflow(self, row: NewWorkflow) -> InsertedWorkflow:
        """Insert status and input in one statement (or one batch)."""
        params = insert_params(row)
        try:
            if row.deduplication_id is not None:
                # Refusals by the deduplication index are expected here; one would fail
                # the batch around it, so such rows are written alone.
                found = self._insert_one(params)
            else:
                found = self._group.write(self._starts, params)
        except SystemDatabaseError as exc:
            if self._is_deduplicated(exc):
                raise Deduplicated(row.deduplication_id) from exc
            raise
        return inserted_from(found, row.creator_xid)

    def _insert_one(self, params: Mapping[str, Any]) -> Row:
        return self._query(q.INSERT_WORKFLOW_PG, params)[0]

    def complete_workflow(
        self,
        workflow_id: str,
        status: StatusName,
        output: str | None,
        error: str | None,
        now_ms: int,
        owner_xid: str | None = None,
    ) -> bool:
        """Record the outcome and its payload in one statement (or one batch)."""
        params = outcome_params(workflow_id, status, output, error, now_ms, owner_xid)
        return self._group.write(self._outcomes, params)

    def claim_queued(self, request: ClaimRequest) -> list[ClaimedWorkflow]:
        """Claim with SKIP LOCKED so concurrent executors never take the same row.

        A queue with a global budget (concurrency or rate limit) is counted and claimed
        under a transaction-scoped advisory lock on the queue (or partition): the counts
        then cannot change before the claim commits, at the cost of dequeuers of that one
        queue taking turns for a few milliseconds. A queue without one needs no lock and
        no transaction: the claim is one statement.
        """
        params = claim_params(request)
        if not has_global_limit(request):
            rows = self._query(q.CLAIM_QUEUED_PG, params)
            return [claimed_from(r, params["owner_xid"]) for r in rows]
        lock_key = f"{self._schema}/{request.queue_name}/{request.partition_key or ''}"

        def body(tx: Transaction) -> list[ClaimedWorkflow]:
            tx.execute(q.LOCK_QUEUE_PG, {"lock_class": _QUEUE_LOCK_CLASS, "lock_key": lock_key})
            limit = global_capacity(tx, request)
            if limit <= 0:
                return []
            return [
                claimed_from(r, params["owner_xid"])
                for r in tx.execute(q.CLAIM_QUEUED_PG, {**params, "limit": limit})
            ]

        return self._transaction(body)

    def send_message(
        self,
        message: NewMessage,
        checkpoint: Checkpoint | None = None,
    ) -> RecordResult:
        """Insert a message, with its checkpoint in the same statement when given."""
        if checkpoint is None:
            return super().send_message(message)
        params = {
            **checkpoint_params(checkpoint),
            "message_id": message.message_id,
            "destination_id": message.destination_id,
            "topic": message.topic,
            "message": message.message,
            "now_ms": message.now_ms,
        }
        try:
            rows = self._query(q.SEND_FROM_WORKFLOW_PG, params)
        except SystemDatabaseError as exc:
            if self._is_foreign_key_violation(exc):
                raise NonExistentWorkflowError(message.destination_id) from None
            raise
        if rows and rows[0][0]:
            return RecordResult.WRITTEN
        return self._why_not_recorded(checkpoint.workflow_id, checkpoint.step.step_id)

    def receive_message(
        self, topic: str, checkpoint: Checkpoint
    ) -> tuple[RecordResult | None, str | None]:
        """Consume and checkpoint the oldest message in one round trip."""
        params = {**checkpoint_params(checkpoint), "topic": topic}
        rows = self._query(q.RECEIVE_MESSAGE_PG, params)
        message, recorded = rows[0]
        if message is None:
            return None, None
        if recorded:
            return RecordResult.WRITTEN, message
        return self._why_not_recorded(checkpoint.workflow_id, checkpoint.step.step_id), None

    def set_event(
        self,
        workflow_id: str,
        key: str,
        value: str,
        step_id: int,
        checkpoint: Checkpoint | None,
    ) -> RecordResult:
        """Publish an event, with its checkpoint in the same statement when given."""
        if checkpoint is None:
            return super().set_event(workflow_id, key, value, step_id, None)
        params = {**checkpoint_params(checkpoint), "key": key, "value": value}
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
        checkpoint: Checkpoint | None,
    ) -> RecordResult | None:
        if checkpoint is None:
            return super()._append_once(workflow_id, key, value, step_id, None)
        params = {
            **checkpoint_params(checkpoint),
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

    def database_identity(self) -> tuple[str, ...] | None:
        """Which database this is, and as whom: cluster identifier, database name, role.

        None when the server does not tell (a role not allowed to read the control data).
        """
        try:
            rows = self._query(q.DATABASE_IDENTITY_PG, {})
        except SystemDatabaseError:
            return None
        return tuple(str(value) for value in rows[0])

    def record_step_on(
        self, conn: psycopg.Connection[Any], checkpoint: Checkpoint, *, lock_row: bool
    ) -> bool:
        """Write a checkpoint in a transaction open on another connection to this database.

        A data source on the system database commits its writes and the checkpoint
        together this way. `lock_row` share-locks the workflow's row first (see
        `LOCK_WORKFLOW_ROW_PG`). Returns False when the guard refused the checkpoint;
        driver errors propagate untranslated, for the caller's retry logic.
        """
        with conn.cursor(row_factory=tuple_row) as cur:
            for statement, params in self.checkpoint_statements(checkpoint, lock_row=lock_row):
                cur.execute(statement, params)
            return cur.fetchone() is not None

    def checkpoint_statements(
        self, checkpoint: Checkpoint, *, lock_row: bool
    ) -> list[tuple[bytes, Mapping[str, Any]]]:
        """What `record_step_on` runs, in order, for a connection of the caller's own.

        The last statement returns a row when the guard admitted the checkpoint.
        """
        statements: list[tuple[bytes, Mapping[str, Any]]] = []
        if lock_row:
            statements.append(
                (self._compile(q.LOCK_WORKFLOW_ROW_PG), {"workflow_id": checkpoint.workflow_id})
            )
        statements.append((self._compile(q.RECORD_STEP), checkpoint_params(checkpoint)))
        return statements

    def step_recorded_on(
        self, conn: psycopg.Connection[Any], workflow_id: str, step_id: int
    ) -> bool:
        """Whether a step is recorded, read on another connection to this database."""
        with conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(*self.step_lookup(workflow_id, step_id))
            return cur.fetchone() is not None

    def step_lookup(self, workflow_id: str, step_id: int) -> tuple[bytes, Mapping[str, Any]]:
        """What `step_recorded_on` runs: a statement returning a row when the step is recorded."""
        return self._compile(q.GET_STEP), {"workflow_id": workflow_id, "step_id": step_id}

    @property
    def conninfo(self) -> str:
        """The connection string, for the dedicated LISTEN connection."""
        return self._conninfo

    def _is_foreign_key_violation(self, exc: BaseException) -> bool:
        return isinstance(driver_error(exc), psycopg.errors.ForeignKeyViolation)

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(driver_error(exc), psycopg.errors.UniqueViolation)

    def notify(self, channel: str, payloads: Sequence[str]) -> None:
        """NOTIFY every payload on `channel` in one round trip."""
        if payloads:
            self._query(q.NOTIFY_BATCH_PG, {"channel": channel, "payloads": list(payloads)})

    def close(self) -> None:
        """Stop retrying and close the pool (unless the caller supplied it)."""
        self._closed.set()
        self._lane.drain()
        if self._owns_pool:
            self._pool.close()


def _listen_conninfo(pool: ConnectionPool[Any]) -> str:
    """The caller's pool's connection string, for the dedicated LISTEN connection."""
    conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
    kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs or {}
    keywords = {d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults()}
    extra = {k: v for k, v in kwargs.items() if k in keywords and v is not None}
    return make_conninfo(conninfo, **extra)


def _check_caller_pool(pool: ConnectionPool[Any], connect_timeout: float) -> None:
    """Check out one connection of a caller's pool: reachable, autocommit, tuple rows.

    Raises:
        InitializationError: the pool gives no connection in time.
        InvalidOptionError: its connections are not autocommit or return other rows.
    """
    try:
        with pool.connection(timeout=connect_timeout) as conn:
            conn.execute("SELECT 1")
            autocommit, rows = conn.autocommit, conn.row_factory
    except PoolClosed as exc:
        raise InvalidOptionError(
            "system_database_pool", "the pool is closed; open it first"
        ) from exc
    except PoolTimeout as exc:
        raise InitializationError(
            f"the system_database_pool gave no connection within {connect_timeout:g}s: {exc}"
        ) from exc
    except psycopg.Error as exc:
        raise InitializationError(f"the system_database_pool cannot reach Postgres: {exc}") from exc
    if not autocommit:
        raise InvalidOptionError(
            "system_database_pool",
            "its connections must be autocommit: ConnectionPool(..., kwargs={'autocommit': True})",
        )
    if rows is not tuple_row:
        raise InvalidOptionError(
            "system_database_pool", "its connections must use the default tuple rows"
        )
