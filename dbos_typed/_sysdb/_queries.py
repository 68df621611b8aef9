"""Every SQL statement, as named constants.

Statements are written once for both backends: `{s}` stands for the schema (formatted with
`psycopg.sql.Identifier` on Postgres, `main` on SQLite) and parameters are named
`%(name)s` (rewritten to `:name` for sqlite3). The few statements that need a feature only
one backend has carry a `_PG` or `_SQLITE` suffix.
"""

from __future__ import annotations

from typing import Final, LiteralString

# -- workflows -----------------------------------------------------------------------------

_INSERT_STATUS: Final = """
INSERT INTO {s}.workflow_status AS ws (
    workflow_uuid, status, name, executor_id, application_version, application_id,
    application_name, queue_name, recovery_attempts, workflow_timeout_ms,
    workflow_deadline_epoch_ms, deduplication_id, priority, queue_partition_key,
    delay_until_epoch_ms, parent_workflow_id, creator_xid, owner_xid, serialization,
    is_debounced, debounce_deadline_epoch_ms, authenticated_user, assumed_role,
    authenticated_roles, attributes, class_name, config_name, created_at, updated_at
) VALUES (
    %(workflow_id)s, %(status)s, %(name)s, %(executor_id)s, %(application_version)s,
    %(application_id)s, %(application_name)s, %(queue_name)s, %(recovery_attempts)s,
    %(timeout_ms)s, %(deadline_ms)s, %(deduplication_id)s, %(priority)s, %(partition_key)s,
    %(delay_until_ms)s, %(parent_workflow_id)s, %(creator_xid)s, %(owner_xid)s,
    'portable_json', %(is_debounced)s, %(debounce_deadline_ms)s, %(authenticated_user)s,
    %(assumed_role)s, %(authenticated_roles)s, %(attributes)s, %(class_name)s, %(config_name)s,
    %(now_ms)s, %(now_ms)s
)
ON CONFLICT (workflow_uuid) DO UPDATE SET creator_xid = ws.creator_xid
RETURNING status, name, queue_name, creator_xid, workflow_deadline_epoch_ms
"""

# One round trip on Postgres: the input is written only when this call created the row.
INSERT_WORKFLOW_PG: Final[LiteralString] = (
    "WITH ins AS ("
    + _INSERT_STATUS
    + """),
inp AS (
    INSERT INTO {s}.workflow_input (workflow_uuid, inputs, retention_timestamp)
    SELECT %(workflow_id)s, %(inputs)s, %(now_ms)s FROM ins WHERE ins.creator_xid = %(creator_xid)s
    ON CONFLICT (workflow_uuid) DO NOTHING
)
SELECT status, name, queue_name, creator_xid, workflow_deadline_epoch_ms FROM ins
"""
)

INSERT_STATUS: Final[LiteralString] = _INSERT_STATUS

INSERT_INPUT: Final[LiteralString] = """
INSERT INTO {s}.workflow_input (workflow_uuid, inputs, retention_timestamp)
VALUES (%(workflow_id)s, %(inputs)s, %(now_ms)s)
ON CONFLICT (workflow_uuid) DO NOTHING
"""

_COMPLETE_STATUS: Final = """
UPDATE {s}.workflow_status
SET status = %(status)s, deduplication_id = NULL, owner_xid = NULL,
    updated_at = %(now_ms)s, completed_at = %(now_ms)s
WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING'
  AND (CAST(%(owner_xid)s AS TEXT) IS NULL OR owner_xid = %(owner_xid)s)
RETURNING 1
"""

_UPSERT_OUTPUT: Final = """
INSERT INTO {s}.workflow_output (workflow_uuid, output, error, retention_timestamp)
"""

# The output row is written only if the status update found the workflow still PENDING,
# so a cancelled or preempted execution leaves no result behind.
COMPLETE_WORKFLOW_PG: Final[LiteralString] = (
    "WITH done AS ("
    + _COMPLETE_STATUS
    + "), stored AS ("
    + _UPSERT_OUTPUT
    + """SELECT %(workflow_id)s, %(output)s, %(error)s, %(now_ms)s WHERE EXISTS (SELECT 1 FROM done)
    ON CONFLICT (workflow_uuid) DO UPDATE SET output = EXCLUDED.output, error = EXCLUDED.error
    RETURNING 1
)
SELECT count(*) FROM done
"""
)

COMPLETE_STATUS: Final[LiteralString] = _COMPLETE_STATUS

UPSERT_OUTPUT: Final[LiteralString] = (
    _UPSERT_OUTPUT
    + """VALUES (%(workflow_id)s, %(output)s, %(error)s, %(now_ms)s)
ON CONFLICT (workflow_uuid) DO UPDATE SET output = excluded.output, error = excluded.error
"""
)

GET_OUTCOME: Final[LiteralString] = """
SELECT ws.status, COALESCE(wo.output, ws.output), COALESCE(wo.error, ws.error),
       ws.workflow_deadline_epoch_ms
FROM {s}.workflow_status ws
LEFT JOIN {s}.workflow_output wo ON wo.workflow_uuid = ws.workflow_uuid
WHERE ws.workflow_uuid = %(workflow_id)s
"""

# A workflow's status row: each column with the name `status_from_row` reads it by (the
# field of `StatusRecord`) and the SQL selecting it. `{inputs}`, `{output}` and `{error}`
# are filled in per statement: from the joined tables, or NULL when not loaded.
STATUS_FIELDS: Final[tuple[tuple[str, LiteralString], ...]] = (
    ("workflow_id", "ws.workflow_uuid"),
    ("status", "ws.status"),
    ("name", "ws.name"),
    ("inputs", "{inputs}"),
    ("output", "{output}"),
    ("error", "{error}"),
    ("executor_id", "ws.executor_id"),
    ("application_version", "ws.application_version"),
    ("application_name", "ws.application_name"),
    ("created_at_ms", "ws.created_at"),
    ("updated_at_ms", "ws.updated_at"),
    ("queue_name", "ws.queue_name"),
    ("recovery_attempts", "ws.recovery_attempts"),
    ("timeout_ms", "ws.workflow_timeout_ms"),
    ("deadline_ms", "ws.workflow_deadline_epoch_ms"),
    ("started_at_ms", "ws.started_at_epoch_ms"),
    ("completed_at_ms", "ws.completed_at"),
    ("parent_workflow_id", "ws.parent_workflow_id"),
    ("deduplication_id", "ws.deduplication_id"),
    ("priority", "ws.priority"),
    ("forked_from", "ws.forked_from"),
    ("authenticated_user", "ws.authenticated_user"),
    ("assumed_role", "ws.assumed_role"),
    ("serialization", "ws.serialization"),
    ("authenticated_roles", "ws.authenticated_roles"),
    ("attributes", "ws.attributes"),
    ("queue_partition_key", "ws.queue_partition_key"),
    ("was_forked_from", "ws.was_forked_from"),
    ("delay_until_ms", "ws.delay_until_epoch_ms"),
    ("class_name", "ws.class_name"),
    ("config_name", "ws.config_name"),
    ("schedule_name", "ws.schedule_name"),
    ("debounce_deadline_ms", "ws.debounce_deadline_epoch_ms"),
    ("is_debounced", "ws.is_debounced"),
)
STATUS_NAMES: Final = tuple(name for name, _ in STATUS_FIELDS)
STATUS_SELECT: Final[LiteralString] = (
    "\nSELECT "
    + ", ".join(column for _, column in STATUS_FIELDS)
    + "\nFROM {s}.workflow_status ws\n"
)

