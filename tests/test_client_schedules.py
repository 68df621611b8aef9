"""Schedules managed from a `Client`: the application that registers the workflow runs them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from tests.conftest import Backend, wait_for
from tests.fresh_databases import fresh_database


class Shift(BaseModel):
    team: str


SEEN: dict[str, dbos.ScheduledInput[Shift | None]] = {}
_LOCK = threading.Lock()


def rota(ctx: dbos.WorkflowContext, run: dbos.ScheduledInput[Shift | None]) -> str:
    with _LOCK:
        SEEN[dbos.get_workflow_id(ctx)] = run
    return "idle" if run.context is None else run.context.team


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    with _LOCK:
        SEEN.clear()
    yield


def _app(backend: Backend) -> dbos.DBOSContext:
    ctx = backend.new_context(
        "rotas", scheduler_polling_interval=timedelta(milliseconds=100), executor_id="app"
    )
    dbos.register_workflow(ctx, rota)
    ctx.launch()
    return ctx


def _ran(backend: Backend, schedule_name: str) -> list[str]:
    rows = backend.query(
        "SELECT workflow_uuid FROM {s}.workflow_status "
        "WHERE schedule_name = %s AND status = 'SUCCESS' ORDER BY workflow_uuid",
        schedule_name,
    )
    return [str(r[0]) for r in rows]


def test_a_schedule_created_from_a_client_is_run_by_the_application(backend: Backend) -> None:
    ctx = _app(backend)
    with dbos.new_client(backend.config("rotas")) as client:
        created = dbos.create_schedule(
            client, "night", "rota", "* * * * * *", context=Shift(team="blue")
        )
        assert (created.application_name, created.context) == ("rotas", {"team": "blue"})
        wait_for(lambda: len(_ran(backend, "night")) >= 1, seconds=15)
        assert SEEN[_ran(backend, "night")[0]].context == Shift(team="blue")
        dbos.pause_schedule(client, "night")
        assert dbos.get_schedule(client, "night").status is dbos.ScheduleStatus.PAUSED
        assert dbos.get_schedule(ctx, "night").status is dbos.ScheduleStatus.PAUSED
        dbos.resume_schedule(client, "night")
        assert dbos.get_schedule(ctx, "night").status is dbos.ScheduleStatus.ACTIVE
        dbos.delete_schedule(client, "night")
        with pytest.raises(dbos.ScheduleNotFoundError):
            dbos.get_schedule(client, "night")
        assert dbos.list_schedules(ctx) == []


def test_client_lists_triggers_and_backfills(backend: Backend) -> None:
    ctx = _app(backend)
    dbos.create_schedule(ctx, "yearly", rota, "0 0 0 1 1 *", context={"team": "red"})
    with dbos.new_client(backend.config("rotas")) as client:
        dbos.create_schedule(client, "weekly", "rota", "@weekly")
        assert [s.schedule_name for s in dbos.list_schedules(client)] == ["weekly", "yearly"]
        assert [s.schedule_name for s in dbos.list_schedules(client, name_prefix="y")] == ["yearly"]
        # The client has no registry: the handle's result is plain JSON data.
        handle = dbos.trigger_schedule(client, "yearly")
        assert handle.get_result(timeout=timedelta(seconds=10)) == "red"
        start, end = datetime(2020, 6, 1, tzinfo=UTC), datetime(2022, 6, 1, tzinfo=UTC)
        ids = dbos.backfill_schedule(client, "yearly", start, end)
        assert ids == [
            "sched-yearly-2021-01-01T00:00:00+00:00",
            "sched-yearly-2022-01-01T00:00:00+00:00",
        ]
        assert dbos.backfill_schedule(client, "yearly", start, end) == ids
        for workflow_id in ids:
            assert (
                dbos.retrieve_workflow(client, workflow_id).get_result(
                    timeout=timedelta(seconds=10)
                )
                == "red"
            )
        dbos.apply_schedules(client, [dbos.ScheduleSpec("weekly", "rota", "@daily")])
        assert dbos.get_schedule(ctx, "weekly").schedule == "@daily"


def test_a_client_refuses_functions_it_cannot_name(backend: Backend) -> None:
    _app(backend)
    with dbos.new_client(backend.config("rotas")) as client:
        with pytest.raises(dbos.InvalidOptionError, match="not a registered workflow"):
            dbos.create_schedule(client, "x", rota, "@daily")
        with pytest.raises(dbos.InvalidOptionError, match="ctx"):
            dbos.create_schedule(object(), "x", "rota", "@daily")  # type: ignore[arg-type]
        assert dbos.list_schedules(client) == []


def test_a_nameless_client_sees_every_application_and_leaves_rows_unclaimed(
    backend: Backend, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A client given a bare URL has no application name; it uses the default schema.
    postgres_url = request.getfixturevalue("postgres_url") if backend.name == "postgres" else ""
    with fresh_database(backend.name, postgres_url, tmp_path) as url:
        ctx = dbos.new_context(
            dbos.Config(app_name="rotas", database_url=url, application_version="v1")
        )
        backend.contexts.append(ctx)
        dbos.register_workflow(ctx, rota)
        ctx.launch()
        other = dbos.new_context(dbos.Config(app_name="other", database_url=url))
        backend.contexts.append(other)
        dbos.create_schedule(other, "theirs", "their_workflow", "@daily")
        with dbos.new_client(url) as client:
            assert client.application_name is None
            dbos.create_schedule(client, "shared", "rota", "@yearly")
            assert dbos.get_schedule(client, "shared").application_name is None
            assert [s.schedule_name for s in dbos.list_schedules(client)] == ["shared", "theirs"]
        # Unclaimed: the application lists it, and its executors run its ticks.
        assert [s.schedule_name for s in dbos.list_schedules(ctx)] == ["shared"]
        handle = dbos.trigger_schedule(ctx, "shared")
        assert handle.get_result(timeout=timedelta(seconds=10)) == "idle"
        for context in (ctx, other):
            context.shutdown()
