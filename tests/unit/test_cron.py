"""Tick arithmetic of cron schedules, across daylight-saving changes and time zones."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dbos_typed._schedules.cron import CronSchedule, tick_workflow_id

NEW_YORK = ZoneInfo("America/New_York")


def _next(cron: CronSchedule, after: datetime, count: int) -> list[str]:
    ticks = []
    for _ in range(count):
        after = cron.next_after(after)
        ticks.append(after.isoformat())
    return ticks


def test_a_daily_time_skipped_by_dst_fires_after_the_jump() -> None:
    cron = CronSchedule("0 30 2 * * *", "America/New_York")
    assert _next(cron, datetime(2026, 3, 7, 12, tzinfo=NEW_YORK), 2) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]


def test_a_daily_time_repeated_by_dst_fires_once() -> None:
    cron = CronSchedule("30 1 * * *", "America/New_York")  # five fields: second 0
    assert _next(cron, datetime(2026, 10, 31, 12, tzinfo=NEW_YORK), 2) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


def test_interval_schedules_keep_firing_through_the_repeated_hour() -> None:
    half_hourly = CronSchedule("0 */30 * * * *", "America/New_York")
    assert _next(half_hourly, datetime(2026, 11, 1, 0, 10, tzinfo=NEW_YORK), 5) == [
        "2026-11-01T00:30:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00",
    ]
    hourly = CronSchedule("@hourly", "America/New_York")
    ticks = _next(hourly, datetime(2026, 11, 1, 0, 10, tzinfo=NEW_YORK), 3)
    assert ticks == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]
    # Same wall time, different instants: the tick IDs differ too.
    assert len({tick_workflow_id("h", datetime.fromisoformat(t)) for t in ticks}) == 3


def test_ticks_do_not_depend_on_the_zone_of_the_starting_instant() -> None:
    cron = CronSchedule("0 0 9 * * 1-5", "Europe/Paris")
    start = datetime(2026, 3, 27, 18, tzinfo=UTC)  # a Friday; DST starts in Paris on Sunday
    as_utc = _next(cron, start, 3)
    as_tokyo = _next(cron, start.astimezone(ZoneInfo("Asia/Tokyo")), 3)
    assert (
        as_utc
        == as_tokyo
        == [
            "2026-03-30T09:00:00+02:00",
            "2026-03-31T09:00:00+02:00",
            "2026-04-01T09:00:00+02:00",
        ]
    )
    assert list(cron.ticks_between(start, start)) == []
