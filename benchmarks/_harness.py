"""What every benchmark shares: fresh databases, one process per library, the CLI base.

Each library runs in a child process of its own (`--child dbos_typed|dbos`) on a database
made for that run and dropped afterwards; the child prints its figures as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
IMPLEMENTATIONS = ("dbos_typed", "dbos")


def fresh_database(url: str) -> str:
    """Create an empty database on the server of `url`; returns its conninfo."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(url, dbname=name)


def drop_database(url: str, target: str) -> None:
    """Drop a database made by `fresh_database`."""
    name = psycopg.conninfo.conninfo_to_dict(target)["dbname"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


def as_url(conninfo: str) -> str:
    """A conninfo string as a postgresql:// URL (both libraries take URLs)."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = params.get("user", "postgres")
    host = params.get("host", "127.0.0.1")
    port = params.get("port", "5432")
    password = params.get("password")
    auth = f"{user}:{password}" if password else f"{user}"
    if str(host).startswith("/"):
        return f"postgresql://{auth}@/{params['dbname']}?host={host}&port={port}"
    return f"postgresql://{auth}@{host}:{port}/{params['dbname']}"


def base_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: the server, and the child-process switch."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", default=os.environ.get("DBOS_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--child", choices=IMPLEMENTATIONS)
    return parser


def run_child(module: str, impl: str, admin_url: str, *options: str) -> Any:
    """Run `python -m module --child impl` on a fresh database; returns its JSON figures."""
    target = fresh_database(admin_url)
    try:
        out = subprocess.run(
            [sys.executable, "-m", module, "--child", impl, "--url", as_url(target), *options],
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        ).stdout
    finally:
        drop_database(admin_url, target)
    return json.loads(out.strip().splitlines()[-1])


def official_steps_workflow() -> Any:
    """The official package's workflow of `steps` no-op steps, declared on its `DBOS`.

    Call it after `DBOS(config=...)` and before `DBOS.launch()`, in the child process
    that measures the official package (its decorators need the instance).
    """
    from dbos import DBOS  # the official package, only in its own child process

    @DBOS.step()
    def noop() -> None:
        return None

    @DBOS.workflow()
    def wf(steps: int) -> int:
        for _ in range(steps):
            noop()
        return steps

    return wf


@contextmanager
def group_commit_off() -> Iterator[None]:
    """Contexts made inside write every checkpoint as its own commit, as the floor does.

    Every write then leads a batch of its own, so no caller waits to join one.
    """
    from dbos_typed._sysdb import _postgres

    leaders = _postgres._LEADERS
    _postgres._LEADERS = 1_000_000
    try:
        yield
    finally:
        _postgres._LEADERS = leaders
