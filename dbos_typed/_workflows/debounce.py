"""Debouncers: a burst of calls with the same key starts its workflow once, after they stop.

A `Debouncer` checks a call into a `StartRequest` with a `Burst`, and the start pipeline
lands it (`_queues.debouncer` says how a burst is kept on its queue).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from dbos_typed._core.context import AppContext, WorkflowContext
from dbos_typed._core.handle import WorkflowHandle
from dbos_typed._core.identity import labels_for
from dbos_typed._core.registry import NO_INPUT, WorkflowSpec, checked_input
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.serialization import encode_inputs
from dbos_typed._core.validate import checked_name, optional_name
from dbos_typed._queues.debouncer import Burst, checked_max_wait, debounce_queue, delay_ms_of
from dbos_typed._queues.enqueue import checked_timeout_ms
from dbos_typed._queues.queues import WorkflowQueue
from dbos_typed._workflows.start import StartRequest, registered_spec, start
from dbos_typed.errors import InvalidOptionError

InT = TypeVar("InT")
OutT = TypeVar("OutT")


class Debouncer(Generic[InT, OutT]):
    """Runs a workflow once per burst of calls with the same key; made by `new_debouncer`.

    A call with a key that has no burst going starts one; every further call with that key
    joins it. The workflow starts `delay` after the latest call of its burst, with that
    call's input, but no later than `max_wait` after the burst's first call. Once it has
    started, the key is free again: the next call starts a new burst and a new workflow.
    """

    __slots__ = ("_max_wait", "_queue_name", "_runtime", "_spec")

    def __init__(
        self, runtime: Runtime, spec: WorkflowSpec, queue_name: str, max_wait: timedelta | None
    ) -> None:
        self._runtime = runtime
        self._spec = spec
        self._queue_name = queue_name
        self._max_wait = max_wait

    @property
    def workflow_name(self) -> str:
        """The registered name of the debounced workflow."""
        return self._spec.name

    @property
    def queue_name(self) -> str:
        """The queue the workflow runs on; keys are scoped to it."""
        return self._queue_name

    @property
    def max_wait(self) -> timedelta | None:
        """The longest a burst may hold its workflow back, from its first call; None: no cap."""
        return self._max_wait

    def __repr__(self) -> str:
        return f"Debouncer(workflow_name={self.workflow_name!r}, queue_name={self.queue_name!r})"

    @overload
    def debounce(
        self: Debouncer[None, OutT],
        ctx: AppContext,
        key: str,
        /,
        *,
        delay: timedelta,
        workflow_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> WorkflowHandle[OutT]: ...

    @overload
    def debounce(
        self,
        ctx: AppContext,
        key: str,
        input: InT,
        /,
        *,
        delay: timedelta,
        workflow_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> WorkflowHandle[OutT]: ...

    def debounce(
        self,
        ctx: AppContext,
        key: str,
        input: Any = NO_INPUT,
        /,
        *,
        delay: timedelta,
        workflow_id: str | None = None,
        timeout: timedelta | None = None,
    ) -> WorkflowHandle[Any]:
        """Start a burst for `key`, or join the one it has; return a handle to its workflow.

        Every call of a burst returns a handle to the same workflow, whose result is the run
        with the burst's last input.

        Durability: the burst is a DELAYED row of the queue, so it survives crashes of the
        caller and of every worker; joining it (new start time and input) is one
        transaction. Called with a `WorkflowContext`, the call is a step of that workflow
        (`DBOS.debounce`), taken exactly once: a replay returns the same handle without
        touching the burst, and a workflow it starts gets the ID `<caller>-<step>`.

        Args:
            ctx: The context this debouncer was made with, or the context of one of its
                running workflows (not inside a step).
            key: What groups calls into a burst, such as a user or document ID.
            input: The workflow's input, if it takes one; the burst runs with the last.
            delay: How long after this call the workflow starts, unless another call with
                the key comes first; at least zero.
            workflow_id: The ID of the workflow, should this call start a burst; a call
                that joins a burst gets the burst's workflow.
            timeout: The workflow's time limit, counted from when it starts running (as
                for `enqueue`), should this call start a burst.

        Raises:
            InvalidOptionError: a bad key, input, delay or ID, the wrong context, or a call
                from inside a step.
            InitializationError: the context is not launched.
            QueueDeduplicatedError: the key's deduplication ID (`<workflow name>-<key>`)
                is held on the queue by a workflow that is not this debouncer's burst.
            ConflictingWorkflowError: `workflow_id` belongs to a different workflow.
        """
        runtime = self._runtime
        if not isinstance(ctx, AppContext) or ctx._runtime is not runtime:
            raise InvalidOptionError(
                "ctx", "expected the context this debouncer was made with, or its workflow's"
            )
        spec = self._spec
        if spec.input_codec is None and input is None:
            input = NO_INPUT  # a `Debouncer[None, R]` may be handed its None explicitly
        request = StartRequest(
            name=spec.name,
            inputs=encode_inputs(spec.input_codec, checked_input(spec, input)),
            codec=spec.output_codec,
            timeout_ms=checked_timeout_ms(timeout),
            queue=None,
            labels=labels_for(ctx, None, None),
            application_version=runtime.application_version,
            burst=Burst(
                key=checked_name(key, "key"),
                queue_name=self._queue_name,
                delay_ms=delay_ms_of(delay),
                max_wait_ms=checked_max_wait(self._max_wait),
            ),
            config_name=spec.config_name,
            class_name=spec.class_name,
        )
        return start(ctx, request, optional_name(workflow_id, "workflow_id"))


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], Coroutine[Any, Any, OutT]],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[None, OutT]: ...


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], Coroutine[Any, Any, OutT]],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[InT, OutT]: ...


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext], OutT],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[None, OutT]: ...


@overload
def new_debouncer(
    ctx: AppContext,
    fn: Callable[[WorkflowContext, InT], OutT],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[InT, OutT]: ...


def new_debouncer(
    ctx: AppContext,
    fn: Callable[..., Any],
    /,
    *,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
) -> Debouncer[Any, Any]:
    """Make a debouncer for a registered workflow, before or after `launch()`.

    It writes nothing; its `debounce` calls do.

    Args:
        ctx: The context the workflow is registered with.
        fn: A registered workflow function (for a configured instance, the method bound
            to its object: the debouncer's runs go to that instance).
        max_wait: Cap how long a burst may hold the workflow back, counted from the
            burst's first call: a steady stream of calls still runs it by then. None (the
            default) lets a burst last as long as its calls keep coming.
        queue: The queue the workflow runs on (a `WorkflowQueue` or a declared queue's
            name); the internal queue by default. It cannot be partitioned.

    Returns:
        A `Debouncer[I, R]` for a workflow taking an `I` and returning an `R`
        (`Debouncer[None, R]` for one without input).

    Raises:
        RegistrationError: `fn` is not registered with this context.
        InvalidOptionError: a bad `max_wait`, or an unknown or partitioned queue.
    """
    if not isinstance(ctx, AppContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext (or a WorkflowContext)")
    runtime = ctx._runtime
    spec = registered_spec(runtime, fn)
    checked_max_wait(max_wait)
    return Debouncer(runtime, spec, debounce_queue(runtime, queue), max_wait)
