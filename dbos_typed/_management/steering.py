"""Steering workflows: cancel, resume, fork, delete, attributes, and retention.

These calls act on the database directly and may be made from any process. Made from a
workflow body, cancel, resume, fork, delete and attribute changes are checkpointed
operations: they happen once, and a replay returns what the first run got. Retention
calls (garbage collection, global timeouts, adopting stranded work) are operator tools
and are never checkpointed.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected
from dbos_typed._core.durable import checkpointed
from dbos_typed._core.handle import WorkflowHandle, handle_to
from dbos_typed._core.identity import attributes_text
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.serialization import Codec, TypedCall, codec_for
from dbos_typed._core.telemetry import TRACE_ATTRIBUTE, carrier_of, with_carrier
from dbos_typed._core.validate import checked_name, epoch_ms, optional_name
from dbos_typed._queues.enqueue import known_queue, unpartitioned_queue_name
from dbos_typed._queues.queues import WorkflowQueue
from dbos_typed._sysdb._rows import INTERNAL_QUEUE
from dbos_typed.errors import InvalidOptionError, NonExistentWorkflowError

_NO_ANSWER: Codec[None] = codec_for(None)
_WORKFLOW_ID: Codec[str] = codec_for(str)
_WORKFLOW_IDS: Codec[list[str]] = codec_for(list[str])

R = TypeVar("R")


def _cancel_locally(runtime: Runtime, workflow_ids: Sequence[str]) -> None:
    for workflow_id in workflow_ids:
        execution = runtime.running_execution(workflow_id)
        if execution is not None:
            execution.cancel("cancelled")


def cancel_workflow(ctx: Connected, workflow_id: str, /, *, cancel_children: bool = False) -> None:
    """Cancel a workflow that has not finished (and, optionally, all its descendants).

    Durability: the workflow's row becomes CANCELLED at once and for good: it leaves its
    queue, and a running execution (in any process) stops at its next step without
    recording a result. Cancelling a finished workflow changes nothing. With
    `cancel_children`, no descendant escapes, even one started while the cancel runs: each
    workflow is cancelled before its children are listed, and no child can start under a
    cancelled parent. From a workflow body the call is an operation of its own
    (`DBOS.cancelWorkflow`), made once.

    Args:
        ctx: Any context.
        workflow_id: The workflow to cancel.
        cancel_children: Also cancel every workflow it started, recursively.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
    """
    runtime = ctx._runtime
    workflow_id = checked_name(workflow_id, "workflow_id")

    def cancel() -> None:
        if runtime.store.workflow_status(workflow_id) is None:
            raise NonExistentWorkflowError(workflow_id)
        _cancel(runtime, [workflow_id], cancel_children)

    checkpointed(ctx, "DBOS.cancelWorkflow", cancel, _NO_ANSWER)


def cancel_workflows(
    ctx: Connected, workflow_ids: Sequence[str], /, *, cancel_children: bool = False
) -> None:
    """Cancel several workflows at once; missing and finished ones are skipped.

    Durability: as `cancel_workflow`, for each of them. From a workflow body the call is
    one operation (`DBOS.cancelWorkflows`), made once.

    Args:
        ctx: Any context.
        workflow_ids: The workflows to cancel.
        cancel_children: Also cancel every workflow they started, recursively.
    """
    runtime = ctx._runtime
    ids = _checked_ids(workflow_ids)
    checkpointed(
        ctx, "DBOS.cancelWorkflows", lambda: _cancel(runtime, ids, cancel_children), _NO_ANSWER
    )


def _checked_ids(workflow_ids: Iterable[str]) -> list[str]:
    if isinstance(workflow_ids, str):
        raise InvalidOptionError("workflow_ids", "expected a sequence of IDs, not one string")
    if not isinstance(workflow_ids, Iterable):
        raise InvalidOptionError("workflow_ids", "expected a sequence of IDs")
    return [checked_name(w, "workflow_ids") for w in workflow_ids]


def _cancel(runtime: Runtime, workflow_ids: Sequence[str], with_children: bool) -> None:
    now = runtime.clock.now_ms()
    if with_children:
        targets = runtime.store.cancel_tree(workflow_ids, now)
    else:
        targets = list(workflow_ids)
        for target in targets:
            runtime.store.cancel_workflow(target, now)
    _cancel_locally(runtime, targets)


def _resume_workflow(
    ctx: Connected,
    workflow_id: str,
    /,
    *,
    queue: WorkflowQueue | str | None = None,
    codec: Codec[Any] | None = None,
) -> WorkflowHandle[Any]:
    runtime = ctx._runtime
    workflow_id = checked_name(workflow_id, "workflow_id")
    queue_name = _resume_queue(runtime, queue)

    def resume() -> None:
        if not _resume(runtime, [workflow_id], queue_name):
            raise NonExistentWorkflowError(workflow_id)

    checkpointed(ctx, "DBOS.resumeWorkflow", resume, _NO_ANSWER)
    return _handle(ctx, workflow_id, codec)


class ResumeWorkflow(Protocol[R]):
    """The signature of `resume_workflow[R]`."""

    def __call__(
        self, ctx: Connected, workflow_id: str, /, *, queue: WorkflowQueue | str | None = None
    ) -> WorkflowHandle[R]:
        """Resume a workflow; its handle's result is typed (and validated) as `R`."""
        ...


