"""Queues and what waits on them: queue settings, the backlog, delays, debouncing, versions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from dbos_typed._sysdb import _queries as q
from dbos_typed._sysdb._rows import (
    Backlog,
    Checkpoint,
    Debounced,
    Deduplicated,
    NewWorkflow,
    QueueRow,
    RecordResult,
    VersionRow,
)
from dbos_typed._sysdb._store_base import (
    StoreBase,
    Transaction,
    _NotRecorded,
    insert_params,
    queue_from,
    queue_params,
)


class QueueStore(StoreBase):
    """Operations on queues, queued and delayed work, and application versions."""

    def debounce_workflow(
        self,
        row: NewWorkflow,
        checkpoint: Checkpoint | None = None,
    ) -> Debounced | RecordResult:
        """Join the live burst of `row`'s deduplication ID on its queue, or start one with `row`.

        The live burst is the DELAYED, debounced row of the same workflow holding the ID.
        Joining it moves its start to `row.delay_until_ms` (capped by its debounce deadline)
        and replaces its input, in one transaction; without one, `row` is inserted. With
        `checkpoint`, the calling workflow's step is recorded in the same transaction, naming
        the workflow the call landed on as its child.

        Returns:
            Where the call landed; or, when the checkpoint was refused, why (nothing written).

        Raises:
            Deduplicated: another workflow holds the ID (see `deduplication_holder`).
        """
        params = insert_params(row)

        def body(tx: Transaction) -> Debounced:
            joined = tx.execute(q.EXTEND_DEBOUNCED, params)
            if joined:
                landed = Debounced(joined[0][0], row.name)
                tx.execute(q.REPLACE_INPUT, {**params, "workflow_id": landed.workflow_id})
            else:
                inserted = self._insert_in(tx, row)
                landed = Debounced(row.workflow_id, inserted.name)
                if inserted.name != row.name:
                    return landed  # the chosen ID belongs to another workflow; the caller refuses
            if checkpoint is not None:
                child = replace(checkpoint.step, child_workflow_id=landed.workflow_id)
                self._checkpoint_in(tx, replace(checkpoint, step=child))
            return landed

        try:
            return self._transaction(body)
        except _NotRecorded:
            assert checkpoint is not None
            return self._why_not_recorded(checkpoint.workflow_id, checkpoint.step.step_id)
        except Exception as exc:
            if self._is_deduplicated(exc):
                raise Deduplicated(row.deduplication_id) from exc
            raise

    def upsert_queue(
        self, row: QueueRow, now_ms: int, *, update_existing: bool = True
    ) -> QueueRow | None:
        """Create a queue's row, or update it if `update_existing`; return the stored row.

        Returns None, and changes nothing, if another application owns the name.
        """
        rows = self._query(
            q.UPSERT_QUEUE if update_existing else q.INSERT_QUEUE_IF_ABSENT,
            queue_params(row, now_ms),
        )
        return queue_from(rows[0]) if rows else None

    def update_queue(
        self, name: str, change: Callable[[QueueRow], QueueRow], now_ms: int
    ) -> QueueRow | None:
        """Rewrite a queue's settings from its current row, in one transaction.

        The row stays locked while `change` computes the new one (it may raise, and then
        nothing is written). The name and owner are kept.

        Returns:
            The row written, or None if there is no such queue.
        """

        def body(tx: Transaction) -> QueueRow | None:
            rows = tx.execute(q.LOCK_QUEUE, {"name": name, "now_ms": now_ms})
            if not rows:
                return None
            current = queue_from(rows[0])
            changed = replace(
                change(current), name=current.name, application_name=current.application_name
            )
            tx.execute(q.UPDATE_QUEUE, queue_params(changed, now_ms))
            return changed

        return self._transaction(body)

    def delete_queue(self, name: str) -> bool:
        """Delete a queue's row (its workflows stay); False if there was none."""
        return bool(self._query(q.DELETE_QUEUE, {"name": name}))

    def list_queues(self, application_name: str | None) -> list[QueueRow]:
        """The queues of an application, and those no application owns."""
        rows = self._query(q.LIST_QUEUES, {"application_name": application_name})
        return [queue_from(r) for r in rows]

    def get_queue(self, name: str) -> QueueRow | None:
        """One queue's row, or None."""
        rows = self._query(q.GET_QUEUE, {"name": name})
        return queue_from(rows[0]) if rows else None

    def queue_backlog(self, application_name: str) -> Backlog:
        """Which queues have ENQUEUED work and when the next DELAYED one is due, at once."""
        rows = self._query(q.QUEUE_BACKLOG, {"application_name": application_name})
        ready = frozenset((r[0], r[1]) for r in rows if r[0] is not None)
        delays = [int(r[2]) for r in rows if r[0] is None and r[2] is not None]
        return Backlog(ready, min(delays) if delays else None)

    def unclaimable_names(
        self,
        queue_name: str,
        application_name: str,
        names: Sequence[tuple[str, str]],
        waiting_since_ms: int,
    ) -> list[tuple[str, str, int]]:
        """(name, config name, count) of a queue's old ENQUEUED workflows not in `names`.

        `names` holds (name, config name) pairs, "" for no configured instance, as the
        config names returned do. Old: waiting since before `waiting_since_ms`.
        """
        query = q.UNCLAIMABLE_NAMES_PG if self.backend == "postgres" else q.UNCLAIMABLE_NAMES_SQLITE
        params = {
            "queue_name": queue_name,
            "application_name": application_name,
            "names": json.dumps(list(names)),
            "waiting_since_ms": waiting_since_ms,
        }
        return [
            (str(name), str(config), int(count))
            for name, config, count in self._query(query, params)
        ]

    def set_workflow_delay(self, workflow_id: str, delay_until_ms: int, now_ms: int) -> bool:
        """Move a DELAYED workflow's start time; False (nothing changed) if it is not DELAYED."""
        params = {"workflow_id": workflow_id, "delay_until_ms": delay_until_ms, "now_ms": now_ms}
        return bool(self._query(q.SET_WORKFLOW_DELAY, params))

    def promote_delayed(self, application_name: str, now_ms: int) -> list[str]:
        """Move DELAYED workflows whose delay has passed to ENQUEUED; returns their queues."""
        rows = self._query(
            q.PROMOTE_DELAYED, {"application_name": application_name, "now_ms": now_ms}
        )
        return [r[0] for r in rows]

    def register_version(self, application_name: str, version: str, now_ms: int) -> None:
        """Record the running application version (kept if already known)."""
        self._query(
            q.REGISTER_VERSION,
            {
                "version_id": str(uuid.uuid4()),
                "version_name": version,
                "now_ms": now_ms,
                "application_name": application_name,
            },
        )

    def latest_version(self, application_name: str) -> str | None:
        """The newest registered version of the application, if any."""
        rows = self._query(q.LATEST_VERSION, {"application_name": application_name})
        return rows[0][0] if rows else None

    def list_versions(self, application_name: str | None) -> list[VersionRow]:
        """An application's versions and unclaimed ones (every one for None), newest first."""
        rows = self._query(q.LIST_VERSIONS, {"application_name": application_name})
        return [
            VersionRow(
                version_id=r[0],
                version_name=r[1],
                timestamp_ms=int(r[2]),
                created_at_ms=int(r[3]),
                application_name=r[4],
            )
            for r in rows
        ]

    def set_latest_version(self, version_name: str, application_name: str, now_ms: int) -> bool:
        """Make a version the application's latest; False if it sees no such version."""
        rows = self._query(
            q.SET_LATEST_VERSION,
            {"version_name": version_name, "application_name": application_name, "now_ms": now_ms},
        )
        return bool(rows)
