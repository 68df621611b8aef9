"""`check_replay`: would today's code replay a workflow's recorded history?"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from dbos_typed._core.context import DBOSContext, WorkflowContext, WorkflowState
from dbos_typed._core.durable import ReplayCheck, ReplayStopped
from dbos_typed._core.execution import call_body
from dbos_typed._core.registry import WorkflowSpec
from dbos_typed._core.runtime import Execution
from dbos_typed._core.serialization import decode_inputs
from dbos_typed._core.validate import checked_name
from dbos_typed._sysdb._rows import StatusName
from dbos_typed.errors import (
    InvalidOptionError,
    NonDeterminismError,
    NonExistentWorkflowError,
    RegistrationError,
)

_FINISHED = frozenset({StatusName.SUCCESS, StatusName.ERROR})
_NOTHING = "(nothing)"
_RETURNS = "(the workflow returns)"


def check_replay(ctx: DBOSContext, workflow_id: str) -> None:
    """Replay a workflow's recorded steps with the code registered on `ctx`; raise if it strays.

    The workflow's function runs again with its recorded input, and each durable call it
    makes (steps, children, messages, sleeps, ...) must find the record its first run
    left at that step ID, as a recovery would. Nothing executes: a recorded step returns
    its record, and the first call that has none, or finds another step's, stops the
    check. So it runs without side effects (beyond what the body does outside steps) and
    writes nothing. Run it in CI over recorded workflows before deploying a code change.

    A finished workflow (SUCCESS, ERROR) must take exactly its recorded path. One still
    in flight (PENDING, ENQUEUED, ...) must replay what it recorded; past its last record
    the check ends, since that is where a recovery would go on with new steps.

    Args:
        ctx: A context with the new code's workflows registered (it need not be launched).
        workflow_id: The workflow to check.

    Raises:
        NonDeterminismError: the code would take another path. `step_id` is the first
            step where the paths part, `recorded` the name recorded there (`(nothing)`
            past the end), `expected` the name the code asks for (`(the workflow
            returns)` when it ends first); the exception's notes hold the two paths
            side by side.
        NonExistentWorkflowError: there is no such workflow.
        RegistrationError: its workflow name is not registered on `ctx`.
        SerializationError: its recorded input does not fit the registered type.
    """
    if not isinstance(ctx, DBOSContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext from new_context()")
    workflow_id = checked_name(workflow_id, "workflow_id")
    runtime = ctx._runtime
    record = runtime.store.get_status(workflow_id)
    if record is None:
        raise NonExistentWorkflowError(workflow_id)
    spec = runtime.registry.by_name(record.name, record.config_name)
    if spec is None:
        instance = f" (config name {record.config_name!r})" if record.config_name else ""
        raise RegistrationError(
            f"workflow {workflow_id!r} runs {record.name!r}{instance}, which is not registered here"
        )
    value = decode_inputs(spec.input_codec, record.inputs)
    history = runtime.store.list_steps(workflow_id)
    check = ReplayCheck(history)
    state = WorkflowState(
        workflow_id,
        spec,
        Execution(workflow_id),
        None,
        {step.step_id: step for step in history},
        replay_check=check,
    )
    _replay_body(spec, WorkflowContext(runtime, state), value)
    step_id, now = _divergence(check, set(state.recorded), record.status in _FINISHED)
    if step_id is None:
        return
    recorded = check.history.get(step_id, _NOTHING)
    error = NonDeterminismError(workflow_id, step_id=step_id, expected=now, recorded=recorded)
    error.add_note(_side_by_side(check, step_id))
    raise error


def _replay_body(spec: WorkflowSpec, ctx: WorkflowContext, value: Any) -> None:
    """Run the body until it returns, raises or strays from its history.

    An async body gets an event loop of its own, as on a worker; when the caller is itself
    inside a running loop (an async test), the body runs on a thread of its own for that.
    """

    def replay() -> None:
        try:
            call_body(spec, ctx, value)
        except ReplayStopped:
            pass
        except Exception:
            pass  # a workflow that raises ends there, as its first run may have; the path counts

    if not spec.is_async or not _in_running_loop():
        replay()
        return
    failure: list[BaseException] = []

    def on_thread() -> None:
        try:
            replay()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=on_thread, name="dbos_typed-check-replay")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _divergence(check: ReplayCheck, unreplayed: set[int], finished: bool) -> tuple[int | None, str]:
    """Where the paths part, and what the code does there; (None, "") when they agree."""
    stopped = check.left_at
    if stopped is not None:
        now = check.taken[-1][1]
        ran_past_the_end = stopped not in check.history and not {
            i for i in unreplayed if i > stopped
        }
        if ran_past_the_end and not finished:
            return None, ""  # where a recovery would go on
        return stopped, now
    if unreplayed:
        return min(unreplayed), _RETURNS
    return None, ""


def _side_by_side(check: ReplayCheck, parted: int) -> str:
    taken = dict(check.taken)
    last = max([*check.history, *taken, parted])
    width = max(len(_NOTHING), *(len(name) for name in check.history.values()))
    lines = [f"{'step':>4}  {'recorded':<{width}}   now"]
    for step_id in range(last + 1):
        recorded = check.history.get(step_id, _NOTHING)
        now = taken.get(step_id, _RETURNS if step_id == parted else "")
        mark = "≠" if step_id == parted else " "
        lines.append(f"{step_id:>4}  {recorded:<{width}} {mark} {now}".rstrip())
    return "\n".join(lines)