GET_STATUS: Final[LiteralString] = (
    STATUS_SELECT.replace("{inputs}", "COALESCE(wi.inputs, ws.inputs)")
    .replace("{output}", "COALESCE(wo.output, ws.output)")
    .replace("{error}", "COALESCE(wo.error, ws.error)")
    + """LEFT JOIN {s}.workflow_input wi ON wi.workflow_uuid = ws.workflow_uuid
LEFT JOIN {s}.workflow_output wo ON wo.workflow_uuid = ws.workflow_uuid
WHERE ws.workflow_uuid = %(workflow_id)s
"""
)

GET_INPUTS: Final[LiteralString] = """
SELECT COALESCE(wi.inputs, ws.inputs)
FROM {s}.workflow_status ws
LEFT JOIN {s}.workflow_input wi ON wi.workflow_uuid = ws.workflow_uuid
WHERE ws.workflow_uuid = %(workflow_id)s
"""

CANCEL_WORKFLOW: Final[LiteralString] = """
UPDATE {s}.workflow_status
SET status = 'CANCELLED', queue_name = NULL, deduplication_id = NULL,
    started_at_epoch_ms = NULL, owner_xid = NULL, updated_at = %(now_ms)s,
    completed_at = %(now_ms)s
WHERE workflow_uuid = %(workflow_id)s
  AND status NOT IN ('SUCCESS', 'ERROR', 'CANCELLED')
RETURNING 1
"""

CANCEL_IF_PAST_DEADLINE: Final[LiteralString] = """
UPDATE {s}.workflow_status
SET status = 'CANCELLED', queue_name = NULL, deduplication_id = NULL,
    started_at_epoch_ms = NULL, owner_xid = NULL, updated_at = %(now_ms)s,
    completed_at = %(now_ms)s
WHERE workflow_uuid = %(workflow_id)s AND status IN ('PENDING', 'ENQUEUED', 'DELAYED')
  AND workflow_deadline_epoch_ms IS NOT NULL AND workflow_deadline_epoch_ms <= %(now_ms)s
RETURNING 1
"""

RESUME_WORKFLOW: Final[LiteralString] = """
UPDATE {s}.workflow_status
SET status = 'ENQUEUED', queue_name = %(queue_name)s, recovery_attempts = 0,
    workflow_deadline_epoch_ms = NULL, deduplication_id = NULL, started_at_epoch_ms = NULL,
    completed_at = NULL, owner_xid = NULL, updated_at = %(now_ms)s
WHERE workflow_uuid = %(workflow_id)s AND status NOT IN ('SUCCESS', 'ERROR')
RETURNING 1
"""

WORKFLOW_OWNER: Final[LiteralString] = """
SELECT owner_xid FROM {s}.workflow_status WHERE workflow_uuid = %(workflow_id)s
"""

WORKFLOW_EXISTS: Final[LiteralString] = """
SELECT status FROM {s}.workflow_status WHERE workflow_uuid = %(workflow_id)s
"""

RECOVER_PENDING: Final[LiteralString] = """
UPDATE {s}.workflow_status
SET status = 'ENQUEUED', started_at_epoch_ms = NULL, owner_xid = NULL,
    queue_name = COALESCE(NULLIF(queue_name, ''), '_dbos_internal_queue'),
    updated_at = %(now_ms)s
WHERE status = 'PENDING' AND executor_id = %(executor_id)s
  AND application_version = %(application_version)s
  AND (application_name = %(application_name)s OR application_name IS NULL)
  AND updated_at < %(launched_ms)s
RETURNING workflow_uuid
"""

# Heartbeats (with Config.executor_heartbeat_timeout): a process touches the rows of the
# workflows it runs; rows of the same application version left untouched for longer than
# the timeout, and not run here, belong to a process that died, and go back to their queue
# as recovery would put them (the claim that follows fences the old run out).
_RUNNING_IDS_PG: Final = "(SELECT json_array_elements_text(%(workflow_ids)s::json))"
_RUNNING_IDS_SQLITE: Final = "(SELECT value FROM json_each(%(workflow_ids)s))"
_TOUCH_RUNNING: Final = """
UPDATE {s}.workflow_status SET updated_at = %(now_ms)s
WHERE status = 'PENDING' AND workflow_uuid IN """
TOUCH_RUNNING_PG: Final = _TOUCH_RUNNING + _RUNNING_IDS_PG
TOUCH_RUNNING_SQLITE: Final = _TOUCH_RUNNING + _RUNNING_IDS_SQLITE
_TAKE_OVER_SILENT: Final = """
UPDATE {s}.workflow_status
SET status = 'ENQUEUED', started_at_epoch_ms = NULL, owner_xid = NULL,
    queue_name = COALESCE(NULLIF(queue_name, ''), '_dbos_internal_queue'),
    updated_at = %(now_ms)s
WHERE status = 'PENDING' AND application_version = %(application_version)s
  AND (application_name = %(application_name)s OR application_name IS NULL)
  AND updated_at < %(silent_since_ms)s
  AND workflow_uuid NOT IN """
_TAKEN_RETURNING: Final = "\nRETURNING workflow_uuid, executor_id"
TAKE_OVER_SILENT_PG: Final = _TAKE_OVER_SILENT + _RUNNING_IDS_PG + _TAKEN_RETURNING
TAKE_OVER_SILENT_SQLITE: Final = _TAKE_OVER_SILENT + _RUNNING_IDS_SQLITE + _TAKEN_RETURNING

DEAD_LETTER: Final[LiteralString] = """
UPDATE {s}.workflow_status
SET status = 'MAX_RECOVERY_ATTEMPTS_EXCEEDED', queue_name = NULL, deduplication_id = NULL,
    started_at_epoch_ms = NULL, owner_xid = NULL, updated_at = %(now_ms)s
WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING'
"""

