"""SQLite DDL for the DBOS system database, schema level 125, in one step.

The SQLite flavour of the DBOS system database is a subset of the Postgres one: the same
tables and columns with SQLite type names, but no ``event_dispatch_kv`` table, no
foreign key from ``operation_outputs``, no stored functions (``enqueue_workflow``,
``send_message``) and no NOTIFY trigger, since SQLite has neither; ``attributes`` is
plain text (no jsonb, no GIN index) and indexes that use ``INCLUDE`` on Postgres carry
``application_name`` as a trailing key column instead.

SQLite keeps the text of each ``CREATE`` statement in ``sqlite_master``, and DBOS tools
read column types and defaults back from it, so column order, declared type names and
default expressions follow what DBOS itself stores. Each entry is a single statement
(sqlite3 executes one at a time) with no schema qualifier and no query parameters; run
them in order inside one transaction on a file that has no ``dbos_migrations`` table.
"""

from __future__ import annotations

import sys
from typing import Final, LiteralString

__all__ = ["SCHEMA_VERSION", "SQLITE_ADDITIONS", "SQLITE_BASELINE"]

SCHEMA_VERSION: Final = 125
"""The DBOS system database schema level these statements create."""

# The default for "now in epoch milliseconds". DBOS stores the sub-second form when it
# runs on Python 3.12 or later and the whole-second form before that; choosing the same
# way keeps the catalog identical to the one DBOS would create in the same environment.
if sys.version_info >= (3, 12):
    _NOW_MS: Final[LiteralString] = "(unixepoch('subsec') * 1000)"
else:
    _NOW_MS: Final[LiteralString] = "(strftime('%s','now') * 1000)"

