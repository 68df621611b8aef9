"""Transactions on the application's own database: exactly once, with the workflow's progress.

The application database is a Postgres database of its own (a fresh schema per test); the
system database runs on both backends. Tests of a data source on the system database
itself run on Postgres only.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

import dbos_typed as dbos
from dbos_typed import testing
from dbos_typed._sysdb._retry import StoreClosedError
from tests.conftest import Backend, Gate, WorkerProcess
from tests.fresh_databases import fresh_postgres_database

FAST = timedelta(milliseconds=1)


@pytest.fixture(scope="session")
def app_database_url(postgres_url: str) -> Iterator[str]:
    """A database of the application's own, on the test server, for the whole session."""
    with fresh_postgres_database(postgres_url, "app") as fresh:
        yield fresh


@dataclass
class AppDatabase:
    """One test's schema in a Postgres database, with a ledger and an accounts table."""

    url: str
    schema: str

    def query(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        """Run SQL (`{s}` is the schema) in its own transaction."""
        text = sql.SQL(statement).format(s=sql.Identifier(self.schema))
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(text, params or None)
            return cur.fetchall() if cur.description else []

    def ledger(self) -> list[str]:
        return [str(r[0]) for r in self.query("SELECT note FROM {s}.ledger ORDER BY id")]

    def completions(self) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT workflow_id, step_id, output, error, serialization "
            "FROM {s}.transaction_completion ORDER BY workflow_id, step_id"
        )


def _with_tables(url: str, schema: str) -> AppDatabase:
    db = AppDatabase(url, schema)
    db.query("CREATE SCHEMA IF NOT EXISTS {s}")
    db.query("CREATE TABLE {s}.ledger (id SERIAL PRIMARY KEY, note TEXT NOT NULL)")
    db.query("CREATE TABLE {s}.accounts (name TEXT PRIMARY KEY, balance INT NOT NULL)")
    db.query("INSERT INTO {s}.accounts VALUES ('alice', 100)")
    return db


@pytest.fixture
def app(app_database_url: str) -> Iterator[AppDatabase]:
    """The application's tables, in a database other than the system database."""
    db = _with_tables(app_database_url, f"a_{uuid.uuid4().hex[:12]}")
    try:
        yield db
    finally:
        db.query("DROP SCHEMA {s} CASCADE")


