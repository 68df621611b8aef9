"""The awaitable `run_workflow`, `enqueue[R]` and `debounce[R]`: start workflows from async code."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Never, Protocol, TypeVar, Unpack, overload

from pydantic import TypeAdapter

from dbos_typed._app.client import Client, DebounceOptions, debounce_named, enqueue_named
from dbos_typed._core.context import AppContext, WorkflowContext
from dbos_typed._core.hand_off import awaited_starts
from dbos_typed._core.registry import NO_INPUT
from dbos_typed._core.serialization import Codec, JsonValue, TypedCall
from dbos_typed._queues.enqueue import ClientEnqueueOptions
from dbos_typed._queues.queues import WorkflowQueue
from dbos_typed._workflows import start as _workflow
from dbos_typed._workflows.start import StartOptions
from dbos_typed.aio._handle import AsyncWorkflowHandle, wrap
from dbos_typed.aio._loop import performed

InT = TypeVar("InT")
OutT = TypeVar("OutT")
R = TypeVar("R")
T = TypeVar("T")


# The same overloads as `dbos_typed.run_workflow`, in the same order and for the same
# reasons (see there), each returning an awaitable handle.
# <generated: run_workflow overloads>
# Copied from dbos_typed/_workflows/start.py by scripts/generate_aio.py.
@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], Never],
    /,
    **options: Unpack[StartOptions],
) -> Coroutine[None, None, AsyncWorkflowHandle[Any]]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], Never],
    input: InT,
    /,
    **options: Unpack[StartOptions],
) -> Coroutine[None, None, AsyncWorkflowHandle[Any]]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], Coroutine[Any, Any, OutT]],
    /,
    **options: Unpack[StartOptions],
) -> Coroutine[None, None, AsyncWorkflowHandle[OutT]]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], Coroutine[Any, Any, OutT]],
    input: InT,
    /,
    **options: Unpack[StartOptions],
) -> Coroutine[None, None, AsyncWorkflowHandle[OutT]]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], OutT],
    /,
    **options: Unpack[StartOptions],
) -> Coroutine[None, None, AsyncWorkflowHandle[OutT]]: ...


@overload
def run_workflow(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], OutT],
    input: InT,
    /,
    **options: Unpack[StartOptions],
) -> Coroutine[None, None, AsyncWorkflowHandle[OutT]]: ...


# </generated: run_workflow overloads>


def run_workflow(
    ctx: AppContext,
    fn: Callable[..., Any],
    input: Any = NO_INPUT,
    /,
    **options: Unpack[StartOptions],
) -> Coroutine[None, None, AsyncWorkflowHandle[Any]]:
    """Start a registered workflow, or put it on a queue; await a handle to it.

    The awaitable form of `dbos_typed.run_workflow`, with the same arguments and errors.
    The workflow (sync or `async def`) runs on this process's worker threads, never on the
    caller's loop; the start itself (a database write) is made on a thread.

    Durability: as `dbos_typed.run_workflow`: the workflow and its input are recorded
    before it runs, and the workflow ID is an idempotency key. Called with a workflow's
    context it starts a child, recorded as a step of the parent whose ID is taken when
    `run_workflow` is called, not when it is awaited.
    """

    def start() -> AsyncWorkflowHandle[Any]:
        with awaited_starts():
            return wrap(_workflow.run_workflow(ctx, fn, input, **options))

    return performed(ctx, start)


def _enqueue(
    client: Client,
    queue: WorkflowQueue | str,
    workflow_name: str,
    input: object = NO_INPUT,
    /,
    *,
    codec: Codec[Any] | None = None,
    **options: Unpack[ClientEnqueueOptions],
) -> Coroutine[None, None, AsyncWorkflowHandle[Any]]:
    def start() -> AsyncWorkflowHandle[Any]:
        return wrap(enqueue_named(client, queue, workflow_name, input, codec=codec, **options))

    return performed(client, start)


# <generated: Enqueue>
# Copied from dbos_typed/_app/client.py by scripts/generate_aio.py.
class Enqueue(Protocol[R]):
    """The signature of `enqueue[R]`."""

    def __call__(
        self,
        client: Client,
        queue: WorkflowQueue | str,
        workflow_name: str,
        input: object = NO_INPUT,
        /,
        **options: Unpack[ClientEnqueueOptions],
    ) -> Coroutine[None, None, AsyncWorkflowHandle[R]]:
        """Enqueue a workflow by name; its handle's result is typed (and validated) as `R`."""
        ...