# -- queues --------------------------------------------------------------------------------

# A queue's row is owned by one application (or none); another application cannot take
# it over, so both upserts return nothing then. Otherwise they return the row as stored.
_INSERT_QUEUE: Final = """
INSERT INTO {s}.queues AS qs (
    name, concurrency, worker_concurrency, rate_limit_max, rate_limit_period_sec,
    priority_enabled, partition_queue, polling_interval_sec, application_name,
    created_at, updated_at
) VALUES (
    %(name)s, %(concurrency)s, %(worker_concurrency)s, %(rate_limit_max)s,
    %(rate_limit_period_sec)s, %(priority_enabled)s, %(partition_queue)s,
    %(polling_interval_sec)s, %(application_name)s, %(now_ms)s, %(now_ms)s
)
"""

_QUEUE_OWNED_AND_RETURNED: Final = """
WHERE qs.application_name IS NULL OR excluded.application_name IS NULL
   OR qs.application_name = excluded.application_name
RETURNING name, concurrency, worker_concurrency, rate_limit_max, rate_limit_period_sec,
          priority_enabled, partition_queue, polling_interval_sec, application_name
"""

UPSERT_QUEUE: Final[LiteralString] = (
    _INSERT_QUEUE
    + """ON CONFLICT (name) DO UPDATE SET
    concurrency = excluded.concurrency, worker_concurrency = excluded.worker_concurrency,
    rate_limit_max = excluded.rate_limit_max,
    rate_limit_period_sec = excluded.rate_limit_period_sec,
    priority_enabled = excluded.priority_enabled, partition_queue = excluded.partition_queue,
    polling_interval_sec = excluded.polling_interval_sec,
    application_name = COALESCE(qs.application_name, excluded.application_name),
    updated_at = excluded.updated_at"""
    + _QUEUE_OWNED_AND_RETURNED
)

# An existing row is kept as it is; the no-op update only makes the stored row (and the
# ownership check) come back in the same statement.
INSERT_QUEUE_IF_ABSENT: Final[LiteralString] = (
    _INSERT_QUEUE
    + "ON CONFLICT (name) DO UPDATE SET updated_at = qs.updated_at"
    + _QUEUE_OWNED_AND_RETURNED
)

_QUEUE_FIELDS: Final = """name, concurrency, worker_concurrency, rate_limit_max,
    rate_limit_period_sec, priority_enabled, partition_queue, polling_interval_sec,
    application_name"""

#: The columns of a queue's settings, which `queue_from` reads by name.
QUEUE_NAMES: Final = tuple(field.strip() for field in _QUEUE_FIELDS.split(","))
#: A queue's settings.
QUEUE_COLUMNS: Final[LiteralString] = "\nSELECT " + _QUEUE_FIELDS + "\nFROM {s}.queues\n"

LIST_QUEUES: Final[LiteralString] = (
    QUEUE_COLUMNS
    + """WHERE application_name = %(application_name)s OR application_name IS NULL
ORDER BY name
"""
)

GET_QUEUE: Final[LiteralString] = QUEUE_COLUMNS + "WHERE name = %(name)s\n"

# Reads a queue's row and locks it (both backends) for the rest of the transaction, so a
# concurrent change of another setting is not overwritten with what was read before it.
LOCK_QUEUE: Final[LiteralString] = (
    """
UPDATE {s}.queues SET updated_at = %(now_ms)s
WHERE name = %(name)s
RETURNING """
    + _QUEUE_FIELDS
)

# The owner is not a setting: it stays.
UPDATE_QUEUE: Final[LiteralString] = """
UPDATE {s}.queues
SET concurrency = %(concurrency)s, worker_concurrency = %(worker_concurrency)s,
    rate_limit_max = %(rate_limit_max)s, rate_limit_period_sec = %(rate_limit_period_sec)s,
    priority_enabled = %(priority_enabled)s, partition_queue = %(partition_queue)s,
    polling_interval_sec = %(polling_interval_sec)s, updated_at = %(now_ms)s
WHERE name = %(name)s
"""

DELETE_QUEUE: Final[LiteralString] = """
DELETE FROM {s}.queues WHERE name = %(name)s RETURNING name
"""

# The idle runner's only query: which queues (and partitions) have work, and when the
# next delayed workflow is due. It reads a few index entries per queue and per partition
# with work, however long the backlogs are: `queues` walks the distinct queue names of
# ENQUEUED rows through the in-flight index (each step is the first name after the last
# one, an index lookup), and `partitions` walks each such queue's partition keys through
# the partition index the same way. Every queue with work is listed with no partition
# key, and each partition of it again with its key; DELAYED rows have their own index.
_APP_SCOPE: Final = "(ws.application_name = %(application_name)s OR ws.application_name IS NULL)"
# Repeats the predicate of the partial in-flight indexes, redundant beside status =
# 'ENQUEUED': SQLite uses a partial index only for a query that spells its WHERE terms out.
IN_FLIGHT: Final = "ws.status IN ('ENQUEUED', 'PENDING')"
QUEUE_BACKLOG: Final[LiteralString] = (
    """
WITH RECURSIVE queues(queue_name) AS (
    SELECT (SELECT ws.queue_name FROM {s}.workflow_status ws
            WHERE ws.status = 'ENQUEUED' AND ws.queue_name IS NOT NULL AND """
    + IN_FLIGHT
    + " AND "
    + _APP_SCOPE
    + """
            ORDER BY ws.queue_name LIMIT 1)
    UNION ALL
    SELECT (SELECT ws.queue_name FROM {s}.workflow_status ws
            WHERE ws.status = 'ENQUEUED' AND ws.queue_name > queues.queue_name AND """
    + IN_FLIGHT
    + " AND "
    + _APP_SCOPE
    + """
            ORDER BY ws.queue_name LIMIT 1)
    FROM queues WHERE queues.queue_name IS NOT NULL
),
partitions(queue_name, partition_key) AS (
    SELECT queues.queue_name,
           (SELECT ws.queue_partition_key FROM {s}.workflow_status ws
            WHERE ws.queue_name = queues.queue_name AND ws.status = 'ENQUEUED'
              AND ws.queue_partition_key IS NOT NULL AND """
    + IN_FLIGHT
    + " AND "
    + _APP_SCOPE
    + """
            ORDER BY ws.queue_partition_key LIMIT 1)
    FROM queues WHERE queues.queue_name IS NOT NULL
    UNION ALL
    SELECT partitions.queue_name,
           (SELECT ws.queue_partition_key FROM {s}.workflow_status ws
            WHERE ws.queue_name = partitions.queue_name AND ws.status = 'ENQUEUED'
              AND ws.queue_partition_key > partitions.partition_key AND """
    + IN_FLIGHT
    + " AND "
    + _APP_SCOPE
    + """
            ORDER BY ws.queue_partition_key LIMIT 1)
    FROM partitions WHERE partitions.partition_key IS NOT NULL
)
SELECT NULL, NULL, min(ws.delay_until_epoch_ms)
FROM {s}.workflow_status ws
WHERE ws.status = 'DELAYED' AND """
    + _APP_SCOPE
    + """
UNION ALL
SELECT queue_name, NULL, NULL FROM queues WHERE queue_name IS NOT NULL
UNION ALL
SELECT queue_name, partition_key, NULL FROM partitions WHERE partition_key IS NOT NULL
"""
)

