"""Configuration is validated before anything connects, with errors naming the argument."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import dbos_typed as dbos


def test_default_database_is_a_sqlite_file_named_after_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = dbos.new_context(dbos.Config(app_name="my app"))
    try:
        assert (tmp_path / "my_app.sqlite").exists()
    finally:
        ctx.shutdown()


def test_unreachable_postgres_is_an_initialization_error() -> None:
    # An unreachable server is retried for connect_timeout before the error: keep it short.
    config = dbos.Config(
        app_name="x",
        database_url="postgresql://postgres@127.0.0.1:1/none?connect_timeout=1",
        connect_timeout=timedelta(seconds=1),
    )
    with pytest.raises(dbos.InitializationError, match="cannot connect"):
        dbos.new_context(config)


def test_missing_sqlite_directory_is_an_initialization_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}"
    with pytest.raises(dbos.InitializationError, match="does not exist"):
        dbos.new_context(dbos.Config(app_name="x", database_url=url))
