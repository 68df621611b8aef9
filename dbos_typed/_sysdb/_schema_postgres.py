"""Postgres DDL for the DBOS system database, schema level 125, in one step.

DBOS tools (the CLI, Conductor, other SDKs) read and write these tables directly, so the
catalog they find must be exactly the one they expect: the same tables, column order,
types, defaults, constraint and index names, the LISTEN/NOTIFY trigger on
``notifications`` and the ``enqueue_workflow``/``send_message`` functions that clients in
other languages call. Rather than replaying a long history of incremental migrations, a
fresh schema is created directly in its final shape and stamped with level 125 in
``dbos_migrations``, after which any DBOS tool treats it as fully migrated.

Every statement names the schema through the ``{schema}`` placeholder (literal braces are
doubled) and is meant to be composed with :func:`baseline_statements` and executed without
query parameters, since the function bodies contain ``%s`` for ``format()``.

The statements are written for a schema that has no ``dbos_migrations`` row yet. They use
``IF NOT EXISTS``/``OR REPLACE`` so that a re-run after success is harmless, but they do
not upgrade a schema left at an older level: ``CREATE OR REPLACE FUNCTION`` would add an
overload next to an older ``enqueue_workflow`` instead of replacing it.
"""

from __future__ import annotations

from typing import Final, LiteralString

from psycopg import sql

__all__ = [
    "ADDITIONS",
    "POSTGRES_BASELINE",
    "SCHEMA_VERSION",
    "addition_statements",
    "baseline_statements",
]

SCHEMA_VERSION: Final = 125
"""The DBOS system database schema level these statements create."""

# The dollar-quote tag of every function body. A schema name containing it would end a
# body early once interpolated, so baseline_statements() refuses such names.
_BODY_TAG: Final = "$body$"

