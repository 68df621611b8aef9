"""Cron schedules: exactly-once ticks across processes, management, backfill, time zones."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed._schedules.cron import tick_workflow_id
from tests.conftest import Backend, Gate

EVERY_SECOND = "* * * * * *"

RUNS: dict[str, int] = {}
TIMES: dict[str, datetime] = {}
_LOCK = threading.Lock()


def tick_recorder(ctx: dbos.WorkflowContext, scheduled_time: datetime) -> str:
    workflow_id = dbos.get_workflow_id(ctx)
    with _LOCK:
        RUNS[workflow_id] = RUNS.get(workflow_id, 0) + 1
        TIMES[workflow_id] = scheduled_time
    return scheduled_time.isoformat()


def not_a_clock(ctx: dbos.WorkflowContext, count: int) -> int:
    return count


def no_input(ctx: dbos.WorkflowContext) -> int:
    return 1


@pytest.fixture(autouse=True)
def _fresh_runs() -> Iterator[None]:
    with _LOCK:
        RUNS.clear()
        TIMES.clear()
        CONTEXTS.clear()
    yield


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll a condition until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def tick_of(schedule_name: str, workflow_id: str) -> datetime:
    return datetime.fromisoformat(workflow_id.removeprefix(f"sched-{schedule_name}-"))


def tick_rows(backend: Backend, schedule_name: str) -> list[tuple[object, ...]]:
    """(workflow_uuid, status, application_version, executor_id) of a schedule's workflows."""
    return backend.query(
        "SELECT workflow_uuid, status, application_version, executor_id "
        "FROM {s}.workflow_status WHERE schedule_name = %s ORDER BY workflow_uuid",
        schedule_name,
    )


def succeeded(backend: Backend, schedule_name: str) -> list[str]:
    return [str(r[0]) for r in tick_rows(backend, schedule_name) if r[1] == "SUCCESS"]


def _launched(backend: Backend, **overrides: Any) -> dbos.DBOSContext:
    ctx = backend.new_context(**overrides)
    dbos.register_workflow(ctx, tick_recorder)
    ctx.launch()
    return ctx


# -- firing ---------------------------------------------------------------------------------


def test_two_executors_run_each_tick_exactly_once(backend: Backend) -> None:
    contexts = []
    for executor in ("executor-a", "executor-b"):
        ctx = backend.new_context(executor_id=executor)
        dbos.register_workflow(ctx, tick_recorder, schedule=EVERY_SECOND, name="every_second")
        contexts.append(ctx)
    for ctx in contexts:
        ctx.launch()

    wait_until(lambda: len(succeeded(backend, "every_second")) >= 4, "four ticks to finish")
    # The table holds one schedule, written by both launches.
    assert len(dbos.list_schedules(contexts[0])) == 1
    for ctx in contexts:
        ctx.shutdown()

    rows = tick_rows(backend, "every_second")
    ids = [str(r[0]) for r in rows]
    assert len(ids) == len(set(ids))
    done = succeeded(backend, "every_second")
    ticks = sorted(tick_of("every_second", i) for i in done)
    # Consecutive seconds, each enqueued once, each run exactly once, with its own time.
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(ticks))
    for workflow_id in done:
        assert RUNS[workflow_id] == 1, workflow_id
        assert workflow_id == tick_workflow_id("every_second", TIMES[workflow_id])
        assert workflow_id.endswith("+00:00")
    assert {r[2] for r in rows} == {"test-version"}


def test_time_zone_is_in_the_tick_id_and_input(backend: Backend) -> None:
    ctx = _launched(backend)
    dbos.create_schedule(ctx, "kolkata", tick_recorder, EVERY_SECOND, timezone="Asia/Kolkata")
    wait_until(lambda: len(succeeded(backend, "kolkata")) >= 1, "a tick")
    workflow_id = succeeded(backend, "kolkata")[0]
    assert workflow_id.endswith("+05:30")
    assert TIMES[workflow_id] == tick_of("kolkata", workflow_id)
    assert dbos.get_schedule(ctx, "kolkata").cron_timezone == "Asia/Kolkata"


