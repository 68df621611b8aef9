"""Debouncing: a burst of calls with the same key runs a workflow once, after the calls stop.

A burst is one DELAYED row on a queue, marked `is_debounced`, whose deduplication ID is
`<workflow name>-<key>` (so keys are scoped to the queue, by the deduplication index). The
first call of a burst inserts it; each later call pushes its start (`delay_until_epoch_ms`)
to `delay` after itself, never past the burst's `debounce_deadline_epoch_ms`, and replaces
its input, in one transaction. When the queue runner promotes the row to ENQUEUED it also
clears the deduplication ID, so the next call starts a new burst.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from dbos_typed._core.context import AppContext, WorkflowContext
from dbos_typed._core.durable import (
    begin_operation,
    checkpoint_of,
    child_workflow_id,
    rebuild_error,
    record_of,
    record_operation,
    refused,
)
from dbos_typed._core.handle import WorkflowHandle, handle_to
from dbos_typed._core.registry import NO_INPUT, WorkflowSpec, checked_input, describe
from dbos_typed._core.runtime import Runtime, now_ms
from dbos_typed._core.serialization import ErrorRecord, encode_inputs
from dbos_typed._core.validate import checked_name, optional_name, wait_seconds
from dbos_typed._queues.enqueue import checked_timeout_ms, unpartitioned_queue_name
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
    StepRecord,
)
from dbos_typed.errors import (
    ConflictingWorkflowError,
    InitializationError,
    InvalidOptionError,
    QueueDeduplicatedError,
    RegistrationError,
)

InT = TypeVar("InT")
OutT = TypeVar("OutT")

DEBOUNCE_STEP = "DBOS.debounce"

# Each retry follows a change made by another caller (a burst started, or its holder let the
# key go), so a few always suffice; the bound only guards against a store that misbehaves.
_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class DebounceCall:
    """One validated debounce call: everything but the ID of the workflow it may start."""

    name: str
    key: str
    queue_name: str
    inputs: str
    delay_ms: int
    max_wait_ms: int | None
    application_version: str | None
    timeout_ms: int | None = None

    @property
    def deduplication_id(self) -> str:
        """The key as the queue's deduplication index sees it."""
        return f"{self.name}-{self.key}"

    def row(self, runtime: Runtime, workflow_id: str) -> NewWorkflow:
        """The DELAYED row that starts a burst, should this call start one."""
        now = now_ms()
        deadline = None if self.max_wait_ms is None else now + self.max_wait_ms
        start = now + self.delay_ms
        return NewWorkflow(
            workflow_id=workflow_id,
            status=StatusName.DELAYED,
            name=self.name,
            inputs=self.inputs,
            executor_id=runtime.executor_id,
            application_version=self.application_version,
            application_name=runtime.owner_name,
            application_id=None,
            creator_xid=str(uuid.uuid4()),
            now_ms=now,
            queue_name=self.queue_name,
            deduplication_id=self.deduplication_id,
            delay_until_ms=start if deadline is None else min(start, deadline),
            is_debounced=True,
            debounce_deadline_ms=deadline,
            timeout_ms=self.timeout_ms,
        )