SET_WORKFLOW_DELAY: Final[LiteralString] = """
UPDATE {s}.workflow_status
SET delay_until_epoch_ms = %(delay_until_ms)s, updated_at = %(now_ms)s
WHERE workflow_uuid = %(workflow_id)s AND status = 'DELAYED'
RETURNING 1
"""

# A debounced workflow gives up its deduplication ID as it leaves DELAYED: its burst is
# over, and the next call with the same key starts a new one.
PROMOTE_DELAYED: Final[LiteralString] = """
UPDATE {s}.workflow_status
SET status = 'ENQUEUED', updated_at = %(now_ms)s,
    deduplication_id = CASE WHEN is_debounced THEN NULL ELSE deduplication_id END
WHERE status = 'DELAYED' AND delay_until_epoch_ms <= %(now_ms)s
  AND (application_name = %(application_name)s OR application_name IS NULL)
RETURNING queue_name
"""

# Serialises the dequeuers of one queue (or partition) that share a global budget, for the
# length of their transaction; see `PostgresStore.claim_queued`.
LOCK_QUEUE_PG: Final[LiteralString] = """
SELECT pg_advisory_xact_lock(%(lock_class)s, hashtext(%(lock_key)s))
"""

COUNT_RATE_LIMITED: Final[LiteralString] = """
SELECT count(*) FROM {s}.workflow_status
WHERE queue_name = %(queue_name)s AND rate_limited = TRUE
  AND status NOT IN ('ENQUEUED', 'DELAYED')
  AND started_at_epoch_ms > %(window_start_ms)s
  AND (queue_partition_key = %(partition_key)s OR %(partition_key)s IS NULL)
"""

COUNT_PENDING: Final[LiteralString] = """
SELECT count(*) FROM {s}.workflow_status
WHERE queue_name = %(queue_name)s AND status = 'PENDING'
  AND status IN ('ENQUEUED', 'PENDING')
  AND (queue_partition_key = %(partition_key)s OR %(partition_key)s IS NULL)
"""

_CLAIM_SET: Final = """
UPDATE {s}.workflow_status
SET status = 'PENDING', executor_id = %(executor_id)s,
    application_version = %(application_version)s,
    application_name = COALESCE(application_name, %(application_name)s),
    started_at_epoch_ms = %(now_ms)s, updated_at = %(now_ms)s,
    recovery_attempts = recovery_attempts + 1, owner_xid = %(owner_xid)s,
    rate_limited = %(rate_limited)s,
    workflow_deadline_epoch_ms = COALESCE(
        workflow_deadline_epoch_ms, %(now_ms)s + workflow_timeout_ms)
"""

# `status IN (...)` repeats the in-flight index's predicate for SQLite (see IN_FLIGHT).
# Postgres infers it, and given it, takes it as a second condition on the index's status
# column, after which the scan no longer yields rows in the index's order.
_CLAIM_WHERE_PG: Final = """
SELECT workflow_uuid FROM {s}.workflow_status
WHERE queue_name = %(queue_name)s AND status = 'ENQUEUED'
"""
_CLAIM_WHERE_SQLITE: Final = _CLAIM_WHERE_PG + "  AND status IN ('ENQUEUED', 'PENDING')\n"
_CLAIM_FILTER: Final = """  AND (application_version = %(application_version)s
       OR (application_version IS NULL AND %(accept_unversioned)s))
  AND (application_name = %(application_name)s OR application_name IS NULL)
  AND (queue_partition_key = %(partition_key)s OR %(partition_key)s IS NULL)
"""

_CLAIM_ORDER: Final = """ORDER BY priority, created_at
LIMIT %(limit)s
"""

# Only workflows this process can run are claimed (`names` is a JSON array of the
# registered [name, config name] pairs, "" for a workflow registered without a configured
# instance): another executor of the same version that registers more workflows takes the
# rest, instead of each claiming what it must hand back.
#
# On Postgres the pair is compared as one key, its name's length first so that no two
# pairs share it, against an array computed once: a plain filter on the in-flight index's
# scan, which then stops at the limit. Written as `IN (SELECT ...)` it became a join that
# read every ENQUEUED row of the queue and sorted them, at each claim (9 ms with 3,000
# waiting, whenever the row estimate was low).
_REGISTERED_PG: Final = (
    "length(name) || ':' || name || COALESCE(config_name, '') = ANY(ARRAY("
    "SELECT length(e->>0) || ':' || (e->>0) || (e->>1) "
    "FROM json_array_elements(%(names)s::json) e))"
)
_REGISTERED_SQLITE: Final = (
    "(name, COALESCE(config_name, '')) IN (SELECT json_extract(value, '$[0]'), "
    "json_extract(value, '$[1]') FROM json_each(%(names)s))"
)
_CLAIM_CANDIDATES_PG: Final = (
    _CLAIM_WHERE_PG + _CLAIM_FILTER + "  AND " + _REGISTERED_PG + "\n" + _CLAIM_ORDER
)
_CLAIM_CANDIDATES_SQLITE: Final = (
    _CLAIM_WHERE_SQLITE + _CLAIM_FILTER + "  AND " + _REGISTERED_SQLITE + "\n" + _CLAIM_ORDER
)

# ENQUEUED workflows of a queue, waiting since before a time, that no name in the list can
# claim, counted by name: what waits for an executor that has registered its workflow.
_UNCLAIMABLE_WHERE: Final = """
SELECT name, COALESCE(config_name, ''), count(*) FROM {s}.workflow_status
WHERE status = 'ENQUEUED' AND queue_name = %(queue_name)s
  AND status IN ('ENQUEUED', 'PENDING')
  AND (application_name = %(application_name)s OR application_name IS NULL)
  AND updated_at < %(waiting_since_ms)s
"""
_UNCLAIMABLE_GROUP: Final = "GROUP BY name, COALESCE(config_name, '') ORDER BY 1, 2"
UNCLAIMABLE_NAMES_PG: Final = (
    _UNCLAIMABLE_WHERE + "  AND NOT " + _REGISTERED_PG + "\n" + _UNCLAIMABLE_GROUP
)
UNCLAIMABLE_NAMES_SQLITE: Final = (
    _UNCLAIMABLE_WHERE + "  AND NOT " + _REGISTERED_SQLITE + "\n" + _UNCLAIMABLE_GROUP
)