def test_fires_a_workflow_registered_only_in_another_process(backend: Backend) -> None:
    # The scheduling context does not know the workflow; the worker has it under the name
    # "report", runs a newer version, and never fires the schedule itself.
    scheduler = backend.new_context(executor_id="scheduler", application_version="v-old")
    scheduler.launch()
    worker = backend.new_context(
        executor_id="worker",
        application_version="v-new",
        scheduler_polling_interval=timedelta(hours=1),
    )
    dbos.register_workflow(worker, tick_recorder, name="report")
    worker.launch()

    schedule = dbos.create_schedule(scheduler, "by-name", "report", EVERY_SECOND)
    assert schedule.workflow_name == "report"

    wait_until(lambda: len(succeeded(backend, "by-name")) >= 2, "two ticks run by the worker")
    rows = [r for r in tick_rows(backend, "by-name") if r[1] == "SUCCESS"]
    assert {r[2] for r in rows} == {"v-new"}
    assert {r[3] for r in rows} == {"worker"}


# -- management -----------------------------------------------------------------------------


def test_pause_resume_and_delete_in_this_process(backend: Backend) -> None:
    ctx = _launched(backend)
    created = dbos.create_schedule(ctx, "s", tick_recorder, EVERY_SECOND)
    assert created.status is dbos.ScheduleStatus.ACTIVE
    wait_until(lambda: len(succeeded(backend, "s")) >= 1, "a first tick")
    assert dbos.get_schedule(ctx, "s").last_fired_at is not None

    dbos.pause_schedule(ctx, "s")
    paused_at = datetime.now(UTC)
    paused = dbos.get_schedule(ctx, "s")
    assert paused.status is dbos.ScheduleStatus.PAUSED
    assert paused.last_fired_at is None
    _assert_quiet(backend, "s", after=paused_at)

    dbos.resume_schedule(ctx, "s")
    resumed_at = datetime.now(UTC)
    assert dbos.get_schedule(ctx, "s").status is dbos.ScheduleStatus.ACTIVE
    wait_until(lambda: _latest_tick(backend, "s") > resumed_at, "a tick after resuming")

    dbos.delete_schedule(ctx, "s")
    deleted_at = datetime.now(UTC)
    with pytest.raises(dbos.ScheduleNotFoundError) as info:
        dbos.get_schedule(ctx, "s")
    assert info.value.schedule_name == "s"
    _assert_quiet(backend, "s", after=deleted_at)
    dbos.delete_schedule(ctx, "s")  # deleting a missing schedule is not an error
    for call in (dbos.pause_schedule, dbos.resume_schedule):
        with pytest.raises(dbos.ScheduleNotFoundError):
            call(ctx, "s")


def test_changes_made_by_another_context_reach_the_scheduler(backend: Backend) -> None:
    runner = _launched(backend, scheduler_polling_interval=timedelta(milliseconds=200))
    admin = backend.new_context(executor_id="admin")  # never launched: manages rows only

    dbos.create_schedule(admin, "remote", "tick_recorder", EVERY_SECOND)
    wait_until(lambda: len(succeeded(backend, "remote")) >= 1, "the reconciler to start it")

    dbos.pause_schedule(admin, "remote")
    paused_at = datetime.now(UTC)
    _assert_quiet(backend, "remote", after=paused_at)

    dbos.resume_schedule(admin, "remote")
    resumed_at = datetime.now(UTC)
    wait_until(lambda: _latest_tick(backend, "remote") > resumed_at, "a tick after resuming")

    # A new definition restarts the schedule: from now on only even seconds fire.
    dbos.apply_schedules(admin, [dbos.ScheduleSpec("remote", "tick_recorder", "*/2 * * * * *")])
    changed_at = datetime.now(UTC) + timedelta(milliseconds=300)  # one reconciler pass
    wait_until(
        lambda: len([t for t in _ticks(backend, "remote") if t > changed_at]) >= 2,
        "two ticks of the new definition",
    )
    assert all(t.second % 2 == 0 for t in _ticks(backend, "remote") if t > changed_at)

    dbos.delete_schedule(admin, "remote")
    _assert_quiet(backend, "remote", after=datetime.now(UTC))
    assert runner.app_name == admin.app_name