class _Resumer(TypedCall):
    """Resume a cancelled, dead-lettered or stuck workflow from its last recorded step.

    `resume_workflow(ctx, id)` returns a handle decoding the result with the registered
    workflow's type; `resume_workflow[R](ctx, id)` validates it as `R` and is typed
    `WorkflowHandle[R]`.

    Durability: the workflow is put on a queue (the internal one unless `queue` says
    otherwise) with a fresh recovery budget and no deadline; an executor of its application
    version picks it up and replays its recorded steps. A workflow that already succeeded
    or failed is left as it is. From a workflow body the call is an operation of its own
    (`DBOS.resumeWorkflow`), made once.

    Args:
        ctx: Any context.
        workflow_id: The workflow to resume.
        queue: Run it from this queue, under its limits, instead of at once from the
            internal queue. A partitioned queue is refused (there is no key to give).

    Returns:
        A handle to the workflow.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
        InvalidOptionError: the queue does not exist or is partitioned.
    """

    @overload
    def __getitem__(self, tp: type[R]) -> ResumeWorkflow[R]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[R]) -> ResumeWorkflow[R]: ...

    def __getitem__(self, tp: Any) -> ResumeWorkflow[Any]:
        return self.typed(tp)

    def __call__(
        self, ctx: Connected, workflow_id: str, /, *, queue: WorkflowQueue | str | None = None
    ) -> WorkflowHandle[Any]:
        """Resume a workflow; see `resume_workflow`."""
        return _resume_workflow(ctx, workflow_id, queue=queue)


resume_workflow = _Resumer(
    lambda codec: functools.partial(_resume_workflow, codec=codec), "resume_workflow"
)


def resume_workflows(
    ctx: Connected, workflow_ids: Sequence[str], /, *, queue: WorkflowQueue | str | None = None
) -> list[WorkflowHandle[Any]]:
    """Resume several workflows at once; missing ones are skipped.

    Durability: as `resume_workflow`, for each of them. From a workflow body the call is
    one operation (`DBOS.resumeWorkflows`), made once; a replay returns the same handles.

    Args:
        ctx: Any context.
        workflow_ids: The workflows to resume.
        queue: Run them from this queue instead of at once from the internal queue.

    Returns:
        A handle to each workflow that exists, in the order given.

    Raises:
        InvalidOptionError: the queue does not exist or is partitioned.
    """
    runtime = ctx._runtime
    ids = _checked_ids(workflow_ids)
    queue_name = _resume_queue(runtime, queue)
    found = checkpointed(
        ctx, "DBOS.resumeWorkflows", lambda: _resume(runtime, ids, queue_name), _WORKFLOW_IDS
    )
    return [_handle(ctx, workflow_id) for workflow_id in found]