class Debouncer(Generic[InT, OutT]):
    """Runs a workflow once per burst of calls with the same key; made by `new_debouncer`.

    A call with a key that has no burst going starts one; every further call with that key
    joins it. The workflow starts `delay` after the latest call of its burst, with that
    call's input, but no later than `max_wait` after the burst's first call. Once it has
    started, the key is free again: the next call starts a new burst and a new workflow.
    """

    __slots__ = ("_max_wait", "_queue_name", "_runtime", "_spec")

    def __init__(
        self, runtime: Runtime, spec: WorkflowSpec, queue_name: str, max_wait: timedelta | None
    ) -> None:
        self._runtime = runtime
        self._spec = spec
        self._queue_name = queue_name
        self._max_wait = max_wait

    @property
    def workflow_name(self) -> str:
        """The registered name of the debounced workflow."""
        return self._spec.name

    @property
    def queue_name(self) -> str:
        """The queue the workflow runs on; keys are scoped to it."""
        return self._queue_name

    @property
    def max_wait(self) -> timedelta | None:
        """The longest a burst may hold its workflow back, from its first call; None: no cap."""
        return self._max_wait

    def __repr__(self) -> str:
        return f"Debouncer(workflow_name={self.workflow_name!r}, queue_name={self.queue_name!r})"

    @overload
    def debounce(
        self: Debouncer[None, OutT],
        ctx: AppContext,
        key: str,
        /,
        *,
        delay: timedelta,
        workflow_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> WorkflowHandle[OutT]: ...

    @overload
    def debounce(
        self,
        ctx: AppContext,
        key: str,
        input: InT,
        /,
        *,
        delay: timedelta,
        workflow_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> WorkflowHandle[OutT]: ...

    def debounce(
        self,
        ctx: AppContext,
        key: str,
        input: Any = NO_INPUT,
        /,
        *,
        delay: timedelta,
        workflow_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> WorkflowHandle[Any]:
        """Start a burst for `key`, or join the one it has; return a handle to its workflow.

        Every call of a burst returns a handle to the same workflow, whose result is the run
        with the burst's last input.

        Durability: the burst is a DELAYED row of the queue, so it survives crashes of the
        caller and of every worker; joining it (new start time and input) is one
        transaction. Called with a `WorkflowContext`, the call is a step of that workflow
        (`DBOS.debounce`), taken exactly once: a replay returns the same handle without
        touching the burst, and a workflow it starts gets the ID `<caller>-<step>`.

        Args:
            ctx: The context this debouncer was made with, or the context of one of its
                running workflows (not inside a step).
            key: What groups calls into a burst, such as a user or document ID.
            input: The workflow's input, if it takes one; the burst runs with the last.
            delay: How long after this call the workflow starts, unless another call with
                the key comes first; at least zero.
            workflow_id: The ID of the workflow, should this call start a burst; a call
                that joins a burst gets the burst's workflow.
            timeout: The workflow's time limit, counted from when it starts running (as
                for `enqueue`), should this call start a burst.

        Raises:
            InvalidOptionError: a bad key, input, delay or ID, the wrong context, or a call
                from inside a step.
            InitializationError: the context is not launched.
            QueueDeduplicatedError: the key's deduplication ID (`<workflow name>-<key>`)
                is held on the queue by a workflow that is not this debouncer's burst.
            ConflictingWorkflowError: `workflow_id` belongs to a different workflow.
        """
        runtime = self._runtime
        if not isinstance(ctx, AppContext) or ctx._runtime is not runtime:
            raise InvalidOptionError(
                "ctx", "expected the context this debouncer was made with, or its workflow's"
            )
        if isinstance(ctx, WorkflowContext) and ctx._state.in_step:
            raise InvalidOptionError("ctx", "debounce cannot be called from inside a step")
        spec = self._spec
        if spec.input_codec is None and input is None:
            input = NO_INPUT  # a `Debouncer[None, R]` may be handed its None explicitly
        call = DebounceCall(
            name=spec.name,
            key=checked_name(key, "key"),
            queue_name=self._queue_name,
            inputs=encode_inputs(spec.input_codec, checked_input(spec, input)),
            delay_ms=delay_ms_of(delay),
            max_wait_ms=checked_max_wait(self._max_wait),
            application_version=runtime.application_version,
            timeout_ms=checked_timeout_ms(timeout),
        )
        workflow_id = optional_name(workflow_id, "workflow_id")
        if isinstance(ctx, WorkflowContext):
            target = _debounce_durably(ctx, call, workflow_id)
        else:
            if not runtime.launched or runtime.shutting_down.is_set():
                raise InitializationError("launch() the context before debouncing workflows")
            landed = land(runtime, call.row(runtime, workflow_id or str(uuid.uuid4())))
            assert isinstance(landed, Debounced)  # no checkpoint, so never refused
            target = landed.workflow_id
        return handle_to(ctx, target, spec.output_codec)


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], Coroutine[Any, Any, OutT]],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[None, OutT]: ...


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], Coroutine[Any, Any, OutT]],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[InT, OutT]: ...


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], OutT],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[None, OutT]: ...


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], OutT],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[InT, OutT]: ...


def new_debouncer(
    ctx: AppContext,
    fn: Callable[..., Any],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[Any, Any]:
    """Make a debouncer for a registered workflow, before or after `launch()`.

    It writes nothing; its `debounce` calls do.

    Args:
        ctx: The context the workflow is registered with.
        fn: A registered workflow function.
        max_wait: Cap how long a burst may hold the workflow back, counted from the
            burst's first call: a steady stream of calls still runs it by then. None (the
            default) lets a burst last as long as its calls keep coming.
        queue: The queue the workflow runs on (a `WorkflowQueue` or a declared queue's
            name); the internal queue by default. It cannot be partitioned.

    Returns:
        A `Debouncer[I, R]` for a workflow taking an `I` and returning an `R`
        (`Debouncer[None, R]` for one without input).

    Raises:
        RegistrationError: `fn` is not registered with this context.
        InvalidOptionError: a bad `max_wait`, or an unknown or partitioned queue.
    """
    if not isinstance(ctx, AppContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext (or a WorkflowContext)")
    runtime = ctx._runtime
    spec = runtime.registry.by_fn(fn)
    if spec is None:
        raise RegistrationError(
            f"{describe(fn)} is not a registered workflow; call register_workflow first"
        )
    checked_max_wait(max_wait)
    return Debouncer(runtime, spec, debounce_queue(runtime, queue), max_wait)


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


def _debounce_durably(ctx: WorkflowContext, call: DebounceCall, workflow_id: str | None) -> str:
    """Debounce as a step of the calling workflow; returns the ID of the burst's workflow."""
    step_id, recorded = begin_operation(ctx, DEBOUNCE_STEP)
    if recorded is not None:
        return _replayed(recorded)
    runtime = ctx._runtime
    caller = ctx._state.workflow_id
    row = call.row(runtime, workflow_id or child_workflow_id(caller, step_id))
    step = StepRecord(step_id, DEBOUNCE_STEP, None, None, None, row.now_ms, now_ms())
    try:
        landed = land(runtime, row, checkpoint_of(ctx, step))
    except QueueDeduplicatedError as exc:
        # The refusal is the step's outcome, so a replay raises it again.
        record_operation(ctx, replace(step, error=record_of(exc).encode()))
        raise
    if isinstance(landed, RecordResult):
        return _replayed(refused(ctx, step_id, DEBOUNCE_STEP, landed))
    return landed.workflow_id


def _replayed(recorded: StepRecord) -> str:
    if recorded.child_workflow_id is not None:
        return recorded.child_workflow_id
    raise rebuild_error(ErrorRecord.decode(recorded.error or ""), step_name=DEBOUNCE_STEP)


def _ms(duration: timedelta) -> int:
    return int(wait_seconds(duration) * 1000)