def test_apply_schedules_keeps_identity_status_and_last_fired_at(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, tick_recorder)
    first = dbos.create_schedule(ctx, "keep", tick_recorder, "0 0 * * * *")
    dbos.pause_schedule(ctx, "keep")
    fired = "2026-01-02T03:00:00+00:00"
    backend.query(
        "UPDATE {s}.workflow_schedules SET last_fired_at = %s WHERE schedule_name = %s",
        fired,
        "keep",
    )

    dbos.apply_schedules(
        ctx,
        [
            dbos.ScheduleSpec("keep", tick_recorder, "0 30 * * * *", timezone="Europe/Paris"),
            dbos.ScheduleSpec("new", "tick_recorder", "@daily", automatic_backfill=True),
        ],
    )
    kept = dbos.get_schedule(ctx, "keep")
    assert kept.schedule_id == first.schedule_id
    assert kept.status is dbos.ScheduleStatus.PAUSED
    assert kept.last_fired_at == datetime.fromisoformat(fired)
    assert (kept.schedule, kept.cron_timezone) == ("0 30 * * * *", "Europe/Paris")
    assert dbos.get_schedule(ctx, "new").automatic_backfill

    assert [s.schedule_name for s in dbos.list_schedules(ctx)] == ["keep", "new"]
    active = dbos.list_schedules(ctx, statuses=[dbos.ScheduleStatus.ACTIVE])
    assert [s.schedule_name for s in active] == ["new"]
    assert [s.schedule_name for s in dbos.list_schedules(ctx, name_prefix="ke")] == ["keep"]
    assert dbos.list_schedules(ctx, workflow_names=["other"]) == []
    assert kept.queue_name == "_dbos_internal_queue"


def test_invalid_schedules_are_refused_and_nothing_is_stored(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, tick_recorder)
    dbos.register_workflow(ctx, not_a_clock)

    with pytest.raises(dbos.InvalidOptionError, match="out of range"):
        dbos.create_schedule(ctx, "bad", tick_recorder, "61 * * * *")
    with pytest.raises(dbos.InvalidOptionError, match="fields"):
        dbos.create_schedule(ctx, "bad", tick_recorder, "* * *")
    with pytest.raises(dbos.InvalidOptionError, match="IANA"):
        dbos.create_schedule(ctx, "bad", tick_recorder, EVERY_SECOND, timezone="Mars/Olympus")
    with pytest.raises(dbos.InvalidOptionError, match="never fires"):
        dbos.create_schedule(ctx, "bad", tick_recorder, "0 0 0 30 2 *")
    with pytest.raises(dbos.InvalidOptionError, match="takes the tick's time"):
        dbos.create_schedule(ctx, "bad", not_a_clock, EVERY_SECOND)  # type: ignore[arg-type]
    with pytest.raises(dbos.InvalidOptionError, match="not a registered workflow"):
        dbos.create_schedule(ctx, "bad", no_input, EVERY_SECOND)  # type: ignore[arg-type]

    # All or nothing: one bad spec stores none of them.
    with pytest.raises(dbos.InvalidOptionError, match="timezone"):
        dbos.apply_schedules(
            ctx,
            [
                dbos.ScheduleSpec("good", tick_recorder, EVERY_SECOND),
                dbos.ScheduleSpec("bad", tick_recorder, EVERY_SECOND, timezone="Nowhere/Land"),
            ],
        )
    with pytest.raises(dbos.InvalidOptionError, match="same name"):
        dbos.apply_schedules(
            ctx,
            [dbos.ScheduleSpec("twice", tick_recorder, "@hourly")] * 2,
        )
    assert dbos.list_schedules(ctx) == []
    assert backend.query("SELECT count(*) FROM {s}.workflow_schedules") == [(0,)]

    dbos.create_schedule(ctx, "once", tick_recorder, "@hourly")
    with pytest.raises(dbos.InvalidOptionError, match="already exists"):
        dbos.create_schedule(ctx, "once", tick_recorder, "@daily")
    assert dbos.get_schedule(ctx, "once").schedule == "@hourly"


