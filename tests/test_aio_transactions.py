"""The awaitable `aio.run_as_transaction`: the blocking form's guarantees, on an AsyncConnection.

The application database is Postgres (a fresh schema per test); the system database runs on
both backends. A data source on the system database itself is tested on Postgres only.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed import aio, testing
from tests.conftest import Backend, Gate
from tests.test_transactions import AppDatabase, _steps, _with_tables
from tests.test_transactions import app as app  # the fixtures of the blocking tests
from tests.test_transactions import app_database_url as app_database_url

FAST = timedelta(milliseconds=1)


class Balance(BaseModel):
    name: str
    cents: int


class Fatal(Exception):
    pass


async def _insert(conn: psycopg.AsyncConnection[Any], schema: str, note: str) -> int:
    cur = await conn.execute(
        sql.SQL("INSERT INTO {}.ledger (note) VALUES (%s) RETURNING id").format(
            sql.Identifier(schema)
        ),
        (note,),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def test_writes_commit_with_a_completion_row_and_a_typed_result(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)

    async def debit(conn: psycopg.AsyncConnection[Any]) -> Balance:
        cur = await conn.execute(
            sql.SQL(
                "UPDATE {}.accounts SET balance = balance - 10 WHERE name = 'alice' "
                "RETURNING name, balance"
            ).format(sql.Identifier(app.schema))
        )
        row = await cur.fetchone()
        assert row is not None
        await _insert(conn, app.schema, "debit")
        return Balance(name=row[0], cents=row[1])

    async def wf(ctx: dbos.WorkflowContext) -> Balance:
        balance = await aio.run_as_transaction(ctx, ds, debit)
        assert isinstance(balance, Balance)
        note = await aio.run_as_transaction(
            ctx, ds, lambda conn: _insert(conn, app.schema, "named"), name="named"
        )
        assert note == 2
        return balance

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    result = dbos.run_workflow(ctx, wf, workflow_id="happy").get_result()
    assert result == Balance(name="alice", cents=90)
    assert app.ledger() == ["debit", "named"]
    assert app.completions() == [
        ("happy", 0, '{"name":"alice","cents":90}', None, "portable_json"),
        ("happy", 1, "2", None, "portable_json"),
    ]
    assert _steps(backend, "happy") == [
        (0, debit.__qualname__, '{"name":"alice","cents":90}', None),
        (1, "named", "2", None),
    ]


def test_a_crash_after_the_commit_commits_exactly_once(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []

    async def deposit(conn: psycopg.AsyncConnection[Any]) -> str:
        runs.append(1)
        await _insert(conn, app.schema, "crash window")
        return f"deposited {len(runs)}"

    async def wf(ctx: dbos.WorkflowContext) -> str:
        return await aio.run_as_transaction(ctx, ds, deposit, name="deposit")

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    with testing.crash_at(ctx, "deposit", when="after") as point:
        handle = dbos.run_workflow(ctx, wf, workflow_id="window")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result()
    assert point.fired
    # Committed, but not checkpointed: the completion row is the only record.
    assert app.ledger() == ["crash window"]
    assert app.completions() == [("window", 0, '"deposited 1"', None, "portable_json")]
    assert _steps(backend, "window") == []

    ctx = testing.restart(ctx)  # recovers "window": the row answers, `fn` does not run
    try:
        assert dbos.retrieve_workflow[str](ctx, "window").get_result() == "deposited 1"
    finally:
        ctx.shutdown()
    assert runs == [1]
    assert app.ledger() == ["crash window"]
    assert _steps(backend, "window") == [(0, "deposit", '"deposited 1"', None)]


def test_a_crash_before_the_transaction_leaves_nothing(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []

    async def deposit(conn: psycopg.AsyncConnection[Any]) -> int:
        runs.append(1)
        return await _insert(conn, app.schema, "after restart")

    async def wf(ctx: dbos.WorkflowContext) -> int:
        return await aio.run_as_transaction(ctx, ds, deposit, name="deposit")

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    with testing.crash_at(ctx, "deposit", when="before"):
        with pytest.raises(testing.SimulatedCrash):
            dbos.run_workflow(ctx, wf, workflow_id="early").get_result()
    assert app.ledger() == [] and app.completions() == []
    ctx = testing.restart(ctx)
    try:
        assert dbos.retrieve_workflow[int](ctx, "early").get_result() == 1
    finally:
        ctx.shutdown()
    assert runs == [1]
    assert app.ledger() == ["after restart"]


def test_a_failure_rolls_back_and_its_error_is_recorded_and_replayed(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    gate = Gate()
    runs: list[int] = []

    async def overdraw(conn: psycopg.AsyncConnection[Any]) -> int:
        runs.append(1)
        await _insert(conn, app.schema, "never committed")
        raise Fatal("insufficient funds")

    async def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            await aio.run_as_transaction(ctx, ds, overdraw, name="overdraw")
        except dbos.StepFailedError as exc:
            outcome = f"{exc.step_name}:{exc.error_name}:{exc.error_message}"
        await aio.run_as_step(ctx, gate, name="gate")
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
    assert runs == [1]  # the replay raised the recorded error without running `fn`


def test_replay_returns_the_recorded_value_without_running_again(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    gate = Gate()
    runs: list[int] = []

    async def deposit(conn: psycopg.AsyncConnection[Any]) -> Balance:
        runs.append(1)
        await _insert(conn, app.schema, "once")
        return Balance(name="alice", cents=len(runs))

    async def wf(ctx: dbos.WorkflowContext) -> int:
        balance = await aio.run_as_transaction(ctx, ds, deposit, name="deposit")
        assert isinstance(balance, Balance)  # rebuilt from the record on replay
        await aio.run_as_step(ctx, gate, name="gate")
        return balance.cents

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    dbos.run_workflow(ctx, wf, workflow_id="replay")
    gate.wait_entered()
    dbos.cancel_workflow(ctx, "replay")
    gate.open()
    assert dbos.resume_workflow(ctx, "replay").get_result() == 1
    assert runs == [1]
    assert app.ledger() == ["once"]


def test_retries_and_serialization_failures_as_in_the_blocking_form(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []
    attempts: list[int] = []
    accounts = sql.SQL("{}.accounts").format(sql.Identifier(app.schema))

    async def withdraw(conn: psycopg.AsyncConnection[Any]) -> int:
        runs.append(1)
        cur = await conn.execute(
            sql.SQL("SELECT balance FROM {} WHERE name = 'alice'").format(accounts)
        )
        row = await cur.fetchone()
        assert row is not None
        if len(runs) == 1:  # another transaction updates the row this one read
            app.query("UPDATE {s}.accounts SET balance = 50 WHERE name = 'alice'")
        await conn.execute(
            sql.SQL("UPDATE {} SET balance = %s WHERE name = 'alice'").format(accounts),
            (row[0] - 10,),
        )
        return int(row[0]) - 10

    async def flaky(conn: psycopg.AsyncConnection[Any]) -> int:
        attempts.append(1)
        await _insert(conn, app.schema, f"attempt {len(attempts)}")
        if len(attempts) < 3:
            raise Fatal("not yet")
        return len(attempts)

    async def wf(ctx: dbos.WorkflowContext) -> list[int]:
        # No retries allowed: a serialization failure is not an attempt.
        left = await aio.run_as_transaction(
            ctx, ds, withdraw, isolation="repeatable_read", name="withdraw"
        )
        tries = await aio.run_as_transaction(
            ctx, ds, flaky, name="flaky", max_retries=2, base_interval=FAST
        )
        return [left, tries]

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="serial").get_result() == [40, 3]
    assert runs == [1, 1]
    assert app.query("SELECT balance FROM {s}.accounts") == [(40,)]
    assert app.ledger() == ["attempt 3"]  # failed attempts' writes were rolled back
    assert [(s, n, o) for s, n, o, _ in _steps(backend, "serial")] == [
        (0, "withdraw", "40"),
        (1, "flaky", "3"),
    ]


def test_a_lost_connection_runs_the_transaction_again(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)
    runs: list[int] = []

    async def deposit(conn: psycopg.AsyncConnection[Any]) -> int:
        runs.append(1)
        row_id = await _insert(conn, app.schema, f"run {len(runs)}")
        if len(runs) == 1:
            pid = conn.info.backend_pid
            assert app.query("SELECT pg_terminate_backend(%s)", pid) == [(True,)]
            await conn.execute("SELECT 1")  # the server has gone away
        return row_id

    async def wf(ctx: dbos.WorkflowContext) -> int:
        return await aio.run_as_transaction(ctx, ds, deposit)

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf).get_result() == 2
    assert runs == [1, 1]
    assert app.ledger() == ["run 2"]


def test_gathered_transactions_take_step_ids_in_call_order(
    backend: Backend, app: AppDatabase
) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)

    async def wf(ctx: dbos.WorkflowContext) -> list[int]:
        first_may_finish = asyncio.Event()

        async def first(conn: psycopg.AsyncConnection[Any]) -> int:
            await first_may_finish.wait()  # the second one commits first
            return await _insert(conn, app.schema, "first")

        async def second(conn: psycopg.AsyncConnection[Any]) -> int:
            row = await _insert(conn, app.schema, "second")
            first_may_finish.set()
            return row

        a, b = await asyncio.gather(
            aio.run_as_transaction(ctx, ds, first, name="first"),
            aio.run_as_transaction(ctx, ds, second, name="second"),
        )
        return [a, b]

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="gather").get_result() == [2, 1]
    assert [(s, n) for s, n, _, _ in _steps(backend, "gather")] == [(0, "first"), (1, "second")]
    assert [(w, s) for w, s, *_ in app.completions()] == [("gather", 0), ("gather", 1)]


def test_refusals_are_raised_when_awaited(backend: Backend, app: AppDatabase) -> None:
    ctx = backend.new_context()
    ds = dbos.new_data_source(ctx, app.url, schema=app.schema)

    def blocking(conn: Any) -> int:
        return 1

    async def body(conn: psycopg.AsyncConnection[Any]) -> int:
        return 1

    async def wf(ctx: dbos.WorkflowContext) -> list[str]:
        refusals: list[str] = []
        pending = [
            aio.run_as_transaction(ctx, ds, blocking),  # type: ignore[arg-type]
            aio.run_as_transaction(ctx, "ds", body),  # type: ignore[call-overload]
            aio.run_as_transaction(ctx, ds, body, isolation="snapshot"),  # type: ignore[call-overload]
            aio.run_as_transaction(ctx, ds, body, max_retries=-1),
        ]
        for call in pending:
            try:
                await call
            except dbos.InvalidOptionError as exc:
                refusals.append(exc.argument)

        async def in_step() -> str:
            try:
                await aio.run_as_transaction(ctx, ds, body)
            except dbos.InvalidOptionError as exc:
                return exc.argument
            return "accepted"

        refusals.append(await aio.run_as_step(ctx, in_step, name="in-step"))
        return refusals

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    assert dbos.run_workflow(ctx, wf, workflow_id="refused").get_result() == [
        "fn",
        "ds",
        "isolation",
        "max_retries",
        "ctx",
    ]
    assert app.ledger() == [] and app.completions() == []


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

    async def deposit(conn: psycopg.AsyncConnection[Any]) -> int:
        runs.append(1)
        cur = await conn.execute("SELECT (txid_current() % 4294967296)::text")
        row = await cur.fetchone()
        assert row is not None
        transaction_ids.append(row[0])
        return await _insert(conn, tables.schema, "shared")

    async def overdraw(conn: psycopg.AsyncConnection[Any]) -> int:
        await _insert(conn, tables.schema, "never committed")
        raise Fatal("no")

    async def wf(ctx: dbos.WorkflowContext) -> int:
        row_id = await aio.run_as_transaction(ctx, ds, deposit, name="deposit")
        with pytest.raises(dbos.StepFailedError):
            await aio.run_as_transaction(ctx, ds, overdraw, name="overdraw")
        await aio.run_as_step(ctx, gate, name="gate")
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
    [(_, _, _, error)] = [s for s in _steps(backend, "one-tx") if s[1] == "overdraw"]
    assert "Fatal" in error

    dbos.cancel_workflow(ctx, "one-tx")
    gate.open()
    assert dbos.resume_workflow(ctx, "one-tx").get_result() == 1
    assert runs == [1]


@pytest.mark.postgres_only
@on_postgres
def test_on_the_system_database_a_crash_after_the_body_rolls_everything_back(
    backend: Backend,
) -> None:
    ctx = backend.new_context()
    tables = _with_tables(backend.url, backend.schema)
    ds = dbos.new_data_source(ctx, backend.url, schema=backend.schema)
    runs: list[int] = []

    async def deposit(conn: psycopg.AsyncConnection[Any]) -> int:
        runs.append(1)
        return await _insert(conn, tables.schema, f"run {len(runs)}")

    async def wf(ctx: dbos.WorkflowContext) -> int:
        return await aio.run_as_transaction(ctx, ds, deposit, name="deposit")

    dbos.register_workflow(ctx, wf)
    ctx.launch()
    with testing.crash_at(ctx, "deposit", when="after"):
        with pytest.raises(testing.SimulatedCrash):
            dbos.run_workflow(ctx, wf, workflow_id="shared-crash").get_result()
    assert tables.ledger() == [] and _steps(backend, "shared-crash") == []
    ctx = testing.restart(ctx)
    try:
        assert dbos.retrieve_workflow[int](ctx, "shared-crash").get_result() == 2
    finally:
        ctx.shutdown()
    assert runs == [1, 1]
    assert tables.ledger() == ["run 2"]
