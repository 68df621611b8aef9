"""Awaitable forms of the calls that steer and list workflows.

Each is the blocking call made on a thread (inside a workflow, made when called, on the
workflow's loop, so it takes its operation's step ID in call order), with the same
arguments, answers, errors and durability.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from dbos_typed._core.handle import WorkflowHandle
from dbos_typed._management import listing as _listing
from dbos_typed._management import steering as _management
from dbos_typed.aio._handle import AsyncWorkflowHandle, wrap
from dbos_typed.aio._loop import performed

P = ParamSpec("P")
T = TypeVar("T")
U = TypeVar("U")


def _awaitable(
    fn: Callable[P, T], convert: Callable[[T], U]
) -> Callable[P, Coroutine[None, None, U]]:
    def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[None, None, U]:
        return performed(args[0] if args else None, lambda: convert(fn(*args, **kwargs)))

    name = fn.__name__
    call.__name__ = call.__qualname__ = name
    call.__module__ = "dbos_typed.aio"
    call.__doc__ = (
        f"The awaitable form of `dbos_typed.{name}`: the same call, made on a thread "
        "(inside a workflow: when called, on the workflow's loop).\n\n"
        + inspect.cleandoc(fn.__doc__ or "")
    )
    return call


def _same(value: T) -> T:
    return value


def _async_handle(handle: WorkflowHandle[Any]) -> AsyncWorkflowHandle[Any]:
    return wrap(handle)


def _async_handles(handles: list[WorkflowHandle[Any]]) -> list[AsyncWorkflowHandle[Any]]:
    return [wrap(handle) for handle in handles]


cancel_workflow = _awaitable(_management.cancel_workflow, _same)
cancel_workflows = _awaitable(_management.cancel_workflows, _same)
resume_workflow = _awaitable(_management.resume_workflow, _async_handle)
resume_workflows = _awaitable(_management.resume_workflows, _async_handles)
fork_workflow = _awaitable(_management.fork_workflow, _async_handle)
fork_workflows = _awaitable(_management.fork_workflows, _async_handles)
delete_workflows = _awaitable(_management.delete_workflows, _same)
set_workflow_attributes = _awaitable(_management.set_workflow_attributes, _same)
list_workflows = _awaitable(_listing.list_workflows, _same)
list_queued_workflows = _awaitable(_listing.list_queued_workflows, _same)
get_workflow_steps = _awaitable(_listing.get_workflow_steps, _same)