_CLAIM_RETURNING: Final = """
RETURNING workflow_uuid, name, inputs, recovery_attempts, workflow_deadline_epoch_ms,
    queue_name, queue_partition_key, config_name
"""

# The candidates are picked once, in a materialised CTE: written as `IN (SELECT ... LIMIT)`
# Postgres may rescan the sub-select and claim more rows than the limit. The input comes
# back in the same round trip (it lives in workflow_input since 3.0).
CLAIM_QUEUED_PG: Final[LiteralString] = (
    "WITH picked AS MATERIALIZED ("
    + _CLAIM_CANDIDATES_PG
    + "FOR UPDATE SKIP LOCKED)"
    + _CLAIM_SET
    + """FROM picked
WHERE {s}.workflow_status.workflow_uuid = picked.workflow_uuid
  AND {s}.workflow_status.status = 'ENQUEUED'
RETURNING {s}.workflow_status.workflow_uuid, name,
    COALESCE((SELECT wi.inputs FROM {s}.workflow_input wi
              WHERE wi.workflow_uuid = {s}.workflow_status.workflow_uuid), inputs),
    recovery_attempts, workflow_deadline_epoch_ms, queue_name, queue_partition_key,
    config_name, EXISTS (SELECT 1 FROM {s}.operation_outputs oo
            WHERE oo.workflow_uuid = {s}.workflow_status.workflow_uuid)
"""
)

CLAIM_QUEUED_SQLITE: Final[LiteralString] = (
    _CLAIM_SET
    + "WHERE status = 'ENQUEUED' AND workflow_uuid IN ("
    + _CLAIM_CANDIDATES_SQLITE
    + ")"
    + _CLAIM_RETURNING
)

# A claimed workflow that could not be dispatched goes back to its queue instead of
# staying PENDING with nobody running it.
HAS_STEPS: Final[LiteralString] = """
SELECT 1 FROM {s}.operation_outputs WHERE workflow_uuid = %(workflow_id)s LIMIT 1
"""

REQUEUE_CLAIMED: Final[LiteralString] = """
UPDATE {s}.workflow_status
SET status = 'ENQUEUED', started_at_epoch_ms = NULL, owner_xid = NULL,
    rate_limited = FALSE, updated_at = %(now_ms)s
WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING'
"""

FIND_DEDUPLICATED: Final[LiteralString] = """
SELECT workflow_uuid FROM {s}.workflow_status
WHERE queue_name = %(queue_name)s AND deduplication_id = %(deduplication_id)s
"""

DEDUPLICATION_HOLDER: Final[LiteralString] = """
SELECT workflow_uuid, name, status, is_debounced FROM {s}.workflow_status
WHERE queue_name = %(queue_name)s AND deduplication_id = %(deduplication_id)s
"""

# -- debouncing ----------------------------------------------------------------------------

# Joins a live burst: the DELAYED, debounced row of the same workflow that holds the key on
# the queue. Its start moves to the new time, but never past its debounce deadline.
EXTEND_DEBOUNCED: Final[LiteralString] = """
UPDATE {s}.workflow_status
SET delay_until_epoch_ms = CASE
        WHEN debounce_deadline_epoch_ms IS NOT NULL
         AND debounce_deadline_epoch_ms < %(delay_until_ms)s THEN debounce_deadline_epoch_ms
        ELSE %(delay_until_ms)s
    END,
    updated_at = %(now_ms)s
WHERE queue_name = %(queue_name)s AND deduplication_id = %(deduplication_id)s
  AND status = 'DELAYED' AND is_debounced = TRUE AND name = %(name)s
RETURNING workflow_uuid
"""

# The burst runs with the input of its latest call.
REPLACE_INPUT: Final[LiteralString] = """
INSERT INTO {s}.workflow_input (workflow_uuid, inputs, retention_timestamp)
VALUES (%(workflow_id)s, %(inputs)s, %(now_ms)s)
ON CONFLICT (workflow_uuid) DO UPDATE SET inputs = excluded.inputs
"""

CHECK_SCHEMA: Final[LiteralString] = "SELECT max(version) FROM {s}.dbos_migrations"

# -- steps ---------------------------------------------------------------------------------

# Guarded by the workflow still being PENDING, and owned by the run writing (the token its
# start or claim set), so a cancelled or taken-over run's step leaves no checkpoint; and
# without a read before the write.
RECORD_STEP: Final[LiteralString] = """
INSERT INTO {s}.operation_outputs (
    workflow_uuid, function_id, function_name, output, error, child_workflow_id,
    started_at_epoch_ms, completed_at_epoch_ms, serialization, application_name,
    retention_timestamp
)
SELECT %(workflow_id)s, %(step_id)s, %(name)s, %(output)s, %(error)s, %(child_workflow_id)s,
       %(started_at_ms)s, %(completed_at_ms)s, 'portable_json', %(application_name)s,
       %(completed_at_ms)s
WHERE EXISTS (
    SELECT 1 FROM {s}.workflow_status
    WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING'
      AND (CAST(%(owner_xid)s AS TEXT) IS NULL OR owner_xid = %(owner_xid)s)
)
ON CONFLICT (workflow_uuid, function_id) DO NOTHING
RETURNING 1
"""

# A step's row: each column with the name `step_from` reads it by (the field of
# `StepRecord`). `{output}` and `{error}` are filled in per statement.
STEP_FIELDS: Final[tuple[tuple[str, LiteralString], ...]] = (
    ("step_id", "function_id"),
    ("name", "function_name"),
    ("output", "{output}"),
    ("error", "{error}"),
    ("child_workflow_id", "child_workflow_id"),
    ("started_at_ms", "started_at_epoch_ms"),
    ("completed_at_ms", "completed_at_epoch_ms"),
)
STEP_NAMES: Final = tuple(name for name, _ in STEP_FIELDS)
STEP_SELECT: Final[LiteralString] = (
    "\nSELECT "
    + ", ".join(column for _, column in STEP_FIELDS)
    + "\nFROM {s}.operation_outputs\nWHERE workflow_uuid = %(workflow_id)s\n"
)
_STEP_WITH_OUTPUT: Final[LiteralString] = STEP_SELECT.replace("{output}", "output").replace(
    "{error}", "error"
)

