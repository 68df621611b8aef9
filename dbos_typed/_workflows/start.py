"""Registering and starting workflows: direct starts, children, and enqueues.

Every start goes one way: `run_workflow`, a `Debouncer`, or a `Client`'s `enqueue` and
`debounce` check their arguments into a `StartRequest`, and `land_start` writes its row
(a burst's joins it) and returns the handle. Running a started
workflow is `_core.execution`'s job; queue options are checked in `_queues.enqueue`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Never, TypeVar, Unpack, overload

from dbos_typed._core.context import AppContext, Connected, DBOSContext, WorkflowContext
from dbos_typed._core.durable import (
    begin_operation,
    checkpoint_of,
    child_workflow_id,
    insert_child,
    rebuild_error,
    record_of,
    record_operation,
    refused,
)
from dbos_typed._core.execution import launch_execution
from dbos_typed._core.hand_off import caller_may_run
from dbos_typed._core.handle import WorkflowHandle, handle_to
from dbos_typed._core.identity import Identity, Labels, labels_for
from dbos_typed._core.registry import (
    NO_INPUT,
    RegisteredWorkflow,
    WorkflowSpec,
    build_spec,
    checked_input,
    describe,
)
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.serialization import Codec, ErrorRecord, encode_inputs
from dbos_typed._core.telemetry import NO_ORIGIN, Origin, StartScope, start_scope
from dbos_typed._core.validate import optional_name
from dbos_typed._queues.debouncer import DEBOUNCE_STEP, Burst, land
from dbos_typed._queues.enqueue import (
    DEDUP_ATTEMPTS,
    DeduplicationPolicy,
    EnqueueOptions,
    QueueOptions,
    check_queue_options,
    checked_timeout_ms,
    deduplication_holder,
    queued_row,
)
from dbos_typed._queues.queues import WorkflowQueue
from dbos_typed._schedules.cron import CronSchedule
from dbos_typed._schedules.scheduled_input import ScheduledInput, is_schedulable
from dbos_typed._sysdb._rows import (
    Debounced,
    Deduplicated,
    InsertedWorkflow,
    NewWorkflow,
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


@overload
def register_workflow(
    ctx: DBOSContext,
    fn: Callable[[WorkflowContext], OutT],
    /,
    *,
    name: str | None = None,
    max_recovery_attempts: int | None = 100,
    config_name: str | None = None,
) -> Callable[[WorkflowContext], OutT]: ...


@overload
def register_workflow(
    ctx: DBOSContext,
    fn: Callable[[WorkflowContext, datetime], OutT],
    /,
    *,
    schedule: str,
    schedule_timezone: str | None = None,
    name: str | None = None,
    max_recovery_attempts: int | None = 100,
) -> Callable[[WorkflowContext, datetime], OutT]: ...


@overload
def register_workflow(
    ctx: DBOSContext,
    fn: Callable[[WorkflowContext, ScheduledInput[InT]], OutT],
    /,
    *,
    schedule: str,
    schedule_timezone: str | None = None,
    name: str | None = None,
    max_recovery_attempts: int | None = 100,
) -> Callable[[WorkflowContext, ScheduledInput[InT]], OutT]: ...


@overload
def register_workflow(
    ctx: DBOSContext,
    fn: Callable[[WorkflowContext, InT], OutT],
    /,
    *,
    name: str | None = None,
    max_recovery_attempts: int | None = 100,
    config_name: str | None = None,
) -> Callable[[WorkflowContext, InT], OutT]: ...


def register_workflow(
    ctx: DBOSContext,
    fn: Callable[..., Any],
    /,
    *,
    schedule: str | None = None,
    schedule_timezone: str | None = None,
    name: str | None = None,
    max_recovery_attempts: int | None = 100,
    config_name: str | None = None,
) -> Callable[..., Any]:
    """Register a workflow function with a context, before `launch()`.

    A workflow takes the `WorkflowContext` and at most one input, and is annotated:
    `def checkout(ctx: WorkflowContext, order: Order) -> Receipt`. Its input and result
    types are resolved now; an annotation that cannot be resolved or stored as JSON is
    refused here, with the function and parameter named.

    With `schedule`, the workflow also runs on a cron schedule: it must take the tick's
    time, `def report(ctx: WorkflowContext, scheduled_time: datetime) -> R`. At launch the
    schedule is written to the schedules table under the workflow's name (its definition
    is updated; a pause made with `pause_schedule` is kept), and from then on it fires
    once per tick across all processes of the application; see `create_schedule`.

    Args:
        ctx: The context to register with.
        fn: The workflow function.
        name: The recorded name; defaults to the function's qualified name. Other
            processes (and DBOS tools) find the workflow by this name.
        max_recovery_attempts: After this many starts without finishing, the workflow is
            set aside as MAX_RECOVERY_ATTEMPTS_EXCEEDED; None for no limit.
        schedule: A cron expression: six fields with seconds (`"*/5 * * * * *"`), five
            without, or a descriptor such as `"@hourly"`.
        schedule_timezone: The IANA time zone the expression is read in; UTC by default.
        config_name: Register a configured instance: `fn` is a method bound to one object
            (`obj.method`), registered for that object under this config name. One method
            may be registered so for several objects, each with a config name of its own;
            each run records the config name (and the object's class name), and a run,
            an enqueue, a recovery or a debounce runs on the object registered with it.
            Start such a workflow with the bound method (`run_workflow(ctx, obj.method,
            ...)`), or from a client with `config_name=`. Not with `schedule`.

    Returns:
        `fn` itself, unchanged.

    Raises:
        RegistrationError: bad signature or types, a duplicate (the same function, or the
            same name and config name), the context is launched, or a schedule on a
            workflow whose input is not a `datetime` or a `ScheduledInput[C]`.
        InvalidOptionError: an invalid cron expression or time zone, or a `config_name`
            that is empty or given with a function that is not a bound method (or with
            `schedule`).
    """
    if not isinstance(ctx, DBOSContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext from new_context()")
    runtime = ctx._runtime
    if runtime.launched:
        raise RegistrationError(
            f"cannot register {describe(fn)}: register workflows before launch()"
        )
    spec = build_spec(
        fn, name=name, max_recovery_attempts=max_recovery_attempts, config_name=config_name
    )
    cron = None
    if schedule is not None and config_name is not None:
        raise InvalidOptionError(
            "config_name", "a scheduled workflow cannot be a configured instance"
        )
    if schedule is not None:
        cron = CronSchedule(schedule, schedule_timezone)
        if spec.input_codec is None or not is_schedulable(spec.input_codec.tp):
            raise RegistrationError(
                f"workflow {describe(fn)} cannot have a schedule: a scheduled workflow takes "
                "the tick's time, as in `def wf(ctx: WorkflowContext, scheduled_time: datetime)`,"
                " or a `ScheduledInput[C]`"
            )
    elif schedule_timezone is not None:
        raise InvalidOptionError("schedule_timezone", "given without a schedule")
    runtime.registry.add(spec)
    if cron is not None:
        runtime.registry.declare_schedule(spec.name, cron)
    return fn


class StartOptions(EnqueueOptions, total=False):
    """The keyword options of `run_workflow`, as its overloads take them.

    The implementation names each one, with its default.
    """

    queue: WorkflowQueue | str | None
    detached: bool


# The overloads, in the order mypy tries them. When none matches, mypy reports the error
# against the first one whose shape fits, so each arity starts with one that no workflow
# matches (its function would have to return `Never`) but that reads as the plain
# signature: `expected "Callable[[WorkflowContext, int], Never]"` rather than the async
# overload's coroutine and a request for a variable annotation. An `async def` workflow's
# handle is typed by what its coroutine returns; those overloads come before the plain
# ones because a coroutine function also matches those (with the coroutine as R).
@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], Never],
    /,
    **options: Unpack[StartOptions],
) -> WorkflowHandle[Any]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], Never],
    input: InT,
    /,
    **options: Unpack[StartOptions],
) -> WorkflowHandle[Any]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], Coroutine[Any, Any, OutT]],
    /,
    **options: Unpack[StartOptions],
) -> WorkflowHandle[OutT]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], Coroutine[Any, Any, OutT]],
    input: InT,
    /,
    **options: Unpack[StartOptions],
) -> WorkflowHandle[OutT]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], OutT],
    /,
    **options: Unpack[StartOptions],
) -> WorkflowHandle[OutT]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], OutT],
    input: InT,
    /,
    **options: Unpack[StartOptions],
) -> WorkflowHandle[OutT]: ...


def run_workflow(
    ctx: AppContext,
    fn: Callable[..., Any],
    input: Any = NO_INPUT,
    /,
    *,
    workflow_id: str | None = None,
    timeout: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
    deduplication_id: str | None = None,
    deduplication_policy: DeduplicationPolicy = "reject",
    priority: int | None = None,
    partition_key: str | None = None,
    delay: timedelta | None = None,
    identity: Identity | None = None,
    attributes: Mapping[str, Any] | None = None,
    application_version: str | None = None,
    detached: bool = False,
) -> WorkflowHandle[Any]:
    """Start a registered workflow, or put it on a queue, and return a handle to it.

    Called with a `WorkflowContext`, it starts (or enqueues) a child workflow (ID
    `<parent>-<step>` unless given), recorded as a step of the parent.

    Durability: the workflow and its input are recorded before it runs. The workflow ID is
    an idempotency key: starting an ID that exists returns a handle to that workflow and
    runs nothing (its recorded result wins over a new input). A child's start or enqueue
    is exactly-once across replays of the parent, including a refused deduplication.
    With `queue`, only the ENQUEUED row is written; a process serving the queue runs it,
    and it survives crashes of the enqueuer and of the worker.

    Args:
        ctx: A launched context, or a running workflow's context for a child.
        fn: A registered workflow function.
        input: The workflow's input, if it takes one.
        workflow_id: The ID to use; a random UUID by default.
        timeout: Cancel the workflow (and children that inherit it) if it has not
            finished by then; the deadline is stored and survives restarts. For a
            queued workflow the clock starts when it is dequeued.
        queue: Enqueue on this queue (a `WorkflowQueue` or a declared queue's name)
            instead of running now.
        deduplication_id: With a queue: refuse a second live workflow with this ID on
            the queue (released when the holder finishes, is cancelled or resumed).
        deduplication_policy: "reject" raises `QueueDeduplicatedError`;
            "return_existing" returns a handle to the holder instead.
        priority: With a priority-enabled queue: lower runs first (0 to 2**31-1; 0 by
            default); first in, first out within a priority.
        partition_key: Required on a partitioned queue, refused on others; limits apply
            per key. Cannot be combined with `deduplication_id`.
        delay: With a queue: do not start before this much time has passed.
        identity: Who the workflow acts for, recorded with it; a child started without
            one inherits its parent's.
        attributes: Free-form JSON metadata recorded with the workflow (not inherited).
        application_version: The application version recorded for the workflow; this
            process's own by default. A direct start still runs here and now, but only
            an executor of that version recovers it after a crash; a queued one waits
            for a queue runner of that version to dequeue it.
        detached: For a child: free it from its parent. It does not inherit the
            parent's deadline, and cancelling the parent (`cancel_children=True`
            included) leaves it running; its row records no parent (the parent's step
            still records the child's ID, so awaiting it replays as usual). Outside a
            workflow body every start is already free of any parent, and the option
            changes nothing.

    Raises:
        RegistrationError: `fn` is not registered with this context.
        InitializationError: the context is not launched.
        InvalidOptionError: a bad ID, timeout, input or queue option (named).
        ConflictingWorkflowError: the ID belongs to a different workflow.
        QueueDeduplicatedError: the deduplication ID is taken (policy "reject").
    """
    if not isinstance(ctx, AppContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext or WorkflowContext")
    runtime = ctx._runtime
    spec = registered_spec(runtime, fn)
    value = checked_input(spec, input)
    workflow_id = optional_name(workflow_id, "workflow_id")
    version = optional_name(application_version, "application_version")
    if not isinstance(detached, bool):
        raise InvalidOptionError("detached", "expected a bool")
    timeout_ms = checked_timeout_ms(timeout)
    options = check_queue_options(
        runtime,
        queue,
        deduplication_id=deduplication_id,
        deduplication_policy=deduplication_policy,
        priority=priority,
        partition_key=partition_key,
        delay=delay,
    )
    request = StartRequest(
        name=spec.name,
        inputs=encode_inputs(spec.input_codec, value),
        codec=spec.output_codec,
        timeout_ms=timeout_ms,
        queue=options,
        labels=labels_for(ctx, identity, attributes),
        application_version=version or runtime.application_version,
        run=(spec, value),
        detached=detached,
        config_name=spec.config_name,
        class_name=spec.class_name,
    )
    return start(ctx, request, workflow_id)


def registered_spec(runtime: Runtime, fn: Callable[..., Any]) -> WorkflowSpec:
    """The registration `fn` starts: its own, or its receiver's for a configured instance.

    Raises:
        RegistrationError: `fn` is not registered; for a method registered only for
            configured instances, the message names their config names.
    """
    spec = runtime.registry.by_fn(fn)
    if spec is not None:
        return spec
    instances = runtime.registry.instances_of(fn)
    if instances:
        names = ", ".join(repr(spec.config_name) for spec in instances)
        raise RegistrationError(
            f"{describe(fn)} is registered only for configured instances (config names "
            f"{names}); start it with a method bound to one of their objects, such as "
            "`run_workflow(ctx, obj.method, ...)`"
        )
    raise RegistrationError(
        f"{describe(fn)} is not a registered workflow; call register_workflow first"
    )


def start(ctx: AppContext, request: StartRequest, workflow_id: str | None) -> WorkflowHandle[Any]:
    """Land a checked start from an application: a child of a running workflow, or top-level.

    Raises:
        InitializationError: `ctx` is a context that is not launched (or shutting down).
    """
    if isinstance(ctx, WorkflowContext):
        return _start_child(ctx, request, workflow_id)
    runtime = ctx._runtime
    if not runtime.launched or runtime.shutting_down.is_set():
        what = "debouncing" if request.burst is not None else "running"
        raise InitializationError(f"launch() the context before {what} workflows")
    return land_start(ctx, request, workflow_id or random_uuid(), step_id=None)


@dataclass(frozen=True, slots=True)
class StartRequest:
    """One start, its arguments checked: what the row will hold, and what runs it here.

    Made by `run_workflow` (a registered workflow, started or enqueued), a `Debouncer` (a
    burst), and a `Client`'s `enqueue` and `debounce` (a workflow named); `land_start`
    writes it.
    """

    name: str
    inputs: str  # the input envelope, encoded
    codec: Codec[Any] | None  # decodes the result for the handle; None: plain JSON
    timeout_ms: int | None
    queue: QueueOptions | None  # None: started here and now, not enqueued
    labels: Labels
    # None: whichever executor runs the application's latest version takes it.
    application_version: str | None
    # The registered workflow and its input, for a start that runs here (queue None).
    run: tuple[WorkflowSpec, Any] | None = None
    # A debounce: the call joins its key's burst, or starts one (queue None).
    burst: Burst | None = None
    # A child freed from its parent: no inherited deadline, not in the parent's cancel tree.
    detached: bool = False
    # A configured instance: which registration of `name` runs it, and its class.
    config_name: str | None = None
    class_name: str | None = None


def _start_child(
    parent: WorkflowContext, request: StartRequest, workflow_id: str | None
) -> WorkflowHandle[Any]:
    """Start (or enqueue) a child as the parent's next step, once across replays."""
    state = parent._state
    if state.in_step:
        what = "a child workflow cannot be started"
        if request.burst is not None:
            what = "debounce cannot be called"
        raise InvalidOptionError("ctx", f"{what} from inside a step")
    codec = request.codec
    # A debounce is a step of its own name: the workflow it lands on may be another's burst.
    name = DEBOUNCE_STEP if request.burst is not None else request.name
    step_id, recorded = begin_operation(parent, name)
    if recorded is not None and recorded.child_workflow_id is not None:
        return handle_to(parent, recorded.child_workflow_id, codec)
    if recorded is not None and recorded.error is not None:
        raise rebuild_error(ErrorRecord.decode(recorded.error), step_name=name)
    child_id = workflow_id or child_workflow_id(state.workflow_id, step_id)
    return land_start(parent, request, child_id, step_id=step_id)


def land_start(
    ctx: Connected, request: StartRequest, workflow_id: str, *, step_id: int | None
) -> WorkflowHandle[Any]:
    """Write the start's row and return a handle, inside the start's span (if traced)."""
    queue_name = None if request.queue is None else request.queue.queue_name
    with start_scope(ctx, request.name, workflow_id, queue_name, step_id) as trace:
        return _land_row(ctx, request, workflow_id, step_id, trace)


def _land_row(
    ctx: Connected,
    request: StartRequest,
    workflow_id: str,
    step_id: int | None,
    trace: StartScope,
) -> WorkflowHandle[Any]:
    """Write the start's row and return a handle to the workflow the caller should watch.

    Every kind of start ends here: direct or queued, top-level or a child (recorded, in the
    same transaction, as the parent's step `step_id`). An ID that exists is an idempotency
    key: the existing workflow is returned, unless it is another function's. A queued start
    whose deduplication ID is taken raises, or returns the holder; for a child, that
    outcome is recorded as the step, so a replay sees the same one.
    """
    runtime = ctx._runtime
    codec = request.codec
    row = request.labels.apply(_row(ctx, request, workflow_id, step_id is not None))
    if request.config_name is not None or request.class_name is not None:
        row = replace(row, config_name=request.config_name, class_name=request.class_name)
    if trace.carrier is not None:
        row = replace(row, attributes=trace.stamp(row.attributes))
    if request.burst is not None:
        return handle_to(ctx, _land_burst(ctx, row, step_id), codec)
    for _ in range(DEDUP_ATTEMPTS):
        try:
            if step_id is None:
                inserted: InsertedWorkflow | None = runtime.store.insert_workflow(row)
            else:
                assert isinstance(ctx, WorkflowContext)
                inserted = insert_child(ctx, row, step_id)
            break
        except Deduplicated:
            holder = _deduplicated(ctx, request, row, step_id)
            if holder is not None:
                return handle_to(ctx, holder, codec)
    else:
        raise QueueDeduplicatedError(
            workflow_id,
            queue_name=row.queue_name or "",
            deduplication_id=row.deduplication_id or "",
        )
    if inserted is not None and inserted.name != request.name:
        raise ConflictingWorkflowError(
            workflow_id, existing_name=inserted.name, requested_name=request.name
        )
    if inserted is None or not inserted.created:
        return handle_to(ctx, workflow_id, codec)
    if request.queue is not None:
        runtime.announce_work(row.queue_name)
        return handle_to(ctx, workflow_id, codec)
    assert request.run is not None  # a direct start is of a workflow registered here
    spec, value = request.run
    origin = NO_ORIGIN if trace.carrier is None else Origin(carrier=trace.carrier)
    execution = launch_execution(
        runtime,
        spec,
        workflow_id,
        value,
        {},
        inserted.deadline_ms,
        row.creator_xid,
        origin,
        # A child's waits are its parent's durable ones, which never run it themselves.
        caller_may_run=step_id is None and caller_may_run(),
    )
    return WorkflowHandle(ctx, workflow_id, codec, execution)


def _land_burst(ctx: Connected, row: NewWorkflow, step_id: int | None) -> str:
    """Join `row`'s burst or start one; the ID of the workflow the call landed on.

    From a workflow body the call is the parent's step `step_id`, recorded in the same
    transaction (a refused deduplication is recorded too, so a replay raises it again).
    """
    runtime = ctx._runtime
    if step_id is None:
        landed = land(runtime, row)
        assert isinstance(landed, Debounced)  # no checkpoint, so never refused
        return landed.workflow_id
    assert isinstance(ctx, WorkflowContext)
    step = StepRecord(step_id, DEBOUNCE_STEP, None, None, None, row.now_ms, runtime.clock.now_ms())
    try:
        outcome = land(runtime, row, checkpoint_of(ctx, step))
    except QueueDeduplicatedError as exc:
        record_operation(ctx, replace(step, error=record_of(exc).encode()))
        raise
    if isinstance(outcome, Debounced):
        return outcome.workflow_id
    recorded = refused(ctx, step_id, DEBOUNCE_STEP, outcome)  # a concurrent replay's record
    if recorded.child_workflow_id is not None:
        return recorded.child_workflow_id
    raise rebuild_error(ErrorRecord.decode(recorded.error or ""), step_name=DEBOUNCE_STEP)


def _row(ctx: Connected, request: StartRequest, workflow_id: str, child: bool) -> NewWorkflow:
    """The new row: PENDING for this executor, or ENQUEUED (DELAYED) on a queue.

    A child ends no later than its parent must: a direct child's deadline is at most the
    parent's, and a queued one's timeout (counted from its dequeue) at most what is left.
    A burst is shared by every call that joins it, so it has no parent and keeps its timeout.
    A detached child is a child in the parent's steps only: its row names no parent (the
    cancel tree follows that column) and inherits no deadline.
    """
    runtime = ctx._runtime
    inputs = request.inputs
    timeout_ms = request.timeout_ms
    if request.burst is not None:
        return request.burst.row(
            runtime,
            workflow_id=workflow_id,
            name=request.name,
            inputs=inputs,
            timeout_ms=timeout_ms,
            application_version=request.application_version,
            config_name=request.config_name,
        )
    attached = child and not request.detached
    parent = ctx._state if attached and isinstance(ctx, WorkflowContext) else None
    parent_deadline = None if parent is None else parent.deadline_ms
    if request.queue is not None:
        if parent_deadline is not None:
            left = max(1, parent_deadline - runtime.clock.now_ms())
            timeout_ms = left if timeout_ms is None else min(timeout_ms, left)
        return queued_row(
            runtime,
            request.queue,
            workflow_id=workflow_id,
            name=request.name,
            inputs=inputs,
            timeout_ms=timeout_ms,
            application_version=request.application_version,
            parent_workflow_id=None if parent is None else parent.workflow_id,
        )
    now = runtime.clock.now_ms()
    deadline = None if timeout_ms is None else now + timeout_ms
    if parent_deadline is not None:
        deadline = parent_deadline if deadline is None else min(deadline, parent_deadline)
    return NewWorkflow(
        workflow_id=workflow_id,
        status=StatusName.PENDING,
        name=request.name,
        inputs=inputs,
        executor_id=runtime.executor_id,
        application_version=request.application_version or runtime.application_version,
        application_name=runtime.app_name,
        application_id=None,
        creator_xid=random_uuid(),
        now_ms=now,
        timeout_ms=timeout_ms,
        deadline_ms=deadline,
        parent_workflow_id=None if parent is None else parent.workflow_id,
    )


# The version and variant bits of a random (version 4) UUID, and the bits they replace.
_UUID4_BITS = (0x4000 << 64) | (0x8000 << 48)
_UUID4_KEPT = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)


def random_uuid() -> str:
    """`str(uuid.uuid4())`, without building a `UUID` object: two are made per start."""
    digits = "%032x" % ((int.from_bytes(os.urandom(16)) & _UUID4_KEPT) | _UUID4_BITS)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _deduplicated(
    ctx: Connected, request: StartRequest, row: NewWorkflow, step_id: int | None
) -> str | None:
    """After a deduplication collision: the holder's ID, or None to try again.

    Raises:
        QueueDeduplicatedError: the policy is "reject".
    """
    assert request.queue is not None  # only a queued start has a deduplication ID
    try:
        holder = deduplication_holder(ctx._runtime, row, request.queue.policy)
    except QueueDeduplicatedError as exc:
        if step_id is not None:
            _record_child_step(ctx, step_id, row.name, None, record_of(exc).encode())
        raise
    if holder is not None and step_id is not None:
        _record_child_step(ctx, step_id, row.name, holder, None)
    return holder


def _record_child_step(
    ctx: Connected, step_id: int, name: str, child_id: str | None, error: str | None
) -> None:
    assert isinstance(ctx, WorkflowContext)
    now = ctx._runtime.clock.now_ms()
    record_operation(ctx, StepRecord(step_id, name, None, error, child_id, now, now))


def get_workflow_id(ctx: WorkflowContext) -> str:
    """The ID of the running workflow.

    Raises:
        InvalidOptionError: `ctx` is not a running workflow's context.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError("ctx", "expected the WorkflowContext of a running workflow")
    return ctx.workflow_id


def get_step_id(ctx: WorkflowContext) -> int:
    """The ID of the step the calling code runs in.

    Inside a step (its body, or threads and tasks it starts), that step's ID; in the
    workflow body, the ID of the last operation it started, -1 before the first. Step IDs
    count from 0 in the order operations start, so the same code gets the same ID on a
    replay: a step may use it, with the workflow ID, as an idempotency key for a call it
    makes to another system.

    Raises:
        InvalidOptionError: `ctx` is not a running workflow's context.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError("ctx", "expected the WorkflowContext of a running workflow")
    state = ctx._state
    return state.running_step_id if state.in_step else state.next_step - 1


def list_registered_workflows(ctx: AppContext, /) -> list[RegisteredWorkflow]:
    """The workflows registered with a context, sorted by name.

    Args:
        ctx: The context they were registered with (inside a workflow, its context).
    """
    if not isinstance(ctx, AppContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext or WorkflowContext")
    return ctx._runtime.registry.entries()
