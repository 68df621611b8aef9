"""`run_as_step`: run a function once per workflow, with its result checkpointed."""

from __future__ import annotations

import functools
import random
import threading
import typing
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._context import WorkflowContext
from dbos_typed._durable import rebuild_error, record_of, run_durably
from dbos_typed._registry import describe
from dbos_typed._serialization import Codec, ErrorRecord, codec_for, decode_any, is_json_native
from dbos_typed._sysdb._rows import StepRecord
from dbos_typed._validate import optional_name
from dbos_typed.errors import (
    InvalidOptionError,
    MaxStepRetriesExceededError,
    SerializationError,
    StepFailedError,
)

R = TypeVar("R")
T = TypeVar("T")

_NO_HINT = object()


@overload
def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], R],
    /,
    *,
    name: str | None = None,
    max_retries: int = 0,
    base_interval: timedelta = ...,
    backoff_factor: float = 2.0,
    max_interval: timedelta = ...,
    retry_if: Callable[[Exception], bool] | None = None,
    result_type: None = None,
) -> R: ...


@overload
def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], R],
    /,
    *,
    name: str | None = None,
    max_retries: int = 0,
    base_interval: timedelta = ...,
    backoff_factor: float = 2.0,
    max_interval: timedelta = ...,
    retry_if: Callable[[Exception], bool] | None = None,
    result_type: type[R] | TypeAdapter[R],
) -> R: ...


