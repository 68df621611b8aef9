"""Steps: checkpoints, retries, errors, replay and determinism."""

from __future__ import annotations

import functools
import threading
from datetime import timedelta

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from tests.conftest import Backend, Gate


class Point(BaseModel):
    x: int
    y: int


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


def make_point() -> Point:
    return Point(x=1, y=2)


def _start(backend: Backend, *workflows: object) -> dbos.DBOSContext:
    ctx = backend.new_context()
    for wf in workflows:
        dbos.register_workflow(ctx, wf)  # type: ignore[call-overload]
    ctx.launch()
    return ctx


def test_retries_with_backoff_until_success(backend: Backend) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise Flaky("not yet")
        return "ok"

    def wf(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_step(
            ctx, flaky, max_retries=3, base_interval=timedelta(milliseconds=1), name="flaky"
        )

    ctx = _start(backend, wf)
    assert dbos.run_workflow(ctx, wf).get_result() == "ok"
    assert len(attempts) == 3


def test_exhausted_retries_raise_and_are_recorded(backend: Backend) -> None:
    attempts: list[int] = []

    def always() -> str:
        attempts.append(1)
        raise Flaky(f"attempt {len(attempts)}")

    def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_step(
                ctx, always, max_retries=2, base_interval=timedelta(milliseconds=1), name="always"
            )
        except dbos.MaxStepRetriesExceededError as exc:
            assert isinstance(exc, dbos.StepFailedError)
            return f"{exc.attempts}:{exc.error_name}:{exc.error_message}"
        return "unreachable"

    ctx = _start(backend, wf)
    assert dbos.run_workflow(ctx, wf, workflow_id="ex").get_result() == "3:Flaky:attempt 3"
    assert len(attempts) == 3
    [(error,)] = backend.query(
        "SELECT error FROM {s}.operation_outputs WHERE workflow_uuid = %s", "ex"
    )
    assert isinstance(error, str) and "MaxStepRetriesExceededError" in error


def test_retry_if_stops_on_non_retryable_error(backend: Backend) -> None:
    attempts: list[int] = []

    def fatal() -> str:
        attempts.append(1)
        raise Fatal("stop")

    def wf(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_step(
            ctx,
            fatal,
            max_retries=5,
            base_interval=timedelta(milliseconds=1),
            retry_if=lambda e: not isinstance(e, Fatal),
        )

    ctx = _start(backend, wf)
    with pytest.raises(dbos.WorkflowFailedError) as info:
        dbos.run_workflow(ctx, wf).get_result()
    assert info.value.error_name == "Fatal"
    assert attempts == [1]


def test_step_error_is_raised_the_same_way_on_replay(backend: Backend) -> None:
    gate = Gate()
    runs: list[str] = []

    def boom() -> int:
        runs.append("boom")
        raise Fatal("once")

    def wf(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_step(ctx, boom, name="boom")
        except dbos.StepFailedError as exc:
            caught = f"{exc.error_name}:{exc.error_message}"
        dbos.run_as_step(ctx, gate, name="gate")
        return caught

    ctx = _start(backend, wf)
    handle = dbos.run_workflow(ctx, wf, workflow_id="replay-error")
    gate.wait_entered()
    dbos.cancel_workflow(ctx, "replay-error")
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result()
    resumed = dbos.resume_workflow(ctx, "replay-error")
    assert resumed.get_result() == "Fatal:once"
    assert runs == ["boom"]


def test_model_results_round_trip_through_replay(backend: Backend) -> None:
    gate = Gate()
    made: list[int] = []

    def point_step() -> Point:
        made.append(1)
        return make_point()

    def wf(ctx: dbos.WorkflowContext) -> Point:
        p = dbos.run_as_step(ctx, point_step)
        q = dbos.run_as_step(ctx, lambda: Point(x=p.y, y=p.x), result_type=Point)
        dbos.run_as_step(ctx, gate, name="gate")
        assert isinstance(p, Point) and isinstance(q, Point)
        return q

    ctx = _start(backend, wf)
    dbos.run_workflow(ctx, wf, workflow_id="models")
    gate.wait_entered()
    dbos.cancel_workflow(ctx, "models")
    gate.open()
    assert dbos.resume_workflow(ctx, "models").get_result() == Point(x=2, y=1)
    assert made == [1]


def test_lambda_returning_a_model_needs_result_type(backend: Backend) -> None:
    def wf(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, lambda: make_point())
        return "no"

    ctx = _start(backend, wf)
    with pytest.raises(dbos.WorkflowFailedError) as info:
        dbos.run_workflow(ctx, wf).get_result()
    assert info.value.error_name == "SerializationError"
    assert "result_type" in info.value.error_message


def test_step_inside_step_runs_inline(backend: Backend) -> None:
    def wf(ctx: dbos.WorkflowContext) -> int:
        def outer() -> int:
            return dbos.run_as_step(ctx, lambda: 41, name="inner") + 1

        return dbos.run_as_step(ctx, outer, name="outer")

    ctx = _start(backend, wf)
    assert dbos.run_workflow(ctx, wf, workflow_id="nested").get_result() == 42
    assert backend.query(
        "SELECT function_id, function_name FROM {s}.operation_outputs WHERE workflow_uuid = %s",
        "nested",
    ) == [(0, "outer")]


def test_changed_step_name_on_replay_is_non_determinism(backend: Backend) -> None:
    gate = Gate()
    names = ["first"]

    def wf(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, lambda: 1, name=names[0])
        dbos.run_as_step(ctx, gate, name="gate")
        return "done"

    ctx = _start(backend, wf)
    dbos.run_workflow(ctx, wf, workflow_id="nd")
    gate.wait_entered()
    dbos.cancel_workflow(ctx, "nd")
    gate.open()
    names[0] = "renamed"
    with pytest.raises(dbos.WorkflowFailedError) as info:
        dbos.resume_workflow(ctx, "nd").get_result()
    assert info.value.error_name == "NonDeterminismError"
    assert "'first'" in info.value.error_message and "'renamed'" in info.value.error_message


def test_a_partial_is_named_after_its_function_and_replays(backend: Backend) -> None:
    gate = Gate()

    def wf(ctx: dbos.WorkflowContext) -> int:
        def add(a: int, b: int) -> int:  # a new function object on every run
            return a + b

        total = dbos.run_as_step(ctx, functools.partial(add, 1, 2))
        dbos.run_as_step(ctx, gate, name="gate")
        return total

    ctx = _start(backend, wf)
    dbos.run_workflow(ctx, wf, workflow_id="partial")
    gate.wait_entered()
    dbos.cancel_workflow(ctx, "partial")
    gate.open()
    assert dbos.resume_workflow(ctx, "partial").get_result(timeout=timedelta(seconds=10)) == 3
    assert backend.query(
        "SELECT function_name FROM {s}.operation_outputs WHERE function_id = 0"
    ) == [("test_a_partial_is_named_after_its_function_and_replays.<locals>.wf.<locals>.add",)]


def test_bad_step_options_are_refused(backend: Backend) -> None:
    seen: list[str] = []

    def wf(ctx: dbos.WorkflowContext) -> str:
        for kwargs in (
            {"max_retries": -1},
            {"base_interval": timedelta(0)},
            {"backoff_factor": 0.5},
            {"max_interval": timedelta(seconds=-1)},
        ):
            try:
                dbos.run_as_step(ctx, lambda: 1, **kwargs)
            except dbos.InvalidOptionError as exc:
                seen.append(exc.argument)
        return "checked"

    ctx = _start(backend, wf)
    assert dbos.run_workflow(ctx, wf).get_result() == "checked"
    assert seen == ["max_retries", "base_interval", "backoff_factor", "max_interval"]


def test_get_step_id_names_the_running_step_and_replays_the_same(backend: Backend) -> None:
    seen: list[tuple[str, int]] = []

    def in_thread(ctx: dbos.WorkflowContext) -> int:
        found: list[int] = []
        worker = threading.Thread(target=lambda: found.append(dbos.get_step_id(ctx)))
        worker.start()
        worker.join()
        return found[0]

    def numbered(ctx: dbos.WorkflowContext) -> list[int]:
        seen.append(("body", dbos.get_step_id(ctx)))
        first = dbos.run_as_step(ctx, lambda: dbos.get_step_id(ctx), name="first")
        seen.append(("body", dbos.get_step_id(ctx)))
        second = dbos.run_as_step(ctx, lambda: in_thread(ctx), name="second")
        return [first, second]

    ctx = backend.context_with(numbered)
    ctx.launch()
    assert dbos.run_workflow(ctx, numbered, workflow_id="n").get_result() == [0, 1]
    assert seen == [("body", -1), ("body", 0)]
    with pytest.raises(dbos.InvalidOptionError, match="ctx"):
        dbos.get_step_id(ctx)  # type: ignore[arg-type]
