"""Per-step timeouts: an attempt that overruns fails, is retried, and is recorded."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from dbos_typed import aio
from tests.conftest import Backend, Gate

SHORT = timedelta(milliseconds=50)
LONG = timedelta(seconds=60)
TIMELY = timedelta(seconds=10)  # a bound on waits that should end much sooner


def _started(backend: Backend, *workflows: object) -> dbos.DBOSContext:
    ctx = backend.context_with(*workflows)
    ctx.launch()
    return ctx


def _step_rows(backend: Backend, workflow_id: str) -> list[tuple[object, ...]]:
    return backend.query(
        "SELECT function_id, function_name, output, error FROM {s}.operation_outputs "
        "WHERE workflow_uuid = %s ORDER BY function_id",
        workflow_id,
    )


def test_an_overrunning_step_fails_with_a_timeout_recorded_and_replayed(
    backend: Backend,
) -> None:
    gate = Gate()
    runs: list[str] = []

    def slow() -> str:
        runs.append("slow")
        gate()
        return "late"

    def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_step(ctx, slow, name="slow", timeout=SHORT)
        except dbos.StepTimeoutError as exc:
            assert isinstance(exc, dbos.StepFailedError)
            return f"{exc.step_name}:{exc.timeout.total_seconds()}:{exc.error_name}"
        return "unreachable"

    ctx = _started(backend, wf)
    try:
        handle = dbos.run_workflow(ctx, wf, workflow_id="overrun")
        assert handle.get_result(timeout=TIMELY) == "slow:0.05:StepTimeoutError"
    finally:
        gate.open()  # the abandoned body ends; what it returns is dropped
    [(step_id, name, output, error)] = _step_rows(backend, "overrun")
    assert (step_id, name, output) == (0, "slow", None)
    assert isinstance(error, str) and "StepTimeoutError" in error

    # A fork that replays the step raises the same error from the record.
    fork = dbos.fork_workflow(ctx, "overrun", 1)
    assert fork.get_result(timeout=TIMELY) == "slow:0.05:StepTimeoutError"
    assert runs == ["slow"]


def test_a_timeout_is_retried_like_any_failure(backend: Backend) -> None:
    gate = Gate()
    attempts: list[int] = []

    def first_overruns() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            gate()
        return f"attempt {len(attempts)}"

    def wf(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_step(
            ctx,
            first_overruns,
            name="retried",
            timeout=SHORT,
            max_retries=2,
            base_interval=timedelta(milliseconds=1),
        )

    ctx = _started(backend, wf)
    try:
        assert dbos.run_workflow(ctx, wf).get_result(timeout=TIMELY) == "attempt 2"
    finally:
        gate.open()
    assert len(attempts) == 2


def test_exhausted_retries_after_timeouts_name_the_timeout(backend: Backend) -> None:
    release = threading.Event()
    attempts: list[int] = []

    def always_slow() -> str:
        attempts.append(1)
        release.wait(30)
        return "late"

    def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_step(
                ctx,
                always_slow,
                name="always_slow",
                timeout=SHORT,
                max_retries=1,
                base_interval=timedelta(milliseconds=1),
            )
        except dbos.MaxStepRetriesExceededError as exc:
            return f"{exc.attempts}:{exc.error_name}:{exc.error_message}"
        return "unreachable"

    ctx = _started(backend, wf)
    try:
        result = dbos.run_workflow(ctx, wf, workflow_id="exhausted").get_result(timeout=TIMELY)
    finally:
        release.set()
    assert result == "2:StepTimeoutError:ran longer than its timeout of 0.05s"
    assert len(attempts) == 2
    [(_, _, _, error)] = _step_rows(backend, "exhausted")
    assert isinstance(error, str) and "MaxStepRetriesExceededError" in error


def test_a_step_within_its_timeout_returns_or_raises_as_usual(backend: Backend) -> None:
    threads: dict[str, int] = {}

    def where(label: str) -> int:
        threads[label] = threading.get_ident()
        return 7

    def boom() -> int:
        raise KeyError("missing")

    def wf(ctx: dbos.WorkflowContext) -> str:
        threads["workflow"] = threading.get_ident()
        plain = dbos.run_as_step(ctx, lambda: where("plain"), name="plain")
        timed = dbos.run_as_step(ctx, lambda: where("timed"), name="timed", timeout=LONG)
        try:
            dbos.run_as_step(ctx, boom, timeout=LONG)
        except dbos.StepFailedError as exc:
            assert not isinstance(exc, dbos.StepTimeoutError)
            return f"{plain}:{timed}:{exc.error_name}"
        return "unreachable"

    ctx = _started(backend, wf)
    assert dbos.run_workflow(ctx, wf).get_result(timeout=TIMELY) == "7:7:KeyError"
    # No timeout: the body runs on the workflow's own thread, with no thread of its own.
    assert threads["plain"] == threads["workflow"]
    assert threads["timed"] != threads["workflow"]


def test_an_abandoned_body_cannot_take_a_step_of_the_workflow(backend: Backend) -> None:
    gate = Gate()
    finished = threading.Event()
    inner: list[str] = []

    def wf(ctx: dbos.WorkflowContext) -> str:
        def abandoned() -> str:
            gate()
            # The workflow has moved on by now; this still counts as inside the step.
            inner.append(dbos.run_as_step(ctx, lambda: "inner", name="inner"))
            finished.set()
            return "late"

        try:
            dbos.run_as_step(ctx, abandoned, name="abandoned", timeout=SHORT)
        except dbos.StepTimeoutError:
            pass
        return dbos.run_as_step(ctx, lambda: "next", name="next")

    ctx = _started(backend, wf)
    assert dbos.run_workflow(ctx, wf, workflow_id="abandon").get_result(timeout=TIMELY) == "next"
    gate.open()
    assert finished.wait(TIMELY.total_seconds())
    assert inner == ["inner"]
    assert [(r[0], r[1]) for r in _step_rows(backend, "abandon")] == [
        (0, "abandoned"),
        (1, "next"),
    ]


def test_cancelling_ends_the_wait_for_a_timed_step(backend: Backend) -> None:
    gate = Gate()

    def wf(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_step(ctx, lambda: str(gate()), name="held", timeout=LONG)

    ctx = _started(backend, wf)
    handle = dbos.run_workflow(ctx, wf, workflow_id="cancel-timed")
    try:
        gate.wait_entered()
        dbos.cancel_workflow(ctx, "cancel-timed")
        # Far sooner than the step's own minute.
        with pytest.raises(dbos.AwaitedWorkflowCancelledError):
            handle.get_result(timeout=TIMELY)
    finally:
        gate.open()
    assert _step_rows(backend, "cancel-timed") == []


@pytest.mark.parametrize(
    "timeout",
    [timedelta(0), timedelta(seconds=-1), 5, "1s"],
    ids=["zero", "negative", "int", "str"],
)
def test_the_timeout_must_be_a_positive_timedelta(backend: Backend, timeout: Any) -> None:
    problems: list[str] = []

    def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_step(ctx, lambda: 1, timeout=timeout)
        except dbos.InvalidOptionError as exc:
            problems.append(f"{exc.argument}: {exc}")
        return "checked"

    async def awf(ctx: dbos.WorkflowContext) -> str:
        try:
            await aio.run_as_step(ctx, lambda: 1, timeout=timeout)
        except dbos.InvalidOptionError as exc:
            problems.append(f"{exc.argument}: {exc}")
        return "checked"

    ctx = _started(backend, wf, awf)
    assert dbos.run_workflow(ctx, wf).get_result(timeout=TIMELY) == "checked"
    assert dbos.run_workflow(ctx, awf).get_result(timeout=TIMELY) == "checked"
    assert len(problems) == 2
    for problem in problems:
        assert problem.startswith("timeout: ")
        assert "expected a positive timedelta or None" in problem


def test_an_awaited_step_is_cancelled_at_its_timeout(backend: Backend) -> None:
    cancelled: list[str] = []

    async def hangs() -> str:
        try:
            await asyncio.Event().wait()  # never set: only the timeout ends this
        except asyncio.CancelledError:
            cancelled.append("hangs")
            raise
        return "unreachable"

    async def own_timeout() -> str:
        raise TimeoutError("the body's own")

    async def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            await aio.run_as_step(ctx, hangs, name="hangs", timeout=SHORT)
        except dbos.StepTimeoutError as exc:
            first = exc.error_name
        try:
            await aio.run_as_step(ctx, own_timeout, name="own", timeout=LONG)
        except dbos.StepFailedError as exc:
            assert not isinstance(exc, dbos.StepTimeoutError)
            return f"{first}:{exc.error_name}"
        return "unreachable"

    ctx = _started(backend, wf)
    result = dbos.run_workflow(ctx, wf, workflow_id="aio-timeout").get_result(timeout=TIMELY)
    assert result == "StepTimeoutError:TimeoutError"
    assert cancelled == ["hangs"]
    rows = _step_rows(backend, "aio-timeout")
    assert [(r[0], r[1]) for r in rows] == [(0, "hangs"), (1, "own")]
    assert isinstance(rows[0][3], str) and "StepTimeoutError" in rows[0][3]


def test_an_awaited_blocking_step_is_abandoned_at_its_timeout(backend: Backend) -> None:
    gate = Gate()
    attempts: list[int] = []

    def blocking() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            gate()
        return "second"

    async def wf(ctx: dbos.WorkflowContext) -> str:
        return await aio.run_as_step(
            ctx,
            blocking,
            name="blocking",
            timeout=SHORT,
            max_retries=1,
            base_interval=timedelta(milliseconds=1),
        )

    ctx = _started(backend, wf)
    try:
        assert dbos.run_workflow(ctx, wf).get_result(timeout=TIMELY) == "second"
    finally:
        gate.open()
    assert len(attempts) == 2
