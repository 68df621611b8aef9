"""`run_as_step`: run a function once per workflow, with its result checkpointed."""

from __future__ import annotations

import contextvars
import functools
import inspect
import random
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, TypedDict, TypeVar, Unpack, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import WorkflowContext
from dbos_typed._core.crash import CrashWhen
from dbos_typed._core.durable import (
    OperationOutcome,
    begin_operation,
    complete_operation,
    rebuild_error,
    record_of,
)
from dbos_typed._core.serialization import Codec, ErrorRecord, codec_for, decode_any, is_json_native
from dbos_typed._core.telemetry import step_scope
from dbos_typed._core.validate import optional_name, optional_positive_duration
from dbos_typed._sysdb._rows import StepRecord
from dbos_typed.errors import (
    InvalidOptionError,
    MaxStepRetriesExceededError,
    SerializationError,
    StepFailedError,
    StepTimeoutError,
    WorkflowCancelledError,
)

R = TypeVar("R")
T = TypeVar("T")

_NO_HINT = object()


# The defaults of a step's retry options, for both forms of `run_as_step`.
BASE_INTERVAL = timedelta(milliseconds=100)
BACKOFF_FACTOR = 2.0
MAX_INTERVAL = timedelta(seconds=5)


class RetryOptions(TypedDict, total=False):
    """The retry and naming options of a step or a transaction, as signatures take them.

    `run_as_step` and `run_as_transaction` name each one, with its default.
    """

    name: str | None
    max_retries: int
    base_interval: timedelta
    backoff_factor: float
    max_interval: timedelta
    retry_if: Callable[[Exception], bool] | None


class StepOptions(RetryOptions, total=False):
    """The options of `run_as_step`: those of `RetryOptions`, and a time limit per attempt.

    A transaction has no `timeout`: its body holds a database transaction open, which a
    thread left running in the background must not do.
    """

    timeout: timedelta | None


@overload
def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], R],
    /,
    *,
    result_type: None = None,
    **options: Unpack[StepOptions],
) -> R: ...


@overload
def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], R],
    /,
    *,
    result_type: type[R] | TypeAdapter[R],
    **options: Unpack[StepOptions],
) -> R: ...


def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], Any],
    /,
    *,
    name: str | None = None,
    max_retries: int = 0,
    base_interval: timedelta = BASE_INTERVAL,
    backoff_factor: float = BACKOFF_FACTOR,
    max_interval: timedelta = MAX_INTERVAL,
    retry_if: Callable[[Exception], bool] | None = None,
    timeout: timedelta | None = None,
    result_type: Any = None,
) -> Any:
    """Run `fn` as a step of the running workflow and return its result.

    `fn` takes no arguments: close over what it needs (`lambda: charge(order)`). The
    result is stored as JSON, typed by `result_type`, or else by `fn`'s return annotation;
    a lambda (which has none) may return only plain JSON values.

    Durability: the result, or the error, is checkpointed before the workflow moves on.
    When the workflow is replayed after a crash, a recorded step is not run again: its
    result is returned, or its error raised, from the record. A step that was running
    during the crash runs again (steps are at-least-once). Called from inside another
    step, `fn` simply runs, without a checkpoint of its own (and without a time limit).

    With a `timeout`, each attempt runs on a thread of its own and the workflow waits
    for it at most that long; an attempt that overruns fails with `StepTimeoutError`,
    which the retry policy treats like any failure. Python cannot stop a thread, so the
    overrunning body goes on in the background until it returns, and what it returns is
    discarded: give a step a timeout when its body is safe to abandon. Without a
    timeout, `fn` runs on the workflow's own thread.

    Args:
        ctx: The running workflow's context.
        fn: The step body.
        name: The recorded step name; defaults to `fn`'s qualified name (for a
            `functools.partial`, its function's).
        max_retries: How many times to retry after a failure (0: run once).
        base_interval: Delay before the first retry.
        backoff_factor: Each further retry waits this much longer, up to `max_interval`.
        max_interval: The longest delay between retries.
        retry_if: Decides whether an error is worth retrying; by default all are.
        timeout: The longest one attempt may run (a positive timedelta); None: no limit.
        result_type: The type to store and restore the result as.

    Raises:
        StepFailedError: `fn` raised (on replay too); the original is its `__cause__` on
            the first run.
        StepTimeoutError: the only allowed attempt ran longer than `timeout` (on replay
            too).
        MaxStepRetriesExceededError: `fn` failed on every allowed attempt (a timeout
            among them: its `error_name` is then `"StepTimeoutError"`).
        NonDeterminismError: a different step is recorded at this point of the workflow.
        WorkflowCancelledError: the workflow was cancelled.
        InvalidOptionError: a bad option (named); or `fn` is a coroutine function, or
            returned an awaitable: `dbos_typed.aio.run_as_step` awaits those.
    """
    policy, name = check_step_call(
        ctx, fn, name, max_retries, base_interval, backoff_factor, max_interval, retry_if
    )
    limit = optional_positive_duration(timeout, "timeout")
    if inspect.iscoroutinefunction(fn):
        raise InvalidOptionError(
            "fn", "is a coroutine function: use `await dbos_typed.aio.run_as_step(...)`"
        )
    state = ctx._state
    if state.in_step:
        return fn()
    plan = StepPlan.of(fn, name, policy, retry_if, result_type, timeout=limit)
    step_id, recorded = begin_operation(ctx, plan.name)
    if recorded is not None:
        return plan.replay(recorded)
    started = plan.started(ctx)
    with state.running_step(step_id, blocking=True):
        try:
            value = _call_with_retries(ctx, fn, plan)
        except StepFailedError as failure:
            outcome = plan.failed(failure)
        else:
            outcome = plan.succeeded(value)
    return plan.finished(ctx, step_id, started, outcome)


