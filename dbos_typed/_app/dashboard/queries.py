"""The few reads the dashboard makes that no public call offers, as SQL for both backends.

A workflow's events, stream entries and messages, and the schedules of every application:
the public calls read one event, stream or schedule at a time, or one application's. Each
statement is keyed by the table's primary key or an index on it and bounded by `LIMIT`,
and is written like those of `dbos_typed._sysdb._queries` (`{s}` for the schema, named
`%(name)s` parameters), so both stores run it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, LiteralString

from dbos_typed._sysdb._store import SystemStore

EVENTS: Final[LiteralString] = """
SELECT key, value FROM {s}.workflow_events
WHERE workflow_uuid = %(workflow_id)s
ORDER BY key
LIMIT %(limit)s
"""

STREAMS: Final[LiteralString] = """
SELECT key, "offset", value, function_id FROM {s}.streams
WHERE workflow_uuid = %(workflow_id)s
ORDER BY key, "offset"
LIMIT %(limit)s
"""

MESSAGES: Final[LiteralString] = """
SELECT message_uuid, topic, message, created_at_epoch_ms, consumed FROM {s}.notifications
WHERE destination_uuid = %(workflow_id)s
ORDER BY created_at_epoch_ms, message_uuid
LIMIT %(limit)s
"""

SCHEDULES: Final[LiteralString] = """
SELECT schedule_name, workflow_name, workflow_class_name, schedule, status, last_fired_at,
       automatic_backfill, cron_timezone, queue_name, application_name
FROM {s}.workflow_schedules
ORDER BY schedule_name
LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A schedule as stored, of any application."""

    schedule_name: str
    workflow_name: str
    workflow_class_name: str | None
    schedule: str
    status: str
    last_fired_at: str | None
    automatic_backfill: bool
    cron_timezone: str | None
    queue_name: str | None
    application_name: str | None


def rows(store: SystemStore, query: LiteralString, **params: object) -> list[tuple[object, ...]]:
    """Run one of the statements above."""
    # The store's own runner: it retries through outages and translates driver errors.
    return store._query(query, params)


def schedules(store: SystemStore, limit: int) -> list[ScheduleRow]:
    """Every application's schedules, by name."""
    return [
        ScheduleRow(
            schedule_name=str(r[0]),
            workflow_name=str(r[1]),
            workflow_class_name=None if r[2] is None else str(r[2]),
            schedule=str(r[3]),
            status=str(r[4]),
            last_fired_at=None if r[5] is None else str(r[5]),
            automatic_backfill=bool(r[6]),
            cron_timezone=None if r[7] is None else str(r[7]),
            queue_name=None if r[8] is None else str(r[8]),
            application_name=None if r[9] is None else str(r[9]),
        )
        for r in rows(store, SCHEDULES, limit=limit)
    ]
