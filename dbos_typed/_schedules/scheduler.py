"""The scheduler: one thread per context that fires every active schedule's ticks.

It keeps the next tick of each installed schedule and sleeps until the earliest one. A
reconciler pass re-reads the schedules table every `Config.scheduler_polling_interval` (and
at once when this process changes a schedule) and installs, removes or restarts schedules
to match, so changes made by other processes take effect without a restart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from dbos_typed._core.runtime import Runtime
from dbos_typed._schedules.cron import CronSchedule, parse_fired_at
from dbos_typed._schedules.schedules import (
    ScheduleStatus,
    cron_of,
    declared_rows,
    enqueue_ticks,
    ticks_in,
)
from dbos_typed._sysdb._rows import ScheduleRow
from dbos_typed.errors import DBOSError, InitializationError

# A scheduler that fell further behind than this many ticks of one schedule (a suspended
# laptop, a clock jump) skips ahead to now; `automatic_backfill` is the way to get them.
_MAX_CATCH_UP = 1000
_ERROR_PAUSE_SECONDS = 1.0


@dataclass(eq=False)
class _Installed:
    row: ScheduleRow
    cron: CronSchedule
    next_tick: datetime


def _signature(row: ScheduleRow) -> tuple[object, ...]:
    # The definition only: a change in status or last_fired_at does not restart it.
    return (
        row.schedule_id,
        row.workflow_name,
        row.workflow_class_name,
        row.schedule,
        row.context,
        row.cron_timezone,
        row.queue_name,
    )


class Scheduler:
    """Fires the ticks of the application's active schedules from one thread."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._installed: dict[str, _Installed] = {}
        self._refused: set[tuple[object, ...]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dbos-scheduler", daemon=True)

    def start(self) -> None:
        """Write the schedules declared at registration, then start the thread."""
        rows = declared_rows(self._runtime)
        if rows and (foreign := self._runtime.store.upsert_schedules(rows)) is not None:
            raise InitializationError(
                f"the schedule {foreign!r} declared by register_workflow belongs to another "
                "application sharing this database; rename the workflow (name=...)"
            )
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        self._runtime.schedule_wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        runtime = self._runtime
        wakeup = runtime.schedule_wakeup
        interval = runtime.config.scheduler_polling_interval.total_seconds()
        next_reconcile = 0.0
        while not self._stop.is_set():
            try:
                if wakeup.is_set() or time.monotonic() >= next_reconcile:
                    wakeup.clear()
                    self._reconcile()
                    next_reconcile = time.monotonic() + interval
                self._fire_due()
            except Exception:
                if self._stop.is_set():
                    return
                self._runtime.logger.exception("the scheduler failed; retrying")
                self._stop.wait(_ERROR_PAUSE_SECONDS)
                continue
            # Re-reading the table is polling, in real time; ticks are on the context's clock.
            wait = max(0.0, next_reconcile - time.monotonic())
            tick = None
            if self._installed:
                earliest = min(entry.next_tick for entry in self._installed.values())
                tick = earliest.timestamp()
            runtime.clock.wait(wakeup, tick, wait, service=True)

    def _reconcile(self) -> None:
        runtime = self._runtime
        rows = {r.schedule_name: r for r in runtime.store.list_schedules(runtime.app_name)}
        for name in list(self._installed):
            row = rows.get(name)
            if row is None or row.status != ScheduleStatus.ACTIVE:
                del self._installed[name]
                self._runtime.logger.info("schedule %r stopped", name)
        for name, row in rows.items():
            if row.status != ScheduleStatus.ACTIVE:
                continue
            installed = self._installed.get(name)
            if installed is not None and _signature(installed.row) == _signature(row):
                continue
            self._install(row, restart=installed is not None)

    def _install(self, row: ScheduleRow, *, restart: bool) -> None:
        try:
            cron = cron_of(row)
        except DBOSError as exc:
            signature = _signature(row)
            if signature not in self._refused:
                self._refused.add(signature)
                self._runtime.logger.error(
                    "schedule %r cannot run here: %s", row.schedule_name, exc
                )
            return
        now = self._now()
        first = cron.next_after(now)
        if not restart:
            self._backfill(row, first)
        self._installed[row.schedule_name] = _Installed(row, cron, first)
        self._runtime.logger.info(
            "schedule %r %s; next tick %s",
            row.schedule_name,
            "redefined" if restart else "started",
            first.isoformat(),
        )

    def _backfill(self, row: ScheduleRow, first: datetime) -> None:
        """Enqueue the ticks missed while no process ran this schedule.

        They run up to, not including, the first tick the loop will fire, so there is
        neither a gap nor an overlap between the backfill and the live ticks.
        """
        last = parse_fired_at(row.last_fired_at)
        if not row.automatic_backfill or last is None or last >= first:
            return
        try:
            ticks = ticks_in(row, last, first)
            created = enqueue_ticks(self._runtime, row, ticks, only_if_active=True)
        except DBOSError as exc:
            self._runtime.logger.error(
                "automatic backfill of schedule %r failed: %s", row.schedule_name, exc
            )
            return
        if created:
            self._runtime.logger.info(
                "schedule %r: enqueued %d missed tick(s)", row.schedule_name, len(created)
            )

    def _now(self) -> datetime:
        return self._runtime.clock.now()

    def _fire_due(self) -> None:
        now = self._now()
        for name, entry in list(self._installed.items()):
            if self._stop.is_set():
                return
            due: list[datetime] = []
            tick = entry.next_tick
            while tick <= now and len(due) < _MAX_CATCH_UP:
                due.append(tick)
                tick = entry.cron.next_after(tick)
            if not due:
                continue
            if tick <= now:
                self._runtime.logger.warning(
                    "schedule %r is more than %d ticks behind; skipping to now",
                    name,
                    _MAX_CATCH_UP,
                )
                tick = entry.cron.next_after(now)
            # Move on before writing: a tick that fails to enqueue is logged and left to
            # backfill rather than retried forever ahead of every other schedule.
            entry.next_tick = tick
            try:
                enqueue_ticks(self._runtime, entry.row, due, only_if_active=True)
            except Exception:
                if self._stop.is_set():
                    return
                self._runtime.logger.exception(
                    "schedule %r could not enqueue tick(s) %s", name, due
                )
