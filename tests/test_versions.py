"""Application versions: what launch records, which one is the latest, and the CLI."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

import dbos_typed as dbos
from dbos_typed.cli import main
from tests.conftest import Backend


def _launched(backend: Backend, version: str, app_name: str = "test-app") -> dbos.DBOSContext:
    ctx = backend.new_context(app_name, application_version=version)
    ctx.launch()
    return ctx


def _names(versions: list[dbos.VersionInfo]) -> list[str]:
    return [v.name for v in versions]


def _unclaimed(backend: Backend, name: str, timestamp_ms: int) -> None:
    backend.query(
        "INSERT INTO {s}.application_versions "
        "(version_id, version_name, version_timestamp, created_at, application_name) "
        "VALUES (%s, %s, %s, %s, NULL)",
        f"id-{name}",
        name,
        timestamp_ms,
        timestamp_ms,
    )


def test_launch_records_versions_and_set_latest_reorders_them(backend: Backend) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    first = _launched(backend, "v1")
    _launched(backend, "v2")
    _launched(backend, "v1")  # a restart of v1 keeps its row and its timestamp
    versions = dbos.list_application_versions(first)
    assert sorted(_names(versions)) == ["v1", "v2"]
    for version in versions:
        assert version.application_name == "test-app" and version.id
        assert version.timestamp.tzinfo is not None and version.timestamp >= before
        assert version.created_at.tzinfo is not None and version.created_at >= before

    dbos.set_latest_application_version(first, "v1")
    versions = dbos.list_application_versions(first)
    assert _names(versions) == ["v1", "v2"]
    assert versions[0].timestamp > versions[1].timestamp
    assert dbos.get_latest_application_version(first) == versions[0]

    dbos.set_latest_application_version(first, "v2")
    assert dbos.get_latest_application_version(first).name == "v2"
    assert _names(dbos.list_application_versions(first)) == ["v2", "v1"]


def test_set_latest_goes_past_a_latest_timestamp_in_the_future(backend: Backend) -> None:
    ctx = _launched(backend, "v1")
    ahead = int(time.time() * 1000) + 3_600_000  # another process whose clock runs ahead
    _unclaimed(backend, "ahead", ahead)
    assert dbos.get_latest_application_version(ctx).name == "ahead"
    dbos.set_latest_application_version(ctx, "v1")
    latest = dbos.get_latest_application_version(ctx)
    assert latest.name == "v1"
    assert latest.timestamp == datetime.fromtimestamp((ahead + 1) / 1000, tz=UTC)


def test_versions_are_scoped_to_the_application(backend: Backend) -> None:
    mine = _launched(backend, "mine-1")
    _launched(backend, "theirs-1", app_name="other-app")
    _unclaimed(backend, "shared", 1)
    assert sorted(_names(dbos.list_application_versions(mine))) == ["mine-1", "shared"]
    everyone = dbos.list_application_versions(mine, all_applications=True)
    assert sorted(_names(everyone)) == ["mine-1", "shared", "theirs-1"]
    assert {v.name: v.application_name for v in everyone}["shared"] is None

    with pytest.raises(dbos.ApplicationVersionNotFoundError) as refused:
        dbos.set_latest_application_version(mine, "theirs-1")
    assert refused.value.version_name == "theirs-1"
    dbos.set_latest_application_version(mine, "shared")  # unclaimed rows are everyone's
    assert dbos.get_latest_application_version(mine).name == "shared"
    with dbos.new_client(backend.config("other-app")) as client:
        assert sorted(_names(dbos.list_application_versions(client))) == ["shared", "theirs-1"]


def test_no_versions_and_bad_names(backend: Backend) -> None:
    ctx = backend.new_context()  # not launched: nothing recorded yet
    assert dbos.list_application_versions(ctx) == []
    with pytest.raises(dbos.ApplicationVersionNotFoundError) as none:
        dbos.get_latest_application_version(ctx)
    assert none.value.version_name is None
    with pytest.raises(dbos.ApplicationVersionNotFoundError):
        dbos.set_latest_application_version(ctx, "never-launched")
    with pytest.raises(dbos.InvalidOptionError):
        dbos.set_latest_application_version(ctx, "")
    with pytest.raises(dbos.InvalidOptionError):
        dbos.list_application_versions(ctx, all_applications="yes")  # type: ignore[arg-type]


def _cli(backend: Backend, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--db-url", backend.url, "--schema", backend.schema, *argv], out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_lists_versions_and_sets_the_latest(backend: Backend) -> None:
    ctx = _launched(backend, "v1")
    _launched(backend, "v2")
    _launched(backend, "o1", app_name="other-app")
    dbos.set_latest_application_version(ctx, "v2")

    code, out, err = _cli(backend, "versions", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "LATEST_SINCE", "CREATED", "APPLICATION"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["o1", "v1", "v2"]

    assert _cli(backend, "versions", "set-latest", "v1") == (0, "latest v1\n", "")
    code, out, _ = _cli(backend, "--json", "versions", "list", "--app", "test-app")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["v1", "v2"]
    assert rows[0]["application_name"] == "test-app"
    assert dbos.get_latest_application_version(ctx).name == "v1"

    assert _cli(backend, "versions", "set-latest", "o1", "--app", "other-app")[0] == 0
    code, out, err = _cli(backend, "versions", "set-latest", "o1", "--app", "test-app")
    assert code == 1 and out == "" and "'o1'" in err and err.count("\n") == 1
    code, _, err = _cli(backend, "versions", "set-latest", "nowhere")
    assert code == 1 and "'nowhere'" in err
