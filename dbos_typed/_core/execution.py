"""Running a workflow in this process: worker threads, deadlines, recording the outcome.

Both paths end here: a direct start (`_workflow._start`) and a claim by the queue runner
(`execute_claimed`, for queued, recovered and resumed workflows).
"""

from __future__ import annotations

from typing import Any

from dbos_typed._core.context import WorkflowContext, WorkflowState
from dbos_typed._core.crash import SimulatedCrash
from dbos_typed._core.hand_off import PendingRun
from dbos_typed._core.registry import WorkflowSpec
from dbos_typed._core.runtime import Execution, Runtime
from dbos_typed._core.serialization import ErrorRecord, decode_inputs, safe_str
from dbos_typed._core.telemetry import NO_ORIGIN, Origin, WorkflowScope, carrier_of, log_fields
from dbos_typed._sysdb._listener import STREAMS_CHANNEL
from dbos_typed._sysdb._retry import StoreClosedError
from dbos_typed._sysdb._rows import INTERNAL_QUEUE, ClaimedWorkflow, StatusName
from dbos_typed.errors import (
    SerializationError,
    StepFailedError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowInterruptedError,
)


def launch_execution(
    runtime: Runtime,
    spec: WorkflowSpec,
    workflow_id: str,
    value: Any,
    recorded: dict[int, Any] | None,
    deadline_ms: int | None,
    owner_xid: str | None = None,
    origin: Origin = NO_ORIGIN,
    *,
    caller_may_run: bool = False,
) -> Execution:
    """Run a workflow on a worker thread, unless this process already runs it.

    `recorded` holds the steps to replay; None means load them from the database first.
    `caller_may_run`: the starting thread may wait on the run and so run it itself; the
    workers get it only if it is still untaken after a short grace (`LateHandOff`).
    A claim under a new owner token (the workflow was resumed and this process took it
    back) supersedes a run still going here: that run stops at its next checkpoint, which
    would be refused anyway, and the new one starts once it is gone.
    """

    def start(execution: Execution) -> None:
        if deadline_ms is not None:
            runtime.deadlines.add(deadline_ms, lambda: _expire(runtime, workflow_id))

        def run() -> None:
            _execute(runtime, spec, execution, value, recorded, deadline_ms, owner_xid, origin)

        if spec.is_async:
            # An async run needs a worker's event loop; it is never run by a waiter.
            runtime.workers.submit(run)
            return
        execution.pending = PendingRun(run)
        if caller_may_run:
            runtime.late_hand_off.add(execution.pending)
        else:
            runtime.workers.submit(execution.pending)

    with runtime.running_lock:
        existing = runtime.running.get(workflow_id)
        if existing is not None and existing.cancel_reason is None:
            if owner_xid is None or existing.owner_xid == owner_xid:
                return existing
            existing.cancel("superseded by a new claim of the workflow")
        if runtime.crashes is not None:
            runtime.crashes.forget(workflow_id)
        execution = Execution(workflow_id, owner_xid)
        runtime.running[workflow_id] = execution
        if existing is not None:
            # The earlier run is still unwinding; the new run starts once it is gone.
            existing.future.add_done_callback(lambda _: start(execution))
            return execution
    start(execution)
    return execution


