"""Checked by `mypy --strict`, never run: the schedule API's types, and misuse that must fail.

Each `# type: ignore[code]` marks a call that must be rejected; if the library stopped
rejecting it, mypy would report the ignore as unused and the check would fail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, assert_type

from pydantic import BaseModel

import dbos_typed as dbos


class Report(BaseModel):
    rows: int


def nightly(ctx: dbos.WorkflowContext, scheduled_time: datetime) -> Report:
    return Report(rows=scheduled_time.hour)


def regional(ctx: dbos.WorkflowContext, run: dbos.ScheduledInput[Report]) -> str:
    assert_type(run.scheduled_time, datetime)
    assert_type(run.context, Report)
    return str(run.context.rows)


def takes_an_int(ctx: dbos.WorkflowContext, count: int) -> int:
    return count


def takes_nothing(ctx: dbos.WorkflowContext) -> int:
    return 1


def usage(ctx: dbos.DBOSContext) -> None:
    assert_type(
        dbos.register_workflow(ctx, nightly, schedule="0 0 2 * * *", schedule_timezone="UTC"),
        Callable[[dbos.WorkflowContext, datetime], Report],
    )
    assert_type(
        dbos.create_schedule(ctx, "nightly", nightly, "@daily", timezone="Europe/Paris"),
        dbos.WorkflowSchedule,
    )
    assert_type(
        dbos.create_schedule(ctx, "by-name", "nightly", "* * * * * *"), dbos.WorkflowSchedule
    )
    assert_type(dbos.get_schedule(ctx, "nightly"), dbos.WorkflowSchedule)
    assert_type(dbos.get_schedule(ctx, "nightly").last_fired_at, datetime | None)
    assert_type(dbos.get_schedule(ctx, "nightly").status, dbos.ScheduleStatus)
    assert_type(
        dbos.list_schedules(ctx, statuses=[dbos.ScheduleStatus.ACTIVE], name_prefix="n"),
        list[dbos.WorkflowSchedule],
    )
    assert_type(dbos.pause_schedule(ctx, "nightly"), None)
    assert_type(dbos.resume_schedule(ctx, "nightly"), None)
    assert_type(dbos.delete_schedule(ctx, "nightly"), None)
    assert_type(dbos.apply_schedules(ctx, [dbos.ScheduleSpec("nightly", nightly, "@daily")]), None)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert_type(dbos.backfill_schedule(ctx, "nightly", start, datetime.now(UTC)), list[str])
    assert_type(dbos.trigger_schedule(ctx, "nightly"), dbos.WorkflowHandle[Any])
    assert_type(dbos.trigger_schedule[Report](ctx, "nightly"), dbos.WorkflowHandle[Report])
    assert_type(dbos.trigger_schedule[datetime](ctx, "n").get_result(), datetime)
    assert_type(
        dbos.register_workflow(ctx, regional, schedule="@daily"),
        Callable[[dbos.WorkflowContext, dbos.ScheduledInput[Report]], str],
    )
    assert_type(
        dbos.create_schedule(ctx, "regional", regional, "@daily", context=Report(rows=1)),
        dbos.WorkflowSchedule,
    )
    assert_type(dbos.ScheduleSpec("r", regional, "@daily", context={"rows": 1}).context, object)

    # Misuse that must not type-check: a scheduled workflow takes the tick's datetime.
    dbos.register_workflow(ctx, takes_an_int, schedule="@hourly")  # type: ignore[arg-type]
    dbos.register_workflow(ctx, takes_nothing, schedule="@hourly")  # type: ignore[arg-type]
    dbos.create_schedule(ctx, "n", takes_an_int, "@hourly")  # type: ignore[arg-type]
    dbos.ScheduleSpec("n", takes_an_int, "@hourly")  # type: ignore[arg-type]
    dbos.create_schedule(ctx, "n", nightly, "@hourly", timezone=5)  # type: ignore[arg-type]
    dbos.backfill_schedule(ctx, "n", "2026-01-01", start)  # type: ignore[arg-type]
    dbos.list_schedules(ctx, statuses=["ACTIVE"])  # type: ignore[list-item]
    dbos.trigger_schedule[Report](ctx, 5)  # type: ignore[arg-type]


def client_usage(client: dbos.Client) -> None:
    assert_type(dbos.create_schedule(client, "n", "nightly", "@daily"), dbos.WorkflowSchedule)
    assert_type(dbos.list_schedules(client), list[dbos.WorkflowSchedule])
    assert_type(dbos.get_schedule(client, "n"), dbos.WorkflowSchedule)
    assert_type(dbos.pause_schedule(client, "n"), None)
    assert_type(dbos.resume_schedule(client, "n"), None)
    assert_type(dbos.delete_schedule(client, "n"), None)
    assert_type(dbos.trigger_schedule(client, "n"), dbos.WorkflowHandle[Any])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert_type(dbos.backfill_schedule(client, "n", start, datetime.now(UTC)), list[str])
    assert_type(dbos.apply_schedules(client, [dbos.ScheduleSpec("n", "nightly", "@daily")]), None)
    dbos.create_schedule("postgresql://", "n", "nightly", "@daily")  # type: ignore[arg-type]
