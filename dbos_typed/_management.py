"""Steering workflows from outside: cancel and resume."""

from __future__ import annotations

from typing import Any

from dbos_typed._context import Connected
from dbos_typed._handle import WorkflowHandle
from dbos_typed._runtime import now_ms
from dbos_typed._sysdb._rows import INTERNAL_QUEUE
from dbos_typed.errors import InvalidOptionError, NonExistentWorkflowError


def _checked_id(workflow_id: object) -> str:
    if not isinstance(workflow_id, str) or not workflow_id:
        raise InvalidOptionError("workflow_id", "expected a non-empty string")
    return workflow_id


def cancel_workflow(ctx: Connected, workflow_id: str, /) -> None:
    """Cancel a workflow that has not finished.

    Durability: the workflow's row becomes CANCELLED at once and for good: it leaves its
    queue, and a running execution (in any process) stops at its next step without
    recording a result. Cancelling a finished workflow changes nothing.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
    """
    runtime = ctx._runtime
    workflow_id = _checked_id(workflow_id)
    if not runtime.store.cancel_workflow(workflow_id, now_ms()):
        if runtime.store.workflow_status(workflow_id) is None:
            raise NonExistentWorkflowError(workflow_id)
    execution = runtime.running_execution(workflow_id)
    if execution is not None:
        execution.cancel("cancelled")


def resume_workflow(ctx: Connected, workflow_id: str, /) -> WorkflowHandle[Any]:
    """Resume a cancelled, dead-lettered or stuck workflow from its last recorded step.

    Durability: the workflow is put on the internal queue with a fresh recovery budget and
    no deadline; an executor of its application version picks it up and replays its
    recorded steps. A workflow that already succeeded or failed is left as it is.

    Returns:
        A handle to the workflow.

    Raises:
        NonExistentWorkflowError: there is no such workflow.
    """
    runtime = ctx._runtime
    workflow_id = _checked_id(workflow_id)
    if not runtime.store.resume_workflow(workflow_id, INTERNAL_QUEUE, now_ms()):
        if runtime.store.workflow_status(workflow_id) is None:
            raise NonExistentWorkflowError(workflow_id)
    runtime.queue_wakeup.set()
    record = runtime.store.get_status(workflow_id)
    spec = runtime.registry.by_name(record.name) if record is not None else None
    return WorkflowHandle(ctx, workflow_id, spec.output_codec if spec is not None else None)