# </generated: Enqueue>


class _Enqueuer(TypedCall):
    """Put a workflow on a queue by its registered name, from a `Client`; await its handle.

    The awaitable form of `dbos_typed.enqueue`, with the same arguments and errors:
    `await enqueue(client, queue, workflow_name, input, **options)` returns a handle
    whose result is plain JSON data; `await enqueue[R](client, ...)` validates the result
    as `R` and is typed `AsyncWorkflowHandle[R]`. The insert is made on a thread.

    Durability: the ENQUEUED row (and its input) is committed before the handle is
    returned; an executor of the application's latest version (or of the
    `application_version` given) runs it, and it survives crashes. The workflow ID is
    an idempotency key, as with `run_workflow`.
    """

    # <generated: enqueue[R]>
    # Copied from dbos_typed/_app/client.py by scripts/generate_aio.py.
    @overload
    def __getitem__(self, tp: type[R]) -> Enqueue[R]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[R]) -> Enqueue[R]: ...

    def __getitem__(self, tp: Any) -> Enqueue[Any]:
        return self.typed(tp)

    # </generated: enqueue[R]>

    def __call__(
        self,
        client: Client,
        queue: WorkflowQueue | str,
        workflow_name: str,
        input: object = NO_INPUT,
        /,
        **options: Unpack[ClientEnqueueOptions],
    ) -> Coroutine[None, None, AsyncWorkflowHandle[JsonValue]]:
        """Enqueue a workflow by name; see `enqueue`."""
        return _enqueue(client, queue, workflow_name, input, **options)


enqueue = _Enqueuer(lambda codec: functools.partial(_enqueue, codec=codec), "enqueue")


def _debounce(
    client: Client,
    workflow_name: str,
    key: str,
    input: object = NO_INPUT,
    *,
    delay: timedelta,
    codec: Codec[Any] | None = None,
    **options: Unpack[DebounceOptions],
) -> Coroutine[None, None, AsyncWorkflowHandle[Any]]:
    def land() -> AsyncWorkflowHandle[Any]:
        handle = debounce_named(
            client, workflow_name, key, input, delay=delay, codec=codec, **options
        )
        return wrap(handle)

    return performed(client, land)


# <generated: Debounce>
# Copied from dbos_typed/_app/client.py by scripts/generate_aio.py.
class Debounce(Protocol[R]):
    """The signature of a client's `debounce[R]`."""

    def __call__(
        self,
        client: Client,
        workflow_name: str,
        key: str,
        input: object = NO_INPUT,
        /,
        *,
        delay: timedelta,
        **options: Unpack[DebounceOptions],
    ) -> Coroutine[None, None, AsyncWorkflowHandle[R]]:
        """Debounce a workflow by name; its handle's result is typed (and validated) as `R`."""
        ...


# </generated: Debounce>


class _Debouncer(TypedCall):
    """Debounce a workflow by its registered name, from a `Client`; await its handle.

    The awaitable form of `dbos_typed.debounce`, with the same arguments, options and
    errors: `await debounce(client, workflow_name, key, input, delay=...)` returns a
    handle whose result is plain JSON data; `await debounce[R](client, ...)` validates the
    result as `R` and is typed `AsyncWorkflowHandle[R]`. The write is made on a thread.

    Durability: as `dbos_typed.debounce`: the burst is a DELAYED row on the queue (with
    the input), committed before the handle is returned; joining it is one transaction,
    and it survives crashes.
    """

    # <generated: debounce[R]>
    # Copied from dbos_typed/_app/client.py by scripts/generate_aio.py.
    @overload
    def __getitem__(self, tp: type[R]) -> Debounce[R]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[R]) -> Debounce[R]: ...

    def __getitem__(self, tp: Any) -> Debounce[Any]:
        return self.typed(tp)

    # </generated: debounce[R]>

    def __call__(
        self,
        client: Client,
        workflow_name: str,
        key: str,
        input: object = NO_INPUT,
        /,
        *,
        delay: timedelta,
        **options: Unpack[DebounceOptions],
    ) -> Coroutine[None, None, AsyncWorkflowHandle[JsonValue]]:
        """Debounce a workflow by name; see `debounce`."""
        return _debounce(client, workflow_name, key, input, delay=delay, **options)


debounce = _Debouncer(lambda codec: functools.partial(_debounce, codec=codec), "debounce")
