"""pytest fixtures for applications built on dbos_typed, active once it is installed.

The package declares this module as a `pytest11` entry point, so pytest loads it in any
project where `dbos_typed` is installed; no `conftest.py` line is needed.

- `dbos_database_url`: a system database of the test's own: a new SQLite file in the
  test's `tmp_path`, or, when `DBOS_TYPED_TEST_DATABASE_URL` names a Postgres server, a
  new database on it, dropped after the test.
- `dbos_context`: a `DBOSContextFactory` on that database: `dbos_context(checkout)`
  builds a context, registers the workflows and launches it; every context it made (and
  every one its `restart` made) is shut down after the test.

The fixture names start with `dbos_` so they sit beside a project's own fixtures. The
module imports the library only when a fixture is used, to keep pytest's start cheap.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:
    from dbos_typed._core.config import Config
    from dbos_typed._core.context import DBOSContext

#: The variable naming a Postgres server for tests; unset or empty: SQLite.
URL_VARIABLE = "DBOS_TYPED_TEST_DATABASE_URL"


class DBOSContextFactory:
    """Builds contexts on the test's database and shuts them all down after the test.

    Attributes:
        database_url: The test's system database (the `dbos_database_url` fixture).
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._contexts: list[DBOSContext] = []

    def config(self, app_name: str = "test-app", **settings: Any) -> Config:
        """A `Config` on the test's database; `settings` are other `Config` fields."""
        from dbos_typed._core.config import Config

        return Config(app_name=app_name, database_url=self.database_url, **settings)

    def __call__(
        self,
        *workflows: Callable[..., Any],
        app_name: str = "test-app",
        launch: bool = True,
        **settings: Any,
    ) -> DBOSContext:
        """A new context with `workflows` registered, launched unless `launch=False`.

        Args:
            workflows: Workflow functions to register, under their default names.
            app_name: The application's name.
            launch: Whether to launch it (leave it False to declare queues or register
                more workflows first, then call `launch()`).
            settings: Other `Config` fields (`executor_id=...`, `enable_patching=...`).
        """
        from dbos_typed._app.lifecycle import new_context
        from dbos_typed._workflows.start import register_workflow

        ctx = new_context(self.config(app_name, **settings))
        self._contexts.append(ctx)
        for workflow in workflows:
            register_workflow(ctx, workflow)
        if launch:
            ctx.launch()
        return ctx

    def restart(self, ctx: DBOSContext) -> DBOSContext:
        """`dbos_typed.testing.restart(ctx)`, with the new context shut down after the test."""
        from dbos_typed.testing._restart import restart

        again = restart(ctx)
        self._contexts.append(again)
        return again

    def close(self) -> None:
        """Shut down every context this factory made (those already shut down are skipped)."""
        while self._contexts:
            self._contexts.pop().shutdown()


@pytest.fixture
def dbos_database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh system database URL for one test: SQLite, or Postgres when configured."""
    server = os.environ.get(URL_VARIABLE)
    if not server:
        yield f"sqlite:///{tmp_path / 'dbos-system.sqlite'}"
        return
    import psycopg
    from psycopg import sql

    name = f"dbos_test_{uuid.uuid4().hex[:16]}"
    # new_context creates the database on first use; the fixture only has to drop it.
    yield _with_database(server, name)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def dbos_context(dbos_database_url: str) -> Iterator[DBOSContextFactory]:
    """A factory of launched contexts on `dbos_database_url`, all shut down afterwards."""
    factory = DBOSContextFactory(dbos_database_url)
    try:
        yield factory
    finally:
        factory.close()


def _with_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name` (user, host, port and options kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))
