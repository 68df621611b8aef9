"""Waits a workflow body makes durably: `recv`, and `get_event` from a workflow.

Such a wait takes two step IDs when it is called: the operation's own, and a `DBOS.sleep`
holding its timeout as an absolute deadline, written before the first wait, so a workflow
recovered mid-wait waits only for the rest. What it waited for (or its timeout) is the
operation's checkpoint, and a replay returns (or raises) it without waiting.

A `DurableWait` says what to look for; `wait_durably` waits for it on the calling thread,
and `dbos_typed.aio` waits for the same object on an event loop.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dbos_typed._core.context import WorkflowContext
from dbos_typed._core.durable import begin_operation, rebuild_error, record_of, refused
from dbos_typed._core.serialization import Codec, ErrorRecord
from dbos_typed._core.telemetry import operation_scope
from dbos_typed._messaging.database_waits import Wait
from dbos_typed._messaging.sleep import SLEEP_STEP, checkpoint_deadline
from dbos_typed._sysdb._listener import Key
from dbos_typed._sysdb._rows import RecordResult, StepRecord
from dbos_typed.errors import WaitTimeoutError

#: How long `recv` and `get_event` wait when no timeout is given.
DEFAULT_WAIT = timedelta(seconds=60)


class DurableWait:
    """One durable wait of a workflow body; subclasses say what `check` looks for.

    Creating one takes its two step IDs. `recorded` is the checkpoint to replay, if any.
    """

    #: Whether a second wait on the same key must be refused (a message is consumed by
    #: one receiver; an event may be read by any number).
    exclusive = False

    def __init__(
        self, ctx: WorkflowContext, name: str, key: Key, timeout: timedelta, what: str
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.key = key
        self.timeout = timeout
        self.what = what
        self.started = ctx._runtime.clock.time()
        self.step_id, self.recorded = begin_operation(ctx, name)
        # The second step ID holds the durable timeout; replay takes it too. It is
        # recorded only if the wait had to wait.
        self._sleep_id, self._sleep_recorded = begin_operation(ctx, SLEEP_STEP, optional=True)

    def check(self) -> StepRecord | None:
        """Look once; when what is awaited is there, checkpoint it and return the record."""
        raise NotImplementedError

    def probe(self) -> bool:
        """Whether `check` would find something now (a cheap read, for periodic re-checks)."""
        raise NotImplementedError

    def deadline(self) -> float:
        """The wait's deadline in epoch seconds: the recorded one, or a new one, recorded."""
        return checkpoint_deadline(
            self.ctx, self._sleep_id, self._sleep_recorded, self.timeout, self.started
        )

    def timed_out(self) -> StepRecord:
        """Checkpoint the timeout and raise it, unless a record already stands (returned)."""
        return record_timeout(
            self.ctx, self.step_id, self.name, WaitTimeoutError(self.what, self.timeout)
        )

    def started_ms(self) -> int:
        """When the wait was called, in epoch milliseconds."""
        return int(self.started * 1000)


# The `dbos.operation` of a wait's span, by the step name it records.
#: The span kind of each durable wait, by the step it records.
SPAN_KINDS = {"DBOS.recv": "recv", "DBOS.getEvent": "get_event"}


def wait_durably(op: DurableWait) -> StepRecord:
    """Wait for `op` on the calling thread; return its record (replayed, found or timed out).

    Raises:
        WaitTimeoutError: the deadline passed first (and was checkpointed).
        WorkflowCancelledError: the workflow was cancelled while waiting.
        DBOSError: an exclusive wait on the same key is already in progress.
    """
    if op.recorded is not None:
        return op.recorded
    kind = SPAN_KINDS.get(op.name, "wait")
    with (
        operation_scope(op.ctx, kind, op.name, op.step_id),
        Wait(op.ctx, op.key, exclusive=op.exclusive) as wait,
    ):
        got = op.check()
        if got is None:
            deadline = op.deadline()
            while got is None:
                signalled = wait.until(deadline, op.probe)
                got = op.check()
                if got is None and not signalled:
                    got = op.timed_out()
    return got


def record_timeout(
    ctx: WorkflowContext, step_id: int, name: str, exc: WaitTimeoutError
) -> StepRecord:
    """Checkpoint a wait's timeout as its outcome and raise it, so replay raises it too.

    Returns the record already standing at `step_id` if there is one (it wins).
    """
    runtime = ctx._runtime
    step = StepRecord(
        step_id,
        name,
        None,
        record_of(exc).encode(),
        None,
        runtime.clock.now_ms(),
        runtime.clock.now_ms(),
    )
    result = runtime.store.record_step(ctx._state.workflow_id, step, runtime.app_name)
    if result is RecordResult.WRITTEN:
        raise exc
    return refused(ctx, step_id, name, result)


def replay_wait(recorded: StepRecord, codec: Codec[Any]) -> Any:
    """The value a wait's record holds, or its recorded error (a timeout) raised."""
    if recorded.error is not None:
        raise rebuild_error(ErrorRecord.decode(recorded.error), step_name=recorded.name)
    return codec.decode(recorded.output or "null")
