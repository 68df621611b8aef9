"""Creating a Postgres database on first start, for the system and application databases.

A failed connection does not say why in a form code can rely on: psycopg reports every
failed attempt (one per host or address) as a plain `OperationalError` without a SQLSTATE,
whatever the server answered. So a failure is explained by asking the server itself:
through its maintenance database, whether the named database exists. Only when it does not
is it created; every other failure is reported as it came.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dbos_typed.errors import InitializationError

# Where a server can be asked about its databases: every Postgres has both.
_MAINTENANCE_DATABASES = ("postgres", "template1")


def ensure_database(
    conninfo: str, params: dict[str, Any], *, what: str, create: bool = True
) -> None:
    """Check that the database `params` name can be reached, creating it if it is missing.

    Args:
        conninfo: the connection string, as built from `params`.
        params: its parsed parameters (`dbname` names the database to create).
        what: the database's role in messages, such as "the Postgres system database".
        create: create a missing database; without it, a missing one is an error that
            says so.

    Raises:
        InitializationError: the server cannot be reached, the database exists but refuses
            the connection, or it is missing and cannot (or may not) be created.
    """
    try:
        psycopg.connect(conninfo, autocommit=True).close()
        return
    except psycopg.OperationalError as exc:
        failure = exc
    name = params.get("dbname")
    if not name or name in _MAINTENANCE_DATABASES:
        raise InitializationError(f"cannot connect to {what}: {failure}") from failure
    admin = _maintenance_connection(conninfo)
    if admin is None:
        raise InitializationError(f"cannot connect to {what}: {failure}") from failure
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is not None:
            raise InitializationError(f"cannot connect to {what}: {failure}") from failure
        if not create:
            raise InitializationError(f"{what} {name!r} does not exist") from failure
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            pass  # another process created it at the same moment
        except psycopg.Error as exc:
            raise InitializationError(
                f"{what} {name!r} does not exist and cannot be created: {exc}"
            ) from exc


def _maintenance_connection(conninfo: str) -> psycopg.Connection[Any] | None:
    for database in _MAINTENANCE_DATABASES:
        try:
            return psycopg.connect(make_conninfo(conninfo, dbname=database), autocommit=True)
        except psycopg.OperationalError:
            continue
    return None