def run_as_step(
    ctx: WorkflowContext,
    fn: Callable[[], Any],
    /,
    *,
    name: str | None = None,
    max_retries: int = 0,
    base_interval: timedelta = timedelta(milliseconds=100),
    backoff_factor: float = 2.0,
    max_interval: timedelta = timedelta(seconds=5),
    retry_if: Callable[[Exception], bool] | None = None,
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
    step, `fn` simply runs, without a checkpoint of its own.

    Args:
        ctx: The running workflow's context.
        fn: The step body.
        name: The recorded step name; defaults to `fn`'s qualified name.
        max_retries: How many times to retry after a failure (0: run once).
        base_interval: Delay before the first retry.
        backoff_factor: Each further retry waits this much longer, up to `max_interval`.
        max_interval: The longest delay between retries.
        retry_if: Decides whether an error is worth retrying; by default all are.
        result_type: The type to store and restore the result as.

    Raises:
        StepFailedError: `fn` raised (on replay too); the original is its `__cause__` on
            the first run.
        MaxStepRetriesExceededError: `fn` failed on every allowed attempt.
        NonDeterminismError: a different step is recorded at this point of the workflow.
        WorkflowCancelled: the workflow was cancelled.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError(
            "ctx", "run_as_step needs the WorkflowContext of a running workflow"
        )
    if not callable(fn):
        raise InvalidOptionError(
            "fn", f"expected a zero-argument callable, got {type(fn).__name__}"
        )
    policy = RetryPolicy.checked(max_retries, base_interval, backoff_factor, max_interval, retry_if)
    name = optional_name(name, "name")
    state = ctx._state
    if state.in_step:
        return fn()
    step_name = name or step_name_of(fn)
    codec = codec_for_step(fn, result_type)

    def attempt(number: int) -> Any:
        try:
            return fn()
        except Exception as exc:
            raise policy.verdict(step_name, number, exc) from exc

    def execute() -> tuple[str | None, str | None, Any, BaseException | None]:
        state.in_step = True
        try:
            value = call_with_retries(ctx, policy, attempt)
        except StepFailedError as failure:
            return None, record_of(failure).encode(), None, failure
        finally:
            state.in_step = False
        return encode_result(codec, value, step_name), None, value, None

    return run_durably(
        ctx, step_name, execute, lambda recorded: replay_step(recorded, step_name, codec)
    )


def step_name_of(fn: Callable[..., Any]) -> str:
    """The name a step or transaction is recorded under when none is given."""
    return getattr(fn, "__qualname__", None) or describe(fn)


def replay_step(recorded: StepRecord, step_name: str, codec: Codec[Any] | None) -> Any:
    """What a recorded step gives on replay: its result, or its error raised again."""
    if recorded.error is not None:
        raise rebuild_error(ErrorRecord.decode(recorded.error), step_name=step_name)
    text = recorded.output if recorded.output is not None else "null"
    return codec.decode(text) if codec is not None else decode_any(text)


def encode_result(codec: Codec[Any] | None, value: Any, step_name: str) -> str:
    """A step's result as stored JSON.

    Raises:
        SerializationError: the value cannot be stored, or (without a known result type)
            would not come back from JSON unchanged.
    """
    if codec is not None:
        return codec.encode(value)
    if not is_json_native(value):
        raise SerializationError(
            f"step {step_name!r} returned a {type(value).__name__}, but its return type is "
            "unknown (a lambda has no annotation), so replay could not rebuild it; "
            "pass result_type= or use a function with a return annotation"
        )
    return codec_for(Any).encode(value)


def codec_for_step(fn: Callable[..., Any], result_type: Any) -> Codec[Any] | None:
    """The codec for a step's result: `result_type`, else `fn`'s return annotation, else None."""
    if result_type is not None:
        return codec_for(result_type)
    hint = _return_hint(fn)
    return None if hint is _NO_HINT else codec_for(hint)


def _return_hint(fn: Callable[..., Any]) -> Any:
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


class TryAgain(Exception):
    """Raised by an attempt whose failure the retry policy allows to be retried."""


class RetryPolicy:
    """How often, and after how long, a failed step (or transaction) runs again."""

    __slots__ = ("base", "factor", "max_interval", "max_retries", "retry_if")

    def __init__(
        self,
        max_retries: int,
        base: float,
        factor: float,
        max_interval: float,
        retry_if: Callable[[Exception], bool] | None,
    ) -> None:
        self.max_retries = max_retries
        self.base = base
        self.factor = factor
        self.max_interval = max_interval
        self.retry_if = retry_if

    @classmethod
    def checked(
        cls,
        max_retries: int,
        base: timedelta,
        factor: float,
        max_interval: timedelta,
        retry_if: Callable[[Exception], bool] | None,
    ) -> RetryPolicy:
        """The policy the public options describe.

        Raises:
            InvalidOptionError: an option is out of range or of the wrong type.
        """
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise InvalidOptionError("max_retries", "expected an int >= 0")
        if not isinstance(base, timedelta) or base <= timedelta(0):
            raise InvalidOptionError("base_interval", "expected a positive timedelta")
        if not isinstance(max_interval, timedelta) or max_interval <= timedelta(0):
            raise InvalidOptionError("max_interval", "expected a positive timedelta")
        if not isinstance(factor, int | float) or isinstance(factor, bool) or factor < 1:
            raise InvalidOptionError("backoff_factor", "expected a number >= 1")
        if retry_if is not None and not callable(retry_if):
            raise InvalidOptionError("retry_if", "expected a callable taking an exception")
        base_s = base.total_seconds()
        # A base interval longer than the cap raises the cap, as the caller clearly wants it.
        return cls(
            max_retries, base_s, float(factor), max(max_interval.total_seconds(), base_s), retry_if
        )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based), with a little jitter."""
        raw = min(self.base * self.factor ** (retry - 1), self.max_interval)
        return raw * random.uniform(0.95, 1.05)

    def verdict(self, step_name: str, attempt: int, exc: Exception) -> TryAgain | StepFailedError:
        """What attempt number `attempt` failing with `exc` leads to.

        Returns `TryAgain` when the policy allows another attempt, else the error the step
        ends with: `StepFailedError`, or `MaxStepRetriesExceededError` once retries were made
        and all are spent.
        """
        if attempt <= self.max_retries and (self.retry_if is None or self.retry_if(exc)):
            return TryAgain()
        record = ErrorRecord.of(exc)
        if attempt > 1 and attempt > self.max_retries:
            return MaxStepRetriesExceededError(
                step_name,
                attempts=attempt,
                error_name=record.name,
                error_message=record.message,
                error_code=record.code,
                data=record.data,
            )
        return StepFailedError(
            step_name,
            error_name=record.name,
            error_message=record.message,
            error_code=record.code,
            data=record.data,
        )


def call_with_retries(ctx: WorkflowContext, policy: RetryPolicy, attempt: Callable[[int], T]) -> T:
    """Call `attempt(1)`, `attempt(2)`, ... until one returns or raises anything but `TryAgain`.

    Between attempts it waits as the policy says; a cancellation ends the wait at once.

    Raises:
        WorkflowCancelled: the workflow was cancelled while waiting to retry.
    """
    number = 0
    while True:
        number += 1
        try:
            return attempt(number)
        except TryAgain:
            _wait_before_retry(ctx, policy.delay(number))


def _wait_before_retry(ctx: WorkflowContext, seconds: float) -> None:
    execution = ctx._state.execution
    waker = threading.Event()
    execution.add_waker(waker)
    try:
        waker.wait(seconds)
    finally:
        execution.remove_waker(waker)
    ctx._state.check_cancelled()