def _resume_queue(runtime: Runtime, queue: WorkflowQueue | str | None) -> str:
    return INTERNAL_QUEUE if queue is None else unpartitioned_queue_name(runtime, queue)


def _resume(runtime: Runtime, workflow_ids: Sequence[str], queue_name: str) -> list[str]:
    """Resume each workflow; the IDs of those that exist (finished ones included)."""
    now = runtime.clock.now_ms()
    found = [
        workflow_id
        for workflow_id in dict.fromkeys(workflow_ids)
        if runtime.store.resume_workflow(workflow_id, queue_name, now)
        or runtime.store.workflow_status(workflow_id) is not None
    ]
    runtime.announce_work()
    return found


def _handle(
    ctx: Connected, workflow_id: str, codec: Codec[Any] | None = None
) -> WorkflowHandle[Any]:
    """A handle decoding with `codec`, else with the registered workflow's result type."""
    if codec is not None:
        return handle_to(ctx, workflow_id, codec)
    runtime = ctx._runtime
    record = runtime.store.get_status(workflow_id)
    spec = runtime.registry.by_name(record.name, record.config_name) if record is not None else None
    return handle_to(ctx, workflow_id, spec.output_codec if spec is not None else None)


def _fork_workflow(
    ctx: Connected,
    workflow_id: str,
    start_step: int,
    /,
    *,
    new_workflow_id: str | None = None,
    application_version: str | None = None,
    queue_name: str | None = None,
    queue_partition_key: str | None = None,
    codec: Codec[Any] | None = None,
) -> WorkflowHandle[Any]:
    runtime = ctx._runtime
    workflow_id = checked_name(workflow_id, "workflow_id")
    start_step = _start_step(start_step, "start_step")
    if new_workflow_id is not None:
        checked_name(new_workflow_id, "new_workflow_id")
    target = _fork_target(runtime, application_version, queue_name, queue_partition_key)

    def fork() -> str:
        # Drawn inside the operation, so a replay finds the copy the first run made.
        new_id = new_workflow_id or str(uuid.uuid4())
        _fork(runtime, [(workflow_id, new_id, start_step)], target)
        return new_id

    return _handle(ctx, checkpointed(ctx, "DBOS.forkWorkflow", fork, _WORKFLOW_ID), codec)


class ForkWorkflow(Protocol[R]):
    """The signature of `fork_workflow[R]`."""

    def __call__(
        self,
        ctx: Connected,
        workflow_id: str,
        start_step: int,
        /,
        *,
        new_workflow_id: str | None = None,
        application_version: str | None = None,
        queue_name: str | None = None,
        queue_partition_key: str | None = None,
    ) -> WorkflowHandle[R]:
        """Fork a workflow; the copy's handle is typed (and validated) as `R`."""
        ...


