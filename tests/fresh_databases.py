"""Whole system databases of their own, for tests that need a second one or the default schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


@contextmanager
def fresh_database(kind: str, postgres_url: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database of `kind` ("sqlite" or "postgres"), dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'fresh-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    with fresh_postgres_database(postgres_url) as url:
        yield url


@contextmanager
def fresh_postgres_database(postgres_url: str, prefix: str = "fresh") -> Iterator[str]:
    """The URL of a new, empty database on `postgres_url`'s server, dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        # The path names the database; a socket directory may follow in the query.
        yield urlunsplit(urlsplit(postgres_url)._replace(path="/" + name))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