def _expire(runtime: Runtime, workflow_id: str) -> None:
    cancelled = runtime.store.cancel_if_past_deadline(workflow_id, runtime.clock.now_ms())
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
    owner_xid: str | None = None,
    origin: Origin = NO_ORIGIN,
) -> None:
    workflow_id = execution.workflow_id
    outcome: tuple[str, Any] = ("database", None)
    try:
        if recorded is None:
            recorded = {step.step_id: step for step in runtime.store.list_steps(workflow_id)}
        state = WorkflowState(
            workflow_id, spec, execution, deadline_ms, recorded, owner_xid=owner_xid
        )
        with WorkflowScope(runtime, state, origin) as scope:
            outcome = _run_body(runtime, spec, state, value)
            scope.ended(outcome)
    except (WorkflowCancelledError, StoreClosedError):
        pass
    except SimulatedCrash as crash:
        # A test asked for this crash: its waiters get the crash itself, so the test can
        # tell it from a real interruption.
        outcome = ("error", crash)
        runtime.logger.info("%s", crash, extra=log_fields(workflow_id))
    except BaseException as exc:
        # As a crash would, this leaves the workflow PENDING for recovery; unlike a crash,
        # whoever waits on this run is told now rather than waiting for an outcome that
        # this process will not write.
        stopped = WorkflowInterruptedError(workflow_id, _reason(exc))
        stopped.__cause__ = exc
        outcome = ("error", stopped)
        runtime.logger.error("%s", stopped, exc_info=exc, extra=log_fields(workflow_id))
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
            raise WorkflowCancelledError(workflow_id, "interrupted by shutdown")
        result = call_body(spec, ctx, value)
        output = spec.output_codec.encode(result)
        # A cancelled run never writes an outcome: its row may be PENDING again because
        # the workflow was resumed and claimed by a new run meanwhile.
        state.check_cancelled()
    except (WorkflowCancelledError, StoreClosedError):
        return ("database", None)
    except WorkflowInterruptedError:
        raise  # a run it waited on stopped: this one stops with it, recording nothing
    except Exception as exc:
        if state.execution.cancel_reason is not None:
            return ("database", None)
        record = _failure_record(exc)
        if not runtime.store.complete_workflow(
            workflow_id,
            StatusName.ERROR,
            None,
            record.encode(),
            runtime.clock.now_ms(),
            state.owner_xid,
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
    if not runtime.store.complete_workflow(
        workflow_id, StatusName.SUCCESS, output, None, runtime.clock.now_ms(), state.owner_xid
    ):
        return ("database", None)
    state.execution.stored_output = (spec.output_codec, output)
    return ("ok", result)


def call_body(spec: WorkflowSpec, ctx: WorkflowContext, value: Any) -> Any:
    """Call a workflow's function with its context and input; await it if it is async."""
    body = spec.fn(ctx, value) if spec.input_codec is not None else spec.fn(ctx)
    if not spec.is_async:
        return body
    # An async workflow gets an event loop of its own on this worker thread, for as long
    # as it runs: its steps and waits share it, and no other workflow can stall it. Tasks
    # it leaves behind are cancelled when it returns, before its outcome is recorded. The
    # loop is kept for a later async workflow when the run left nothing on it (`LoopShelf`).
    return ctx._runtime.workers.loops.run(body)


def _reason(exc: BaseException) -> str:
    message = safe_str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _failure_record(exc: Exception) -> ErrorRecord:
    """What a failed workflow records: a step's or child's failure keeps the original name."""
    if isinstance(exc, StepFailedError | WorkflowFailedError):
        return ErrorRecord(
            name=exc.error_name, message=exc.error_message, code=exc.error_code, data=exc.data
        )
    return ErrorRecord.of(exc)


def execute_claimed(runtime: Runtime, claimed: ClaimedWorkflow) -> Execution | None:
    """Run a workflow the queue runner just claimed (a recovered, resumed or queued one).

    Returns its execution, or None when nothing runs (unknown name, dead-lettered, input
    that cannot be decoded).
    """
    spec = runtime.registry.by_name(claimed.name, claimed.config_name)
    workflow_id = claimed.workflow_id
    if spec is None:
        instance = f" (config name {claimed.config_name!r})" if claimed.config_name else ""
        runtime.logger.warning(
            "workflow %r is named %r%s, which is not registered in this process; it stays PENDING",
            workflow_id,
            claimed.name,
            instance,
            extra=log_fields(workflow_id),
        )
        return None
    limit = spec.max_recovery_attempts
    if limit is not None and claimed.recovery_attempts > limit + 1:
        runtime.logger.warning(
            "workflow %r exceeded %d recovery attempts and moves to the dead-letter queue",
            workflow_id,
            limit,
            extra=log_fields(workflow_id),
        )
        runtime.store.dead_letter(workflow_id, runtime.clock.now_ms())
        return None
    try:
        value = decode_inputs(spec.input_codec, claimed.inputs)
    except SerializationError as exc:
        record = _failure_record(exc)
        runtime.store.complete_workflow(
            workflow_id, StatusName.ERROR, None, record.encode(), runtime.clock.now_ms()
        )
        return None
    # A workflow that never recorded a step (most queued ones) has nothing to replay.
    recorded: dict[int, Any] | None = None if claimed.has_steps else {}
    return launch_execution(
        runtime,
        spec,
        workflow_id,
        value,
        recorded,
        claimed.deadline_ms,
        claimed.owner_xid,
        _origin(runtime, claimed),
    )


def _origin(runtime: Runtime, claimed: ClaimedWorkflow) -> Origin:
    """What the run's telemetry needs from the row; read only when something is recorded."""
    if not runtime.telemetry.active():
        return NO_ORIGIN
    record = runtime.store.get_status(claimed.workflow_id)
    queue_name = claimed.queue_name
    ready_ms = None
    if record is not None and queue_name is not None and queue_name != INTERNAL_QUEUE:
        ready_ms = max(record.created_at_ms, record.delay_until_ms or 0)
    return Origin(
        carrier=None if record is None else carrier_of(record.attributes),
        attempt=claimed.recovery_attempts,
        queue_name=queue_name,
        ready_ms=ready_ms,
    )