class _Forker(TypedCall):
    """Start a copy of a workflow that replays its steps before `start_step` and runs the rest.

    `fork_workflow[R](ctx, id, step)` types (and validates) the copy's result as `R`.

    Durability: in one transaction the copy is recorded (ENQUEUED, `forked_from` set) with
    the original's input and its recorded steps, events and stream entries before
    `start_step`; those steps are not run again. The original is marked as forked. From
    a workflow body the fork is an operation of its own (`DBOS.forkWorkflow`): it is made
    once, and a replay returns a handle to the same copy.

    Args:
        ctx: Any context.
        workflow_id: The workflow to fork.
        start_step: The first step (0-based) to run again.
        new_workflow_id: The copy's ID; a random UUID by default.
        application_version: The version to run it on; by default the newest one.
        queue_name: The queue to run it from; the internal queue by default.
        queue_partition_key: The partition of `queue_name` to run it in: required when that
            queue is partitioned, refused otherwise (its limits then apply per key).

    Returns:
        A handle to the copy.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
        InvalidOptionError: a bad argument, naming it; a `queue_partition_key` missing for a
            partitioned queue or given for any other (nothing is written then).
    """

    @overload
    def __getitem__(self, tp: type[R]) -> ForkWorkflow[R]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[R]) -> ForkWorkflow[R]: ...

    def __getitem__(self, tp: Any) -> ForkWorkflow[Any]:
        return self.typed(tp)

    def __call__(
        self,
        ctx: Connected,
        workflow_id: str,
        start_step: int,
        /,
        *,
        new_workflow_id: str | None = None,
        application_version: str | None = None,
        queue_name: str | None = None,
        queue_partition_key: str | None = None,
    ) -> WorkflowHandle[Any]:
        """Fork a workflow; see `fork_workflow`."""
        return _fork_workflow(
            ctx,
            workflow_id,
            start_step,
            new_workflow_id=new_workflow_id,
            application_version=application_version,
            queue_name=queue_name,
            queue_partition_key=queue_partition_key,
        )


fork_workflow = _Forker(
    lambda codec: functools.partial(_fork_workflow, codec=codec), "fork_workflow"
)


def fork_workflows(
    ctx: Connected,
    forks: Sequence[tuple[str, int] | tuple[str, int, str]],
    /,
    *,
    application_version: str | None = None,
    queue_name: str | None = None,
    queue_partition_key: str | None = None,
) -> list[WorkflowHandle[Any]]:
    """Fork several workflows at once, all or none (see `fork_workflow`).

    Durability: every copy is recorded in one transaction, so either all of them exist or,
    if an original is missing, none does. From a workflow body the call is one operation
    (`DBOS.forkWorkflows`), made once; a replay returns handles to the same copies.

    Args:
        ctx: Any context.
        forks: `(workflow_id, start_step)` pairs, or `(workflow_id, start_step,
            new_workflow_id)` triples to choose the copy's ID (a random UUID otherwise).
        application_version: The version to run the copies on; by default the newest one.
        queue_name: The queue to run them from; the internal queue by default.
        queue_partition_key: The partition of `queue_name` to run them in: required when
            that queue is partitioned, refused otherwise.

    Returns:
        A handle to each copy, in the order given.

    Raises:
        NonExistentWorkflowError: one of the originals does not exist.
        InvalidOptionError: a malformed entry, a new ID given twice, or a
            `queue_partition_key` missing for a partitioned queue or given for any other
            (nothing is written then).
    """
    runtime = ctx._runtime
    if isinstance(forks, str) or not isinstance(forks, Sequence):
        raise InvalidOptionError("forks", "expected a sequence of (workflow_id, start_step) pairs")
    wanted = [_checked_fork(entry) for entry in forks]
    chosen = [new_id for _, _, new_id in wanted if new_id is not None]
    if len(set(chosen)) != len(chosen):
        raise InvalidOptionError("forks", "a new workflow ID is given twice")
    target = _fork_target(runtime, application_version, queue_name, queue_partition_key)

    def fork() -> list[str]:
        # Drawn inside the operation, so a replay finds the copies the first run made.
        batch = [(w, new_id or str(uuid.uuid4()), step) for w, step, new_id in wanted]
        _fork(runtime, batch, target)
        return [new_id for _, new_id, _ in batch]

    copies = checkpointed(ctx, "DBOS.forkWorkflows", fork, _WORKFLOW_IDS)
    return [_handle(ctx, workflow_id) for workflow_id in copies]


def _checked_fork(entry: object) -> tuple[str, int, str | None]:
    if not isinstance(entry, tuple) or len(entry) not in (2, 3):
        raise InvalidOptionError(
            "forks", "expected (workflow_id, start_step) or (workflow_id, start_step, new_id)"
        )
    workflow_id = checked_name(entry[0], "forks")
    start_step = _start_step(entry[1], "forks")
    new_id = checked_name(entry[2], "forks") if len(entry) == 3 else None
    return workflow_id, start_step, new_id