POSTGRES_BASELINE: Final[tuple[LiteralString, ...]] = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    # DBOS tools keep exactly one row here and compare it with the level they know.
    """
    CREATE TABLE IF NOT EXISTS {schema}.dbos_migrations (
        version bigint NOT NULL,
        CONSTRAINT dbos_migrations_pkey PRIMARY KEY (version)
    )
    """,
    # Column order matters to tools that SELECT * or copy rows positionally, so it follows
    # the order in which DBOS grew this table. inputs, output and error are superseded by
    # workflow_input/workflow_output and stay only for rows written before those existed;
    # readers take the new table's value and fall back to the column.
    """
    CREATE TABLE IF NOT EXISTS {schema}.workflow_status (
        workflow_uuid text NOT NULL,
        status text,
        name text,
        authenticated_user text,
        assumed_role text,
        authenticated_roles text,
        request text,
        output text,
        error text,
        executor_id text,
        created_at bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        updated_at bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        application_version text,
        application_id text,
        class_name varchar(255) DEFAULT NULL,
        config_name varchar(255) DEFAULT NULL,
        recovery_attempts bigint DEFAULT 0,
        queue_name text,
        workflow_timeout_ms bigint,
        workflow_deadline_epoch_ms bigint,
        inputs text,
        started_at_epoch_ms bigint,
        deduplication_id text,
        priority integer NOT NULL DEFAULT 0,
        queue_partition_key text,
        forked_from text,
        owner_xid text,
        parent_workflow_id text,
        serialization text,
        delay_until_epoch_ms bigint,
        was_forked_from boolean NOT NULL DEFAULT false,
        rate_limited boolean NOT NULL DEFAULT false,
        completed_at bigint,
        attributes jsonb,
        schedule_name text,
        debounce_deadline_epoch_ms bigint,
        is_debounced boolean NOT NULL DEFAULT false,
        application_name text,
        creator_xid text,
        CONSTRAINT workflow_status_pkey PRIMARY KEY (workflow_uuid)
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS workflow_status_created_at_index
        ON {schema}.workflow_status (created_at)
    """,
    # Deduplication is per queue and only for rows that ask for it, hence partial.
    """
    CREATE UNIQUE INDEX IF NOT EXISTS uq_workflow_status_dedup_id
        ON {schema}.workflow_status (queue_name, deduplication_id)
        WHERE deduplication_id IS NOT NULL
    """,
    # The partial indexes below each serve one hot query and stay small by covering only
    # the rows that query can return.
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_delayed
        ON {schema}.workflow_status (delay_until_epoch_ms)
        WHERE status = 'DELAYED'
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_forked_from
        ON {schema}.workflow_status (forked_from)
        WHERE forked_from IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_parent_workflow_id
        ON {schema}.workflow_status (parent_workflow_id)
        WHERE parent_workflow_id IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_pending
        ON {schema}.workflow_status (created_at)
        WHERE status = 'PENDING'
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_failed
        ON {schema}.workflow_status (status, created_at)
        WHERE status IN ('ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
    """,
    # Spelled "= true" rather than a bare boolean column so the stored predicate is the
    # one DBOS tools expect to find.
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_rate_limited
        ON {schema}.workflow_status (queue_name, started_at_epoch_ms)
        WHERE rate_limited = true
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_completed_at
        ON {schema}.workflow_status (completed_at)
        WHERE completed_at IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_started_at
        ON {schema}.workflow_status (started_at_epoch_ms)
        WHERE started_at_epoch_ms IS NOT NULL
    """,
    # GIN so that attribute filters can use jsonb containment (@>).
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_attributes
        ON {schema}.workflow_status USING gin (attributes)
        WHERE attributes IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_schedule_name
        ON {schema}.workflow_status (schedule_name)
        WHERE schedule_name IS NOT NULL
    """,
    # application_name is INCLUDEd rather than keyed: per-application counts can then run
    # index-only without changing the dequeue order the key columns define.
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_in_flight_v2
        ON {schema}.workflow_status (queue_name, status, priority, created_at)
        INCLUDE (application_name)
        WHERE status IN ('ENQUEUED', 'PENDING')
    """,
    # The trailing workflow_uuid makes the dequeue order total within a partition.
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_partition_dequeue_v3
        ON {schema}.workflow_status
            (queue_name, status, queue_partition_key, priority, created_at, workflow_uuid)
        INCLUDE (application_name)
        WHERE status IN ('ENQUEUED', 'PENDING') AND queue_partition_key IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_status_deadline
        ON {schema}.workflow_status (workflow_deadline_epoch_ms)
        WHERE status IN ('ENQUEUED', 'PENDING', 'DELAYED')
            AND workflow_deadline_epoch_ms IS NOT NULL
    """,
    # Deliberately without a foreign key to workflow_status: step rows have their own
    # retention (retention_timestamp), deleting a workflow does not cascade to them, and
    # recording a step takes no lock on the workflow's status row.
    """
    CREATE TABLE IF NOT EXISTS {schema}.operation_outputs (
        workflow_uuid text NOT NULL,
        function_id integer NOT NULL,
        function_name text NOT NULL DEFAULT '',
        output text,
        error text,
        child_workflow_id text,
        started_at_epoch_ms bigint,
        completed_at_epoch_ms bigint,
        serialization text,
        application_name text,
        retention_timestamp bigint NOT NULL
            DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        CONSTRAINT operation_outputs_pkey PRIMARY KEY (workflow_uuid, function_id)
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_operation_outputs_retention
        ON {schema}.operation_outputs (retention_timestamp)
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_operation_outputs_completed_at_function_name_v2
        ON {schema}.operation_outputs (completed_at_epoch_ms, function_name)
        INCLUDE (application_name)
    """,
    # Inputs and outputs are kept apart from workflow_status so that status scans stay
    # narrow and large payloads can be pruned without touching the status row.
    """
    CREATE TABLE IF NOT EXISTS {schema}.workflow_input (
        workflow_uuid text NOT NULL,
        inputs text,
        retention_timestamp bigint NOT NULL
            DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        CONSTRAINT workflow_input_pkey PRIMARY KEY (workflow_uuid)
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_input_retention
        ON {schema}.workflow_input (retention_timestamp)
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.workflow_output (
        workflow_uuid text NOT NULL,
        output text,
        error text,
        retention_timestamp bigint NOT NULL
            DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        CONSTRAINT workflow_output_pkey PRIMARY KEY (workflow_uuid)
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_output_retention
        ON {schema}.workflow_output (retention_timestamp)
    """,
    # The text column takes the uuid through an implicit assignment cast, which is how
    # the default must be stored (without an explicit ::text) to match.
    """
    CREATE TABLE IF NOT EXISTS {schema}.notifications (
        message_uuid text NOT NULL DEFAULT gen_random_uuid(),
        destination_uuid text NOT NULL,
        topic text,
        message text NOT NULL,
        created_at_epoch_ms bigint NOT NULL
            DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        serialization text,
        consumed boolean NOT NULL DEFAULT false,
        consumed_by_function_id integer,
        CONSTRAINT notifications_pkey PRIMARY KEY (message_uuid),
        CONSTRAINT notifications_destination_uuid_fkey FOREIGN KEY (destination_uuid)
            REFERENCES {schema}.workflow_status (workflow_uuid)
            ON UPDATE CASCADE ON DELETE CASCADE
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_workflow_topic
        ON {schema}.notifications (destination_uuid, topic)
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.workflow_events (
        workflow_uuid text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        serialization text,
        CONSTRAINT workflow_events_pkey PRIMARY KEY (workflow_uuid, key),
        CONSTRAINT workflow_events_workflow_uuid_fkey FOREIGN KEY (workflow_uuid)
            REFERENCES {schema}.workflow_status (workflow_uuid)
            ON UPDATE CASCADE ON DELETE CASCADE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.workflow_events_history (
        workflow_uuid text NOT NULL,
        function_id integer NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        serialization text,
        CONSTRAINT workflow_events_history_pkey PRIMARY KEY (workflow_uuid, function_id, key),
        CONSTRAINT workflow_events_history_workflow_uuid_fkey FOREIGN KEY (workflow_uuid)
            REFERENCES {schema}.workflow_status (workflow_uuid)
            ON UPDATE CASCADE ON DELETE CASCADE
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.streams (
        workflow_uuid text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        "offset" integer NOT NULL,
        function_id integer NOT NULL DEFAULT 0,
        serialization text,
        CONSTRAINT streams_pkey PRIMARY KEY (workflow_uuid, key, "offset"),
        CONSTRAINT streams_workflow_uuid_fkey FOREIGN KEY (workflow_uuid)
            REFERENCES {schema}.workflow_status (workflow_uuid)
            ON UPDATE CASCADE ON DELETE CASCADE
    )
    """,
    # Unused by this runtime; present because DBOS tools expect the table to exist.
    """
    CREATE TABLE IF NOT EXISTS {schema}.event_dispatch_kv (
        service_name text NOT NULL,
        workflow_fn_name text NOT NULL,
        key text NOT NULL,
        value text,
        update_seq numeric(38, 0),
        update_time numeric(38, 15),
        CONSTRAINT event_dispatch_kv_pkey PRIMARY KEY (service_name, workflow_fn_name, key)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.workflow_schedules (
        schedule_id text NOT NULL,
        schedule_name text NOT NULL,
        workflow_name text NOT NULL,
        workflow_class_name text,
        schedule text NOT NULL,
        status text NOT NULL DEFAULT 'ACTIVE',
        context text NOT NULL,
        last_fired_at text,
        automatic_backfill boolean NOT NULL DEFAULT false,
        cron_timezone text,
        queue_name text,
        application_name text,
        CONSTRAINT workflow_schedules_pkey PRIMARY KEY (schedule_id),
        CONSTRAINT workflow_schedules_schedule_name_key UNIQUE (schedule_name)
    )
    """,
    # The global UNIQUE on version_name is still required by older DBOS runtimes that may
    # share the database; the two partial unique indexes are the per-application key that
    # newer ones rely on (an unclaimed row, application_name NULL, is its own owner).
    """
    CREATE TABLE IF NOT EXISTS {schema}.application_versions (
        version_id text NOT NULL,
        version_name text NOT NULL,
        version_timestamp bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        created_at bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        application_name text,
        CONSTRAINT application_versions_pkey PRIMARY KEY (version_id),
        CONSTRAINT application_versions_version_name_key UNIQUE (version_name)
    )
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS uq_application_versions_owner_version
        ON {schema}.application_versions (application_name, version_name)
        WHERE application_name IS NOT NULL
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS uq_application_versions_unclaimed_version
        ON {schema}.application_versions (version_name)
        WHERE application_name IS NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_application_versions_timestamp
        ON {schema}.application_versions (version_timestamp DESC)
    """,
    """
    CREATE INDEX IF NOT EXISTS idx_application_versions_owner_timestamp
        ON {schema}.application_versions (application_name, version_timestamp DESC)
    """,
    # Unlike notifications.message_uuid, the cast to text is explicit here and is stored
    # that way, so it must stay explicit.
    """
    CREATE TABLE IF NOT EXISTS {schema}.queues (
        queue_id text NOT NULL DEFAULT gen_random_uuid()::text,
        name text NOT NULL,
        concurrency integer,
        worker_concurrency integer,
        rate_limit_max integer,
        rate_limit_period_sec double precision,
        priority_enabled boolean NOT NULL DEFAULT false,
        partition_queue boolean NOT NULL DEFAULT false,
        polling_interval_sec double precision NOT NULL DEFAULT 1.0,
        created_at bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        updated_at bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000.0)::bigint,
        application_name text,
        partition_concurrency integer,
        partition_worker_concurrency integer,
        partition_rate_limit_max integer,
        partition_rate_limit_period_sec double precision,
        CONSTRAINT queues_pkey PRIMARY KEY (queue_id),
        CONSTRAINT queues_name_key UNIQUE (name)
    )
    """,
    # Listeners wake on the payload "<destination_uuid>::<topic>" (empty if topic is NULL).
    # Every function pins its search_path so that a caller's search_path cannot redirect
    # the names used inside it.
    """
    CREATE OR REPLACE FUNCTION {schema}.notifications_function()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $body$
    BEGIN
        PERFORM pg_notify('dbos_notifications_channel', NEW.destination_uuid || '::' || NEW.topic);
        RETURN NEW;
    END;
    $body$
    """,
    "DROP TRIGGER IF EXISTS dbos_notifications_trigger ON {schema}.notifications",
    """
    CREATE TRIGGER dbos_notifications_trigger
        AFTER INSERT ON {schema}.notifications
        FOR EACH ROW EXECUTE FUNCTION {schema}.notifications_function()
    """,
    # Clients in other languages enqueue through this function by parameter name, so the
    # names, order, types and defaults are part of the contract, and so are the error
    # messages they match on. Inputs go to workflow_input in the "portable_json" envelope
    # {"positionalArgs": [...], "namedArgs": {...}} as json_build_object renders it.
    # Re-enqueueing an existing id only refreshes updated_at and returns the id; a clash
    # on (queue_name, deduplication_id) is reported as "DBOS queue duplicated".
    """
    CREATE OR REPLACE FUNCTION {schema}.enqueue_workflow(
        workflow_name text,
        queue_name text,
        positional_args json[] DEFAULT ARRAY[]::json[],
        named_args json DEFAULT '{{}}'::json,
        class_name text DEFAULT NULL,
        config_name text DEFAULT NULL,
        workflow_id text DEFAULT NULL,
        app_version text DEFAULT NULL,
        timeout_ms bigint DEFAULT NULL,
        deadline_epoch_ms bigint DEFAULT NULL,
        deduplication_id text DEFAULT NULL,
        priority integer DEFAULT NULL,
        queue_partition_key text DEFAULT NULL,
        authenticated_user text DEFAULT NULL,
        authenticated_roles text DEFAULT NULL,
        delay_until_epoch_ms bigint DEFAULT NULL,
        application_name text DEFAULT NULL
    )
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $body$
    DECLARE
        new_id text;
        now_ms bigint;
    BEGIN
        IF coalesce(workflow_name, '') = '' THEN
            RAISE EXCEPTION 'Workflow name cannot be null or empty';
        END IF;
        IF coalesce(queue_name, '') = '' THEN
            RAISE EXCEPTION 'Queue name cannot be null or empty';
        END IF;
        IF json_typeof(named_args) <> 'object' THEN
            RAISE EXCEPTION 'Named args must be a JSON object';
        END IF;
        IF workflow_id = '' THEN
            RAISE EXCEPTION 'Workflow ID cannot be an empty string if provided.';
        END IF;
        IF delay_until_epoch_ms < 0 THEN
            RAISE EXCEPTION 'delay_until_epoch_ms must be >= 0';
        END IF;

        new_id := coalesce(workflow_id, gen_random_uuid()::text);
        now_ms := (extract(epoch FROM now()) * 1000)::bigint;

        INSERT INTO {schema}.workflow_status (
            workflow_uuid, status, name, class_name, config_name,
            queue_name, deduplication_id, priority, queue_partition_key,
            application_version, created_at, updated_at, recovery_attempts,
            workflow_timeout_ms, workflow_deadline_epoch_ms, owner_xid, serialization,
            authenticated_user, authenticated_roles, delay_until_epoch_ms, application_name
        ) VALUES (
            new_id,
            CASE WHEN delay_until_epoch_ms IS NULL THEN 'ENQUEUED' ELSE 'DELAYED' END,
            workflow_name, class_name, config_name,
            queue_name, deduplication_id, coalesce(priority, 0), queue_partition_key,
            app_version, now_ms, now_ms, 0,
            timeout_ms, deadline_epoch_ms, gen_random_uuid()::text, 'portable_json',
            authenticated_user, authenticated_roles, delay_until_epoch_ms, application_name
        )
        ON CONFLICT (workflow_uuid) DO UPDATE SET updated_at = excluded.updated_at;

        INSERT INTO {schema}.workflow_input (workflow_uuid, inputs, retention_timestamp)
        VALUES (
            new_id,
            json_build_object('positionalArgs', positional_args, 'namedArgs', named_args)::text,
            now_ms
        )
        ON CONFLICT (workflow_uuid) DO NOTHING;

        RETURN new_id;
    EXCEPTION
        WHEN unique_violation THEN
            RAISE EXCEPTION 'DBOS queue duplicated'
                USING ERRCODE = 'unique_violation',
                      DETAIL = format(
                          'Workflow %s with queue %s and deduplication ID %s already exists',
                          new_id, queue_name, deduplication_id
                      );
    END;
    $body$
    """,
    # Sending with an explicit message_id is idempotent. A missing destination is reported
    # as "DBOS non-existent workflow" with the foreign_key_violation SQLSTATE.
    """
    CREATE OR REPLACE FUNCTION {schema}.send_message(
        destination_id text,
        message json,
        topic text DEFAULT NULL,
        message_id text DEFAULT NULL
    )
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $body$
    BEGIN
        INSERT INTO {schema}.notifications (
            message_uuid, destination_uuid, topic, message, serialization
        ) VALUES (
            coalesce(message_id, gen_random_uuid()::text),
            destination_id,
            coalesce(topic, '__null__topic__'),
            message,
            'portable_json'
        )
        ON CONFLICT (message_uuid) DO NOTHING;
    EXCEPTION
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'DBOS non-existent workflow'
                USING ERRCODE = 'foreign_key_violation',
                      DETAIL = format('Destination workflow %s does not exist', destination_id);
    END;
    $body$
    """,
    # Last, so that a reader never sees the level before everything above exists.
    """
    INSERT INTO {schema}.dbos_migrations (version)
    SELECT 125
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.dbos_migrations)
    """,
)
"""The statements creating schema level 125, in order, with ``{schema}`` placeholders."""

ADDITIONS: Final[tuple[tuple[str, LiteralString], ...]] = (
    # list_workflows(name=..., limit=...) in creation order (either way), and the scans of
    # one workflow name's history: without it a listing by name reads the whole table.
    (
        "dbos_typed_workflow_status_name_created_at",
        """
        CREATE INDEX IF NOT EXISTS dbos_typed_workflow_status_name_created_at
            ON {schema}.workflow_status (name, created_at, workflow_uuid)
        """,
    ),
)
"""Indexes this runtime adds beside level 125: (name, ``CREATE INDEX IF NOT EXISTS``).

DBOS tools neither know nor mind an extra index, so these stay outside the baseline (whose
catalog must equal DBOS's) and outside the version level: `migrate` creates each one that
is missing, on a new schema and on one that DBOS or an older dbos_typed made. The names
carry a ``dbos_typed_`` prefix so that no DBOS migration can ever create an index of the
same name and trip over ours.
"""


def baseline_statements(schema: str) -> list[sql.Composed]:
    """Compose the baseline for one schema, ready to run in a single transaction.

    Args:
        schema: The system schema name, unquoted; any name Postgres accepts, including
            ones that need quoting.

    Returns:
        One composed statement per entry of ``POSTGRES_BASELINE``, to be executed without
        query parameters.

    Raises:
        ValueError: If ``schema`` contains the dollar-quote tag of the function bodies,
            which would terminate a body early.
    """
    if _BODY_TAG in schema:
        raise ValueError(f"schema name {schema!r} must not contain {_BODY_TAG!r}")
    name = sql.Identifier(schema)
    return [sql.SQL(statement).format(schema=name) for statement in POSTGRES_BASELINE]


def addition_statements(schema: str) -> list[tuple[str, sql.Composed]]:
    """Compose the additions for one schema: (index name, statement) pairs."""
    name = sql.Identifier(schema)
    return [(index, sql.SQL(statement).format(schema=name)) for index, statement in ADDITIONS]