def test_registration_refuses_bad_schedules(backend: Backend) -> None:
    ctx = backend.new_context()
    with pytest.raises(dbos.RegistrationError, match=r"not_a_clock.*datetime"):
        dbos.register_workflow(ctx, not_a_clock, schedule=EVERY_SECOND)  # type: ignore[arg-type]
    with pytest.raises(dbos.RegistrationError, match="datetime"):
        dbos.register_workflow(ctx, no_input, schedule=EVERY_SECOND)  # type: ignore[arg-type]
    with pytest.raises(dbos.InvalidOptionError, match="schedule"):
        dbos.register_workflow(ctx, tick_recorder, schedule="every minute")
    with pytest.raises(dbos.InvalidOptionError, match="timezone"):
        dbos.register_workflow(
            ctx, tick_recorder, schedule=EVERY_SECOND, schedule_timezone="Not/AZone"
        )
    # Nothing was registered by the failed attempts.
    dbos.register_workflow(ctx, tick_recorder, schedule="@daily", schedule_timezone="Asia/Tokyo")
    ctx.launch()
    declared = dbos.get_schedule(ctx, "tick_recorder")
    assert (declared.schedule, declared.cron_timezone) == ("@daily", "Asia/Tokyo")


def manage(ctx: dbos.WorkflowContext) -> list[str]:
    try:
        dbos.trigger_schedule(ctx, "x")
        refused = "allowed"
    except dbos.InvalidOptionError as exc:
        refused = str(exc)
    # From a step the calls work (at least once, like any step).
    names = dbos.run_as_step(
        ctx, lambda: [s.schedule_name for s in dbos.list_schedules(ctx)], name="list"
    )
    return [refused, *names]


def test_schedule_calls_are_refused_in_a_workflow_body_but_work_in_steps(
    backend: Backend,
) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, manage)
    dbos.register_workflow(ctx, tick_recorder)
    ctx.launch()
    dbos.create_schedule(ctx, "listed", tick_recorder, "@yearly")
    refused, *names = dbos.run_workflow(ctx, manage).get_result()
    assert "call it from a step" in refused
    assert names == ["listed"]


GATES: dict[str, Gate] = {}


def schedule_admin(ctx: dbos.WorkflowContext, gate: str) -> list[str]:
    created = dbos.create_schedule(ctx, "from-wf", "tick_recorder", "@yearly")
    dbos.pause_schedule(ctx, "from-wf")
    seen = dbos.get_schedule(ctx, "from-wf")
    listed = dbos.list_schedules(ctx)
    try:
        dbos.get_schedule(ctx, "missing")
        missing = "found"
    except dbos.ScheduleNotFoundError as exc:
        missing = exc.schedule_name
    dbos.run_as_step(ctx, GATES[gate], name="wait")
    dbos.delete_schedule(ctx, "from-wf")
    return [created.schedule_id, seen.status.value, str(len(listed)), missing]


def test_schedule_calls_in_a_workflow_are_checkpointed_and_replayed(backend: Backend) -> None:
    GATES["admin"] = gate = Gate()
    ctx = backend.new_context()
    dbos.register_workflow(ctx, schedule_admin)
    ctx.launch()
    handle = dbos.run_workflow(ctx, schedule_admin, "admin", workflow_id="admin-wf")
    gate.wait_entered()
    steps = backend.query(
        "SELECT function_name FROM {s}.operation_outputs WHERE workflow_uuid = %s "
        "ORDER BY function_id",
        "admin-wf",
    )
    assert [r[0] for r in steps] == [
        "DBOS.createSchedule",
        "DBOS.pauseSchedule",
        "DBOS.getSchedule",
        "DBOS.listSchedules",
        "DBOS.getSchedule",
    ]
    first_id = dbos.get_schedule(ctx, "from-wf").schedule_id

    # Stop the workflow in its step, remove the schedule behind its back, and resume it:
    # the recorded calls replay (nothing is created again, the pause does not fail) and
    # return what they returned the first time.
    dbos.cancel_workflow(ctx, "admin-wf")
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=timedelta(seconds=10))
    backend.query("DELETE FROM {s}.workflow_schedules")
    resumed = dbos.resume_workflow(ctx, "admin-wf")
    assert resumed.get_result(timeout=timedelta(seconds=10)) == [
        first_id,
        "PAUSED",
        "1",
        "missing",
    ]
    assert backend.query("SELECT count(*) FROM {s}.workflow_schedules") == [(0,)]


