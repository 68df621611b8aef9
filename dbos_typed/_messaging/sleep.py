"""`sleep`: a durable pause, and the durable deadline `recv` and `get_event` wait against.

The wake-up time is checkpointed as a `DBOS.sleep` step before waiting (output: the
deadline in epoch milliseconds, a JSON number; completed_at: the deadline, as the Go SDK
writes it), so a workflow recovered after a crash waits only for what is left.
"""

from __future__ import annotations

import json
import math
import threading
from datetime import timedelta

from dbos_typed._core.context import WorkflowContext
from dbos_typed._core.durable import begin_operation, record_operation, workflow_context
from dbos_typed._core.telemetry import operation_scope
from dbos_typed._core.validate import checked_duration, wait_seconds
from dbos_typed._sysdb._rows import StepRecord
from dbos_typed.errors import SerializationError

SLEEP_STEP = "DBOS.sleep"


def sleep(ctx: WorkflowContext, duration: timedelta) -> timedelta:
    """Pause the workflow for `duration`, durably.

    Durability: the wake-up time is checkpointed (step `DBOS.sleep`) before the pause
    starts. If the process stops mid-sleep, the recovered workflow sleeps only until the
    recorded wake-up time, and not at all if it has passed.

    Args:
        ctx: The running workflow's context (not inside a step).
        duration: How long to sleep; zero does not wait. Longer than a century is
            shortened to a century.

    Returns:
        The time this call actually waited (on replay, only the remainder).

    Raises:
        InvalidOptionError: called inside a step, or `duration` is not a non-negative
            timedelta.
        WorkflowCancelledError: the workflow was cancelled while sleeping.
    """
    started, deadline = begin_sleep(ctx, duration)
    state = ctx._state
    clock = ctx._runtime.clock
    waker = threading.Event()
    state.execution.add_waker(waker)
    with operation_scope(ctx, "sleep", SLEEP_STEP, state.next_step - 1):
        try:
            while True:
                if deadline <= clock.time():
                    break
                if clock.wait(waker, deadline):
                    state.check_cancelled()
                    waker.clear()
        finally:
            state.execution.remove_waker(waker)
    return timedelta(seconds=max(0.0, clock.time() - started))


def begin_sleep(ctx: WorkflowContext, duration: timedelta) -> tuple[float, float]:
    """Check a `sleep` call, take its step ID and checkpoint its deadline.

    Returns:
        When the call was made and when the sleep ends, in epoch seconds.

    Raises:
        InvalidOptionError: called inside a step, or `duration` is not a non-negative
            timedelta.
    """
    workflow_context(ctx, "sleep")
    # Refused like a negative timeout of recv or get_event, rather than taken as zero: a
    # negative duration is a bug in the caller's arithmetic.
    duration = checked_duration(duration, "duration")
    started = ctx._runtime.clock.time()
    step_id, recorded = begin_operation(ctx, SLEEP_STEP)
    return started, checkpoint_deadline(ctx, step_id, recorded, duration, started)


def checkpoint_deadline(
    ctx: WorkflowContext,
    step_id: int,
    recorded: StepRecord | None,
    duration: timedelta,
    started: float,
) -> float:
    """The deadline (epoch seconds) of a durable wait: the recorded one, or a new one.

    A new deadline is `started + duration`, checkpointed at `step_id` before returning.
    """
    if recorded is not None:
        return recorded_deadline(recorded)
    deadline = started + max(0.0, wait_seconds(duration))
    # Rounded up: a wait never ends before its deadline, on replay either.
    deadline_ms = math.ceil(deadline * 1000)
    record_operation(
        ctx,
        StepRecord(
            step_id=step_id,
            name=SLEEP_STEP,
            output=str(deadline_ms),
            error=None,
            child_workflow_id=None,
            started_at_ms=int(started * 1000),
            completed_at_ms=deadline_ms,
        ),
    )
    return deadline


def recorded_deadline(recorded: StepRecord) -> float:
    """The deadline a `DBOS.sleep` checkpoint holds, in epoch seconds."""
    try:
        value = json.loads(recorded.output or "")
    except ValueError:
        value = None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SerializationError(
            f"the recorded {SLEEP_STEP} at step {recorded.step_id} has no wake-up time: "
            f"{recorded.output!r}"
        )
    return float(value) / 1000
