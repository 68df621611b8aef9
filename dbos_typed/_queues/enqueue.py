"""Putting a workflow on a queue: option checks and the row, shared by contexts and clients.

An enqueue only writes a row (ENQUEUED, or DELAYED until its delay passes); a queue runner
somewhere claims it later. Only the timeout is stored: its deadline is set when the
workflow is dequeued, so time spent waiting in the queue does not count against it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypedDict

from dbos_typed._core.identity import Identity
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.validate import checked_name, optional_name, wait_seconds
from dbos_typed._queues.queues import WorkflowQueue
from dbos_typed._sysdb._rows import (
    INTERNAL_QUEUE,
    NewWorkflow,
    QueueRow,
    StatusName,
)
from dbos_typed.errors import (
    InvalidOptionError,
    QueueDeduplicatedError,
)

DeduplicationPolicy = Literal["reject", "return_existing"]

_MAX_PRIORITY = 2**31 - 1
_POLICIES = ("reject", "return_existing")
# A holder found by its deduplication ID may finish (and free the ID) before we read it;
# then the insert is simply tried again.
DEDUP_ATTEMPTS = 5


class EnqueueOptions(TypedDict, total=False):
    """The keyword options of an enqueue, as the typed signatures take them.

    The functions that read them give each its default: a missing key is as if not given.
    """

    workflow_id: str | None
    timeout: timedelta | None
    deduplication_id: str | None
    deduplication_policy: DeduplicationPolicy
    priority: int | None
    partition_key: str | None
    delay: timedelta | None
    identity: Identity | None
    attributes: Mapping[str, Any] | None
    application_version: str | None


class ClientEnqueueOptions(EnqueueOptions, total=False):
    """The keyword options of a client's `enqueue`: those of any enqueue, and the instance.

    A context starts a configured instance's workflow with the method bound to its
    object; a client names the workflow, so it names the instance too.
    """

    config_name: str | None
    class_name: str | None


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """Validated queue options of one enqueue."""

    queue_name: str
    deduplication_id: str | None
    policy: DeduplicationPolicy
    priority: int
    partition_key: str | None
    delay_ms: int | None


def queue_name(queue: object) -> str:
    """The name of a queue given as a `WorkflowQueue` or by name."""
    name = queue.name if isinstance(queue, WorkflowQueue) else queue
    if not isinstance(name, str) or not name:
        raise InvalidOptionError("queue", "expected a WorkflowQueue or a non-empty queue name")
    return checked_name(name, "queue")


def check_queue_options(
    runtime: Runtime,
    queue: WorkflowQueue | str | None,
    *,
    deduplication_id: str | None,
    deduplication_policy: DeduplicationPolicy,
    priority: int | None,
    partition_key: str | None,
    delay: timedelta | None,
) -> QueueOptions | None:
    """Check the queue-related options of a start; None when there is no queue.

    Raises:
        InvalidOptionError: a bad or inconsistent option, naming the argument.
    """
    if deduplication_policy not in _POLICIES:
        raise InvalidOptionError("deduplication_policy", "expected 'reject' or 'return_existing'")
    if queue is None:
        if (
            deduplication_id is None
            and deduplication_policy == "reject"
            and priority is None
            and partition_key is None
            and delay is None
        ):
            return None  # no queue option given: nothing to refuse
        given = (
            ("deduplication_id", deduplication_id is not None),
            ("deduplication_policy", deduplication_policy != "reject"),
            ("priority", priority is not None),
            ("partition_key", partition_key is not None),
            ("delay", delay is not None),
        )
        for argument, present in given:
            if present:
                raise InvalidOptionError(argument, "only valid together with queue=")
        return None
    name = queue_name(queue)
    optional_name(deduplication_id, "deduplication_id")
    if deduplication_policy != "reject" and deduplication_id is None:
        raise InvalidOptionError("deduplication_policy", "needs a deduplication_id")
    optional_name(partition_key, "partition_key")
    if partition_key is not None and deduplication_id is not None:
        raise InvalidOptionError("partition_key", "cannot be combined with deduplication_id")
    if priority is not None and (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not 0 <= priority <= _MAX_PRIORITY
    ):
        raise InvalidOptionError("priority", f"expected an int from 0 to {_MAX_PRIORITY}")
    if delay is not None and (not isinstance(delay, timedelta) or delay < timedelta(0)):
        raise InvalidOptionError("delay", "expected a non-negative timedelta or None")
    partitioned, priority_enabled = queue_flags(runtime, queue, name)
    if partitioned and partition_key is None:
        raise InvalidOptionError("partition_key", f"queue {name!r} is partitioned; give a key")
    if not partitioned and partition_key is not None:
        raise InvalidOptionError("partition_key", f"queue {name!r} is not partitioned")
    if priority and not priority_enabled:
        raise InvalidOptionError(
            "priority", f"queue {name!r} was not declared with priority_enabled=True"
        )
    delay_ms = None if delay is None else int(wait_seconds(delay) * 1000)
    return QueueOptions(
        queue_name=name,
        deduplication_id=deduplication_id,
        policy=deduplication_policy,
        priority=priority or 0,
        partition_key=partition_key,
        delay_ms=delay_ms or None,
    )


def unpartitioned_queue_name(runtime: Runtime, queue: WorkflowQueue | str) -> str:
    """The name of an existing queue that takes work without a partition key.

    Raises:
        InvalidOptionError: the queue is unnamed, unknown or partitioned.
    """
    name = queue_name(queue)
    partitioned, _ = queue_flags(runtime, queue, name)
    if partitioned:
        raise InvalidOptionError("queue", f"queue {name!r} is partitioned; choose another")
    return name


def queue_flags(runtime: Runtime, queue: WorkflowQueue | str, name: str) -> tuple[bool, bool]:
    """(partitioned, priority_enabled) of the target queue, which must exist.

    Raises:
        InvalidOptionError: no queue has that name.
    """
    if isinstance(queue, WorkflowQueue):
        return queue.partitioned, queue.priority_enabled
    if name == INTERNAL_QUEUE:
        return False, True
    row = known_queue(runtime, name)
    if row is None:
        raise InvalidOptionError(
            "queue", f"no queue named {name!r}; declare it with register_queue"
        )
    return row.partition_queue, row.priority_enabled


def known_queue(runtime: Runtime, name: str) -> QueueRow | None:
    """The settings of the queue of that name (cached once read), or None if none is stored."""
    row = runtime.queues.get(name)
    if row is None:
        row = runtime.store.get_queue(name)
        if row is not None:
            runtime.queues[name] = row
    return row


def queued_row(
    runtime: Runtime,
    options: QueueOptions,
    *,
    workflow_id: str,
    name: str,
    inputs: str,
    timeout_ms: int | None,
    application_version: str | None,
    parent_workflow_id: str | None = None,
) -> NewWorkflow:
    """The ENQUEUED (or DELAYED) row for an enqueue."""
    now = runtime.clock.now_ms()
    delayed = options.delay_ms is not None
    return NewWorkflow(
        workflow_id=workflow_id,
        status=StatusName.DELAYED if delayed else StatusName.ENQUEUED,
        name=name,
        inputs=inputs,
        executor_id=runtime.executor_id,
        application_version=application_version,
        application_name=runtime.owner_name,
        application_id=None,
        creator_xid=str(uuid.uuid4()),
        now_ms=now,
        queue_name=options.queue_name,
        timeout_ms=timeout_ms,
        deadline_ms=None,
        parent_workflow_id=parent_workflow_id,
        deduplication_id=options.deduplication_id,
        priority=options.priority,
        partition_key=options.partition_key,
        delay_until_ms=now + options.delay_ms if options.delay_ms is not None else None,
    )


def timeout_ms_of(timeout: timedelta | None) -> int | None:
    """A timeout in whole milliseconds (at least 1), as `workflow_timeout_ms` stores it.

    Longer than `LONGEST_WAIT` is shortened to it, so the deadline stays a valid time.
    """
    return None if timeout is None else max(1, int(wait_seconds(timeout) * 1000))


def checked_timeout_ms(timeout: object) -> int | None:
    """A workflow's `timeout` argument, checked, in milliseconds (`timeout_ms_of`).

    Raises:
        InvalidOptionError: it is neither None nor a positive timedelta.
    """
    if timeout is not None and (not isinstance(timeout, timedelta) or timeout <= timedelta(0)):
        raise InvalidOptionError("timeout", "expected a positive timedelta or None")
    return timeout_ms_of(timeout)


def deduplication_holder(
    runtime: Runtime, row: NewWorkflow, policy: DeduplicationPolicy
) -> str | None:
    """After a deduplication collision: raise for "reject", else return the holder's ID.

    None means the holder released the ID meanwhile, so the insert may be tried again.
    """
    queue_name = row.queue_name or ""
    deduplication_id = row.deduplication_id or ""
    if policy == "reject":
        raise QueueDeduplicatedError(
            row.workflow_id, queue_name=queue_name, deduplication_id=deduplication_id
        )
    return runtime.store.find_deduplicated(queue_name, deduplication_id)
