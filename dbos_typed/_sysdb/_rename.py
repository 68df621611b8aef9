"""Re-owning rows: giving an application the rows another name (or no name) holds."""

from __future__ import annotations

from typing import Any, LiteralString

from dbos_typed._sysdb._store_base import StoreBase, Transaction

# Registries and unfinished workflows move in one transaction: an executor of the new name
# must never see a queued workflow whose version or queue row still belongs to the old one.
_REGISTRIES: tuple[LiteralString, ...] = ("queues", "workflow_schedules", "application_versions")
_UNFINISHED: LiteralString = " AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')"


def _owned_by(old_name: str | None, adopt_unclaimed: bool) -> LiteralString:
    """The rows to move: those of `old_name`, the unclaimed ones, or both."""
    clauses: list[LiteralString] = []
    if old_name is not None:
        clauses.append("application_name = %(old)s")
    if adopt_unclaimed:
        clauses.append("application_name IS NULL")
    joined: LiteralString = clauses[0]
    for clause in clauses[1:]:
        joined = joined + " OR " + clause
    return "(" + joined + ")"


class RenameStore(StoreBase):
    """Moving the rows of one application to another name."""

    def rename_application(
        self,
        *,
        old_name: str | None,
        new_name: str,
        adopt_unclaimed: bool,
        batch_size: int,
    ) -> tuple[int, int, int, int, int]:
        """Give `new_name` the rows `old_name` holds and, with `adopt_unclaimed`, unowned ones.

        Returns the rows moved: queues, schedules, versions, workflows and steps, in that order.

        Finished workflows and steps move in batches of about `batch_size` workflows, one
        transaction each, in workflow ID order; a run cut short is finished by running it again.
        """
        owned = _owned_by(old_name, adopt_unclaimed)
        params: dict[str, Any] = {"old": old_name, "new": new_name}

        def registries(tx: Transaction) -> tuple[int, int, int, int]:
            def move(table: LiteralString, extra: LiteralString = "") -> int:
                statement = (
                    "UPDATE {s}."
                    + table
                    + " SET application_name = %(new)s WHERE "
                    + owned
                    + extra
                    + " RETURNING 1"
                )
                return len(tx.execute(statement, params))

            queues, schedules, versions = (move(table) for table in _REGISTRIES)
            return queues, schedules, versions, move("workflow_status", _UNFINISHED)

        queues, schedules, versions, unfinished = self._transaction(registries)
        workflows = self._move_in_batches("workflow_status", owned, params, batch_size)
        steps = self._move_in_batches("operation_outputs", owned, params, batch_size)
        return queues, schedules, versions, unfinished + workflows, steps

    def _move_in_batches(
        self,
        table: LiteralString,
        owned: LiteralString,
        params: dict[str, Any],
        batch_size: int,
    ) -> int:
        """Move a table's rows in ranges of workflow IDs; how many rows moved.

        Ranges rather than LIMIT: each batch starts where the last ended, instead of paging past
        every row already moved; a workflow's rows all fall in one batch.
        """
        moved = 0
        after: str | None = None
        while True:
            past: LiteralString = "" if after is None else " AND workflow_uuid > %(after)s"
            bound: LiteralString = (
                "SELECT DISTINCT workflow_uuid FROM {s}."
                + table
                + " WHERE "
                + owned
                + past
                + " ORDER BY workflow_uuid LIMIT 1 OFFSET %(skip)s"
            )
            batch = {**params, "after": after, "skip": batch_size - 1}

            def body(
                tx: Transaction,
                batch: dict[str, Any] = batch,
                past: LiteralString = past,
                bound: LiteralString = bound,
            ) -> tuple[int, str | None]:
                found = tx.execute(bound, batch)
                upper = str(found[0][0]) if found else None
                # Without an upper bound this is the last batch: it takes every row left,
                # from the start, so rows that appeared behind the ranges still move.
                scope: LiteralString = (
                    past + " AND workflow_uuid <= %(upper)s" if upper is not None else ""
                )
                statement: LiteralString = (
                    "UPDATE {s}."
                    + table
                    + " SET application_name = %(new)s WHERE "
                    + owned
                    + scope
                    + " RETURNING 1"
                )
                return len(tx.execute(statement, {**batch, "upper": upper})), upper

            count, upper = self._transaction(body)
            moved += count
            if upper is None:
                return moved
            after = upper
