"""`WorkflowStatus`: a typed view of one workflow's row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dbos_typed._core.identity import identity_from
from dbos_typed._core.serialization import ErrorRecord, JsonValue, decode_any
from dbos_typed._core.telemetry import without_carrier
from dbos_typed._sysdb._rows import StatusName, StatusRecord

__all__ = ["StatusName", "WorkflowStatus"]


@dataclass(frozen=True, slots=True)
class WorkflowStatus:
    """Where a workflow stands, as recorded in the system database.

    `input` and `output` are plain JSON values (`JsonValue`), as stored, whether or not
    this process has the workflow registered, so a status reads the same in every process
    (and from a `Client`); strict code narrows them, or validates them with the type it
    expects (`Order.model_validate(status.input)`). A payload that is not JSON (written
    by another SDK's own serializer) is the stored text itself.

    Attributes:
        workflow_id: The workflow's ID.
        status: PENDING, ENQUEUED, DELAYED, SUCCESS, ERROR, CANCELLED or
            MAX_RECOVERY_ATTEMPTS_EXCEEDED.
        name: The recorded workflow name.
        input: The workflow's input.
        output: Its result, once it succeeded.
        error: What it raised, once it failed.
        created_at: When it was first recorded.
        updated_at: When its row last changed.
        started_at: When it was last taken from a queue.
        completed_at: When it finished.
        application_version: The code version it runs on.
        application_name: The application that owns it.
        executor_id: The executor that last ran it.
        queue_name: The queue it is on, if any.
        recovery_attempts: How many times it has been started.
        timeout: Its time limit, if any.
        deadline: When that limit expires, once it is known.
        parent_workflow_id: The workflow that started it, for a child.
        deduplication_id: Its queue deduplication ID, while it has one.
        priority: Its queue priority (lower runs first).
        forked_from: The workflow it was forked from, if any.
        authenticated_user: The user recorded when it started.
        assumed_role: The role recorded when it started.
        authenticated_roles: The user's roles recorded when it started.
        attributes: Its free-form JSON attributes, if any.
        queue_partition_key: The partition of its queue it was enqueued on, if any.
        was_forked_from: Whether a fork was made of it.
        delay_until: When it leaves (or left) DELAYED for its queue, if it was delayed.
        class_name: The class of its workflow, as recorded by SDKs that have one.
        config_name: The configured instance of that class, likewise.
        serialization: The format its input and output are stored in.
        schedule_name: The cron schedule that started it, if any.
        debounce_deadline: The latest time its debounced burst may start, if any.
        is_debounced: Whether it is (or was) a debounced burst's workflow.
    """

    workflow_id: str
    status: StatusName
    name: str
    input: JsonValue
    output: JsonValue
    error: ErrorRecord | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    application_version: str | None
    application_name: str | None
    executor_id: str | None
    queue_name: str | None
    recovery_attempts: int
    timeout: timedelta | None
    deadline: datetime | None
    parent_workflow_id: str | None
    deduplication_id: str | None
    priority: int
    forked_from: str | None
    authenticated_user: str | None
    assumed_role: str | None
    authenticated_roles: tuple[str, ...] = ()
    attributes: dict[str, Any] | None = None
    queue_partition_key: str | None = None
    was_forked_from: bool = False
    delay_until: datetime | None = None
    class_name: str | None = None
    config_name: str | None = None
    serialization: str | None = None
    schedule_name: str | None = None
    debounce_deadline: datetime | None = None
    is_debounced: bool = False


def from_epoch_ms(ms: int | None) -> datetime | None:
    """A UTC datetime from epoch milliseconds."""
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def status_from_record(record: StatusRecord) -> WorkflowStatus:
    """Build the public status, its payloads decoded as plain JSON (the text if not JSON)."""
    input_value: JsonValue = None
    output_value: JsonValue = None
    if record.inputs is not None:
        try:
            input_value = _plain_input(decode_any(record.inputs))
        except ValueError:
            input_value = record.inputs
    if record.output is not None:
        try:
            output_value = decode_any(record.output)
        except ValueError:
            output_value = record.output
    return WorkflowStatus(
        workflow_id=record.workflow_id,
        status=record.status,
        name=record.name,
        input=input_value,
        output=output_value,
        error=None if record.error is None else ErrorRecord.decode(record.error),
        created_at=from_epoch_ms(record.created_at_ms) or datetime.fromtimestamp(0, tz=UTC),
        updated_at=from_epoch_ms(record.updated_at_ms) or datetime.fromtimestamp(0, tz=UTC),
        started_at=from_epoch_ms(record.started_at_ms),
        completed_at=from_epoch_ms(record.completed_at_ms),
        application_version=record.application_version,
        application_name=record.application_name,
        executor_id=record.executor_id,
        queue_name=record.queue_name,
        recovery_attempts=record.recovery_attempts,
        timeout=None if record.timeout_ms is None else timedelta(milliseconds=record.timeout_ms),
        deadline=from_epoch_ms(record.deadline_ms),
        parent_workflow_id=record.parent_workflow_id,
        deduplication_id=record.deduplication_id,
        priority=record.priority,
        forked_from=record.forked_from,
        authenticated_user=record.authenticated_user,
        assumed_role=record.assumed_role,
        authenticated_roles=identity_from(None, None, record.authenticated_roles).roles,
        attributes=without_carrier(_attributes(record.attributes)),
        queue_partition_key=record.queue_partition_key,
        was_forked_from=record.was_forked_from,
        delay_until=from_epoch_ms(record.delay_until_ms),
        class_name=record.class_name,
        config_name=record.config_name,
        serialization=record.serialization,
        schedule_name=record.schedule_name,
        debounce_deadline=from_epoch_ms(record.debounce_deadline_ms),
        is_debounced=record.is_debounced,
    )


def _attributes(text: str | None) -> dict[str, Any] | None:
    try:
        value = None if text is None else json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _plain_input(envelope: Any) -> Any:
    """The input of a workflow this process does not know, as plain JSON.

    A single argument is unwrapped from the envelope, no argument is None, and anything else
    (a workflow of another SDK with several arguments) is the envelope itself.
    """
    if not isinstance(envelope, dict):
        return envelope
    positional = envelope.get("positionalArgs") or []
    named = envelope.get("namedArgs") or {}
    values = [*positional, *named.values()] if isinstance(named, dict) else positional
    if len(values) == 1:
        return values[0]
    return None if not values else envelope
