"""Schedules: their rows, and the ticks enqueued for them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._rows import (
    ScheduledTick,
    ScheduleRow,
)
from dbos_typed._sysdb._store_base import (
    StoreBase,
    Transaction,
    schedule_from,
    schedule_params,
)


class ScheduleStore(StoreBase):
    """Operations on schedules."""

    def list_schedules(self, application_name: str | None) -> list[ScheduleRow]:
        """The application's schedules and the unclaimed ones (every one for None), by name."""
        rows = self._query(q.LIST_SCHEDULES, {"application_name": application_name})
        return [schedule_from(r) for r in rows]

    def get_schedule(self, schedule_name: str) -> ScheduleRow | None:
        """One schedule by name."""
        rows = self._query(q.GET_SCHEDULE, {"schedule_name": schedule_name})
        return schedule_from(rows[0]) if rows else None

    def create_schedule(self, row: ScheduleRow) -> bool:
        """Insert a new ACTIVE schedule; False if the name is taken."""
        return bool(self._query(q.CREATE_SCHEDULE, schedule_params(row)))

    def upsert_schedules(self, rows: Sequence[ScheduleRow]) -> str | None:
        """Create or redefine schedules by name, all in one transaction.

        Returns:
            None, or the name of a schedule owned by another application, in which case
            nothing was written.
        """

        class _Foreign(Exception):
            pass

        def body(tx: Transaction) -> None:
            for row in rows:
                if not tx.execute(q.UPSERT_SCHEDULE, schedule_params(row)):
                    raise _Foreign(row.schedule_name)  # rolls the whole batch back

        try:
            self._transaction(body)
        except _Foreign as exc:
            return str(exc.args[0])
        return None

    def set_schedule_status(self, schedule_name: str, status: str) -> bool:
        """Pause or resume a schedule (clearing last_fired_at); False if it does not exist."""
        return bool(
            self._query(q.SET_SCHEDULE_STATUS, {"schedule_name": schedule_name, "status": status})
        )

    def delete_schedule(self, schedule_name: str) -> bool:
        """Delete a schedule; False if it did not exist."""
        return bool(self._query(q.DELETE_SCHEDULE, {"schedule_name": schedule_name}))

    def enqueue_scheduled(
        self,
        ticks: Sequence[ScheduledTick],
        *,
        only_if_active: bool,
        last_fired_at: str | None = None,
    ) -> list[str]:
        """Enqueue scheduled workflows whose IDs do not exist yet, in one transaction.

        `last_fired_at` is written to the schedule when this call created a row, so it
        tracks the newest tick some process enqueued.

        Returns:
            The IDs this call created.
        """

        def body(tx: Transaction) -> list[str]:
            created: list[str] = []
            for tick in ticks:
                params = {
                    "workflow_id": tick.workflow_id,
                    "name": tick.name,
                    "class_name": tick.class_name,
                    "queue_name": tick.queue_name,
                    "application_version": tick.application_version,
                    "application_name": tick.application_name,
                    "schedule_name": tick.schedule_name,
                    "creator_xid": str(uuid.uuid4()),
                    "only_if_active": only_if_active,
                    "now_ms": tick.now_ms,
                    "inputs": tick.inputs,
                }
                if tx.execute(q.ENQUEUE_SCHEDULED, params):
                    tx.execute(q.INSERT_INPUT, params)
                    created.append(tick.workflow_id)
            if created and last_fired_at is not None:
                tx.execute(
                    q.SET_LAST_FIRED_AT,
                    {"schedule_name": ticks[0].schedule_name, "last_fired_at": last_fired_at},
                )
            return created

        return self._transaction(body)
