"""`new_data_source` and `run_as_transaction`: exactly-once writes to the app's database.

A step runs at least once. A transaction commits its writes once: in the same transaction
as the writes, a row of `transaction_completion` records the step's outcome, so a run that
crashed after the commit but before the checkpoint finds that row and takes the outcome
from it instead of writing again. A data source on the system database itself needs no such
row: the writes and the checkpoint commit in one transaction.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar, Unpack, overload

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import TypeAdapter

from dbos_typed._core.context import AppContext, WorkflowContext
from dbos_typed._core.durable import (
    Superseded,
    begin_operation,
    checkpoint_of,
    record_of,
    record_operation,
    refused,
    still_owned,
)
from dbos_typed._core.runtime import AttachedDatabase, Runtime
from dbos_typed._core.telemetry import step_scope
from dbos_typed._core.validate import checked_name
from dbos_typed._sysdb._app_database import AppDatabase, AppTransaction, is_transient
from dbos_typed._sysdb._postgres import PostgresStore
from dbos_typed._sysdb._retry import StoreClosedError
from dbos_typed._sysdb._rows import Checkpoint, RecordResult, StepRecord
from dbos_typed._workflows.step import (
    BACKOFF_FACTOR,
    BASE_INTERVAL,
    MAX_INTERVAL,
    RetryOptions,
    StepPlan,
    TryAgain,
    call_with_retries,
    check_step_call,
    encode_result,
    judged,
)
from dbos_typed.errors import (
    InitializationError,
    InvalidOptionError,
    SystemDatabaseError,
    WorkflowCancelledError,
)

R = TypeVar("R")

logger = logging.getLogger("dbos_typed")

IsolationLevel = Literal["read_committed", "repeatable_read", "serializable"]
_ISOLATION_LEVELS = ("read_committed", "repeatable_read", "serializable")
_IDENTIFIER_LIMIT = 63  # Postgres truncates longer identifiers silently.


class DataSource:
    """The application's own Postgres database, for `run_as_transaction`.

    Made by `new_data_source`. It holds a psycopg connection pool (its own, or the one it
    was given) and knows where its `transaction_completion` table is.
    """

    __slots__ = ("_database", "_identity", "_name", "_shared")

    def __init__(self, name: str, database: AppDatabase) -> None:
        self._name = name
        self._database = database
        self._identity = database.database_identity()
        # Whether this database is the system database of a given context, by context.
        self._shared: weakref.WeakKeyDictionary[Runtime, bool] = weakref.WeakKeyDictionary()

    @property
    def name(self) -> str:
        """The data source's name."""
        return self._name

    @property
    def schema(self) -> str:
        """The schema holding its `transaction_completion` table."""
        return self._database.schema

    @property
    def pool(self) -> ConnectionPool[Any]:
        """Its connection pool, also usable for work outside transactions."""
        return self._database.pool

    def _shares_database_with(self, runtime: Runtime) -> bool:
        shared = self._shared.get(runtime)
        if shared is None:
            store = runtime.store
            shared = (
                isinstance(store, PostgresStore)
                and self._identity is not None
                and store.database_identity() == self._identity
            )
            self._shared[runtime] = shared
        return shared

    def __repr__(self) -> str:
        return f"DataSource(name={self._name!r}, schema={self.schema!r})"