# -- backfill, trigger, automatic backfill -------------------------------------------------


def test_backfill_enqueues_exactly_the_missing_ticks_once(backend: Backend) -> None:
    ctx = _launched(backend)
    dbos.create_schedule(ctx, "yearly", tick_recorder, "0 0 0 1 1 *")

    start = datetime(2020, 1, 1, tzinfo=UTC)  # a tick itself, and excluded: (start, end)
    first = dbos.backfill_schedule(ctx, "yearly", start, datetime(2023, 6, 1, tzinfo=UTC))
    assert first == [f"sched-yearly-{y}-01-01T00:00:00+00:00" for y in (2021, 2022, 2023)]
    wait_until(lambda: len(succeeded(backend, "yearly")) == 3, "three backfilled runs")

    again = dbos.backfill_schedule(ctx, "yearly", start, datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert again == [f"sched-yearly-{y}-01-01T00:00:00+00:00" for y in range(2021, 2026)]
    wait_until(lambda: len(succeeded(backend, "yearly")) == 5, "the two missing runs")
    assert dbos.backfill_schedule(ctx, "yearly", start, datetime(2025, 1, 2, tzinfo=UTC)) == again
    assert len(tick_rows(backend, "yearly")) == 5
    assert all(RUNS[i] == 1 for i in again)
    assert TIMES[again[0]] == datetime(2021, 1, 1, tzinfo=UTC)

    with pytest.raises(dbos.ScheduleNotFoundError):
        dbos.backfill_schedule(ctx, "missing", start, datetime.now(UTC))
    with pytest.raises(dbos.InvalidOptionError, match="time zone"):
        dbos.backfill_schedule(ctx, "yearly", datetime(2020, 1, 1), datetime.now(UTC))


def test_trigger_runs_the_workflow_now(backend: Backend) -> None:
    ctx = _launched(backend)
    dbos.create_schedule(ctx, "manual", tick_recorder, "0 0 0 1 1 *")
    before = datetime.now(UTC)
    handle = dbos.trigger_schedule(ctx, "manual")
    assert handle.workflow_id.startswith("sched-manual-trigger-")
    result = handle.get_result(timeout=timedelta(seconds=10))
    assert before <= datetime.fromisoformat(result) <= datetime.now(UTC)
    assert RUNS[handle.workflow_id] == 1
    status = handle.get_status()
    assert (status.status, status.schedule_name) == (dbos.StatusName.SUCCESS, "manual")
    assert [w.workflow_id for w in dbos.list_workflows(ctx, schedule_name="manual")] == [
        handle.workflow_id
    ]
    with pytest.raises(dbos.ScheduleNotFoundError):
        dbos.trigger_schedule(ctx, "missing")


def test_trigger_schedule_typed_validates_the_result_as_the_type_given(
    backend: Backend,
) -> None:
    ctx = _launched(backend)
    dbos.create_schedule(ctx, "manual", tick_recorder, "0 0 0 1 1 *")
    # A process that does not register the workflow knows its result only as JSON...
    outsider = backend.new_context(executor_id="outsider")
    dbos.listen_queues(outsider, [])  # it serves no queue: the run is the other's
    outsider.launch()
    untyped = dbos.trigger_schedule(outsider, "manual")
    plain = untyped.get_result(timeout=timedelta(seconds=10))
    assert isinstance(plain, str)
    # ...unless it names the type: the recorded ISO string is validated as a datetime.
    typed = dbos.trigger_schedule[datetime](outsider, "manual")
    when = typed.get_result(timeout=timedelta(seconds=10))
    assert isinstance(when, datetime)
    assert when == TIMES[typed.workflow_id]
    with pytest.raises(dbos.ScheduleNotFoundError):
        dbos.trigger_schedule[datetime](outsider, "missing")


class Region(BaseModel):
    name: str
    weight: int = 1


CONTEXTS: dict[str, dbos.ScheduledInput[Region | None]] = {}


def with_context(ctx: dbos.WorkflowContext, run: dbos.ScheduledInput[Region | None]) -> str:
    with _LOCK:
        CONTEXTS[dbos.get_workflow_id(ctx)] = run
    return "none" if run.context is None else run.context.name


def needs_region(ctx: dbos.WorkflowContext, run: dbos.ScheduledInput[Region]) -> str:
    return run.context.name


def test_each_run_receives_the_schedule_context(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, with_context)
    ctx.launch()
    created = dbos.create_schedule(
        ctx, "regional", with_context, EVERY_SECOND, context=Region(name="eu", weight=3)
    )
    assert created.context == {"name": "eu", "weight": 3}
    assert dbos.get_schedule(ctx, "regional").context == {"name": "eu", "weight": 3}
    assert backend.query("SELECT context FROM {s}.workflow_schedules") == [
        ('{"name":"eu","weight":3}',)
    ]
    wait_until(lambda: len(succeeded(backend, "regional")) >= 1, "a tick with a context")
    tick_id = succeeded(backend, "regional")[0]
    run = CONTEXTS[tick_id]
    assert run.context == Region(name="eu", weight=3)
    assert run.scheduled_time == tick_of("regional", tick_id)
    # The tick is recorded as DBOS's Python SDK records one: two arguments, time and context.
    [(inputs,)] = backend.query(
        "SELECT inputs FROM {s}.workflow_input WHERE workflow_uuid = %s", tick_id
    )
    assert json.loads(str(inputs))["positionalArgs"][1] == {"name": "eu", "weight": 3}
    # A trigger carries it too.
    triggered = dbos.trigger_schedule(ctx, "regional")
    assert triggered.get_result(timeout=timedelta(seconds=10)) == "eu"
    dbos.pause_schedule(ctx, "regional")


def test_a_context_workflow_scheduled_without_context_gets_none(backend: Backend) -> None:
    ctx = backend.context_with(with_context)
    ctx.launch()
    created = dbos.create_schedule(ctx, "plain", with_context, "@yearly")
    assert created.context is None
    handle = dbos.trigger_schedule(ctx, "plain")
    assert handle.get_result(timeout=timedelta(seconds=10)) == "none"
    assert CONTEXTS[handle.workflow_id].context is None


def test_context_apply_and_redefinition(backend: Backend) -> None:
    ctx = backend.context_with(with_context)
    ctx.launch()
    dbos.apply_schedules(
        ctx, [dbos.ScheduleSpec("applied", with_context, "@yearly", context={"name": "us"})]
    )
    assert dbos.get_schedule(ctx, "applied").context == {"name": "us"}
    assert dbos.trigger_schedule(ctx, "applied").get_result(timeout=timedelta(seconds=10)) == "us"
    dbos.apply_schedules(
        ctx, [dbos.ScheduleSpec("applied", with_context, "@yearly", context={"name": "ap"})]
    )
    assert dbos.get_schedule(ctx, "applied").context == {"name": "ap"}
    assert dbos.trigger_schedule(ctx, "applied").get_result(timeout=timedelta(seconds=10)) == "ap"


def test_bad_contexts_are_refused_and_nothing_is_stored(backend: Backend) -> None:
    ctx = backend.context_with(tick_recorder, needs_region)
    with pytest.raises(dbos.InvalidOptionError, match=r"context.*ScheduledInput"):
        dbos.create_schedule(ctx, "a", tick_recorder, "@daily", context={"x": 1})
    with pytest.raises(dbos.InvalidOptionError, match=r"context.*needs_region"):
        dbos.create_schedule(ctx, "b", needs_region, "@daily", context={"wrong": 1})
    with pytest.raises(dbos.InvalidOptionError, match=r"context.*needs_region"):
        dbos.create_schedule(ctx, "c", needs_region, "@daily")  # None is no Region
    with pytest.raises(dbos.InvalidOptionError, match="context"):
        dbos.create_schedule(ctx, "d", "by_name", "@daily", context=float("nan"))
    with pytest.raises(dbos.InvalidOptionError, match="context"):
        dbos.apply_schedules(
            ctx, [dbos.ScheduleSpec("e", needs_region, "@daily", context={"wrong": 1})]
        )
    assert dbos.list_schedules(ctx) == []


def test_a_context_written_by_another_sdk_is_read_back(backend: Backend) -> None:
    ctx = backend.context_with(with_context)
    ctx.launch()
    dbos.create_schedule(ctx, "theirs", with_context, "@yearly")
    # DBOS's portable serializer writes JSON: runs receive it.
    backend.query("UPDATE {s}.workflow_schedules SET context = %s", '{"name": "py"}')
    assert dbos.get_schedule(ctx, "theirs").context == {"name": "py"}
    assert dbos.trigger_schedule(ctx, "theirs").get_result(timeout=timedelta(seconds=10)) == "py"
    # Its default serializer pickles: the text is shown as it is; runs get no context.
    backend.query("UPDATE {s}.workflow_schedules SET context = %s", "gASVBAAAAAAAAACMAXiULg==")
    assert dbos.get_schedule(ctx, "theirs").context == "gASVBAAAAAAAAACMAXiULg=="
    assert dbos.trigger_schedule(ctx, "theirs").get_result(timeout=timedelta(seconds=10)) == "none"


def test_automatic_backfill_after_downtime(backend: Backend) -> None:
    # What a process that stopped five seconds ago leaves behind: the last tick it fired.
    admin = backend.new_context(executor_id="admin")
    dbos.create_schedule(admin, "catch-up", "tick_recorder", EVERY_SECOND, automatic_backfill=True)
    dbos.create_schedule(admin, "no-catch-up", "tick_recorder", EVERY_SECOND)
    last = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    backend.query(
        "UPDATE {s}.workflow_schedules SET last_fired_at = %s", last.isoformat(timespec="seconds")
    )

    launched_at = datetime.now(UTC)
    _launched(backend)
    missed = [last + timedelta(seconds=n) for n in range(1, 6)]
    expected = {tick_workflow_id("catch-up", t) for t in missed}
    wait_until(lambda: expected <= set(succeeded(backend, "catch-up")), "the missed ticks")
    assert all(RUNS[i] == 1 for i in expected)
    assert tick_workflow_id("catch-up", last) not in set(succeeded(backend, "catch-up"))
    # Without automatic backfill nothing before the launch is enqueued.
    wait_until(lambda: len(succeeded(backend, "no-catch-up")) >= 1, "a live tick")
    assert all(t > launched_at for t in _ticks(backend, "no-catch-up"))


def test_queue_and_class_name_are_stored_and_used(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, tick_recorder)
    created = dbos.create_schedule(ctx, "queued", tick_recorder, "@yearly", queue="reports")
    assert created.queue_name == dbos.get_schedule(ctx, "queued").queue_name == "reports"
    # As another SDK would store a class method's schedule: ticks carry the class name.
    backend.query("UPDATE {s}.workflow_schedules SET workflow_class_name = 'Reports'")
    assert dbos.get_schedule(ctx, "queued").workflow_class_name == "Reports"
    ids = dbos.backfill_schedule(
        ctx, "queued", datetime(2020, 6, 1, tzinfo=UTC), datetime(2022, 6, 1, tzinfo=UTC)
    )
    rows = backend.query(
        "SELECT queue_name, status, schedule_name, class_name FROM {s}.workflow_status "
        "ORDER BY workflow_uuid"
    )
    assert len(ids) == 2
    assert rows == [("reports", "ENQUEUED", "queued", "Reports")] * 2
    listed = dbos.list_workflows(ctx, schedule_name="queued")
    assert [(w.schedule_name, w.class_name) for w in listed] == [("queued", "Reports")] * 2


def test_another_applications_schedule_is_not_redefined(backend: Backend) -> None:
    other = backend.new_context("other-app")
    dbos.create_schedule(other, "taken", "their_workflow", "@daily")
    ours = backend.new_context()
    dbos.register_workflow(ours, tick_recorder, name="taken", schedule="@hourly")

    with pytest.raises(dbos.InvalidOptionError, match="another application"):
        dbos.apply_schedules(
            ours,
            [
                dbos.ScheduleSpec("fresh", tick_recorder, "@hourly"),
                dbos.ScheduleSpec("taken", tick_recorder, "@hourly"),
            ],
        )
    with pytest.raises(dbos.InitializationError, match="another application"):
        ours.launch()
    kept = dbos.get_schedule(other, "taken")
    assert (kept.workflow_name, kept.schedule, kept.application_name) == (
        "their_workflow",
        "@daily",
        "other-app",
    )
    # "fresh" was rolled back with the rest.
    assert backend.query("SELECT schedule_name FROM {s}.workflow_schedules") == [("taken",)]


def test_concurrent_apply_keeps_one_schedule(backend: Backend) -> None:
    contexts = [backend.new_context(executor_id=f"e{n}") for n in range(4)]
    errors: list[BaseException] = []

    def apply(ctx: dbos.DBOSContext) -> None:
        try:
            for _ in range(5):
                dbos.apply_schedules(ctx, [dbos.ScheduleSpec("shared", "report", "@hourly")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=apply, args=(ctx,)) for ctx in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert backend.query("SELECT count(*) FROM {s}.workflow_schedules") == [(1,)]
    first = dbos.get_schedule(contexts[0], "shared").schedule_id
    dbos.apply_schedules(contexts[1], [dbos.ScheduleSpec("shared", "report", "@daily")])
    assert dbos.get_schedule(contexts[2], "shared").schedule_id == first


def test_dbos_reads_our_schedules_and_computes_the_same_tick_ids(backend: Backend) -> None:
    """DBOS's own client (3.4.0) lists our rows and backfills the IDs our scheduler uses."""
    import json

    from dbos import DBOSClient
    from dbos._serialization import Serializer

    class JsonSerializer(Serializer):  # type: ignore[misc]
        # DBOS reads a schedule's context with the application's serializer; ours is JSON.
        def serialize(self, data: Any) -> str:
            return json.dumps(data, default=str)

        def deserialize(self, serialized_data: str) -> Any:
            return json.loads(serialized_data)

    ctx = backend.new_context()
    ctx.launch()  # registers the application version DBOS stamps on the rows it enqueues
    dbos.create_schedule(ctx, "ny", "report", "0 0 0 1 1 *", timezone="America/New_York")
    client = DBOSClient(
        system_database_url=backend.url,
        dbos_system_schema=backend.schema,
        application_name="test-app",
        serializer=JsonSerializer(),
    )
    try:
        [listed] = client.list_schedules()
        assert (listed["schedule_name"], listed["cron_timezone"]) == ("ny", "America/New_York")
        start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)
        theirs = [h.get_workflow_id() for h in client.backfill_schedule("ny", start, end)]
    finally:
        client.destroy()
    assert theirs[0] == "sched-ny-2020-01-01T00:00:00-05:00"
    assert dbos.backfill_schedule(ctx, "ny", start, end) == theirs
    # DBOS enqueued them all; ours found every ID taken and added nothing.
    assert len(tick_rows(backend, "ny")) == len(theirs) == 5


# -- helpers --------------------------------------------------------------------------------


def _ticks(backend: Backend, schedule_name: str) -> list[datetime]:
    return [tick_of(schedule_name, str(r[0])) for r in tick_rows(backend, schedule_name)]


def _latest_tick(backend: Backend, schedule_name: str) -> datetime:
    return max(_ticks(backend, schedule_name), default=datetime.min.replace(tzinfo=UTC))


def _assert_quiet(backend: Backend, schedule_name: str, *, after: datetime) -> None:
    """No tick later than `after` appears while more than one tick's worth of time passes.

    Proving that something does not happen needs the time to pass; the wait is bounded by
    the clock, not used to synchronise with anything.
    """
    until = after + timedelta(seconds=1.5)
    while datetime.now(UTC) < until:
        time.sleep(0.05)
    assert [t for t in _ticks(backend, schedule_name) if t > after] == []