GET_STEP: Final[LiteralString] = _STEP_WITH_OUTPUT + "AND function_id = %(step_id)s\n"

LIST_STEPS: Final[LiteralString] = _STEP_WITH_OUTPUT + "ORDER BY function_id\n"

# -- application versions ------------------------------------------------------------------

REGISTER_VERSION: Final[LiteralString] = """
INSERT INTO {s}.application_versions (
    version_id, version_name, version_timestamp, created_at, application_name
) VALUES (%(version_id)s, %(version_name)s, %(now_ms)s, %(now_ms)s, %(application_name)s)
ON CONFLICT DO NOTHING
"""

# The latest version is the one with the newest timestamp; ties (two versions recorded in
# the same millisecond) are broken the same way everywhere.
_NEWEST_VERSION_FIRST: Final = "ORDER BY version_timestamp DESC, created_at DESC, version_name\n"

LATEST_VERSION: Final[LiteralString] = (
    """
SELECT version_name FROM {s}.application_versions
WHERE application_name = %(application_name)s OR application_name IS NULL
"""
    + _NEWEST_VERSION_FIRST
    + "LIMIT 1\n"
)

# With no application named, every application's versions.
LIST_VERSIONS: Final[LiteralString] = (
    """
SELECT version_id, version_name, version_timestamp, created_at, application_name
FROM {s}.application_versions
WHERE CAST(%(application_name)s AS TEXT) IS NULL
   OR application_name = %(application_name)s OR application_name IS NULL
"""
    + _NEWEST_VERSION_FIRST
)

# Now, or just past the newest version the application sees if that is later (clocks of
# different processes differ): the version becomes the latest either way.
SET_LATEST_VERSION: Final[LiteralString] = """
UPDATE {s}.application_versions
SET version_timestamp = (
    SELECT CASE WHEN MAX(o.version_timestamp) >= %(now_ms)s
                THEN MAX(o.version_timestamp) + 1 ELSE %(now_ms)s END
    FROM {s}.application_versions o
    WHERE o.application_name = %(application_name)s OR o.application_name IS NULL
)
WHERE version_name = %(version_name)s
  AND (application_name = %(application_name)s OR application_name IS NULL)
RETURNING version_name
"""

# -- messages ------------------------------------------------------------------------------

# A message whose ID is already stored (an idempotency key, or a workflow's send being
# retried) is dropped silently: a send is at most once per message ID.
INSERT_MESSAGE: Final[LiteralString] = """
INSERT INTO {s}.notifications (
    message_uuid, destination_uuid, topic, message, created_at_epoch_ms, serialization
) VALUES (
    %(message_id)s, %(destination_id)s, %(topic)s, %(message)s, %(now_ms)s, 'portable_json'
)
ON CONFLICT (message_uuid) DO NOTHING
"""

# The oldest unconsumed message on a topic; the row is kept, marked with the consuming step.
# `NOT consumed` is checked again on the row itself, so a concurrent consumer that got
# there first makes this one find nothing rather than take the same message.
CONSUME_MESSAGE: Final[LiteralString] = """
UPDATE {s}.notifications
SET consumed = TRUE, consumed_by_function_id = %(step_id)s
WHERE message_uuid = (
    SELECT message_uuid FROM {s}.notifications
    WHERE destination_uuid = %(workflow_id)s AND topic = %(topic)s AND NOT consumed
    ORDER BY created_at_epoch_ms, message_uuid
    LIMIT 1
) AND NOT consumed
RETURNING message
"""

_RECORD_SELECT: Final = """
INSERT INTO {s}.operation_outputs (
    workflow_uuid, function_id, function_name, output, error, child_workflow_id,
    started_at_epoch_ms, completed_at_epoch_ms, serialization, application_name,
    retention_timestamp
)
SELECT %(workflow_id)s, %(step_id)s, %(name)s, """

_IF_PENDING: Final = """, NULL, NULL,
       %(started_at_ms)s, %(completed_at_ms)s, 'portable_json', %(application_name)s,
       %(completed_at_ms)s
WHERE EXISTS (
    SELECT 1 FROM {s}.workflow_status
    WHERE workflow_uuid = %(workflow_id)s AND status = 'PENDING'
      AND (CAST(%(owner_xid)s AS TEXT) IS NULL OR owner_xid = %(owner_xid)s)
)
"""

# Receive in one round trip: lock the oldest message, checkpoint it, and mark it consumed
# only if the checkpoint was written (so a refused checkpoint consumes nothing).
RECEIVE_MESSAGE_PG: Final[LiteralString] = (
    """
WITH msg AS (
    SELECT message_uuid, message FROM {s}.notifications
    WHERE destination_uuid = %(workflow_id)s AND topic = %(topic)s AND NOT consumed
    ORDER BY created_at_epoch_ms, message_uuid
    LIMIT 1
    FOR UPDATE
), rec AS ("""
    + _RECORD_SELECT
    + "(SELECT message FROM msg)"
    + _IF_PENDING
    + """  AND EXISTS (SELECT 1 FROM msg)
    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
    RETURNING 1
), upd AS (
    UPDATE {s}.notifications
    SET consumed = TRUE, consumed_by_function_id = %(step_id)s
    WHERE message_uuid = (SELECT message_uuid FROM msg) AND EXISTS (SELECT 1 FROM rec)
    RETURNING 1
)
SELECT (SELECT message FROM msg), (SELECT count(*) FROM rec)
"""
)

# A workflow's send in one round trip: the message goes in only with its checkpoint.
SEND_FROM_WORKFLOW_PG: Final[LiteralString] = (
    "WITH rec AS ("
    + _RECORD_SELECT
    + "NULL"
    + _IF_PENDING
    + """    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
    RETURNING 1
), msg AS (
    INSERT INTO {s}.notifications (
        message_uuid, destination_uuid, topic, message, created_at_epoch_ms, serialization
    )
    SELECT %(message_id)s, %(destination_id)s, %(topic)s, %(message)s, %(now_ms)s,
           'portable_json'
    WHERE EXISTS (SELECT 1 FROM rec)
    ON CONFLICT (message_uuid) DO NOTHING
)
SELECT count(*) FROM rec
"""
)

HAS_MESSAGE: Final[LiteralString] = """
SELECT 1 FROM {s}.notifications
WHERE destination_uuid = %(workflow_id)s AND topic = %(topic)s AND NOT consumed
LIMIT 1
"""

# -- events --------------------------------------------------------------------------------

