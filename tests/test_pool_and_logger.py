"""Config.system_database_pool (a caller's Postgres pool) and Config.logger."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

import dbos_typed as dbos
from tests.conftest import Backend

WAIT = timedelta(seconds=10)


def double(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n * 2, name="double")


class Halt(BaseException):
    """Stops a run without an outcome, which the library logs as an error."""


def halts(ctx: dbos.WorkflowContext) -> None:
    raise Halt("stopped on purpose")


@pytest.fixture
def pool(postgres_url: str) -> Iterator[ConnectionPool[psycopg.Connection[tuple[object, ...]]]]:
    with ConnectionPool(
        postgres_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=True
    ) as opened:
        yield opened


def test_a_caller_pool_is_used_and_survives_shutdown(
    backend: Backend, pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]]
) -> None:
    if backend.name == "sqlite":
        # A pool is for Postgres: with a SQLite URL it is refused before anything opens.
        with pytest.raises(dbos.InvalidOptionError, match="SQLite") as caught:
            backend.config(system_database_pool=pool)
        assert caught.value.argument == "system_database_pool"
        return
    before = pool.get_stats().get("requests_num", 0)
    config = dbos.Config(
        app_name="pooled",
        database_schema=backend.schema,
        application_version="v1",
        system_database_pool=pool,
    )
    ctx = dbos.new_context(config)
    dbos.register_workflow(ctx, double)
    ctx.launch()
    try:
        assert dbos.run_workflow(ctx, double, 21).get_result(timeout=WAIT) == 42
        with dbos.new_client(config) as client:
            assert dbos.retrieve_workflow[int](client, dbos.list_workflows(client)[0].workflow_id)
    finally:
        ctx.shutdown()
    assert pool.get_stats().get("requests_num", 0) > before
    # Not ours to close: the context and the client left it open and working.
    assert not pool.closed
    with pool.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # The rows are in the backend's schema, written through the pool.
    assert backend.query("SELECT status FROM {s}.workflow_status") == [("SUCCESS",)]


def test_unusable_pools_are_refused(backend: Backend, postgres_url: str) -> None:
    with pytest.raises(dbos.InvalidOptionError, match="ConnectionPool"):
        backend.config(system_database_pool="postgresql://somewhere")
    if backend.name == "sqlite":
        unopened: ConnectionPool[psycopg.Connection[tuple[object, ...]]] = ConnectionPool(
            postgres_url, open=False
        )
        with pytest.raises(dbos.InvalidOptionError, match="SQLite"):
            dbos.Config(app_name="a", database_url=backend.url, system_database_pool=unopened)
        return
    cases = [
        ({}, "autocommit"),
        ({"autocommit": True, "row_factory": dict_row}, "tuple rows"),
    ]
    for kwargs, message in cases:
        with ConnectionPool(postgres_url, min_size=1, kwargs=kwargs, open=True) as bad:
            config = dbos.Config(
                app_name="a", database_schema=backend.schema, system_database_pool=bad
            )
            with pytest.raises(dbos.InvalidOptionError, match=message):
                dbos.new_context(config)
    closed: ConnectionPool[psycopg.Connection[tuple[object, ...]]] = ConnectionPool(
        postgres_url, kwargs={"autocommit": True}, open=False
    )
    config = dbos.Config(app_name="a", database_schema=backend.schema, system_database_pool=closed)
    with pytest.raises(dbos.InvalidOptionError, match="closed"):
        dbos.new_context(config)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_given_logger_receives_what_the_context_logs(backend: Backend) -> None:
    mine = logging.getLogger(f"tests.mine.{uuid.uuid4().hex}")
    mine.setLevel(logging.INFO)
    mine.propagate = False
    ours, theirs = _Records(), _Records()
    mine.addHandler(ours)
    library = logging.getLogger("dbos_typed")
    library.addHandler(theirs)
    try:
        with pytest.raises(dbos.InvalidOptionError, match="logger"):
            backend.config(logger="dbos")
        ctx = backend.new_context(logger=mine)
        dbos.register_workflow(ctx, halts)
        ctx.launch()
        with pytest.raises(dbos.WorkflowInterruptedError):
            dbos.run_workflow(ctx, halts, workflow_id="halting").get_result(timeout=WAIT)
        ctx.shutdown()
    finally:
        library.removeHandler(theirs)
    errors = [r for r in ours.records if r.levelno == logging.ERROR]
    assert [getattr(r, "workflow_id", None) for r in errors] == ["halting"]
    assert "stopped on purpose" in errors[0].getMessage()
    assert any("launched" in r.getMessage() for r in ours.records)
    # Nothing of this context went to the library's own logger.
    assert [r for r in theirs.records if getattr(r, "workflow_id", None) == "halting"] == []
    assert not any("launched" in r.getMessage() for r in theirs.records)
