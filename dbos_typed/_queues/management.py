"""Managing declared queues and delayed workflows at run time.

A queue is a row of the `queues` table, so these calls work from any process or client, on
any application's queue. Every running queue runner applies a change at its next pass: at
once in the process that made it and, on Postgres, in every other process (they are
notified); on SQLite other processes re-read the settings within about a second.

Inside a workflow the changes (`update_queue`, `delete_queue`, `set_workflow_delay`) are
checkpointed operations, and are refused inside a step; the reads are plain reads, as
`list_workflows` is.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.durable import checkpointed
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.serialization import Codec, codec_for
from dbos_typed._core.validate import checked_name, epoch_ms
from dbos_typed._queues.queues import RateLimit, WorkflowQueue, check_settings, queue_of, row_of
from dbos_typed._sysdb._rows import INTERNAL_QUEUE, QueueRow
from dbos_typed.errors import InvalidOptionError, NonExistentWorkflowError, QueueNotFoundError


class _Unchanged(enum.Enum):
    """The default of `update_queue`'s settings: keep the stored value."""

    UNCHANGED = "UNCHANGED"


_UNCHANGED = _Unchanged.UNCHANGED
_QUEUE_CODEC: Codec[Any] = codec_for(WorkflowQueue)
_NONE_CODEC: Codec[Any] = codec_for(None)


def retrieve_queue(ctx: Connected, name: str, /) -> WorkflowQueue:
    """A declared queue's settings, as stored now, whichever application owns it.

    Args:
        ctx: Any context, or a `Client`.
        name: The queue's name.

    Returns:
        The queue, with its owner in `application_name`.

    Raises:
        QueueNotFoundError: no queue of that name is declared (the internal queue has no
            settings to read either).
    """
    runtime = _runtime_of(ctx)
    name = checked_name(name, "name")
    row = None if name == INTERNAL_QUEUE else runtime.store.get_queue(name)
    if row is None:
        raise QueueNotFoundError(name)
    return queue_of(row)


def list_queues(
    ctx: Connected,
    /,
    *,
    application_names: Sequence[str] | None = None,
    all_applications: bool = False,
) -> list[WorkflowQueue]:
    """The declared queues, by name: this application's and the unclaimed ones by default.

    The internal queue is never listed.

    Args:
        ctx: Any context, or a `Client` (a client without an application name lists only
            the unclaimed queues by default).
        application_names: List the queues of these applications (and the unclaimed ones)
            instead.
        all_applications: List every queue in the database.
    """
    runtime = _runtime_of(ctx)
    if not isinstance(all_applications, bool):
        raise InvalidOptionError("all_applications", "expected a bool")
    owners: list[str] | None
    if application_names is not None:
        if all_applications:
            raise InvalidOptionError("application_names", "give it or all_applications, not both")
        if isinstance(application_names, str):
            raise InvalidOptionError("application_names", "expected a sequence of names")
        owners = [checked_name(n, "application_names") for n in application_names]
    elif all_applications:
        owners = None
    else:
        owners = [] if runtime.owner_name is None else [runtime.owner_name]
    return [queue_of(row) for row in runtime.store.list_queues_of(owners)]


def delete_queue(ctx: Connected, name: str, /) -> None:
    """Delete a declared queue; deleting one that does not exist does nothing.

    Durability: the queue's row is deleted; runners stop dequeuing from it at their next
    pass. Its ENQUEUED and DELAYED workflows stay as they are, and run once a queue of the
    same name is declared again; workflows already running finish. In a workflow it is a
    checkpointed step (`DBOS.deleteQueue`).

    Args:
        ctx: Any context, or a `Client`.
        name: The queue's name.

    Raises:
        InvalidOptionError: the name is the internal queue's, or it is called inside a step.
    """
    runtime = _runtime_for_change(ctx, "delete_queue")
    name = _changeable(name)

    def delete() -> None:
        runtime.queues.pop(name, None)
        if runtime.store.delete_queue(name):
            runtime.announce_queue_settings(name)

    checkpointed(ctx, "DBOS.deleteQueue", delete, _NONE_CODEC)