UPSERT_EVENT: Final[LiteralString] = """
INSERT INTO {s}.workflow_events (workflow_uuid, key, value, serialization)
VALUES (%(workflow_id)s, %(key)s, %(value)s, 'portable_json')
ON CONFLICT (workflow_uuid, key) DO UPDATE SET value = excluded.value,
    serialization = excluded.serialization
"""

UPSERT_EVENT_HISTORY: Final[LiteralString] = """
INSERT INTO {s}.workflow_events_history (workflow_uuid, function_id, key, value, serialization)
VALUES (%(workflow_id)s, %(step_id)s, %(key)s, %(value)s, 'portable_json')
ON CONFLICT (workflow_uuid, function_id, key) DO UPDATE SET value = excluded.value,
    serialization = excluded.serialization
"""

GET_EVENT: Final[LiteralString] = """
SELECT value FROM {s}.workflow_events WHERE workflow_uuid = %(workflow_id)s AND key = %(key)s
"""

ALL_EVENTS: Final[LiteralString] = """
SELECT key, value FROM {s}.workflow_events WHERE workflow_uuid = %(workflow_id)s ORDER BY key
"""

# -- streams -------------------------------------------------------------------------------

# Appends at the first unused offset (0-based), computed in the same statement.
APPEND_STREAM: Final[LiteralString] = """
INSERT INTO {s}.streams (workflow_uuid, key, value, "offset", function_id, serialization)
SELECT %(workflow_id)s, %(key)s, %(value)s,
       COALESCE((SELECT MAX("offset") FROM {s}.streams
                 WHERE workflow_uuid = %(workflow_id)s AND key = %(key)s), -1) + 1,
       %(step_id)s, 'portable_json'
"""

LAST_STREAM_VALUE: Final[LiteralString] = """
SELECT value FROM {s}.streams
WHERE workflow_uuid = %(workflow_id)s AND key = %(key)s
ORDER BY "offset" DESC
LIMIT 1
"""

# The writer's status and the values from an offset, in one snapshot. A LEFT JOIN so the
# status comes back even when nothing is written yet; no row at all: no such workflow.
READ_STREAM: Final[LiteralString] = """
SELECT ws.status, st."offset", st.value
FROM {s}.workflow_status ws
LEFT JOIN {s}.streams st
  ON st.workflow_uuid = ws.workflow_uuid AND st.key = %(key)s
 AND st."offset" >= %(offset)s AND st."offset" < %(offset)s + %(limit)s
WHERE ws.workflow_uuid = %(workflow_id)s
ORDER BY st."offset"
"""

# -- notifications (Postgres only) ---------------------------------------------------------

NOTIFY_BATCH_PG: Final[LiteralString] = """
SELECT pg_notify(%(channel)s, p) FROM unnest(%(payloads)s::text[]) AS p
"""

# A workflow's set_event in one round trip: the event and its history row are written
# only with the checkpoint.
SET_EVENT_FROM_WORKFLOW_PG: Final[LiteralString] = (
    "WITH rec AS ("
    + _RECORD_SELECT
    + "NULL"
    + _IF_PENDING
    + """    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
    RETURNING 1
), ev AS (
    INSERT INTO {s}.workflow_events (workflow_uuid, key, value, serialization)
    SELECT %(workflow_id)s, %(key)s, %(value)s, 'portable_json' WHERE EXISTS (SELECT 1 FROM rec)
    ON CONFLICT (workflow_uuid, key) DO UPDATE SET value = excluded.value,
        serialization = excluded.serialization
), hist AS (
    INSERT INTO {s}.workflow_events_history (
        workflow_uuid, function_id, key, value, serialization
    )
    SELECT %(workflow_id)s, %(step_id)s, %(key)s, %(value)s, 'portable_json'
    WHERE EXISTS (SELECT 1 FROM rec)
    ON CONFLICT (workflow_uuid, function_id, key) DO UPDATE SET value = excluded.value,
        serialization = excluded.serialization
)
SELECT count(*) FROM rec
"""
)

# A workflow's stream append in one round trip: nothing is written to a closed stream,
# and the value goes in only with its checkpoint. Returns (open, recorded).
APPEND_STREAM_FROM_WORKFLOW_PG: Final[LiteralString] = (
    """
WITH open AS (
    SELECT 1 WHERE NOT EXISTS (
        SELECT 1 FROM (
            SELECT value FROM {s}.streams
            WHERE workflow_uuid = %(workflow_id)s AND key = %(key)s
            ORDER BY "offset" DESC
            LIMIT 1
        ) last WHERE last.value = %(closed)s
    )
), rec AS ("""
    + _RECORD_SELECT
    + "NULL"
    + _IF_PENDING
    + """  AND EXISTS (SELECT 1 FROM open)
    ON CONFLICT (workflow_uuid, function_id) DO NOTHING
    RETURNING 1
), app AS (
    INSERT INTO {s}.streams (workflow_uuid, key, value, "offset", function_id, serialization)
    SELECT %(workflow_id)s, %(key)s, %(value)s,
           COALESCE((SELECT MAX("offset") FROM {s}.streams
                     WHERE workflow_uuid = %(workflow_id)s AND key = %(key)s), -1) + 1,
           %(step_id)s, 'portable_json'
    WHERE EXISTS (SELECT 1 FROM rec)
)
SELECT EXISTS (SELECT 1 FROM open), (SELECT count(*) FROM rec)
"""
)

# -- schedules -----------------------------------------------------------------------------

_SCHEDULE_COLUMNS: Final = """
schedule_id, schedule_name, workflow_name, workflow_class_name, schedule, status, context,
last_fired_at, automatic_backfill, cron_timezone, queue_name, application_name
"""
#: The columns of a schedule, which `schedule_from` reads by name.
SCHEDULE_NAMES: Final = tuple(field.strip() for field in _SCHEDULE_COLUMNS.split(","))

# The application's own schedules and unclaimed ones (application_name NULL, written by
# tools that serve every application).
LIST_SCHEDULES: Final[LiteralString] = (
    "SELECT"
    + _SCHEDULE_COLUMNS
    + """FROM {s}.workflow_schedules
WHERE CAST(%(application_name)s AS TEXT) IS NULL
   OR application_name = %(application_name)s OR application_name IS NULL
ORDER BY schedule_name
"""
)

GET_SCHEDULE: Final[LiteralString] = (
    "SELECT"
    + _SCHEDULE_COLUMNS
    + """FROM {s}.workflow_schedules
WHERE schedule_name = %(schedule_name)s
"""
)

_INSERT_SCHEDULE: Final = (
    "INSERT INTO {s}.workflow_schedules AS sc ("
    + _SCHEDULE_COLUMNS
    + """) VALUES (
    %(schedule_id)s, %(schedule_name)s, %(workflow_name)s, NULL, %(schedule)s, 'ACTIVE',
    %(context)s, NULL, %(automatic_backfill)s, %(cron_timezone)s, %(queue_name)s,
    %(application_name)s
)
"""
)

