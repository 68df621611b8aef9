"""Reaching a Postgres database on first start, creating it if it is missing.

Used for the system and application databases.

A failed connection does not say why in a form code can rely on: psycopg reports every
failed attempt (one per host or address) as a plain `OperationalError` without a SQLSTATE,
whatever the server answered. So a failure is explained by asking the server itself:
through its maintenance database, whether the named database exists. Only when it does not
is it created. A server that answers on neither is waited for, with backoff, for as long as
the configured connect timeout allows (it may be starting); every other failure is reported
as it came.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dbos_typed.errors import InitializationError

logger = logging.getLogger("dbos_typed")

# Where a server can be asked about its databases: every Postgres has both.
_MAINTENANCE_DATABASES = ("postgres", "template1")

# Waiting for a server that does not answer: 100 ms, doubling, at most 2 s between attempts
# (a start is short, and a server that comes up should be noticed soon).
_FIRST_RETRY = 0.1
_LONGEST_RETRY = 2.0


def libpq_connect_timeout(seconds: float) -> str:
    """The `connect_timeout` libpq is given for `seconds`: rounded up, at least 1.

    libpq reads whole seconds, and truncating 0.5 would give 0, which waits forever.
    """
    return str(max(1, math.ceil(seconds)))


def ensure_database(
    conninfo: str,
    params: dict[str, Any],
    *,
    what: str,
    create: bool = True,
    wait: float = 0.0,
) -> None:
    """Check that the database `params` name can be reached, creating it if it is missing.

    Args:
        conninfo: the connection string, as built from `params`.
        params: its parsed parameters (`dbname` names the database to create).
        what: the database's role in messages, such as "the Postgres system database".
        create: create a missing database; without it, a missing one is an error that
            says so.
        wait: how many seconds to keep retrying a server that cannot be reached at all.
            A server refusing the login on every database looks the same from here, so
            that too is reported only once `wait` has passed.

    Raises:
        InitializationError: the server cannot be reached within `wait`, the database
            exists but refuses the connection, or it is missing and cannot (or may not)
            be created.
    """
    give_up = time.monotonic() + wait
    delay = _FIRST_RETRY
    attempt = 1
    while True:
        failure = _connection_failure(conninfo)
        if failure is None:
            return
        admin = _server_connection(conninfo, params)
        if admin is not None:
            _explain_or_create(admin, params, what, create, failure)
            return
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
            raise InitializationError(
                f"cannot connect to {what} ({tries} in {wait:g}s): {failure}"
            ) from failure
        logger.log(
            logging.WARNING if attempt == 1 else logging.DEBUG,
            "%s cannot be reached; retrying for up to %.1fs more: %s",
            what,
            remaining,
            failure,
        )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, _LONGEST_RETRY)
        attempt += 1


def _connection_failure(conninfo: str) -> psycopg.OperationalError | None:
    try:
        psycopg.connect(conninfo, autocommit=True).close()
    except psycopg.OperationalError as exc:
        return exc
    return None


def _server_connection(conninfo: str, params: dict[str, Any]) -> psycopg.Connection[Any] | None:
    """A connection to the server through a maintenance database; None if it answers none.

    When the named database is itself a maintenance one, its failure already says the
    server cannot be reached.
    """
    name = params.get("dbname")
    if not name or name in _MAINTENANCE_DATABASES:
        return None
    return _maintenance_connection(conninfo)


def _explain_or_create(
    admin: psycopg.Connection[Any],
    params: dict[str, Any],
    what: str,
    create: bool,
    failure: psycopg.OperationalError,
) -> None:
    """Create the database the reachable server lacks, or report why it refused it."""
    name = params["dbname"]
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
