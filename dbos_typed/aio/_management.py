"""Awaitable forms of the calls that steer and list workflows.

Each is the blocking call made on a thread (inside a workflow, made when called, on the
workflow's loop, so it takes its operation's step ID in call order), with the same
arguments, answers, errors and durability.
"""

from __future__ import annotations

from typing import Any, TypeVar

from dbos_typed._core.handle import WorkflowHandle
from dbos_typed._management import listing as _listing
from dbos_typed._management import steering as _management
from dbos_typed.aio._handle import AsyncWorkflowHandle, wrap
from dbos_typed.aio._loop import awaitable_form, same

T = TypeVar("T")


def _async_handle(handle: WorkflowHandle[Any]) -> AsyncWorkflowHandle[Any]:
    return wrap(handle)


def _async_handles(handles: list[WorkflowHandle[Any]]) -> list[AsyncWorkflowHandle[Any]]:
    return [wrap(handle) for handle in handles]


cancel_workflow = awaitable_form(_management.cancel_workflow, same)
cancel_workflows = awaitable_form(_management.cancel_workflows, same)
resume_workflow = awaitable_form(_management.resume_workflow, _async_handle)
resume_workflows = awaitable_form(_management.resume_workflows, _async_handles)
fork_workflow = awaitable_form(_management.fork_workflow, _async_handle)
fork_workflows = awaitable_form(_management.fork_workflows, _async_handles)
delete_workflows = awaitable_form(_management.delete_workflows, same)
garbage_collect = awaitable_form(_management.garbage_collect, same)
set_workflow_attributes = awaitable_form(_management.set_workflow_attributes, same)
list_workflows = awaitable_form(_listing.list_workflows, same)
list_queued_workflows = awaitable_form(_listing.list_queued_workflows, same)
get_workflow_steps = awaitable_form(_listing.get_workflow_steps, same)
