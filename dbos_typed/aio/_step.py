"""The awaitable `run_as_step`: a step whose body may be a coroutine.

The step's ID is taken when `run_as_step` is called, so steps started together (with
`asyncio.gather`, say) are numbered in the order the workflow made the calls, whichever
finishes first, and a replay finds each one's record at the same ID. Each records its
own checkpoint when its body returns.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, Unpack, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import WorkflowContext
from dbos_typed._core.durable import begin_operation
from dbos_typed._core.telemetry import step_scope
from dbos_typed._workflows.step import StepOptions, StepPlan
from dbos_typed.aio._loop import LoopWaker, on_worker, prepared
from dbos_typed.errors import StepFailedError, WorkflowCancelledError

R = TypeVar("R")


# A coroutine function (or a callable returning an awaitable) is typed by what it awaits
# to, so those overloads come first.
@overload
def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], Awaitable[R]],
    /,
    *,
    result_type: None = None,
    **options: Unpack[StepOptions],
) -> Coroutine[None, None, R]: ...


@overload
def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], Awaitable[R]],
    /,
    *,
    result_type: type[R] | TypeAdapter[R],
    **options: Unpack[StepOptions],
) -> Coroutine[None, None, R]: ...


# <generated: run_as_step overloads>
# Copied from dbos_typed/_workflows/step.py by scripts/generate_aio.py.
@overload
def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], R],
    /,
    *,
    result_type: None = None,
    **options: Unpack[StepOptions],
) -> Coroutine[None, None, R]: ...


@overload
def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], R],
    /,
    *,
    result_type: type[R] | TypeAdapter[R],
    **options: Unpack[StepOptions],
) -> Coroutine[None, None, R]: ...


# </generated: run_as_step overloads>


def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], Any],
    /,
    *,
    result_type: Any = None,
    **options: Unpack[StepOptions],
) -> Coroutine[None, None, Any]:
    """Run `fn` as a step of the running workflow; await its result.

    The awaitable form of `dbos_typed.run_as_step`, with the same options. `fn` takes no
    arguments and may be a coroutine function (`functools.partial(fetch, url)`, or an
    `async def`), which runs on the workflow's loop, concurrently with other steps. Any
    other callable runs on a worker thread, so a blocking function never stalls the
    loop; if it returns an awaitable (`lambda: fetch(url)`), that is awaited on the loop.
    The result type is `result_type`, else the function's return annotation (for an
    `async def`, what it returns).

    Durability: the step's ID is taken when `run_as_step` is called, before anything is
    awaited; its result or error is checkpointed when its body ends, and a replay
    returns (or raises) the record without running it. Steps started together are
    numbered in the order of the calls, so `asyncio.gather(run_as_step(ctx, a),
    run_as_step(ctx, b))` records `a` then `b` and replays identically. A step whose
    awaiting task is cancelled records nothing and runs again on replay (steps are
    at-least-once). Called from inside another step, `fn` simply runs, without a
    checkpoint of its own (and without a time limit).

    With a `timeout`, an attempt still running after that long is cancelled and fails
    with `StepTimeoutError`, which the retry policy treats like any failure. A coroutine
    body is cancelled with asyncio (it sees `CancelledError` at its `await`); a blocking
    body's worker thread cannot be stopped, so it runs on in the background and what it
    returns is discarded.

    Args:
        ctx: The running workflow's context.
        fn: The step body: a coroutine function, or any zero-argument callable.
        result_type: The type to store and restore the result as.
        **options: `name`, `max_retries`, `base_interval`, `backoff_factor`,
            `max_interval`, `retry_if` and `timeout`, as for `dbos_typed.run_as_step`
            (the delay before a retry is awaited, and a cancellation ends it).

    Raises:
        StepFailedError: `fn` raised; `dbos_typed.run_as_step` lists the other errors.
        InvalidOptionError: a bad option (named), or a context that is not a workflow's.
    """

    def start() -> Coroutine[None, None, Any]:
        plan = StepPlan.from_options(ctx, fn, result_type, options)
        if ctx._state.in_step:
            return _call(ctx, fn)
        step_id, recorded = begin_operation(ctx, plan.name)
        if recorded is not None:
            return _replayed(plan, recorded)
        return _run(ctx, fn, plan, step_id)

    return prepared(start)


async def _replayed(plan: StepPlan, recorded: Any) -> Any:
    return plan.replay(recorded)


async def _run(ctx: WorkflowContext, fn: Callable[[], Any], plan: StepPlan, step_id: int) -> Any:
    state = ctx._state
    started = plan.started(ctx)
    # Set in this task's context only: steps gathered together each run in a task of
    # their own, and each knows its own ID.
    with state.running_step(step_id, blocking=False):
        try:
            value = await _call_with_retries(ctx, fn, plan)
        except StepFailedError as failure:
            outcome = plan.failed(failure)
        else:
            outcome = plan.succeeded(value)
    return plan.finished(ctx, step_id, started, outcome)


async def _call_with_retries(ctx: WorkflowContext, fn: Callable[[], Any], plan: StepPlan) -> Any:
    attempt = 0
    while True:
        attempt += 1
        try:
            with step_scope(ctx._state, plan.name, attempt):
                if plan.timeout is None:
                    return await _call(ctx, fn)
                return await _call_within(ctx, fn, plan)
        except WorkflowCancelledError:
            raise
        except Exception as exc:
            failure = plan.give_up(attempt, exc)
            if failure is not None:
                raise failure from exc
            await wait_before_retry(ctx, plan.policy.delay(attempt))


async def _call_within(ctx: WorkflowContext, fn: Callable[[], Any], plan: StepPlan) -> Any:
    """One attempt, cancelled when it runs longer than the plan's timeout.

    Raises:
        StepTimeoutError: it did not end in time.
    """
    assert plan.timeout is not None
    try:
        async with asyncio.timeout(plan.timeout.total_seconds()) as scope:
            return await _call(ctx, fn)
    except TimeoutError:
        if scope.expired():
            raise plan.overran() from None
        raise  # the body's own TimeoutError, a failure like any other


async def _call(ctx: WorkflowContext, fn: Callable[[], Any]) -> Any:
    if inspect.iscoroutinefunction(fn):  # also sees through functools.partial
        return await fn()
    result = await on_worker(ctx, fn)
    if inspect.isawaitable(result):
        return await result
    return result


async def wait_before_retry(ctx: WorkflowContext, seconds: float) -> None:
    """Wait `seconds` of the context's clock before a retry; a cancellation ends the wait."""
    execution = ctx._state.execution
    waker = LoopWaker()
    execution.add_waker(waker)
    try:
        clock = ctx._runtime.clock
        deadline = clock.time() + seconds
        while clock.time() < deadline and not await waker.wait_on(clock, deadline, None):
            pass
    finally:
        execution.remove_waker(waker)
    ctx._state.check_cancelled()
