"""The system-database interface the runtime uses: every feature store, together.

Each feature has its store (`_workflow_store`, `_queue_store`, `_message_store`,
`_schedule_store`, `_management`, `_aggregates`, `_rename`, `_export`), built on the primitives of
`_store_base`; a backend (`_postgres`, `_sqlite`) subclasses `SystemStore` and provides
the primitives.
"""

from __future__ import annotations

from dbos_typed._sysdb._aggregates import AggregateStore
from dbos_typed._sysdb._export import ExportStore
from dbos_typed._sysdb._message_store import MessageStore
from dbos_typed._sysdb._queue_store import QueueStore
from dbos_typed._sysdb._rename import RenameStore
from dbos_typed._sysdb._schedule_store import ScheduleStore
from dbos_typed._sysdb._store_base import Row, Transaction

__all__ = ["Row", "SystemStore", "Transaction"]


class SystemStore(
    AggregateStore, RenameStore, QueueStore, MessageStore, ScheduleStore, ExportStore
):
    """Typed access to the DBOS system database; one method per operation.

    `AggregateStore` brings `ManagementStore` and `WorkflowStore`, which it builds on.
    """