def _insert(conn: psycopg.Connection[Any], schema: str, note: str) -> int:
    row = conn.execute(
        sql.SQL("INSERT INTO {}.ledger (note) VALUES (%s) RETURNING id").format(
            sql.Identifier(schema)
        ),
        (note,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _steps(backend: Backend, workflow_id: str) -> list[tuple[Any, ...]]:
    return backend.query(
        "SELECT function_id, function_name, output, error FROM {s}.operation_outputs "
        "WHERE workflow_uuid = %s ORDER BY function_id",
        workflow_id,
    )


class Fatal(Exception):
    pass


# -- exactly once, on a database of its own --------------------------------------------------


def test_writes_commit_with_a_completion_row_and_a_checkpoint(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)

    def deposit(conn: psycopg.Connection[Any]) -> int:
        return _insert(conn, app.schema, "deposit")

    def wf(ctx: dbos.WorkflowContext) -> int:
        first = dbos.run_as_transaction(ctx, ds, deposit)
        second = dbos.run_as_transaction(
            ctx, ds, lambda conn: _insert(conn, app.schema, "named"), name="named"
        )
        return first * 10 + second

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="happy").get_result() == 12
    assert app.ledger() == ["deposit", "named"]
    assert app.completions() == [
        ("happy", 0, "1", None, "portable_json"),
        ("happy", 1, "2", None, "portable_json"),
    ]
    assert _steps(backend, "happy") == [
        (0, deposit.__qualname__, "1", None),
        (1, "named", "2", None),
    ]


def test_replay_returns_the_recorded_result_without_running_again(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    gate = Gate()
    runs: list[int] = []

    def deposit(conn: psycopg.Connection[Any]) -> int:
        runs.append(1)
        return _insert(conn, app.schema, "once")

    def wf(ctx: dbos.WorkflowContext) -> int:
        row_id = dbos.run_as_transaction(ctx, ds, deposit, name="deposit")
        dbos.run_as_step(ctx, gate, name="gate")
        return row_id

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    dbos.run_workflow(ctx, wf, workflow_id="replay")
    gate.wait_entered()
    dbos.cancel_workflow(ctx, "replay")
    gate.open()
    assert dbos.resume_workflow(ctx, "replay").get_result() == 1
    assert runs == [1]
    assert app.ledger() == ["once"]


def test_a_crash_between_commit_and_checkpoint_replays_the_committed_outcome(
    backend: Backend, app: AppDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []

    def deposit(conn: psycopg.Connection[Any]) -> str:
        runs.append(1)
        _insert(conn, app.schema, "crash window")
        return f"deposited {len(runs)}"

    def wf(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_transaction(ctx, ds, deposit, name="deposit")

    # The process "dies" right after the user's commit: the checkpoint write never happens
    # and the run unwinds, leaving the workflow PENDING, as a killed process would.
    store = ctx._runtime.store
    record_step = store.record_step
    died = Gate()

    def dies_once(workflow_id: str, step: Any, *args: Any) -> Any:
        if step.name == "deposit" and not died.entered.is_set():
            died.entered.set()
            raise StoreClosedError("simulated crash")
        return record_step(workflow_id, step, *args)

    monkeypatch.setattr(store, "record_step", dies_once)
    dbos.register_workflow(ctx, wf)
    ctx.launch()
    dbos.run_workflow(ctx, wf, workflow_id="window")
    died.wait_entered()
    assert app.ledger() == ["crash window"]
    assert app.completions() == [("window", 0, '"deposited 1"', None, "portable_json")]

    resumed = dbos.resume_workflow(ctx, "window")
    assert resumed.get_result() == "deposited 1"
    assert runs == [1]
    assert app.ledger() == ["crash window"]
    assert _steps(backend, "window") == [(0, "deposit", '"deposited 1"', None)]


def test_when_a_rival_run_commits_the_step_first_its_outcome_wins(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []

    def deposit(conn: psycopg.Connection[Any]) -> str:
        runs.append(1)
        _insert(conn, app.schema, "ours")
        # Another run of the same workflow step commits while this one is open.
        app.query(
            "INSERT INTO {s}.transaction_completion (workflow_id, step_id, output) "
            "VALUES ('rival', 0, '\"theirs\"')"
        )
        return "ours"

    def wf(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_transaction(ctx, ds, deposit, name="deposit")

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="rival").get_result() == "theirs"
    assert runs == [1]
    assert app.ledger() == []  # this run's writes were rolled back
    assert _steps(backend, "rival") == [(0, "deposit", '"theirs"', None)]


def test_a_failing_transaction_rolls_back_and_its_error_is_recorded(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    gate = Gate()
    runs: list[int] = []

    def overdraw(conn: psycopg.Connection[Any]) -> int:
        runs.append(1)
        _insert(conn, app.schema, "never committed")
        raise Fatal("insufficient funds")

    def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_transaction(ctx, ds, overdraw, name="overdraw")
        except dbos.StepFailedError as exc:
            assert isinstance(exc.__cause__, Fatal) or exc.__cause__ is None
            outcome = f"{exc.step_name}:{exc.error_name}:{exc.error_message}"
        dbos.run_as_step(ctx, gate, name="gate")
        return outcome

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    dbos.run_workflow(ctx, wf, workflow_id="fails")
    gate.wait_entered()
    assert app.ledger() == []
    [(workflow_id, step_id, output, error, _)] = app.completions()
    assert (workflow_id, step_id, output) == ("fails", 0, None)
    assert "Fatal" in error and "insufficient funds" in error
    [(_, name, _, recorded_error)] = _steps(backend, "fails")
    assert name == "overdraw" and "insufficient funds" in recorded_error

    dbos.cancel_workflow(ctx, "fails")
    gate.open()
    resumed = dbos.resume_workflow(ctx, "fails")
    assert resumed.get_result() == "overdraw:Fatal:insufficient funds"
    assert runs == [1]  # the replay raised the recorded error without running it


def test_application_errors_go_through_the_retry_policy(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    attempts: list[int] = []

    def flaky(conn: psycopg.Connection[Any]) -> int:
        attempts.append(1)
        row_id = _insert(conn, app.schema, f"attempt {len(attempts)}")
        if len(attempts) < 3:
            raise Fatal("not yet")
        return row_id

    def always(conn: psycopg.Connection[Any]) -> int:
        _insert(conn, app.schema, "always fails")
        raise Fatal("never")

    def wf(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_transaction(ctx, ds, flaky, max_retries=3, base_interval=FAST)
        try:
            dbos.run_as_transaction(ctx, ds, always, max_retries=1, base_interval=FAST)
        except dbos.MaxStepRetriesExceededError as exc:
            return f"{exc.attempts}:{exc.error_message}"
        return "unreachable"

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="retries").get_result() == "2:never"
    assert len(attempts) == 3
    assert app.ledger() == ["attempt 3"]  # the failed attempts' writes were rolled back
    errors = [error for *_, error in _steps(backend, "retries")]
    assert errors[0] is None and "MaxStepRetriesExceededError" in errors[1]


def test_retry_if_stops_retrying(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    attempts: list[int] = []

    def fatal(conn: psycopg.Connection[Any]) -> None:
        attempts.append(1)
        raise Fatal("stop")

    def wf(ctx: dbos.WorkflowContext) -> None:
        dbos.run_as_transaction(
            ctx, ds, fatal, max_retries=5, retry_if=lambda e: not isinstance(e, Fatal)
        )

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    with pytest.raises(dbos.WorkflowFailedError) as info:
        dbos.run_workflow(ctx, wf).get_result()
    assert info.value.error_name == "Fatal"
    assert attempts == [1]


# -- conflicts, lost connections, isolation ---------------------------------------------------


def _withdraw_racing_a_concurrent_update(app: AppDatabase, runs: list[int]) -> Any:
    """A withdrawal that, on its first run, sees another transaction update the row it read."""

    def withdraw(conn: psycopg.Connection[Any]) -> int:
        runs.append(1)
        accounts = sql.SQL("{}.accounts").format(sql.Identifier(app.schema))
        row = conn.execute(
            sql.SQL("SELECT balance FROM {} WHERE name = 'alice'").format(accounts)
        ).fetchone()
        assert row is not None
        if len(runs) == 1:
            app.query("UPDATE {s}.accounts SET balance = 50 WHERE name = 'alice'")
        conn.execute(
            sql.SQL("UPDATE {} SET balance = %s WHERE name = 'alice'").format(accounts),
            (row[0] - 10,),
        )
        return int(row[0]) - 10

    return withdraw


def test_serialization_failures_run_again_on_a_fresh_transaction(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []
    withdraw = _withdraw_racing_a_concurrent_update(app, runs)

    def wf(ctx: dbos.WorkflowContext) -> int:
        # No retries allowed: a serialization failure is not an attempt.
        result: int = dbos.run_as_transaction(
            ctx, ds, withdraw, isolation="repeatable_read", name="withdraw"
        )
        return result

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="serial").get_result() == 40
    assert runs == [1, 1]
    assert app.query("SELECT balance FROM {s}.accounts") == [(40,)]
    assert [(s, n, o, e) for s, n, o, e in _steps(backend, "serial")] == [
        (0, "withdraw", "40", None)
    ]


def test_read_committed_is_the_default_isolation(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []
    withdraw = _withdraw_racing_a_concurrent_update(app, runs)

    def wf(ctx: dbos.WorkflowContext) -> int:
        result: int = dbos.run_as_transaction(ctx, ds, withdraw)
        return result

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    # Under READ COMMITTED the concurrent update is simply overwritten: no conflict, one run.
    assert dbos.run_workflow(ctx, wf).get_result() == 90
    assert runs == [1]


def test_each_isolation_level_is_honoured(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)

    def level(conn: psycopg.Connection[Any]) -> str:
        row = conn.execute("SHOW transaction_isolation").fetchone()
        assert row is not None
        return str(row[0])

    def wf(ctx: dbos.WorkflowContext) -> list[str]:
        return [
            dbos.run_as_transaction(ctx, ds, level, isolation="read_committed"),
            dbos.run_as_transaction(ctx, ds, level, isolation="repeatable_read"),
            dbos.run_as_transaction(ctx, ds, level, isolation="serializable"),
        ]

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf).get_result() == [
        "read committed",
        "repeatable read",
        "serializable",
    ]


def test_a_lost_connection_runs_the_transaction_again(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []

    def deposit(conn: psycopg.Connection[Any]) -> int:
        runs.append(1)
        row_id = _insert(conn, app.schema, f"run {len(runs)}")
        if len(runs) == 1:
            pid = conn.info.backend_pid
            assert app.query("SELECT pg_terminate_backend(%s)", pid) == [(True,)]
            conn.execute("SELECT 1")  # the server has gone away
        return row_id

    def wf(ctx: dbos.WorkflowContext) -> int:
        result: int = dbos.run_as_transaction(ctx, ds, deposit)
        return result

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf).get_result() == 2
    assert runs == [1, 1]
    assert app.ledger() == ["run 2"]


def test_deferred_constraints_fail_the_function_not_the_commit(
    backend: Backend, app: AppDatabase
) -> None:
    app.query(
        "CREATE TABLE {s}.parents (id INT PRIMARY KEY); "
        "CREATE TABLE {s}.children (parent INT REFERENCES {s}.parents "
        "DEFERRABLE INITIALLY DEFERRED)"
    )
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)

    def orphan(conn: psycopg.Connection[Any]) -> None:
        children = sql.SQL("{}.children").format(sql.Identifier(app.schema))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (7)").format(children))

    def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_transaction(ctx, ds, orphan, name="orphan")
        except dbos.StepFailedError as exc:
            return exc.error_name
        return "committed"

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="deferred").get_result() == (
        "ForeignKeyViolation"
    )
    assert app.query("SELECT count(*) FROM {s}.children") == [(0,)]
    [(_, _, output, error, _)] = app.completions()
    assert output is None and "ForeignKeyViolation" in error


# -- where it may be called ------------------------------------------------------------------


def test_transactions_take_step_ids_in_order_with_steps(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)

    def wf(ctx: dbos.WorkflowContext) -> None:
        dbos.run_as_step(ctx, lambda: 1, name="before")
        dbos.run_as_transaction(ctx, ds, lambda conn: _insert(conn, app.schema, "x"), name="tx")
        dbos.run_as_step(ctx, lambda: 2, name="after")

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    dbos.run_workflow(ctx, wf, workflow_id="order").get_result()
    assert [(i, n) for i, n, *_ in _steps(backend, "order")] == [
        (0, "before"),
        (1, "tx"),
        (2, "after"),
    ]
    assert [(w, s) for w, s, *_ in app.completions()] == [("order", 1)]


def test_not_allowed_inside_a_step_or_another_transaction(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    refused: list[str] = []

    def nested(conn: psycopg.Connection[Any]) -> int:
        try:
            dbos.run_as_transaction(inner_ctx[0], ds, lambda c: 1)
        except dbos.InvalidOptionError as exc:
            refused.append(f"transaction: {exc.argument}")
        # A step inside a transaction runs inline, as inside a step.
        return dbos.run_as_step(inner_ctx[0], lambda: 5, name="inline")

    inner_ctx: list[dbos.WorkflowContext] = []

    def wf(ctx: dbos.WorkflowContext) -> int:
        inner_ctx.append(ctx)

        def in_step() -> int:
            try:
                dbos.run_as_transaction(ctx, ds, lambda conn: 1)
            except dbos.InvalidOptionError as exc:
                refused.append(f"step: {exc.argument}")
            return 0

        dbos.run_as_step(ctx, in_step, name="step")
        result: int = dbos.run_as_transaction(ctx, ds, nested, name="outer")
        return result

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="nesting").get_result() == 5
    assert refused == ["step: ctx", "transaction: ctx"]
    assert [n for _, n, *_ in _steps(backend, "nesting")] == ["step", "outer"]


def test_the_function_cannot_commit_but_may_nest_savepoints(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)

    def commits(conn: psycopg.Connection[Any]) -> None:
        _insert(conn, app.schema, "half")
        conn.commit()

    def nests(conn: psycopg.Connection[Any]) -> int:
        _insert(conn, app.schema, "kept")
        try:
            with conn.transaction():
                _insert(conn, app.schema, "undone")
                raise Fatal("inner")
        except Fatal:
            pass
        return 1

    def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_transaction(ctx, ds, commits)
        except dbos.StepFailedError as exc:
            refused = exc.error_name
        dbos.run_as_transaction(ctx, ds, nests)
        return refused

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf).get_result() == "ProgrammingError"
    assert app.ledger() == ["kept"]


def test_bad_arguments_are_refused(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    closed_pool: ConnectionPool[Any] = ConnectionPool(app.url, min_size=1, open=False)
    closed_pool.close()

    def refused_argument(call: Any) -> str:
        with pytest.raises(dbos.InvalidOptionError) as info:
            call()
        return info.value.argument

    assert refused_argument(lambda: dbos.new_data_source("ctx", app.url)) == "ctx"  # type: ignore[arg-type]
    assert refused_argument(lambda: dbos.new_data_source(ctx, "sqlite:///x.db")) == "url_or_pool"
    assert refused_argument(lambda: dbos.new_data_source(ctx, 42)) == "url_or_pool"  # type: ignore[arg-type]
    assert refused_argument(lambda: dbos.new_data_source(ctx, closed_pool)) == "url_or_pool"
    assert refused_argument(lambda: dbos.new_data_source(ctx, app.url, name="")) == "name"
    assert refused_argument(lambda: dbos.new_data_source(ctx, app.url, schema="")) == "schema"
    assert refused_argument(lambda: dbos.new_data_source(ctx, app.url, schema="s" * 64)) == (
        "schema"
    )
    # Outside a workflow.
    assert refused_argument(lambda: dbos.run_as_transaction(ctx, ds, lambda c: 1)) == "ctx"  # type: ignore[call-overload]

    seen: list[str] = []

    def wf(ctx: dbos.WorkflowContext) -> list[str]:
        calls: list[Any] = [
            lambda: dbos.run_as_transaction(ctx, "ds", lambda c: 1),  # type: ignore[call-overload]
            lambda: dbos.run_as_transaction(ctx, ds, 42),  # type: ignore[call-overload]
            lambda: dbos.run_as_transaction(ctx, ds, lambda c: 1, isolation="snapshot"),  # type: ignore[call-overload]
            lambda: dbos.run_as_transaction(ctx, ds, lambda c: 1, max_retries=-1),
            lambda: dbos.run_as_transaction(ctx, ds, lambda c: 1, base_interval=timedelta(0)),
            lambda: dbos.run_as_transaction(ctx, ds, lambda c: 1, retry_if=3),  # type: ignore[call-overload]
            lambda: dbos.run_as_transaction(ctx, ds, lambda c: 1, name=""),
        ]
        for call in calls:
            try:
                call()
            except dbos.InvalidOptionError as exc:
                seen.append(exc.argument)
        return seen

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="bad").get_result() == [
        "ds",
        "fn",
        "isolation",
        "max_retries",
        "base_interval",
        "retry_if",
        "name",
    ]
    assert _steps(backend, "bad") == []  # a refused call takes no step


# -- data sources: the table, the pool ---------------------------------------------------------


def test_the_completion_table_is_created_in_any_schema(
    backend: Backend, app_database_url: str
) -> None:
    schema = f'Odd "schema" {uuid.uuid4().hex[:6]}'
    db = AppDatabase(app_database_url, schema)
    ctx = backend.new_context()
    try:
        ds = dbos.new_data_source(ctx, app_database_url, name="ledger", schema=schema)
        assert (ds.name, ds.schema) == ("ledger", schema)
        assert db.completions() == []
        # A second data source finds the table and leaves it be.
        db.query("INSERT INTO {s}.transaction_completion (workflow_id, step_id) VALUES ('w', 0)")
        dbos.new_data_source(ctx, app_database_url, schema=schema)
        assert [(w, s) for w, s, *_ in db.completions()] == [("w", 0)]
        [(created_at,)] = db.query("SELECT created_at FROM {s}.transaction_completion")
        assert created_at > 1_600_000_000_000  # milliseconds since the epoch
    finally:
        db.query("DROP SCHEMA IF EXISTS {s} CASCADE")


@dataclass
class Role:
    name: str
    url: str


@pytest.fixture
def limited_role(app: AppDatabase) -> Iterator[Role]:
    """A role that may read and write the application's tables but create nothing."""
    name = f"dml_{uuid.uuid4().hex[:10]}"
    role = sql.Identifier(name).as_string(None)
    app.query(f"CREATE ROLE {role} LOGIN")
    app.query(f"GRANT USAGE ON SCHEMA {{s}} TO {role}")
    app.query(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {{s}} TO {role}")
    app.query(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {{s}} TO {role}")
    parts = urlsplit(app.url)
    try:
        # Only the user changes: the host may be a socket directory in the query string.
        host = parts.netloc.rsplit("@", 1)[-1]
        yield Role(name, urlunsplit(parts._replace(netloc=f"{name}@{host}")))
    finally:
        app.query(f"DROP OWNED BY {role}")
        app.query(f"DROP ROLE {role}")


def test_a_role_without_ddl_rights_gets_the_statements_to_run(
    backend: Backend, app: AppDatabase, limited_role: Role, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = backend.new_context()
    with pytest.raises(dbos.InitializationError) as info:
        dbos.new_data_source(ctx, limited_role.url, schema=app.schema)
    message = str(info.value)
    assert "permission denied" in message
    assert "SELECT and INSERT" in message
    statements = message.split("on it:\n", 1)[1]
    assert "CREATE TABLE IF NOT EXISTS" in statements

    # Provisioned by an administrator, with the statements given, the table is used as is.
    with psycopg.connect(app.url, autocommit=True) as admin:
        admin.execute(statements.encode())
    role = sql.Identifier(limited_role.name).as_string(None)
    app.query(f"GRANT SELECT, INSERT ON {{s}}.transaction_completion TO {role}")
    ds = dbos.new_data_source(ctx, limited_role.url, schema=app.schema)

    def wf(ctx: dbos.WorkflowContext) -> int:
        result: int = dbos.run_as_transaction(
            ctx, ds, lambda conn: _insert(conn, app.schema, "limited")
        )
        return result

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="limited").get_result() == 1
    assert app.ledger() == ["limited"]
    assert [(w, s) for w, s, *_ in app.completions()] == [("limited", 0)]

    # Deleting the workflow cannot delete its completion row without the right: the
    # deletion still succeeds, and says so in the log.
    with caplog.at_level(logging.WARNING, logger="dbos_typed"):
        dbos.delete_workflows(ctx, ["limited"])
    assert dbos.list_workflows(ctx) == []
    assert [(w, s) for w, s, *_ in app.completions()] == [("limited", 0)]
    assert "could not delete the completion rows of 1 deleted workflows" in caplog.text


def test_deleting_a_workflow_deletes_its_completion_rows(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)

    def wf(ctx: dbos.WorkflowContext, note: str) -> int:
        result: int = dbos.run_as_transaction(ctx, ds, lambda conn: _insert(conn, app.schema, note))
        return result

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    for workflow_id in ("again", "kept", "old"):
        dbos.run_workflow(ctx, wf, workflow_id, workflow_id=workflow_id).get_result()

    # An ID used again after a deletion is a new workflow: its transaction runs again.
    dbos.delete_workflows(ctx, ["again"])
    assert [w for w, *_ in app.completions()] == ["kept", "old"]
    assert dbos.run_workflow(ctx, wf, "again", workflow_id="again").get_result() == 4
    assert app.ledger() == ["again", "kept", "old", "again"]

    backend.query("UPDATE {s}.workflow_status SET created_at = 0 WHERE workflow_uuid = %s", "old")
    assert dbos.garbage_collect(ctx, cutoff=datetime(2000, 1, 1, tzinfo=UTC)) == 1
    assert [w for w, *_ in app.completions()] == ["again", "kept"]


def test_an_owned_pool_closes_with_the_context_and_a_given_one_does_not(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    owned = dbos.new_data_source(ctx, app.url, schema=app.schema)
    given: ConnectionPool[Any] = ConnectionPool(app.url, min_size=1, open=True)
    try:
        borrowed = dbos.new_data_source(ctx, given, name="borrowed", schema=app.schema)
        assert borrowed.pool is given

        def wf(ctx: dbos.WorkflowContext) -> int:
            result: int = dbos.run_as_transaction(
                ctx, borrowed, lambda conn: _insert(conn, app.schema, "borrowed")
            )
            return result

        dbos.register_workflow(ctx, wf)
        ctx.launch()
        assert dbos.run_workflow(ctx, wf).get_result() == 1
        ctx.shutdown()
        assert owned.pool.closed
        assert not given.closed
        with given.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        given.close()


# -- a real crash between the commit and the checkpoint ---------------------------------------


def test_sigkill_between_commit_and_checkpoint_commits_every_deposit_once(
    backend: Backend, app: AppDatabase
) -> None:
    count = 3

    def worker(mode: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.transaction_worker",
                *(backend.url, backend.schema, app.url, app.schema, mode, str(count)),
            ],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    first = WorkerProcess(worker("start"))
    try:
        first.wait_entered(count)  # every deposit committed, no checkpoint written
    finally:
        first.kill()
    assert app.ledger() == ["deposit"] * count
    assert backend.query("SELECT count(*) FROM {s}.operation_outputs") == [(0,)]

    second = worker("recover")
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert f"recovered {count} [1, 2, 3]" in out
    assert app.ledger() == ["deposit"] * count  # recovery ran no deposit again
    assert backend.query(
        "SELECT function_name, count(*) FROM {s}.operation_outputs GROUP BY function_name "
        "ORDER BY function_name"
    ) == [("after", count), ("deposit", count)]
    assert backend.query("SELECT DISTINCT status FROM {s}.workflow_status") == [("SUCCESS",)]


# -- a data source on the system database --------------------------------------------------------

on_postgres = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.mark.postgres_only
@on_postgres
def test_on_the_system_database_writes_and_checkpoint_are_one_transaction(
    backend: Backend,
) -> None:
    ctx = backend.new_context()
    tables = _with_tables(backend.url, backend.schema)
    ds = dbos.new_data_source(ctx, backend.url, schema=backend.schema)
    gate = Gate()
    runs: list[int] = []
    transaction_ids: list[str] = []

    def deposit(conn: psycopg.Connection[Any]) -> int:
        runs.append(1)
        # The top-level transaction's ID (the writes below are in a subtransaction).
        row = conn.execute("SELECT (txid_current() % 4294967296)::text").fetchone()
        assert row is not None
        transaction_ids.append(row[0])
        return _insert(conn, tables.schema, "shared")

    def wf(ctx: dbos.WorkflowContext) -> int:
        row_id = dbos.run_as_transaction(ctx, ds, deposit, name="deposit")
        dbos.run_as_step(ctx, gate, name="gate")
        return row_id

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    dbos.run_workflow(ctx, wf, workflow_id="one-tx")
    gate.wait_entered()
    checkpoint_xmin = backend.query(
        "SELECT xmin::text FROM {s}.operation_outputs WHERE workflow_uuid = %s "
        "AND function_name = 'deposit'",
        "one-tx",
    )
    assert [(transaction_ids[0],)] == checkpoint_xmin  # the checkpoint was written by it
    assert tables.ledger() == ["shared"]
    assert tables.completions() == []  # the checkpoint itself is the record

    dbos.cancel_workflow(ctx, "one-tx")
    gate.open()
    assert dbos.resume_workflow(ctx, "one-tx").get_result() == 1
    assert runs == [1]


@pytest.mark.postgres_only
@on_postgres
@pytest.mark.parametrize("isolation", ["read_committed", "repeatable_read"])
def test_on_the_system_database_a_refused_checkpoint_rolls_the_writes_back(
    backend: Backend, isolation: Any
) -> None:
    ctx = backend.new_context()
    tables = _with_tables(backend.url, backend.schema)
    ds = dbos.new_data_source(ctx, backend.url, schema=backend.schema)
    runs: list[int] = []

    def deposit(conn: psycopg.Connection[Any]) -> int:
        runs.append(1)
        row_id = _insert(conn, tables.schema, f"run {len(runs)}")
        if len(runs) == 1:
            # Cancelled from elsewhere while the transaction is open (and, under
            # REPEATABLE READ, after its snapshot was taken).
            backend.query(
                "UPDATE {s}.workflow_status SET status = 'CANCELLED' WHERE workflow_uuid = %s",
                "refused",
            )
        return row_id

    def wf(ctx: dbos.WorkflowContext) -> int:
        result: int = dbos.run_as_transaction(ctx, ds, deposit, isolation=isolation)
        return result

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        dbos.run_workflow(ctx, wf, workflow_id="refused").get_result()
    assert tables.ledger() == []
    assert _steps(backend, "refused") == []

    # Under REPEATABLE READ the change is first met as a serialization failure; the run
    # on a fresh snapshot sees the cancellation.
    refused_runs = 1 if isolation == "read_committed" else 2
    assert len(runs) == refused_runs
    assert dbos.resume_workflow(ctx, "refused").get_result() == refused_runs + 1
    assert tables.ledger() == [f"run {refused_runs + 1}"]


@pytest.mark.postgres_only
@on_postgres
def test_on_the_system_database_a_failure_is_checkpointed_without_its_writes(
    backend: Backend,
) -> None:
    ctx = backend.new_context()
    tables = _with_tables(backend.url, backend.schema)
    ds = dbos.new_data_source(ctx, backend.url, schema=backend.schema)
    attempts: list[int] = []

    def overdraw(conn: psycopg.Connection[Any]) -> None:
        attempts.append(1)
        _insert(conn, tables.schema, "never committed")
        raise Fatal("insufficient funds")

    def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_transaction(
                ctx, ds, overdraw, name="overdraw", max_retries=1, base_interval=FAST
            )
        except dbos.MaxStepRetriesExceededError as exc:
            return f"{exc.attempts}:{exc.error_message}"
        return "unreachable"

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="shared-fail").get_result() == (
        "2:insufficient funds"
    )
    assert tables.ledger() == []
    [(_, name, output, error)] = _steps(backend, "shared-fail")
    assert (name, output) == ("overdraw", None)
    assert "MaxStepRetriesExceededError" in error


@pytest.mark.postgres_only
@on_postgres
def test_whether_a_data_source_is_the_system_database_is_decided_per_context(
    backend: Backend, tmp_path: Path
) -> None:
    postgres_ctx = backend.new_context()
    other_schema = f"o_{uuid.uuid4().hex[:12]}"
    tables = _with_tables(backend.url, other_schema)
    # The same database as the system database, in another schema: still one transaction.
    ds = dbos.new_data_source(postgres_ctx, backend.url, schema=other_schema)
    sqlite_ctx = dbos.new_context(
        dbos.Config(app_name="test-app", database_url=f"sqlite:///{tmp_path / 'sys.sqlite'}")
    )
    try:

        def wf(ctx: dbos.WorkflowContext) -> int:
            result: int = dbos.run_as_transaction(
                ctx, ds, lambda conn: _insert(conn, other_schema, dbos.get_workflow_id(ctx))
            )
            return result

        for ctx in (postgres_ctx, sqlite_ctx):
            dbos.register_workflow(ctx, wf)
            ctx.launch()
        assert dbos.run_workflow(postgres_ctx, wf, workflow_id="on-postgres").get_result() == 1
        assert dbos.run_workflow(sqlite_ctx, wf, workflow_id="on-sqlite").get_result() == 2
        assert tables.ledger() == ["on-postgres", "on-sqlite"]
        # Only the context whose system database this is not needed a completion row.
        assert [w for w, *_ in tables.completions()] == ["on-sqlite"]
    finally:
        sqlite_ctx.shutdown()
        tables.query("DROP SCHEMA {s} CASCADE")


# -- simulated crashes and restarts (dbos_typed.testing) -------------------------------------


def _restarted(backend: Backend, ctx: dbos.DBOSContext) -> dbos.DBOSContext:
    again = testing.restart(ctx)
    backend.contexts.append(again)
    return again


def test_a_crash_before_a_transaction_runs_it_on_recovery_once(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []

    def deposit(conn: psycopg.Connection[Any]) -> int:
        runs.append(1)
        return _insert(conn, app.schema, "deposit")

    def wf(ctx: dbos.WorkflowContext) -> int:
        return dbos.run_as_transaction(ctx, ds, deposit, name="deposit")

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    with testing.crash_at(ctx, "deposit", when="before") as point:
        handle = dbos.run_workflow(ctx, wf, workflow_id="tx-before")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result()
    assert point.fired and runs == [] and app.ledger() == [] and app.completions() == []
    assert _steps(backend, "tx-before") == []

    again = _restarted(backend, ctx)  # the data source passes to the new context
    assert dbos.retrieve_workflow[int](again, "tx-before").get_result() == 1
    assert runs == [1] and app.ledger() == ["deposit"]


def test_a_crash_after_a_commit_recovers_the_outcome_without_running_again(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []

    def deposit(conn: psycopg.Connection[Any]) -> int:
        runs.append(1)
        return _insert(conn, app.schema, "deposit")

    def wf(ctx: dbos.WorkflowContext) -> str:
        row_id = dbos.run_as_transaction(ctx, ds, deposit, name="deposit")
        return f"row {row_id}"

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    with testing.crash_at(ctx, "deposit", when="after"):
        handle = dbos.run_workflow(ctx, wf, workflow_id="tx-after")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result()
    # Committed with its completion row; the system database recorded nothing for it.
    assert app.ledger() == ["deposit"] and len(app.completions()) == 1
    assert _steps(backend, "tx-after") == []

    again = _restarted(backend, ctx)
    assert dbos.retrieve_workflow[str](again, "tx-after").get_result() == "row 1"
    assert runs == [1] and app.ledger() == ["deposit"]
    [(_, name, _, error)] = _steps(backend, "tx-after")
    assert (name, error) == ("deposit", None)


@pytest.mark.postgres_only
@on_postgres
def test_a_crash_after_a_transaction_on_the_system_database_rolls_it_back(
    backend: Backend,
) -> None:
    ctx = backend.new_context()
    tables = _with_tables(backend.url, backend.schema)
    ds = dbos.new_data_source(ctx, backend.url, schema=backend.schema)
    runs: list[int] = []

    def deposit(conn: psycopg.Connection[Any]) -> int:
        runs.append(1)
        return _insert(conn, tables.schema, "shared")

    def wf(ctx: dbos.WorkflowContext) -> int:
        return dbos.run_as_transaction(ctx, ds, deposit, name="deposit")

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    with testing.crash_at(ctx, "deposit", when="after"):
        handle = dbos.run_workflow(ctx, wf, workflow_id="tx-shared-after")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result()
    # The commit is the checkpoint: a crash before it leaves neither.
    assert runs == [1] and tables.ledger() == [] and _steps(backend, "tx-shared-after") == []

    again = _restarted(backend, ctx)
    assert dbos.retrieve_workflow[int](again, "tx-shared-after").get_result() >= 1
    assert runs == [1, 1] and tables.ledger() == ["shared"]