# A duplicate name returns no row; the caller reports the conflict.
CREATE_SCHEDULE: Final[LiteralString] = (
    _INSERT_SCHEDULE
    + """ON CONFLICT (schedule_name) DO NOTHING
RETURNING schedule_id
"""
)

# Replaces the definition of a schedule with the same name but keeps its identity and
# runtime state (schedule_id, status, last_fired_at). An unclaimed schedule is claimed; one
# owned by another application is left alone and no row is returned.
UPSERT_SCHEDULE: Final[LiteralString] = (
    _INSERT_SCHEDULE
    + """ON CONFLICT (schedule_name) DO UPDATE SET
    workflow_name = excluded.workflow_name, workflow_class_name = NULL,
    schedule = excluded.schedule, context = excluded.context,
    automatic_backfill = excluded.automatic_backfill, cron_timezone = excluded.cron_timezone,
    queue_name = excluded.queue_name,
    application_name = COALESCE(sc.application_name, excluded.application_name)
WHERE sc.application_name IS NULL OR sc.application_name = excluded.application_name
RETURNING schedule_id
"""
)

# Go resets last_fired_at on pause and resume, so a resumed schedule with automatic
# backfill does not enqueue the ticks of the paused period.
SET_SCHEDULE_STATUS: Final[LiteralString] = """
UPDATE {s}.workflow_schedules SET status = %(status)s, last_fired_at = NULL
WHERE schedule_name = %(schedule_name)s
RETURNING schedule_id
"""

DELETE_SCHEDULE: Final[LiteralString] = """
DELETE FROM {s}.workflow_schedules WHERE schedule_name = %(schedule_name)s
RETURNING schedule_id
"""

SET_LAST_FIRED_AT: Final[LiteralString] = """
UPDATE {s}.workflow_schedules SET last_fired_at = %(last_fired_at)s
WHERE schedule_name = %(schedule_name)s
"""

# One tick, a backfilled tick or a trigger, as an ENQUEUED row. The ID is deterministic, so
# when several processes fire the same tick the first insert wins and the others are no-ops.
# `only_if_active` makes the scheduler's own ticks stop the moment a schedule is paused or
# deleted anywhere, before this process's reconciler has noticed.
ENQUEUE_SCHEDULED: Final[LiteralString] = """
INSERT INTO {s}.workflow_status (
    workflow_uuid, status, name, class_name, queue_name, application_version,
    application_name, schedule_name, recovery_attempts, priority, creator_xid, serialization,
    created_at, updated_at
)
SELECT %(workflow_id)s, 'ENQUEUED', %(name)s, %(class_name)s, %(queue_name)s,
       %(application_version)s, %(application_name)s, %(schedule_name)s, 0, 0, %(creator_xid)s,
       'portable_json', %(now_ms)s, %(now_ms)s
WHERE NOT %(only_if_active)s OR EXISTS (
    SELECT 1 FROM {s}.workflow_schedules
    WHERE schedule_name = %(schedule_name)s AND status = 'ACTIVE'
)
ON CONFLICT (workflow_uuid) DO NOTHING
RETURNING workflow_uuid
"""

# -- data sources: the application's own Postgres database ---------------------------------

# Names a database and a role across connections and URLs: the server's cluster identifier
# (chosen at initdb), the database's name within it, and the role connected.
DATABASE_IDENTITY_PG: Final[LiteralString] = """
SELECT system_identifier::text, current_database(), current_user::text
FROM pg_catalog.pg_control_system()
"""

# The catalogs are readable by every role, even one without USAGE on the schema.
SCHEMA_EXISTS_PG: Final[LiteralString] = """
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s)
"""

COMPLETION_TABLE_EXISTS_PG: Final[LiteralString] = """
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relname = 'transaction_completion'
)
"""

CREATE_SCHEMA_PG: Final[LiteralString] = "CREATE SCHEMA IF NOT EXISTS {s}"

CREATE_COMPLETION_TABLE_PG: Final[LiteralString] = """
CREATE TABLE IF NOT EXISTS {s}.transaction_completion (
    workflow_id TEXT NOT NULL,
    step_id INT4 NOT NULL,
    output TEXT,
    error TEXT,
    serialization TEXT,
    created_at BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT,
    PRIMARY KEY (workflow_id, step_id)
)
"""

FIND_COMPLETION_PG: Final[LiteralString] = """
SELECT output, error FROM {s}.transaction_completion
WHERE workflow_id = %(workflow_id)s AND step_id = %(step_id)s
"""

# Nothing is inserted when the row exists: another execution of the same step committed
# first, and its outcome stands.
INSERT_COMPLETION_PG: Final[LiteralString] = """
INSERT INTO {s}.transaction_completion (workflow_id, step_id, output, error, serialization)
VALUES (%(workflow_id)s, %(step_id)s, %(output)s, %(error)s, 'portable_json')
ON CONFLICT (workflow_id, step_id) DO NOTHING
RETURNING 1
"""

DELETE_COMPLETIONS_PG: Final[LiteralString] = """
DELETE FROM {s}.transaction_completion WHERE workflow_id = ANY(%(workflow_ids)s)
"""

# A data source's transaction opens with its isolation level and a savepoint before the
# user's function; each pair is sent in one round trip.
START_ATTEMPT_PG: Final[dict[str, LiteralString]] = {
    "read_committed": "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SAVEPOINT dbos_step",
    "repeatable_read": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SAVEPOINT dbos_step",
    "serializable": "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SAVEPOINT dbos_step",
}

# After the function: deferred constraints are checked now, so that a violation is the
# function's failure and not a failed COMMIT after it.
END_USER_WRITES_PG: Final[LiteralString] = (
    "SET CONSTRAINTS ALL IMMEDIATE; RELEASE SAVEPOINT dbos_step"
)

# The function failed: its writes are undone and the transaction is usable again.
UNDO_USER_WRITES_PG: Final[LiteralString] = "ROLLBACK TO SAVEPOINT dbos_step"

# A data source on the system database writes its checkpoint in its own transaction. Under
# REPEATABLE READ or SERIALIZABLE that transaction's snapshot may predate a cancellation or
# a new claim of the workflow; locking the row first turns such a change into a
# serialization failure (and a retry on a fresh snapshot) rather than a checkpoint written
# past the guard.
LOCK_WORKFLOW_ROW_PG: Final[LiteralString] = """
SELECT 1 FROM {s}.workflow_status WHERE workflow_uuid = %(workflow_id)s FOR SHARE
"""
