"""Cron expressions and their ticks: parsing, time zones, DST, and the IDs ticks get.

Pure functions over croniter; nothing here touches the database or the runtime, so the
tick arithmetic (the part every process must agree on) is testable on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from dbos_typed.errors import InvalidOptionError

_DESCRIPTORS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_HOUR = 1  # croniter's index of the hour field in its expanded form

# Ticks are looked for at most this far ahead: an expression that never matches within
# it (February 30th) is refused up front instead of failing in the scheduler.
_SEARCH_YEARS = 10


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A validated cron expression and the time zone it is read in.

    Six fields are `second minute hour day-of-month month day-of-week`; five are the
    standard form, firing at second 0. The `@hourly`-style descriptors are accepted.

    Attributes:
        expression: The expression as given.
        timezone: The IANA zone name, or None for UTC.
    """

    expression: str
    timezone: str | None = None
    zone: tzinfo = field(init=False, repr=False, compare=False)
    _every_hour: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        expression = self.expression
        if not isinstance(expression, str) or not expression.strip():
            raise InvalidOptionError("schedule", "expected a non-empty cron expression")
        stripped = expression.strip()
        if stripped.startswith("@"):
            if stripped.lower() not in _DESCRIPTORS:
                raise InvalidOptionError(
                    "schedule",
                    f"unknown descriptor {stripped!r}; expected one of "
                    + ", ".join(sorted(_DESCRIPTORS)),
                )
        else:
            fields = stripped.split()
            if len(fields) not in (5, 6):
                raise InvalidOptionError(
                    "schedule",
                    f"{expression!r} has {len(fields)} fields; expected 6 "
                    "(second minute hour day month weekday) or 5 (without seconds)",
                )
        zone = _zone(self.timezone)
        try:
            parsed = croniter(stripped, datetime(2000, 1, 1, tzinfo=zone), second_at_beginning=True)
        except (CroniterError, ValueError, TypeError, KeyError) as exc:
            raise InvalidOptionError(
                "schedule", f"invalid cron expression {expression!r}: {exc}"
            ) from exc
        hours = parsed.expanded[_HOUR]
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "_every_hour", hours[0] == "*" or len(hours) >= 24)
        try:
            self.next_after(datetime.now(UTC))
        except (CroniterError, ValueError) as exc:
            raise InvalidOptionError(
                "schedule", f"{expression!r} never fires within {_SEARCH_YEARS} years: {exc}"
            ) from exc

    def next_after(self, instant: datetime) -> datetime:
        """The first tick strictly after `instant`, in the schedule's time zone.

        A wall-clock time that happens twice when clocks go back (01:30 on the night DST
        ends in New York) fires once, on its first occurrence, unless the expression
        fires every hour; a time skipped when clocks go forward fires at the first
        instant after the jump, as cron does.

        Raises:
            InvalidOptionError: `instant` is naive.
        """
        if instant.tzinfo is None:
            raise InvalidOptionError("instant", "expected a time-zone-aware datetime")
        # astimezone sets `fold`, which croniter needs to place ambiguous local times.
        current = instant.astimezone(self.zone)
        while True:
            it = croniter(
                self.expression.strip(),
                current,
                second_at_beginning=True,
                max_years_between_matches=_SEARCH_YEARS,
            )
            tick = it.get_next(datetime)
            if self._every_hour or not _is_repeat(tick):
                return tick
            current = tick

    def ticks_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every tick strictly after `start` and strictly before `end`."""
        tick = self.next_after(start)
        while tick < end:
            yield tick
            tick = self.next_after(tick)


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    if not isinstance(name, str) or not name:
        raise InvalidOptionError("timezone", "expected an IANA time zone name or None")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidOptionError(
            "timezone", f"{name!r} is not an IANA time zone (such as 'America/New_York')"
        ) from exc


def _is_repeat(tick: datetime) -> bool:
    """Whether `tick` is the second occurrence of a local time repeated by a DST change."""
    if tick.fold != 1:
        return False
    return tick.replace(fold=0).utcoffset() != tick.utcoffset()


def tick_workflow_id(schedule_name: str, tick: datetime) -> str:
    """The workflow ID of one tick, the same in every process (DBOS's format)."""
    return f"sched-{schedule_name}-{tick.isoformat()}"


def trigger_workflow_id(schedule_name: str, now: datetime) -> str:
    """The workflow ID of a manual trigger (DBOS's format)."""
    return f"sched-{schedule_name}-trigger-{now.isoformat()}"


_ZULU = re.compile(r"Z$")


def format_fired_at(tick: datetime) -> str:
    """The `last_fired_at` text for a tick (ISO 8601 with its offset, as DBOS writes it)."""
    return tick.isoformat()


def parse_fired_at(text: str | None) -> datetime | None:
    """Read `last_fired_at` as written by any DBOS SDK; None if absent or unreadable."""
    if not text:
        return None
    try:
        # Go writes RFC 3339 with nanoseconds; Python reads at most microseconds.
        cleaned = _ZULU.sub("+00:00", text.strip())
        cleaned = re.sub(r"(\.\d{6})\d+", r"\1", cleaned)
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
