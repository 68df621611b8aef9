"""Statements sent straight through libpq return what a cursor returns, and fail the same way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.errors
import pytest

from dbos_typed._sysdb._pg_direct import Direct, positional


def test_named_parameters_become_positional_once_each() -> None:
    statement = positional(b"SELECT %(a)s, %(b)s, %(a)s WHERE x LIKE 'p%%'")
    assert statement is not None
    assert statement.text == b"SELECT $1, $2, $1 WHERE x LIKE 'p%'"
    assert statement.names == ("a", "b")


def test_a_statement_with_other_placeholders_is_left_to_the_cursor() -> None:
    assert positional(b"SELECT %s") is None
    assert positional(b"SELECT 5 % 2") is None


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


VALUES: list[Any] = [
    None,
    "",
    "naïve ✓ 'quoted' \\ back",
    True,
    False,
    0,
    -(2**15),
    2**15 - 1,
    2**15,
    2**31 - 1,
    2**31,
    -(2**63),
    2**63 - 1,
]


@pytest.mark.postgres_only
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_each_value_comes_back_as_a_cursor_would_return_it(
    conn: psycopg.Connection[Any], value: Any
) -> None:
    query = b"SELECT %(v)s, pg_typeof(%(v)s)::text, '{\"k\": [1, 2]}'::jsonb, 7::bigint"
    statement = positional(query)
    assert statement is not None
    direct = Direct(conn)
    try:
        expected = conn.execute(query, {"v": value}).fetchall()
    except psycopg.Error as exc:
        # A type the server cannot infer (text and NULL are sent untyped, as the driver
        # sends them) fails the same way on both paths.
        with pytest.raises(type(exc)):
            direct.run(statement, {"v": value})
        query = query.replace(b"pg_typeof(%(v)s)", b"pg_typeof(%(v)s::text)")
        statement = positional(query)
        assert statement is not None
        expected = conn.execute(query, {"v": value}).fetchall()
    assert direct.run(statement, {"v": value}) == expected
    assert direct.run(statement, {"v": value}) == expected  # prepared the second time


@pytest.mark.postgres_only
def test_values_of_other_kinds_are_refused_for_the_cursor(conn: psycopg.Connection[Any]) -> None:
    statement = positional(b"SELECT %(v)s")
    assert statement is not None
    for value in (1.5, [1, 2], {"a": 1}, b"raw", 2**63):
        assert Direct(conn).run(statement, {"v": value}) is None


@pytest.mark.postgres_only
def test_a_failed_statement_raises_the_drivers_own_error(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TEMP TABLE once (k text PRIMARY KEY)")
    statement = positional(b"INSERT INTO once VALUES (%(k)s) RETURNING k")
    assert statement is not None
    direct = Direct(conn)
    assert direct.run(statement, {"k": "a"}) == [("a",)]
    with pytest.raises(psycopg.errors.UniqueViolation) as raised:
        direct.run(statement, {"k": "a"})
    assert raised.value.diag.constraint_name == "once_pkey"
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert direct.run(statement, {"k": "b"}) == [("b",)]  # the connection is still good