_TEMPLATES: Final[tuple[LiteralString, ...]] = (
    # DBOS tools keep exactly one row here and compare it with the level they know.
    "CREATE TABLE IF NOT EXISTS dbos_migrations (version INTEGER NOT NULL PRIMARY KEY)",
    # The primary key is nullable here, as in every SQLite system database DBOS creates;
    # declaring it NOT NULL would change the stored table definition.
    """
    CREATE TABLE IF NOT EXISTS workflow_status (
        workflow_uuid TEXT PRIMARY KEY,
        status TEXT,
        name TEXT,
        authenticated_user TEXT,
        assumed_role TEXT,
        authenticated_roles TEXT,
        request TEXT,
        output TEXT,
        error TEXT,
        executor_id TEXT,
        created_at INTEGER NOT NULL DEFAULT {now_ms},
        updated_at INTEGER NOT NULL DEFAULT {now_ms},
        application_version TEXT,
        application_id TEXT,
        class_name TEXT DEFAULT NULL,
        config_name TEXT DEFAULT NULL,
        recovery_attempts INTEGER DEFAULT 0,
        queue_name TEXT,
        workflow_timeout_ms INTEGER,
        workflow_deadline_epoch_ms INTEGER,
        inputs TEXT,
        started_at_epoch_ms INTEGER,
        deduplication_id TEXT,
        priority INTEGER NOT NULL DEFAULT 0,
        queue_partition_key TEXT,
        forked_from TEXT,
        owner_xid TEXT DEFAULT NULL,
        parent_workflow_id TEXT DEFAULT NULL,
        serialization TEXT DEFAULT NULL,
        delay_until_epoch_ms BIGINT DEFAULT NULL,
        was_forked_from BOOLEAN NOT NULL DEFAULT FALSE,
        rate_limited BOOLEAN NOT NULL DEFAULT FALSE,
        completed_at BIGINT,
        attributes TEXT,
        schedule_name TEXT,
        debounce_deadline_epoch_ms BIGINT DEFAULT NULL,
        is_debounced BOOLEAN NOT NULL DEFAULT FALSE,
        application_name TEXT DEFAULT NULL,
        creator_xid TEXT DEFAULT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS workflow_status_created_at_index ON workflow_status (created_at)",
    """
    CREATE UNIQUE INDEX IF NOT EXISTS uq_workflow_status_dedup_id
        ON workflow_status (queue_name, deduplication_id)
        WHERE deduplication_id IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_delayed
        ON workflow_status (delay_until_epoch_ms)
        WHERE status = 'DELAYED'
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_forked_from
        ON workflow_status (forked_from)
        WHERE forked_from IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_parent_workflow_id
        ON workflow_status (parent_workflow_id)
        WHERE parent_workflow_id IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_pending
        ON workflow_status (created_at)
        WHERE status = 'PENDING'
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_failed
        ON workflow_status (status, created_at)
        WHERE status IN ('ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_rate_limited
        ON workflow_status (queue_name, started_at_epoch_ms)
        WHERE rate_limited = TRUE
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_completed_at
        ON workflow_status (completed_at)
        WHERE completed_at IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_started_at
        ON workflow_status (started_at_epoch_ms)
        WHERE started_at_epoch_ms IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_schedule_name
        ON workflow_status (schedule_name)
        WHERE schedule_name IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_in_flight_v2
        ON workflow_status (queue_name, status, priority, created_at, application_name)
        WHERE status IN ('ENQUEUED', 'PENDING')
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_partition_dequeue_v3
        ON workflow_status (
            queue_name, status, queue_partition_key, priority, created_at, workflow_uuid,
            application_name
        )
        WHERE status IN ('ENQUEUED', 'PENDING') AND queue_partition_key IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_deadline
        ON workflow_status (workflow_deadline_epoch_ms)
        WHERE status IN ('ENQUEUED', 'PENDING', 'DELAYED')
            AND workflow_deadline_epoch_ms IS NOT NULL
    """,
    # Deliberately without a foreign key to workflow_status: step rows have their own
    # retention, and deleting a workflow does not cascade to them.
    """
    CREATE TABLE IF NOT EXISTS operation_outputs (
        workflow_uuid TEXT NOT NULL,
        function_id INTEGER NOT NULL,
        function_name TEXT NOT NULL DEFAULT '',
        output TEXT,
        error TEXT,
        child_workflow_id TEXT,
        started_at_epoch_ms INTEGER,
        completed_at_epoch_ms INTEGER,
        serialization TEXT,
        application_name TEXT DEFAULT NULL,
        retention_timestamp INTEGER NOT NULL DEFAULT {now_ms},
        PRIMARY KEY (workflow_uuid, function_id)
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_operation_outputs_retention
        ON operation_outputs (retention_timestamp)
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_operation_outputs_completed_at_function_name_v2
        ON operation_outputs (completed_at_epoch_ms, function_name, application_name)
    """,
    """
    CREATE TABLE IF NOT EXISTS workflow_input (
        workflow_uuid TEXT NOT NULL PRIMARY KEY,
        inputs TEXT,
        retention_timestamp INTEGER NOT NULL DEFAULT {now_ms}
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_input_retention
        ON workflow_input (retention_timestamp)
    """,
    """
    CREATE TABLE IF NOT EXISTS workflow_output (
        workflow_uuid TEXT NOT NULL PRIMARY KEY,
        output TEXT,
        error TEXT,
        retention_timestamp INTEGER NOT NULL DEFAULT {now_ms}
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_output_retention
        ON workflow_output (retention_timestamp)
    """,
    # A random hex string stands in for gen_random_uuid(), which SQLite lacks.
    """
    CREATE TABLE IF NOT EXISTS notifications (
        message_uuid TEXT NOT NULL DEFAULT (hex(randomblob(16))) PRIMARY KEY,
        destination_uuid TEXT NOT NULL,
        topic TEXT,
        message TEXT NOT NULL,
        created_at_epoch_ms INTEGER NOT NULL DEFAULT {now_ms},
        serialization TEXT DEFAULT NULL,
        consumed BOOLEAN NOT NULL DEFAULT FALSE,
        consumed_by_function_id INTEGER,
        FOREIGN KEY (destination_uuid) REFERENCES workflow_status (workflow_uuid)
            ON UPDATE CASCADE ON DELETE CASCADE
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_topic
        ON notifications (destination_uuid, topic)
    """,
    """
    CREATE TABLE IF NOT EXISTS workflow_events (
        workflow_uuid TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        serialization TEXT DEFAULT NULL,
        PRIMARY KEY (workflow_uuid, key),
        FOREIGN KEY (workflow_uuid) REFERENCES workflow_status (workflow_uuid)
            ON UPDATE CASCADE ON DELETE CASCADE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS workflow_events_history (
        workflow_uuid TEXT NOT NULL,
        function_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        serialization TEXT DEFAULT NULL,
        PRIMARY KEY (workflow_uuid, function_id, key),
        FOREIGN KEY (workflow_uuid) REFERENCES workflow_status (workflow_uuid)
            ON UPDATE CASCADE ON DELETE CASCADE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS streams (
        workflow_uuid TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        "offset" INTEGER NOT NULL,
        function_id INTEGER NOT NULL DEFAULT 0,
        serialization TEXT DEFAULT NULL,
        PRIMARY KEY (workflow_uuid, key, "offset"),
        FOREIGN KEY (workflow_uuid) REFERENCES workflow_status (workflow_uuid)
            ON UPDATE CASCADE ON DELETE CASCADE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS workflow_schedules (
        schedule_id TEXT PRIMARY KEY,
        schedule_name TEXT NOT NULL UNIQUE,
        workflow_name TEXT NOT NULL,
        workflow_class_name TEXT,
        schedule TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'ACTIVE',
        context TEXT NOT NULL,
        last_fired_at TEXT DEFAULT NULL,
        automatic_backfill BOOLEAN NOT NULL DEFAULT FALSE,
        cron_timezone TEXT DEFAULT NULL,
        queue_name TEXT DEFAULT NULL,
        application_name TEXT DEFAULT NULL
    )
    """,
    # As on Postgres: the global UNIQUE on version_name stays for older runtimes, the
    # partial unique indexes are the per-application key.
    """
    CREATE TABLE IF NOT EXISTS application_versions (
        version_id TEXT NOT NULL PRIMARY KEY,
        version_name TEXT NOT NULL UNIQUE,
        version_timestamp INTEGER NOT NULL DEFAULT {now_ms},
        created_at INTEGER NOT NULL DEFAULT {now_ms},
        application_name TEXT DEFAULT NULL
    )
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS uq_application_versions_owner_version
        ON application_versions (application_name, version_name)
        WHERE application_name IS NOT NULL
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS uq_application_versions_unclaimed_version
        ON application_versions (version_name)
        WHERE application_name IS NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_application_versions_timestamp
        ON application_versions (version_timestamp DESC)
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_application_versions_owner_timestamp
        ON application_versions (application_name, version_timestamp DESC)
    """,
    """
    CREATE TABLE IF NOT EXISTS queues (
        queue_id TEXT PRIMARY KEY DEFAULT (hex(randomblob(16))),
        name TEXT NOT NULL UNIQUE,
        concurrency INTEGER,
        worker_concurrency INTEGER,
        rate_limit_max INTEGER,
        rate_limit_period_sec REAL,
        priority_enabled BOOLEAN NOT NULL DEFAULT FALSE,
        partition_queue BOOLEAN NOT NULL DEFAULT FALSE,
        polling_interval_sec REAL NOT NULL DEFAULT 1.0,
        created_at INTEGER NOT NULL DEFAULT {now_ms},
        updated_at INTEGER NOT NULL DEFAULT {now_ms},
        application_name TEXT DEFAULT NULL,
        partition_concurrency INTEGER DEFAULT NULL,
        partition_worker_concurrency INTEGER DEFAULT NULL,
        partition_rate_limit_max INTEGER DEFAULT NULL,
        partition_rate_limit_period_sec REAL DEFAULT NULL
    )
    """,
    # Last, so that a reader never sees the level before everything above exists.
    """
    INSERT INTO dbos_migrations (version)
    SELECT 125
    WHERE NOT EXISTS (SELECT 1 FROM dbos_migrations)
    """,
)

SQLITE_BASELINE: Final[tuple[LiteralString, ...]] = tuple(
    template.format(now_ms=_NOW_MS) for template in _TEMPLATES
)
"""The statements creating schema level 125, in order."""

SQLITE_ADDITIONS: Final[tuple[LiteralString, ...]] = (
    # As on Postgres (see `_schema_postgres.ADDITIONS`): beside level 125, not part of it.
    """
    CREATE INDEX IF NOT EXISTS dbos_typed_workflow_status_name_created_at
        ON workflow_status (name, created_at, workflow_uuid)
    """,
)
"""Indexes this runtime adds beside level 125, each ``CREATE INDEX IF NOT EXISTS``."""
