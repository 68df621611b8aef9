"""`patch` and `deprecate_patch`: changing a workflow's code while older runs are in flight.

A patch is a marker step, `DBOS.patch-<name>`, at the point where the new code departs
from the old. `patch` looks at the step the workflow would record next:

- nothing is recorded there (a new run, or a recovered one whose history ends before this
  point): the marker is recorded and the new code runs;
- the marker is recorded there (a run that already took the new code): it is replayed;
- another step is recorded there (a run that started under the old code): the old code
  runs, and nothing is recorded or consumed, so the old step is replayed at its own ID.

Once no run of the old code is left, `deprecate_patch` replaces `patch`: it skips the
marker where a history has one and does nothing elsewhere, so both the runs that took the
new code before the deprecation and the runs started after it replay step for step.
"""

from __future__ import annotations

from dbos_typed._core.context import WorkflowContext
from dbos_typed._core.durable import begin_operation, record_operation, workflow_context
from dbos_typed._core.validate import checked_name
from dbos_typed._sysdb._rows import StepRecord
from dbos_typed.errors import PatchingNotEnabledError

PATCH_STEP_PREFIX = "DBOS.patch-"


def patch(ctx: WorkflowContext, name: str, /) -> bool:
    """Whether this run of the workflow takes the code introduced by patch `name`.

    Write `if dbos.patch(ctx, "new-pricing"): <new code> else: <old code>`. Runs that
    started before the change answer False and keep replaying the old code; every other run
    answers True.

    Durability: a run that takes the new code records the marker step `DBOS.patch-<name>`
    before this returns, and its replays find the marker and answer True again. A run that
    started under the old code has another step recorded at this point: it answers False
    on every replay, and nothing is recorded, so its later steps keep their IDs.

    Args:
        ctx: The running workflow's context (not inside a step).
        name: Names the change; unique within the workflow.

    Returns:
        True for the new code, False for a run that started under the old code.

    Raises:
        PatchingNotEnabledError: the context was created without `enable_patching`.
        InvalidOptionError: called inside a step, or `name` is not a non-empty string.
        WorkflowCancelledError: the workflow was cancelled.
    """
    marker = _marker(ctx, name, "patch")
    state = ctx._state
    state.check_cancelled()
    recorded = state.recorded.get(state.next_step) if state.recorded else None
    if recorded is not None and recorded.name != marker:
        return False  # the old code recorded its own step here
    step_id, replayed = begin_operation(ctx, marker)
    if replayed is None:
        now = ctx._runtime.clock.now_ms()
        record_operation(ctx, StepRecord(step_id, marker, None, None, None, now, now))
    return True


def deprecate_patch(ctx: WorkflowContext, name: str, /) -> None:
    """Retire patch `name` once no run of the code before it is left.

    Replace `if dbos.patch(ctx, name): <new code> else: <old code>` with
    `dbos.deprecate_patch(ctx, name)` followed by the new code. After the next change, the
    call itself can go.

    Durability: records nothing. Where a run's history holds the marker of this patch at
    this point, the marker is skipped, so runs that took the new code under `patch` replay
    unchanged; runs started from now on no longer record a marker.

    Args:
        ctx: The running workflow's context (not inside a step).
        name: The name the patch had.

    Raises:
        PatchingNotEnabledError: the context was created without `enable_patching`.
        InvalidOptionError: called inside a step, or `name` is not a non-empty string.
        WorkflowCancelledError: the workflow was cancelled.
    """
    marker = _marker(ctx, name, "deprecate_patch")
    state = ctx._state
    state.check_cancelled()
    recorded = state.recorded.get(state.next_step) if state.recorded else None
    if recorded is not None and recorded.name == marker:
        begin_operation(ctx, marker)


def _marker(ctx: object, name: object, operation: str) -> str:
    workflow = workflow_context(ctx, operation)
    if not workflow._runtime.config.enable_patching:
        raise PatchingNotEnabledError(operation)
    return PATCH_STEP_PREFIX + checked_name(name, "name")
