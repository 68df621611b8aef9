"""Registering, starting and executing workflows, including children and deadlines."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, overload

from dbos_typed._context import DBOSContext, WorkflowContext, WorkflowState
from dbos_typed._durable import begin_operation
from dbos_typed._handle import WorkflowHandle
from dbos_typed._registry import WorkflowSpec, build_spec, describe
from dbos_typed._runtime import Execution, Runtime, now_ms
from dbos_typed._serialization import ErrorRecord, decode_inputs, encode_inputs
from dbos_typed._sysdb._listener import STREAMS_CHANNEL
from dbos_typed._sysdb._retry import StoreClosedError
from dbos_typed._sysdb._rows import ClaimedWorkflow, NewWorkflow, StatusName
from dbos_typed.errors import (
    ConflictingWorkflowError,
    InitializationError,
    InvalidOptionError,
    RegistrationError,
    SerializationError,
    StepFailedError,
    WorkflowCancelled,
    WorkflowFailedError,
)

logger = logging.getLogger("dbos_typed")

InT = TypeVar("InT")
OutT = TypeVar("OutT")

_NO_INPUT: Any = object()


@overload
def register_workflow(
    ctx: DBOSContext,
    fn: Callable[[WorkflowContext], OutT],
    /,
    *,
    name: str | None = None,
    max_recovery_attempts: int | None = 100,
) -> Callable[[WorkflowContext], OutT]: ...


@overload
def register_workflow(
    ctx: DBOSContext,
    fn: Callable[[WorkflowContext, InT], OutT],
    /,
    *,
    name: str | None = None,
    max_recovery_attempts: int | None = 100,
) -> Callable[[WorkflowContext, InT], OutT]: ...


def register_workflow(
    ctx: DBOSContext,
    fn: Callable[..., Any],
    /,
    *,
    name: str | None = None,
    max_recovery_attempts: int | None = 100,
) -> Callable[..., Any]:
    """Register a workflow function with a context, before `launch()`.

    A workflow takes the `WorkflowContext` and at most one input, and is annotated:
    `def checkout(ctx: WorkflowContext, order: Order) -> Receipt`. Its input and result
    types are resolved now; an annotation that cannot be resolved or stored as JSON is
    refused here, with the function and parameter named.

    Args:
        ctx: The context to register with.
        fn: The workflow function.
        name: The recorded name; defaults to the function's qualified name. Other
            processes (and DBOS tools) find the workflow by this name.
        max_recovery_attempts: After this many starts without finishing, the workflow is
            set aside as MAX_RECOVERY_ATTEMPTS_EXCEEDED; None for no limit.

    Returns:
        `fn` itself, unchanged.

    Raises:
        RegistrationError: bad signature or types, a duplicate, or the context is launched.
    """
    if not isinstance(ctx, DBOSContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext from new_context()")
    runtime = ctx._runtime
    if runtime.launched:
        raise RegistrationError(
            f"cannot register {describe(fn)}: register workflows before launch()"
        )
    runtime.registry.add(build_spec(fn, name=name, max_recovery_attempts=max_recovery_attempts))
    return fn


@overload
def run_workflow(
    ctx: DBOSContext,
    fn: Callable[[WorkflowContext], OutT],
    /,
    *,
    workflow_id: str | None = None,
    timeout: timedelta | None = None,
) -> WorkflowHandle[OutT]: ...


@overload
def run_workflow(
    ctx: DBOSContext,
    fn: Callable[[WorkflowContext, InT], OutT],
    input: InT,
    /,
    *,
    workflow_id: str | None = None,
    timeout: timedelta | None = None,
) -> WorkflowHandle[OutT]: ...


def run_workflow(
    ctx: DBOSContext,
    fn: Callable[..., Any],
    input: Any = _NO_INPUT,
    /,
    *,
    workflow_id: str | None = None,
    timeout: timedelta | None = None,
) -> WorkflowHandle[Any]:
    """Start a registered workflow and return a handle to it.

    Called with a `WorkflowContext`, it starts a child workflow (ID `<parent>-<step>`
    unless given), recorded as a step of the parent.

    Durability: the workflow and its input are recorded before it runs. The workflow ID is
    an idempotency key: starting an ID that exists returns a handle to that workflow and
    runs nothing (its recorded result wins over a new input). A child's start is
    exactly-once across replays of the parent.

    Args:
        ctx: A launched context, or a running workflow's context for a child.
        fn: A registered workflow function.
        input: The workflow's input, if it takes one.
        workflow_id: The ID to use; a random UUID by default.
        timeout: Cancel the workflow (and children that inherit it) if it has not
            finished by then; the deadline is stored and survives restarts.

    Raises:
        RegistrationError: `fn` is not registered with this context.
        InitializationError: the context is not launched.
        InvalidOptionError: a bad ID, timeout or input.
        ConflictingWorkflowError: the ID belongs to a different workflow.
    """
    if not isinstance(ctx, DBOSContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext or WorkflowContext")
    runtime = ctx._runtime
    spec = runtime.registry.by_fn(fn)
    if spec is None:
        raise RegistrationError(
            f"{describe(fn)} is not a registered workflow; call register_workflow first"
        )
    value = _checked_input(spec, input)
    if workflow_id is not None and (not isinstance(workflow_id, str) or not workflow_id):
        raise InvalidOptionError("workflow_id", "expected a non-empty string or None")
    if timeout is not None and (not isinstance(timeout, timedelta) or timeout <= timedelta(0)):
        raise InvalidOptionError("timeout", "expected a positive timedelta or None")
    if isinstance(ctx, WorkflowContext):
        return _start_child(ctx, spec, value, workflow_id, timeout)
    if not runtime.launched or runtime.shutting_down.is_set():
        raise InitializationError("launch() the context before running workflows")
    return _start(ctx, spec, value, workflow_id or str(uuid.uuid4()), timeout, parent=None)


def _checked_input(spec: WorkflowSpec, value: Any) -> Any:
    if spec.input_codec is None:
        if value is not _NO_INPUT:
            raise InvalidOptionError("input", f"workflow {spec.name!r} takes no input")
        return None
    if value is _NO_INPUT:
        raise InvalidOptionError("input", f"workflow {spec.name!r} needs an input")
    try:
        return spec.input_codec.validate(value)
    except SerializationError as exc:
        raise InvalidOptionError("input", f"for workflow {spec.name!r}: {exc}") from exc


def _start_child(
    parent: WorkflowContext,
    spec: WorkflowSpec,
    value: Any,
    workflow_id: str | None,
    timeout: timedelta | None,
) -> WorkflowHandle[Any]:
    state = parent._state
    if state.in_step:
        raise InvalidOptionError("ctx", "a child workflow cannot be started from inside a step")
    step_id, recorded = begin_operation(parent, spec.name)
    if recorded is not None and recorded.child_workflow_id is not None:
        child_id = recorded.child_workflow_id
        runtime = parent._runtime
        return WorkflowHandle(
            parent, child_id, spec.output_codec, runtime.running_execution(child_id)
        )
    child_id = workflow_id or f"{state.workflow_id}-{step_id}"
    return _start(parent, spec, value, child_id, timeout, parent=(state, step_id))


def _start(
    ctx: DBOSContext,
    spec: WorkflowSpec,
    value: Any,
    workflow_id: str,
    timeout: timedelta | None,
    *,
    parent: tuple[WorkflowState, int] | None,
) -> WorkflowHandle[Any]:
    runtime = ctx._runtime
    now = now_ms()
    timeout_ms = None if timeout is None else max(1, int(timeout.total_seconds() * 1000))
    deadline = None if timeout_ms is None else now + timeout_ms
    if parent is not None and parent[0].deadline_ms is not None:
        # A child ends no later than its parent must.
        deadline = (
            parent[0].deadline_ms if deadline is None else min(deadline, parent[0].deadline_ms)
        )
    row = NewWorkflow(
        workflow_id=workflow_id,
        status=StatusName.PENDING,
        name=spec.name,
        inputs=encode_inputs(spec.input_codec, value),
        executor_id=runtime.executor_id,
        application_version=runtime.application_version,
        application_name=runtime.app_name,
        application_id=None,
        creator_xid=str(uuid.uuid4()),
        now_ms=now,
        timeout_ms=timeout_ms,
        deadline_ms=deadline,
        parent_workflow_id=None if parent is None else parent[0].workflow_id,
    )
    if parent is None:
        inserted = runtime.store.insert_workflow(row)
    else:
        state, step_id = parent
        inserted = runtime.store.insert_child_workflow(
            row, state.workflow_id, step_id, runtime.app_name
        )
    if inserted.name != spec.name:
        raise ConflictingWorkflowError(
            workflow_id, existing_name=inserted.name, requested_name=spec.name
        )
    if not inserted.created:
        return WorkflowHandle(
            ctx, workflow_id, spec.output_codec, runtime.running_execution(workflow_id)
        )
    execution = launch_execution(runtime, spec, workflow_id, value, {}, inserted.deadline_ms)
    return WorkflowHandle(ctx, workflow_id, spec.output_codec, execution)


def launch_execution(
    runtime: Runtime,
    spec: WorkflowSpec,
    workflow_id: str,
    value: Any,
    recorded: dict[int, Any] | None,
    deadline_ms: int | None,
) -> Execution:
    """Run a workflow on a worker thread, unless this process already runs it.

    `recorded` holds the steps to replay; None means load them from the database first.
    """
    with runtime.running_lock:
        existing = runtime.running.get(workflow_id)
        if existing is not None and existing.cancel_reason is None:
            return existing
        execution = Execution(workflow_id)
        if existing is not None:
            # A cancelled run is still unwinding; the new run starts once it is gone.
            existing.future.add_done_callback(
                lambda _: _run_after(runtime, spec, execution, value, recorded, deadline_ms)
            )
            runtime.running[workflow_id] = execution
            return execution
        runtime.running[workflow_id] = execution
    _run_after(runtime, spec, execution, value, recorded, deadline_ms)
    return execution


def _run_after(
    runtime: Runtime,
    spec: WorkflowSpec,
    execution: Execution,
    value: Any,
    recorded: dict[int, Any] | None,
    deadline_ms: int | None,
) -> None:
    workflow_id = execution.workflow_id
    if deadline_ms is not None:
        runtime.deadlines.add(deadline_ms, lambda: _expire(runtime, workflow_id))
    runtime.workers.submit(lambda: _execute(runtime, spec, execution, value, recorded, deadline_ms))


def _expire(runtime: Runtime, workflow_id: str) -> None:
    cancelled = runtime.store.cancel_if_past_deadline(workflow_id, now_ms())
    execution = runtime.running_execution(workflow_id)
    if execution is not None and (
        cancelled or runtime.store.workflow_status(workflow_id) is StatusName.CANCELLED
    ):
        execution.cancel("cancelled: its deadline passed")


def _execute(
    runtime: Runtime,
    spec: WorkflowSpec,
    execution: Execution,
    value: Any,
    recorded: dict[int, Any] | None,
    deadline_ms: int | None,
) -> None:
    workflow_id = execution.workflow_id
    outcome: tuple[str, Any] = ("database", None)
    try:
        if recorded is None:
            recorded = {step.step_id: step for step in runtime.store.list_steps(workflow_id)}
        state = WorkflowState(workflow_id, spec, execution, deadline_ms, recorded)
        outcome = _run_body(runtime, spec, state, value)
    except (WorkflowCancelled, StoreClosedError):
        pass
    except BaseException:
        logger.exception("workflow %r stopped unexpectedly", workflow_id)
    finally:
        # Leave the table first: a waiter that no longer finds the run reads the database,
        # where the outcome already is.
        with runtime.running_lock:
            if runtime.running.get(workflow_id) is execution:
                del runtime.running[workflow_id]
        execution.future.set_result(outcome)
        # Stream readers stop once the writer is done; tell local ones now.
        runtime.waiters.wake_workflow(STREAMS_CHANNEL, workflow_id)


def _run_body(
    runtime: Runtime, spec: WorkflowSpec, state: WorkflowState, value: Any
) -> tuple[str, Any]:
    workflow_id = state.workflow_id
    ctx = WorkflowContext(runtime, state)
    try:
        if runtime.shutting_down.is_set():
            raise WorkflowCancelled(workflow_id, "interrupted by shutdown")
        result = spec.fn(ctx, value) if spec.input_codec is not None else spec.fn(ctx)
        output = spec.output_codec.encode(result)
    except WorkflowCancelled:
        return ("database", None)
    except Exception as exc:
        record = _failure_record(exc)
        if not runtime.store.complete_workflow(
            workflow_id, StatusName.ERROR, None, record.encode(), now_ms()
        ):
            return ("database", None)
        failure = WorkflowFailedError(
            workflow_id,
            error_name=record.name,
            error_message=record.message,
            error_code=record.code,
            data=record.data,
        )
        failure.__cause__ = exc
        return ("error", failure)
    if not runtime.store.complete_workflow(workflow_id, StatusName.SUCCESS, output, None, now_ms()):
        return ("database", None)
    return ("ok", result)


def _failure_record(exc: Exception) -> ErrorRecord:
    """What a failed workflow records: a step's or child's failure keeps the original name."""
    if isinstance(exc, StepFailedError | WorkflowFailedError):
        return ErrorRecord(
            name=exc.error_name, message=exc.error_message, code=exc.error_code, data=exc.data
        )
    return ErrorRecord.of(exc)


def execute_claimed(runtime: Runtime, claimed: ClaimedWorkflow) -> None:
    """Run a workflow the queue runner just claimed (a recovered, resumed or queued one)."""
    spec = runtime.registry.by_name(claimed.name)
    workflow_id = claimed.workflow_id
    if spec is None:
        logger.warning(
            "workflow %r is named %r, which is not registered in this process; it stays PENDING",
            workflow_id,
            claimed.name,
        )
        return
    limit = spec.max_recovery_attempts
    if limit is not None and claimed.recovery_attempts > limit + 1:
        logger.warning(
            "workflow %r exceeded %d recovery attempts and moves to the dead-letter queue",
            workflow_id,
            limit,
        )
        runtime.store.dead_letter(workflow_id, now_ms())
        return
    try:
        value = decode_inputs(spec.input_codec, claimed.inputs)
    except SerializationError as exc:
        record = _failure_record(exc)
        runtime.store.complete_workflow(
            workflow_id, StatusName.ERROR, None, record.encode(), now_ms()
        )
        return
    launch_execution(runtime, spec, workflow_id, value, None, claimed.deadline_ms)


def get_workflow_id(ctx: WorkflowContext) -> str:
    """The ID of the running workflow.

    Raises:
        InvalidOptionError: `ctx` is not a running workflow's context.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError("ctx", "expected the WorkflowContext of a running workflow")
    return ctx.workflow_id
