"""A cron job: a durable workflow that runs every second, on the embedded default (SQLite).

Run it with `python -m examples.scheduled_job`; it stops itself after three ticks. Set
`DBOS_DATABASE_URL` to a `postgresql://...` URL to use Postgres instead. Start it in two
terminals at once and each tick still runs once: the tick's workflow ID is the same in
both processes.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta

import dbos_typed as dbos

TICKS_TO_RUN = 3

done = threading.Event()
seen: list[datetime] = []


def collect_metrics(scheduled_time: datetime) -> int:
    lag_ms = (datetime.now(UTC) - scheduled_time).total_seconds() * 1000
    print(f"tick {scheduled_time:%H:%M:%S} started {lag_ms:.0f} ms after its scheduled time")
    return int(lag_ms)


def every_second(ctx: dbos.WorkflowContext, scheduled_time: datetime) -> int:
    lag = dbos.run_as_step(ctx, lambda: collect_metrics(scheduled_time), name="collect")
    seen.append(scheduled_time)
    if len(seen) >= TICKS_TO_RUN:
        done.set()
    return lag


def main() -> None:
    ctx = dbos.new_context(
        dbos.Config(app_name="scheduled_job", database_url=os.environ.get("DBOS_DATABASE_URL"))
    )
    dbos.register_workflow(ctx, every_second, schedule="* * * * * *")
    ctx.launch()
    try:
        if not done.wait(timeout=30):
            raise SystemExit("the schedule did not fire")
        schedule = dbos.get_schedule(ctx, "every_second")
        print(
            f"schedule {schedule.schedule_name!r} ({schedule.schedule}) last fired at "
            f"{schedule.last_fired_at}"
        )
    finally:
        ctx.shutdown(timeout=timedelta(seconds=2))


if __name__ == "__main__":
    main()
