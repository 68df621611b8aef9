"""A Postgres database that does not exist yet: created on first start, never by a reader."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

import dbos_typed as dbos
from dbos_typed.cli import main

pytestmark = pytest.mark.postgres_only


def _database_exists(server_url: str, name: str) -> bool:
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


@pytest.fixture
def new_database(postgres_url: str) -> Iterator[tuple[str, str]]:
    """The name and URL of a database that does not exist; dropped after the test."""
    name = f"dbos_typed_new_{uuid.uuid4().hex[:12]}"
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    assert not _database_exists(postgres_url, name)
    yield name, url
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def greet(ctx: dbos.WorkflowContext, name: str) -> str:
    return dbos.run_as_step(ctx, lambda: f"hello {name}", name="greet")


def test_an_application_creates_its_system_database(
    postgres_url: str, new_database: tuple[str, str]
) -> None:
    name, url = new_database
    ctx = dbos.new_context(dbos.Config(app_name="fresh", database_url=url))
    try:
        dbos.register_workflow(ctx, greet)
        ctx.launch()
        assert dbos.run_workflow(ctx, greet, "db").get_result() == "hello db"
    finally:
        ctx.shutdown()
    assert _database_exists(postgres_url, name)


def test_a_client_reports_a_missing_database_and_creates_nothing(
    postgres_url: str, new_database: tuple[str, str]
) -> None:
    name, url = new_database
    with pytest.raises(dbos.InitializationError, match=f"{name}' does not exist"):
        dbos.new_client(url, app_name="fresh")
    assert not _database_exists(postgres_url, name)


def test_the_cli_migrate_creates_the_database_and_readers_do_not(
    postgres_url: str, new_database: tuple[str, str]
) -> None:
    name, url = new_database
    out, err = io.StringIO(), io.StringIO()
    assert main(["--db-url", url, "workflow", "list"], out, err) == 1
    assert "does not exist" in err.getvalue()
    assert not _database_exists(postgres_url, name)

    out, err = io.StringIO(), io.StringIO()
    assert main(["--db-url", url, "migrate"], out, err) == 0, err.getvalue()
    assert _database_exists(postgres_url, name)
    assert main(["--db-url", url, "workflow", "list"], io.StringIO(), io.StringIO()) == 0


def test_a_data_source_creates_its_database(
    postgres_url: str, new_database: tuple[str, str], tmp_path: object
) -> None:
    name, url = new_database
    ctx = dbos.new_context(
        dbos.Config(app_name="fresh", database_url=f"sqlite:///{tmp_path}/system.sqlite")
    )
    try:
        source = dbos.new_data_source(ctx, url)

        def answer(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute("SELECT 41 + 1").fetchone()
            assert row is not None
            return int(row[0])

        def count(ctx: dbos.WorkflowContext, _: None) -> int:
            return dbos.run_as_transaction(ctx, source, answer)

        dbos.register_workflow(ctx, count)
        ctx.launch()
        assert dbos.run_workflow(ctx, count, None).get_result() == 42
    finally:
        ctx.shutdown()
    assert _database_exists(postgres_url, name)


def test_a_database_that_refuses_the_role_is_reported_not_recreated(
    postgres_url: str, new_database: tuple[str, str]
) -> None:
    name, url = new_database
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
    with pytest.raises(dbos.InitializationError, match="cannot connect"):
        dbos.new_context(dbos.Config(app_name="fresh", database_url=url))