def new_data_source(
    ctx: AppContext,
    url_or_pool: str | ConnectionPool[Any],
    /,
    *,
    name: str = "datasource",
    schema: str = "dbos",
) -> DataSource:
    """Connect to the application's Postgres database, for `run_as_transaction`.

    A database named by a URL is created if it does not exist. The table
    `<schema>.transaction_completion` is created there unless it exists (a role
    allowed only to read and insert works once the table was created for it). A data
    source made from a URL opens a pool of its own and closes it when the context shuts
    down; one made from the caller's `psycopg_pool.ConnectionPool` leaves it open. It may
    be made before or after `launch()`.

    Args:
        ctx: The context whose workflows will use it.
        url_or_pool: A `postgresql://` URL, or an open `psycopg_pool.ConnectionPool`.
        name: A name for the data source, for logs and `repr`.
        schema: The schema for the `transaction_completion` table.

    Returns:
        The data source.

    Raises:
        InvalidOptionError: a bad argument (not a Postgres URL or a pool, a closed pool,
            an empty name or schema).
        InitializationError: the database cannot be reached (or is missing and cannot
            be created), the table is missing and
            cannot be created (the message gives the statements to run), or the context
            was shut down.
    """
    if not isinstance(ctx, AppContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext or WorkflowContext")
    checked_name(name, "name")
    checked_name(schema, "schema")
    if len(schema.encode()) > _IDENTIFIER_LIMIT:
        raise InvalidOptionError("schema", f"expected at most {_IDENTIFIER_LIMIT} bytes")
    runtime = ctx._runtime
    if runtime.shutting_down.is_set():
        raise InitializationError("this context was shut down; create a new one")
    database = _open(runtime, url_or_pool, schema)
    try:
        database.ensure_completion_table()
        source = DataSource(name, database)
        with runtime.lifecycle_lock:
            if runtime.shutting_down.is_set():
                raise InitializationError("this context was shut down; create a new one")
            runtime.data_sources.append(
                AttachedDatabase(database.close, lambda ids: _forget(source, ids))
            )
    except BaseException:
        database.close()
        raise
    return source


def _forget(source: DataSource, workflow_ids: Sequence[str]) -> None:
    """Delete a data source's completion rows for deleted workflows.

    A failure is logged, not raised: the workflows are gone already, and rows left behind
    only matter if their IDs are used again.
    """
    try:
        source._database.forget_workflows(workflow_ids)
    except (SystemDatabaseError, StoreClosedError) as exc:
        logger.warning(
            "could not delete the completion rows of %d deleted workflows from data source %r: %s",
            len(workflow_ids),
            source.name,
            exc,
        )


def _open(runtime: Runtime, url_or_pool: object, schema: str) -> AppDatabase:
    expected = "expected a postgresql:// URL or a psycopg_pool.ConnectionPool"
    if isinstance(url_or_pool, ConnectionPool):
        if url_or_pool.closed:
            raise InvalidOptionError("url_or_pool", "the pool is closed; open it first")
        return AppDatabase(url_or_pool, schema=schema, owns_pool=False)
    if not isinstance(url_or_pool, str):
        raise InvalidOptionError("url_or_pool", f"{expected}, got {type(url_or_pool).__name__}")
    if not url_or_pool.startswith(("postgresql://", "postgres://")) or "\x00" in url_or_pool:
        raise InvalidOptionError("url_or_pool", expected)
    config = runtime.config
    return AppDatabase.connect(
        url_or_pool,
        schema=schema,
        application_name=runtime.app_name,
        max_connections=config.max_connections,
        connect_timeout=config.connect_timeout.total_seconds(),
    )


@overload
def run_as_transaction(
    ctx: WorkflowContext,
    ds: DataSource,
    fn: Callable[[psycopg.Connection[Any]], R],
    /,
    *,
    isolation: IsolationLevel = "read_committed",
    result_type: None = None,
    **options: Unpack[RetryOptions],
) -> R: ...


@overload
def run_as_transaction(
    ctx: WorkflowContext,
    ds: DataSource,
    fn: Callable[[psycopg.Connection[Any]], R],
    /,
    *,
    isolation: IsolationLevel = "read_committed",
    result_type: type[R] | TypeAdapter[R],
    **options: Unpack[RetryOptions],
) -> R: ...


def run_as_transaction(
    ctx: WorkflowContext,
    ds: DataSource,
    fn: Callable[[psycopg.Connection[Any]], Any],
    /,
    *,
    name: str | None = None,
    max_retries: int = 0,
    base_interval: timedelta = BASE_INTERVAL,
    backoff_factor: float = BACKOFF_FACTOR,
    max_interval: timedelta = MAX_INTERVAL,
    retry_if: Callable[[Exception], bool] | None = None,
    isolation: IsolationLevel = "read_committed",
    result_type: Any = None,
) -> Any:
    """Run `fn` in one transaction on the data source, once per workflow; return its result.

    `fn` receives the psycopg connection the transaction is open on and does its reads and
    writes through it; it must not commit or roll back itself. Its result is stored as
    JSON, typed by `result_type` or `fn`'s return annotation, as for `run_as_step`.

    Durability: the transaction commits exactly once. Its writes and the record of its
    outcome commit together, in a `transaction_completion` row of the same database, and
    the outcome is then checkpointed; a run that crashed between the two finds the row and
    returns (or raises) what it holds without running `fn` again. When the data source is
    the system database itself (same database, same role), the writes and the checkpoint
    commit in one transaction and no row is needed. A replayed transaction is not run
    again. Serialization failures, deadlocks and lost connections roll the transaction
    back and run it again on a fresh one, without counting as attempts; an exception from
    `fn` rolls its writes back and goes through the retry policy, and a final failure is
    recorded like a step's.

    Args:
        ctx: The running workflow's context.
        ds: The data source, from `new_data_source`.
        fn: The transaction body, taking the connection.
        name: The recorded step name; defaults to `fn`'s qualified name.
        max_retries: How many times to retry after `fn` raised (0: run once).
        base_interval: Delay before the first retry.
        backoff_factor: Each further retry waits this much longer, up to `max_interval`.
        max_interval: The longest delay between retries.
        retry_if: Decides whether an error is worth retrying; by default all are.
        isolation: The transaction's isolation level.
        result_type: The type to store and restore the result as.

    Returns:
        What `fn` returned (on replay, the recorded value).

    Raises:
        StepFailedError: `fn` raised (on replay too); the original is its `__cause__` on
            the first run.
        MaxStepRetriesExceededError: `fn` failed on every allowed attempt.
        InvalidOptionError: a bad argument, or called inside a step or a transaction.
        NonDeterminismError: a different step is recorded at this point of the workflow.
        SystemDatabaseError: the `transaction_completion` table could not be read or
            written.
        WorkflowCancelledError: the workflow was cancelled.
    """
    plan = checked_transaction(
        ctx,
        ds,
        fn,
        name,
        max_retries,
        base_interval,
        backoff_factor,
        max_interval,
        retry_if,
        isolation,
        result_type,
    )
    return _TransactionRun(ctx, ds, fn, plan).run(isolation)


def checked_transaction(
    ctx: object,
    ds: object,
    fn: object,
    name: str | None,
    max_retries: int,
    base_interval: timedelta,
    backoff_factor: float,
    max_interval: timedelta,
    retry_if: Callable[[Exception], bool] | None,
    isolation: object,
    result_type: Any,
) -> StepPlan:
    """Check the arguments of a transaction call, either form; return its plan.

    Raises:
        InvalidOptionError: the argument named in it is invalid, or the call was made
            inside a step or a transaction.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError(
            "ctx", "run_as_transaction needs the WorkflowContext of a running workflow"
        )
    if not isinstance(ds, DataSource):
        raise InvalidOptionError(
            "ds", f"expected a DataSource from new_data_source, got {type(ds).__name__}"
        )
    if not callable(fn):
        raise InvalidOptionError(
            "fn", f"expected a callable taking a connection, got {type(fn).__name__}"
        )
    policy, name = check_step_call(
        ctx, fn, name, max_retries, base_interval, backoff_factor, max_interval, retry_if
    )
    if isolation not in _ISOLATION_LEVELS:
        raise InvalidOptionError(
            "isolation", "expected 'read_committed', 'repeatable_read' or 'serializable'"
        )
    if ctx._state.in_step:
        raise InvalidOptionError(
            "ctx", "run_as_transaction cannot be called from inside a step or a transaction"
        )
    return StepPlan.of(fn, name, policy, retry_if, result_type)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A transaction's recorded outcome and, on the run that made it, its live value."""

    output: str | None
    error: str | None
    fresh: tuple[Any, BaseException | None] | None = None  # (value, failure) from `fn`


class TransactionCheckpointRefused(Exception):
    """Rolls back a transaction whose checkpoint the system database refused."""


class TransactionRun:
    """One transaction call that was not replayed: what both forms share.

    The blocking `_TransactionRun` and the awaitable one of `dbos_typed.aio` differ only
    in how they reach the database; the decisions (replay, what an attempt's outcome is,
    what is recorded, what is returned or raised) are made here.
    """

    def __init__(self, ctx: WorkflowContext, ds: DataSource, plan: StepPlan) -> None:
        self.ctx = ctx
        self.ds = ds
        self.plan = plan
        self.step_name = plan.name
        self.step_id = -1
        self.started_ms = 0

    def begin(self) -> StepRecord | None:
        """Take the step's ID; the recorded row to replay, if any."""
        self.step_id, recorded = begin_operation(self.ctx, self.step_name)
        return recorded

    def start(self) -> None:
        """Before the first attempt: reach the "before" crash point (if armed); note the time."""
        self.started_ms = self.plan.started(self.ctx)

    def shares_system_database(self) -> bool:
        """Whether the writes and the checkpoint commit in one transaction."""
        return self.ds._shares_database_with(self.ctx._runtime)

    def record(self, outcome: Outcome) -> StepRecord:
        """The checkpoint row of `outcome`."""
        return StepRecord(
            self.step_id,
            self.step_name,
            outcome.output,
            outcome.error,
            None,
            self.started_ms,
            self.ctx._runtime.clock.now_ms(),
        )

    def reach_crash_point(self) -> None:
        """Reach the "after" crash point (if armed).

        On another database that is after the commit (with its completion row) and before
        the checkpoint; on the system database, where the commit is the checkpoint, after
        `fn` returned and before that commit, which the crash then rolls back.
        """
        self.plan.reach(self.ctx, "after")

    def committed(self, outcome: Outcome, *, checkpointed: bool) -> None:
        """After the commit: the "after" crash point and the checkpoint, unless it committed.

        Raises:
            WorkflowCancelledError: the workflow was cancelled, or the context shut down.
        """
        if checkpointed:
            return
        self.reach_crash_point()
        try:
            record_operation(self.ctx, self.record(outcome))
        except StoreClosedError as exc:
            raise self.interrupted(exc) from exc

    def interrupted(self, exc: StoreClosedError) -> WorkflowCancelledError:
        """What a transaction stopped by shutdown raises."""
        return WorkflowCancelledError(self.ctx.workflow_id, "interrupted by shutdown")

    def result(self, outcome: Outcome) -> Any:
        """What the call returns (or raises) once `outcome` is committed and checkpointed."""
        if outcome.fresh is None:
            return self.plan.replay(self.record(outcome))
        value, failure = outcome.fresh
        if failure is not None:
            raise failure
        return value

    def failed(self, number: int, exc: Exception) -> Outcome:
        """The outcome of attempt `number`, whose `fn` raised `exc`.

        Raises:
            Exception: `exc` itself when it is transient (a fresh transaction, not another
                attempt).
            TryAgain: the retry policy allows another attempt; the transaction is to be
                rolled back.
        """
        if is_transient(exc):
            raise exc
        verdict = judged(self.plan, number, exc)
        if isinstance(verdict, TryAgain):
            raise verdict from exc
        # `fn`'s writes are undone; the failure commits as its outcome.
        return Outcome(None, record_of(verdict).encode(), (None, verdict))

    def succeeded(self, value: Any) -> Outcome:
        """The outcome of an attempt whose `fn` returned `value`.

        Raises:
            SerializationError: the value cannot be stored.
        """
        return Outcome(encode_result(self.plan.codec, value, self.step_name), None, (value, None))

    def to_complete(self, stored: tuple[str | None, str | None] | None) -> Outcome | None:
        """Given what the completion table holds for the step: its outcome, if any.

        A row there was committed by an earlier run whose checkpoint was never written.
        """
        return None if stored is None else Outcome(*stored)

    def before_commit(self) -> None:
        """Refuse to commit the attempt of a workflow cancelled meanwhile.

        Raises:
            WorkflowCancelledError: the workflow was cancelled in this process.
        """
        self.ctx._state.check_cancelled()

    def checkpoint(self, outcome: Outcome) -> Checkpoint:
        """The checkpoint written inside the transaction, on the system database."""
        return checkpoint_of(self.ctx, self.record(outcome))

    def lock_row(self, isolation: str) -> bool:
        """Whether the transaction share-locks the workflow's row before its checkpoint."""
        return isolation != "read_committed"

    def store(self) -> PostgresStore:
        """The system database, which the data source shares."""
        store = self.ctx._runtime.store
        assert isinstance(store, PostgresStore)
        return store

    def after_refusal(self) -> Outcome:
        """The outcome recorded at the step after the transaction's checkpoint was refused.

        Nothing of the attempt was committed. Say why: a cancellation, another run, or an
        earlier commit of our own whose reply was lost.

        Raises:
            WorkflowCancelledError: the workflow was cancelled or taken over.
            NonDeterminismError: another operation is recorded at this step.
        """
        ctx = self.ctx
        existing = refused(ctx, self.step_id, self.step_name, RecordResult.ALREADY_RECORDED)
        if not still_owned(ctx):
            raise Superseded(ctx.workflow_id, "superseded by another execution")
        return Outcome(existing.output, existing.error)


class _TransactionRun(TransactionRun):
    """One blocking `run_as_transaction` call."""

    def __init__(
        self,
        ctx: WorkflowContext,
        ds: DataSource,
        fn: Callable[[psycopg.Connection[Any]], Any],
        plan: StepPlan,
    ) -> None:
        super().__init__(ctx, ds, plan)
        self.fn = fn

    def run(self, isolation: str) -> Any:
        recorded = self.begin()
        if recorded is not None:
            return self.plan.replay(recorded)
        self.start()
        ctx = self.ctx
        database = self.ds._database
        shared = self.shares_system_database()
        try:
            if shared:
                outcome = call_with_retries(
                    ctx,
                    self.plan.policy,
                    lambda number: self._with_checkpoint(database, isolation, number),
                )
            else:
                outcome = call_with_retries(
                    ctx,
                    self.plan.policy,
                    lambda number: database.transaction(
                        isolation, lambda tx: self._with_completion(tx, number)
                    ),
                )
        except StoreClosedError as exc:
            raise self.interrupted(exc) from exc
        self.committed(outcome, checkpointed=shared)
        return self.result(outcome)

    def _with_completion(self, tx: AppTransaction, number: int) -> Outcome:
        """One attempt on another database: the outcome is recorded in its own table."""
        stored = self.to_complete(tx.completion(self.ctx.workflow_id, self.step_id))
        if stored is not None:
            return stored
        outcome = self._call(tx, number)
        self.before_commit()
        tx.complete(self.ctx.workflow_id, self.step_id, outcome.output, outcome.error)
        return outcome

    def _with_checkpoint(self, database: AppDatabase, isolation: str, number: int) -> Outcome:
        """One attempt on the system database: the checkpoint commits with the writes."""
        store = self.store()

        def body(tx: AppTransaction) -> Outcome:
            conn = tx.connection
            if tx.retried and store.step_recorded_on(conn, self.ctx.workflow_id, self.step_id):
                raise TransactionCheckpointRefused  # committed just before the connection was lost
            outcome = self._call(tx, number)
            self.before_commit()
            # The commit is the checkpoint here: a crash after `fn` rolls both back.
            self.reach_crash_point()
            checkpoint = self.checkpoint(outcome)
            if not store.record_step_on(conn, checkpoint, lock_row=self.lock_row(isolation)):
                raise TransactionCheckpointRefused
            return outcome

        try:
            return database.transaction(isolation, body)
        except TransactionCheckpointRefused:
            return self.after_refusal()

    def _call(self, tx: AppTransaction, number: int) -> Outcome:
        """Run `fn` in the transaction; an error it raises is judged by the retry policy.

        Raises:
            TryAgain: `fn` failed and may be retried; the transaction is to be rolled back.
        """
        try:
            state = self.ctx._state
            with (
                state.running_step(self.step_id, blocking=True),
                step_scope(state, self.step_name, number, "transaction"),
            ):
                value = tx.run_isolated(self.fn)
        except Exception as exc:
            return self.failed(number, exc)
        return self.succeeded(value)