def update_queue(
    ctx: Connected,
    name: str,
    /,
    *,
    worker_concurrency: int | _Unchanged | None = _UNCHANGED,
    concurrency: int | _Unchanged | None = _UNCHANGED,
    limiter: RateLimit | _Unchanged | None = _UNCHANGED,
    priority_enabled: bool | _Unchanged = _UNCHANGED,
    partitioned: bool | _Unchanged = _UNCHANGED,
    polling_interval: timedelta | _Unchanged = _UNCHANGED,
) -> WorkflowQueue:
    """Change some settings of a declared queue, keeping the others.

    Only the settings given change; `None` removes a limit. The result is checked as
    `register_queue` checks a declaration (so `worker_concurrency` may not exceed the
    stored `concurrency`, and so on). Turning `partitioned` on leaves workflows enqueued
    without a partition key waiting until it is turned off again.

    Durability: the stored settings are read, changed and written in one transaction,
    with the row locked, so concurrent updates of different settings all take effect.
    Runners apply the new settings at their next pass. In a workflow it is a checkpointed
    step (`DBOS.updateQueue`) that returns the recorded queue on replay.

    Args:
        ctx: Any context, or a `Client`.
        name: The queue's name.
        worker_concurrency: Per-process limit on running workflows, or None.
        concurrency: Limit on running workflows across all processes, or None.
        limiter: A rate limit on starts, or None.
        priority_enabled: Allow `priority=` on enqueues.
        partitioned: Require a `partition_key=` on every enqueue.
        polling_interval: How often idle processes poll the database for this queue.

    Returns:
        The queue with its new settings.

    Raises:
        QueueNotFoundError: no queue of that name is declared.
        InvalidOptionError: a setting is out of range (the argument is named), the name is
            the internal queue's, or it is called inside a step.
    """
    runtime = _runtime_for_change(ctx, "update_queue")
    name = _changeable(name)
    given: dict[str, Any] = {
        "worker_concurrency": worker_concurrency,
        "concurrency": concurrency,
        "limiter": limiter,
        "priority_enabled": priority_enabled,
        "partitioned": partitioned,
        "polling_interval": polling_interval,
    }
    changes = {setting: value for setting, value in given.items() if value is not _UNCHANGED}

    def change(row: QueueRow) -> QueueRow:
        queue = replace(queue_of(row), **changes)
        check_settings(queue)
        return row_of(queue)

    def update() -> WorkflowQueue:
        row = runtime.store.update_queue(name, change, runtime.clock.now_ms())
        if row is None:
            raise QueueNotFoundError(name)
        runtime.queues[name] = row
        runtime.announce_queue_settings(name)
        return queue_of(row)

    queue: WorkflowQueue = checkpointed(ctx, "DBOS.updateQueue", update, _QUEUE_CODEC)
    return queue


def set_workflow_delay(
    ctx: Connected,
    workflow_id: str,
    /,
    *,
    delay: timedelta | None = None,
    until: datetime | None = None,
) -> None:
    """Move the start of a DELAYED workflow: `delay` from now, or `until` a given time.

    A time already past makes it start at once (through its queue, within its limits).
    A workflow that is not DELAYED (already enqueued, running or finished) is left as it
    is.

    Durability: the new time is stored, and runners (which re-read the next due time at
    every pass) are woken, so a shortened delay is not waited out to its old end. In a
    workflow it is a checkpointed step (`DBOS.setWorkflowDelay`); `delay` counts from
    when the step first runs.

    Args:
        ctx: Any context, or a `Client`.
        workflow_id: The delayed workflow.
        delay: Start it this long from now.
        until: Start it at this time; must carry a time zone.

    Raises:
        InvalidOptionError: neither or both of `delay` and `until`, a negative delay, a
            naive `until`, or it is called inside a step.
        NonExistentWorkflowError: there is no such workflow.
    """
    runtime = _runtime_for_change(ctx, "set_workflow_delay")
    workflow_id = checked_name(workflow_id, "workflow_id")
    if (delay is None) == (until is None):
        raise InvalidOptionError("delay", "give exactly one of delay and until")
    if delay is not None and (not isinstance(delay, timedelta) or delay < timedelta(0)):
        raise InvalidOptionError("delay", "expected a non-negative timedelta")
    until_ms = epoch_ms(until, "until")

    def set_delay() -> None:
        now = runtime.clock.now_ms()
        start_ms = until_ms
        if delay is not None:
            start_ms = now + int(delay.total_seconds() * 1000)
        assert start_ms is not None
        if runtime.store.set_workflow_delay(workflow_id, start_ms, now):
            runtime.announce_work()
        elif runtime.store.workflow_status(workflow_id) is None:
            raise NonExistentWorkflowError(workflow_id)

    checkpointed(ctx, "DBOS.setWorkflowDelay", set_delay, _NONE_CODEC)


def _runtime_of(ctx: object) -> Runtime:
    if not isinstance(ctx, Connected):
        raise InvalidOptionError("ctx", "expected a DBOSContext, WorkflowContext or Client")
    return ctx._runtime


def _runtime_for_change(ctx: object, call: str) -> Runtime:
    runtime = _runtime_of(ctx)
    if isinstance(ctx, WorkflowContext) and ctx._state.in_step:
        # A step may run more than once; a change is made once, as the workflow's own step.
        raise InvalidOptionError("ctx", f"{call} cannot be called from inside a step")
    return runtime


def _changeable(name: object) -> str:
    checked = checked_name(name, "name")
    if checked == INTERNAL_QUEUE:
        raise InvalidOptionError("name", f"{INTERNAL_QUEUE!r} belongs to dbos_typed")
    return checked