def check_step_call(
    ctx: object,
    fn: object,
    name: str | None,
    max_retries: int,
    base_interval: timedelta,
    backoff_factor: float,
    max_interval: timedelta,
    retry_if: object,
) -> tuple[RetryPolicy, str | None]:
    """Check the arguments of a step call; return its retry policy and checked name.

    Raises:
        InvalidOptionError: the argument named in it is invalid.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError(
            "ctx", "run_as_step needs the WorkflowContext of a running workflow"
        )
    if not callable(fn):
        raise InvalidOptionError(
            "fn", f"expected a zero-argument callable, got {type(fn).__name__}"
        )
    if (
        max_retries == 0
        and type(max_retries) is int
        and base_interval is BASE_INTERVAL
        and backoff_factor is BACKOFF_FACTOR
        and max_interval is MAX_INTERVAL
    ):
        policy = DEFAULT_POLICY  # the defaults, already checked
    else:
        policy = RetryPolicy.checked(max_retries, base_interval, backoff_factor, max_interval)
    if retry_if is not None and not callable(retry_if):
        raise InvalidOptionError("retry_if", "expected a callable taking an exception")
    return policy, optional_name(name, "name")


@dataclass(frozen=True, slots=True)
class StepPlan:
    """How one step call runs and is recorded: its name, retries and result codec."""

    name: str
    policy: RetryPolicy
    retry_if: Callable[[Exception], bool] | None
    codec: Codec[Any] | None  # None: no type known, only plain JSON values
    timeout: timedelta | None = None  # the limit of one attempt; None: none

    @classmethod
    def of(
        cls,
        fn: Callable[..., Any],  # a step takes nothing, a transaction its connection
        name: str | None,
        policy: RetryPolicy,
        retry_if: Callable[[Exception], bool] | None,
        result_type: Any,
        *,
        timeout: timedelta | None = None,
    ) -> StepPlan:
        """The plan of a step running `fn`, named `name` or after `fn`."""
        codec = _codec_for_step(fn, result_type)
        return cls(name or _default_name(fn), policy, retry_if, codec, timeout)

    @classmethod
    def from_options(
        cls, ctx: object, fn: object, result_type: Any, options: StepOptions
    ) -> StepPlan:
        """The plan of a step call whose options came as `**StepOptions`, checked.

        Raises:
            InvalidOptionError: the argument named in it is invalid.
        """
        retry_if = options.get("retry_if")
        policy, name = check_step_call(
            ctx,
            fn,
            options.get("name"),
            options.get("max_retries", 0),
            options.get("base_interval", BASE_INTERVAL),
            options.get("backoff_factor", BACKOFF_FACTOR),
            options.get("max_interval", MAX_INTERVAL),
            retry_if,
        )
        timeout = optional_positive_duration(options.get("timeout"), "timeout")
        assert callable(fn)  # checked by check_step_call
        return cls.of(fn, name, policy, retry_if, result_type, timeout=timeout)

    def overran(self) -> StepTimeoutError:
        """The error of an attempt that ran longer than the plan's timeout."""
        assert self.timeout is not None
        return StepTimeoutError(self.name, timeout=self.timeout)

    def give_up(self, attempt: int, exc: Exception) -> StepFailedError | None:
        """The error that ends the step after failed attempt `attempt`; None to retry."""
        # A timeout is dbos_typed's own error: record its fields, not its long message.
        record = record_of(exc) if isinstance(exc, StepTimeoutError) else ErrorRecord.of(exc)
        policy = self.policy
        if attempt <= policy.max_retries and (self.retry_if is None or self.retry_if(exc)):
            return None
        if isinstance(exc, StepTimeoutError) and attempt == 1:
            return exc  # the one attempt overran: that is the step's error itself
        failure: StepFailedError
        if attempt > 1 and attempt > policy.max_retries:
            failure = MaxStepRetriesExceededError(
                self.name,
                attempts=attempt,
                error_name=record.name,
                error_message=record.message,
                error_code=record.code,
                data=record.data,
            )
        else:
            failure = StepFailedError(
                self.name,
                error_name=record.name,
                error_message=record.message,
                error_code=record.code,
                data=record.data,
            )
        failure.__cause__ = exc
        return failure

    def succeeded(self, value: Any) -> OperationOutcome:
        """What a step that returned `value` records and returns.

        Raises:
            InvalidOptionError: the value is an awaitable, which only the awaitable
                `run_as_step` of `dbos_typed.aio` awaits.
            SerializationError: the value cannot be stored.
        """
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never to be awaited; closing it avoids a warning
            raise InvalidOptionError(
                "fn",
                f"step {self.name!r} returned an awaitable: use "
                "`await dbos_typed.aio.run_as_step(...)` from an async workflow",
            )
        return encode_result(self.codec, value, self.name), None, value, None

    @staticmethod
    def failed(failure: StepFailedError) -> OperationOutcome:
        """What a step that gave up with `failure` records and raises."""
        return None, record_of(failure).encode(), None, failure

    def reach(self, ctx: WorkflowContext, when: CrashWhen) -> None:
        """Reach the step's crash point `when` (a `testing.crash_at`), if one is armed."""
        state, crashes = ctx._state, ctx._runtime.crashes
        if crashes is not None:
            crashes.reach(state.workflow_id, state.owner_xid, self.name, when)

    def started(self, ctx: WorkflowContext) -> int:
        """Reach the step's "before" crash point (if armed); its start time, epoch ms."""
        self.reach(ctx, "before")
        return ctx._runtime.clock.now_ms()

    def finished(
        self, ctx: WorkflowContext, step_id: int, started: int, outcome: OperationOutcome
    ) -> Any:
        """Reach the "after" crash point, record the outcome; the result (or raise)."""
        self.reach(ctx, "after")
        return complete_operation(ctx, step_id, self.name, started, outcome)

    def replay(self, recorded: StepRecord) -> Any:
        """The recorded step's result, or its recorded error raised."""
        if recorded.error is not None:
            raise rebuild_error(ErrorRecord.decode(recorded.error), step_name=self.name)
        text = recorded.output if recorded.output is not None else "null"
        return self.codec.decode(text) if self.codec is not None else decode_any(text)


