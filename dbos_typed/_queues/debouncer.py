"""Debouncing: a burst of calls with the same key runs a workflow once, after the calls stop.

A burst is one DELAYED row on a queue, marked `is_debounced`, whose deduplication ID is
`<workflow name>-<key>` (`<workflow name>/<config name>-<key>` for a configured instance's
workflow; so keys are scoped to the queue, by the deduplication index). The
first call of a burst inserts it; each later call pushes its start (`delay_until_epoch_ms`)
to `delay` after itself, never past the burst's `debounce_deadline_epoch_ms`, and replaces
its input, in one transaction. When the queue runner promotes the row to ENQUEUED it also
clears the deduplication ID, so the next call starts a new burst.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from dbos_typed._core.runtime import Runtime
from dbos_typed._core.validate import wait_seconds
from dbos_typed._queues.enqueue import unpartitioned_queue_name
from dbos_typed._queues.queues import WorkflowQueue
from dbos_typed._sysdb._rows import (
    INTERNAL_QUEUE,
    Checkpoint,
    Debounced,
    Deduplicated,
    DeduplicationHolder,
    NewWorkflow,
    RecordResult,
    StatusName,
)
from dbos_typed.errors import (
    ConflictingWorkflowError,
    InvalidOptionError,
    QueueDeduplicatedError,
)

InT = TypeVar("InT")
OutT = TypeVar("OutT")

DEBOUNCE_STEP = "DBOS.debounce"

# Each retry follows a change made by another caller (a burst started, or its holder let the
# key go), so a few always suffice; the bound only guards against a store that misbehaves.
_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Burst:
    """A debounce call's own options, checked: what groups calls, and when the run starts."""

    key: str
    queue_name: str
    delay_ms: int
    max_wait_ms: int | None

    def row(
        self,
        runtime: Runtime,
        *,
        workflow_id: str,
        name: str,
        inputs: str,
        timeout_ms: int | None,
        application_version: str | None,
        config_name: str | None = None,
    ) -> NewWorkflow:
        """The DELAYED row that starts a burst, should this call start one.

        A configured instance's bursts are keyed apart from other instances' of the
        workflow: `<name>/<config name>-<key>`.
        """
        now = runtime.clock.now_ms()
        deadline = None if self.max_wait_ms is None else now + self.max_wait_ms
        start = now + self.delay_ms
        return NewWorkflow(
            workflow_id=workflow_id,
            status=StatusName.DELAYED,
            name=name,
            inputs=inputs,
            executor_id=runtime.executor_id,
            application_version=application_version,
            application_name=runtime.owner_name,
            application_id=None,
            creator_xid=str(uuid.uuid4()),
            now_ms=now,
            queue_name=self.queue_name,
            # The key as the queue's deduplication index sees it.
            deduplication_id=f"{name}{'/' + config_name if config_name else ''}-{self.key}",
            delay_until_ms=start if deadline is None else min(start, deadline),
            is_debounced=True,
            debounce_deadline_ms=deadline,
            timeout_ms=timeout_ms,
        )


def delay_ms_of(delay: object) -> int:
    """A debounce delay in milliseconds.

    Raises:
        InvalidOptionError: it is not a non-negative timedelta.
    """
    if not isinstance(delay, timedelta) or delay < timedelta(0):
        raise InvalidOptionError("delay", "expected a non-negative timedelta")
    return _ms(delay)


def checked_max_wait(max_wait: object) -> int | None:
    """A burst's longest postponement in milliseconds, or None for no limit.

    Raises:
        InvalidOptionError: it is neither None nor a positive timedelta.
    """
    if max_wait is None:
        return None
    if not isinstance(max_wait, timedelta) or max_wait <= timedelta(0):
        raise InvalidOptionError("max_wait", "expected a positive timedelta or None")
    return max(1, _ms(max_wait))


def debounce_queue(runtime: Runtime, queue: WorkflowQueue | str | None) -> str:
    """The name of the queue debounced workflows go on, which must exist.

    Raises:
        InvalidOptionError: an unknown queue, or a partitioned one (whose enqueues cannot
            carry the deduplication ID that holds a burst together).
    """
    if queue is None:
        return INTERNAL_QUEUE
    return unpartitioned_queue_name(runtime, queue)


def land(
    runtime: Runtime,
    row: NewWorkflow,
    checkpoint: Checkpoint | None = None,
) -> Debounced | RecordResult:
    """Join the live burst of `row`'s key, or start one with `row`.

    A conflict may be a race rather than a refusal: a burst started by a concurrent call
    after this one looked (join it), or a holder that let the key go meanwhile (start a
    burst). Both are retried.

    Returns:
        Where the call landed, or why the caller's checkpoint was refused (nothing written).

    Raises:
        QueueDeduplicatedError: the key is held by a workflow that is not a burst of
            `row`'s workflow (a plain enqueue, or another workflow's debouncer).
        ConflictingWorkflowError: `row`'s ID belongs to a different workflow.
    """
    queue_name = row.queue_name or INTERNAL_QUEUE
    deduplication_id = row.deduplication_id or ""
    for _ in range(_ATTEMPTS):
        try:
            landed = runtime.store.debounce_workflow(row, checkpoint)
        except Deduplicated:
            holder = runtime.store.deduplication_holder(queue_name, deduplication_id)
            if holder is None or _is_burst_of(holder, row.name):
                continue
            break
        if isinstance(landed, Debounced):
            if landed.name != row.name:
                raise ConflictingWorkflowError(
                    row.workflow_id, existing_name=landed.name, requested_name=row.name
                )
            # A joined burst may now start sooner than the runners planned for.
            runtime.announce_work(queue_name)
        return landed
    raise QueueDeduplicatedError(
        row.workflow_id, queue_name=queue_name, deduplication_id=deduplication_id
    )


def _is_burst_of(holder: DeduplicationHolder, name: str) -> bool:
    return holder.is_debounced and holder.name == name and holder.status is StatusName.DELAYED


def _ms(duration: timedelta) -> int:
    return int(wait_seconds(duration) * 1000)