def _start_step(value: object, argument: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidOptionError(argument, "expected a start step: an int >= 0")
    return value


@dataclass(frozen=True)
class _ForkTarget:
    """Where fork copies go: the version to run on, the queue and its partition."""

    application_version: str | None
    queue_name: str
    partition_key: str | None


def _fork_target(
    runtime: Runtime,
    application_version: str | None,
    queue_name: str | None,
    queue_partition_key: str | None,
) -> _ForkTarget:
    """Check where fork copies go, before anything is written.

    A queue this process cannot find is allowed (its copies wait until it is declared),
    but only without a partition key: a key needs a queue known to be partitioned.

    Raises:
        InvalidOptionError: a bad version, queue name or partition key, naming it.
    """
    if application_version is not None:
        checked_name(application_version, "application_version")
    partition_key = optional_name(queue_partition_key, "queue_partition_key")
    if not queue_name:
        if partition_key is not None:
            raise InvalidOptionError("queue_partition_key", "only valid together with queue_name=")
        return _ForkTarget(application_version, INTERNAL_QUEUE, None)
    queue = checked_name(queue_name, "queue_name")
    row = None if queue == INTERNAL_QUEUE else known_queue(runtime, queue)
    partitioned = row is not None and row.partition_queue
    if partitioned and partition_key is None:
        raise InvalidOptionError(
            "queue_partition_key", f"queue {queue!r} is partitioned; give a partition key"
        )
    if not partitioned and partition_key is not None:
        raise InvalidOptionError("queue_partition_key", f"queue {queue!r} is not partitioned")
    return _ForkTarget(application_version, queue, partition_key)


def _fork(runtime: Runtime, forks: Sequence[tuple[str, str, int]], target: _ForkTarget) -> None:
    missing = runtime.store.fork_workflows(
        forks,
        application_version=target.application_version,
        queue_name=target.queue_name,
        partition_key=target.partition_key,
        now_ms=runtime.clock.now_ms(),
    )
    if missing is not None:
        raise NonExistentWorkflowError(missing)
    runtime.announce_work()


def delete_workflows(
    ctx: Connected, workflow_ids: Sequence[str], /, *, delete_children: bool = False
) -> None:
    """Delete workflows and everything recorded for them (steps, messages, events, streams).

    Missing IDs are ignored. A workflow deleted while running stops at its next step. The
    completion rows that data sources made with this context hold for them are deleted
    too, so an ID may be used again (a `Client` knows no data source: it leaves them).

    Durability: from a workflow body the deletion is an operation of its own
    (`DBOS.deleteWorkflows`), made once.

    Args:
        ctx: Any context.
        workflow_ids: The workflows to delete.
        delete_children: Also delete every workflow they started, recursively.
    """
    runtime = ctx._runtime
    ids = _checked_ids(workflow_ids)

    def delete() -> None:
        targets = runtime.store.with_descendants(ids) if delete_children else ids
        runtime.store.delete_workflows(targets)
        _cancel_locally(runtime, targets)
        _forget_elsewhere(runtime, targets)

    checkpointed(ctx, "DBOS.deleteWorkflows", delete, _NO_ANSWER)


def set_workflow_attributes(
    ctx: Connected, workflow_id: str, attributes: Mapping[str, Any], /
) -> None:
    """Replace a workflow's attributes: free-form JSON metadata for operators and tools.

    Durability: from a workflow body the change is an operation of its own
    (`DBOS.updateWorkflowAttributes`), made once.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
        InvalidOptionError: `attributes` is not a JSON object.
    """
    runtime = ctx._runtime
    workflow_id = checked_name(workflow_id, "workflow_id")
    text = attributes_text(attributes)

    def update() -> None:
        # The stored trace context is no user attribute: replacing them keeps it.
        record = runtime.store.get_status(workflow_id)
        carrier = None if record is None else carrier_of(record.attributes)
        stored = (
            text
            if carrier is None or TRACE_ATTRIBUTE in attributes
            else (with_carrier(text, carrier))
        )
        if not runtime.store.set_attributes(workflow_id, stored, runtime.clock.now_ms()):
            raise NonExistentWorkflowError(workflow_id)

    checkpointed(ctx, "DBOS.updateWorkflowAttributes", update, _NO_ANSWER)


def garbage_collect(
    ctx: Connected, /, *, cutoff: datetime | None = None, keep_rows: int | None = None
) -> int:
    """Delete finished workflows created before `cutoff`, or all but the newest `keep_rows`.

    Unfinished workflows (PENDING, ENQUEUED, DELAYED) are never deleted. The completion
    rows that data sources made with this context hold for them are deleted too.

    Returns:
        How many workflows were deleted.
    """
    if cutoff is None and keep_rows is None:
        raise InvalidOptionError("cutoff", "give a cutoff, keep_rows, or both")
    if keep_rows is not None and (
        not isinstance(keep_rows, int) or isinstance(keep_rows, bool) or keep_rows < 1
    ):
        raise InvalidOptionError("keep_rows", "expected an int >= 1")
    runtime = ctx._runtime
    deleted = runtime.store.garbage_collect(
        cutoff_ms=epoch_ms(cutoff, "cutoff"), keep_rows=keep_rows
    )
    _forget_elsewhere(runtime, deleted)
    return len(deleted)


def _forget_elsewhere(runtime: Runtime, workflow_ids: Sequence[str]) -> None:
    # After the system rows: were it the other way round, a failure in between would leave
    # a workflow whose transactions a replay would run a second time.
    if workflow_ids:
        for database in list(runtime.data_sources):
            database.forget(workflow_ids)


def global_timeout(ctx: Connected, cutoff: datetime, /) -> list[str]:
    """Cancel every unfinished workflow created before `cutoff`.

    Durability: as `cancel_workflow`, for each of them.

    Returns:
        The IDs of the workflows cancelled.
    """
    runtime = ctx._runtime
    cutoff_ms = epoch_ms(cutoff, "cutoff")
    assert cutoff_ms is not None
    cancelled = runtime.store.cancel_created_before(cutoff_ms, runtime.clock.now_ms())
    _cancel_locally(runtime, cancelled)
    return cancelled


def recover_pending_workflows(
    ctx: Connected,
    /,
    *,
    executor_ids: Sequence[str] | None = None,
    application_versions: Sequence[str] | None = None,
) -> list[str]:
    """Take over PENDING workflows left by executors that are gone, whatever their version.

    Recovery at launch takes only this executor's workflows of this application version;
    this call adopts the others: each matching PENDING workflow is moved to this process's
    application version and re-enqueued, then replays its recorded steps here.

    Durability: as launch recovery: recorded steps are replayed, not run again.

    Args:
        ctx: A launched context.
        executor_ids: Whose workflows to take; this executor's by default.
        application_versions: Only these versions; every version by default.

    Returns:
        The IDs of the workflows taken over.
    """
    runtime = ctx._runtime
    executors = [checked_name(e, "executor_ids") for e in executor_ids or [runtime.executor_id]]
    versions = (
        None
        if application_versions is None
        else [checked_name(v, "application_versions") for v in application_versions]
    )
    if not runtime.application_version:
        raise InvalidOptionError("ctx", "launch the context first: its version is not known yet")
    adopted = runtime.store.adopt_pending(
        executor_ids=executors,
        application_versions=versions,
        new_version=runtime.application_version,
        application_name=runtime.app_name,
        now_ms=runtime.clock.now_ms(),
    )
    runtime.announce_work()
    return adopted