def _default_name(fn: Callable[[], Any]) -> str:
    # The same on every run: a partial is named after its function, an object after its
    # class (a repr may hold a memory address, which would not replay).
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    name = getattr(target, "__qualname__", None)
    return name if isinstance(name, str) else type(target).__qualname__


def encode_result(codec: Codec[Any] | None, value: Any, step_name: str) -> str:
    if codec is not None:
        return codec.encode(value)
    if value is None:
        return "null"  # what the plain JSON codec writes for it, without the round trip
    if not is_json_native(value):
        raise SerializationError(
            f"step {step_name!r} returned a {type(value).__name__}, but its return type is "
            "unknown (a lambda has no annotation), so replay could not rebuild it; "
            "pass result_type= or use a function with a return annotation"
        )
    return codec_for(Any).encode(value)


def _codec_for_step(fn: Callable[[], Any], result_type: Any) -> Codec[Any] | None:
    if result_type is not None:
        return codec_for(result_type)
    hint = _return_hint(fn)
    return None if hint is _NO_HINT else codec_for(hint)


def _return_hint(fn: Callable[[], Any]) -> Any:
    target = fn.func if isinstance(fn, functools.partial) else fn
    code = getattr(target, "__code__", None)
    if code is None:
        return _hint_uncached(target)
    return _cached_hint(code, target)


_hint_cache: dict[Any, Any] = {}


def _cached_hint(code: Any, target: Any) -> Any:
    # Closures are recreated on every call but share their code object; the hint is a
    # property of the code, so resolve it once.
    hint = _hint_cache.get(code, None)
    if hint is None:
        hint = _hint_uncached(target)
        _hint_cache[code] = hint
    return hint


def _hint_uncached(target: Any) -> Any:
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        return _NO_HINT
    return hints.get("return", _NO_HINT)


class RetryPolicy:
    """When a failed step is tried again, and after how long."""

    __slots__ = ("base", "factor", "max_interval", "max_retries")

    def __init__(self, max_retries: int, base: float, factor: float, max_interval: float) -> None:
        self.max_retries = max_retries
        self.base = base
        self.factor = factor
        self.max_interval = max_interval

    @classmethod
    def checked(
        cls, max_retries: int, base: timedelta, factor: float, max_interval: timedelta
    ) -> RetryPolicy:
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise InvalidOptionError("max_retries", "expected an int >= 0")
        if not isinstance(base, timedelta) or base <= timedelta(0):
            raise InvalidOptionError("base_interval", "expected a positive timedelta")
        if not isinstance(max_interval, timedelta) or max_interval <= timedelta(0):
            raise InvalidOptionError("max_interval", "expected a positive timedelta")
        if not isinstance(factor, int | float) or isinstance(factor, bool) or factor < 1:
            raise InvalidOptionError("backoff_factor", "expected a number >= 1")
        base_s = base.total_seconds()
        # A base interval longer than the cap raises the cap, as the caller clearly wants it.
        return cls(max_retries, base_s, float(factor), max(max_interval.total_seconds(), base_s))

    def delay(self, retry: int) -> float:
        raw = min(self.base * self.factor ** (retry - 1), self.max_interval)
        return raw * random.uniform(0.95, 1.05)


#: The policy of a step called with every retry option left at its default.
DEFAULT_POLICY: Final = RetryPolicy.checked(0, BASE_INTERVAL, BACKOFF_FACTOR, MAX_INTERVAL)


class TryAgain(Exception):
    """Raised by an attempt whose failure the retry policy allows to be retried."""


def call_with_retries(ctx: WorkflowContext, policy: RetryPolicy, attempt: Callable[[int], T]) -> T:
    """Call `attempt(1)`, `attempt(2)`, ... until one returns or raises anything but `TryAgain`.

    Between attempts it waits as the policy says; a cancellation ends the wait at once.

    Raises:
        WorkflowCancelledError: the workflow was cancelled while waiting to retry.
    """
    number = 0
    while True:
        number += 1
        try:
            return attempt(number)
        except TryAgain:
            _wait_before_retry(ctx, policy.delay(number))


def judged(plan: StepPlan, number: int, exc: Exception) -> TryAgain | StepFailedError:
    """What attempt `number` failing with `exc` leads to under `plan`."""
    failure = plan.give_up(number, exc)
    return TryAgain() if failure is None else failure


def _call_with_retries(ctx: WorkflowContext, fn: Callable[[], Any], plan: StepPlan) -> Any:
    state = ctx._state

    def attempt(number: int) -> Any:
        try:
            if state.telemetry is None and plan.timeout is None:
                return fn()  # what the scope below comes to when nothing is traced
            with step_scope(state, plan.name, number):
                return fn() if plan.timeout is None else _call_on_thread(ctx, fn, plan)
        except WorkflowCancelledError:
            raise
        except Exception as exc:
            raise judged(plan, number, exc) from exc

    return call_with_retries(ctx, plan.policy, attempt)


def _call_on_thread(ctx: WorkflowContext, fn: Callable[[], Any], plan: StepPlan) -> Any:
    """Run one attempt on a thread of its own, waiting at most the plan's timeout.

    Raises:
        StepTimeoutError: the attempt did not end in time (its thread runs on).
        WorkflowCancelledError: the workflow was cancelled while the attempt ran.
    """
    assert plan.timeout is not None
    state = ctx._state
    step_id = state.running_step_id
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()
    # The thread inherits the caller's context (its span, for one) and marks itself as
    # inside the step through a context variable, which stays true after the workflow
    # has moved on: an abandoned body never takes a step ID of the workflow.
    context = contextvars.copy_context()

    def marked() -> Any:
        with state.running_step(step_id, blocking=False):
            return fn()

    def body() -> None:
        try:
            outcome.append((True, context.run(marked)))
        except BaseException as exc:  # handed to the workflow's thread, which raises it
            outcome.append((False, exc))
        finally:
            done.set()

    worker = threading.Thread(target=body, name=f"dbos-step {plan.name}", daemon=True)
    execution = state.execution
    execution.add_waker(done)  # a cancellation ends the wait too
    try:
        worker.start()
        done.wait(plan.timeout.total_seconds())
    finally:
        execution.remove_waker(done)
    if not outcome:
        state.check_cancelled()
        raise plan.overran()
    finished, value = outcome[0]
    if finished:
        return value
    raise value


def _wait_before_retry(ctx: WorkflowContext, seconds: float) -> None:
    execution = ctx._state.execution
    waker = threading.Event()
    execution.add_waker(waker)
    try:
        clock = ctx._runtime.clock
        deadline = clock.time() + seconds
        while clock.time() < deadline and not clock.wait(waker, deadline):
            pass
    finally:
        execution.remove_waker(waker)
    ctx._state.check_cancelled()
