"""Durable sleep: checkpointed wake-up time, remainder-only replay, cancellation."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, wait_for


def _sleep_rows(backend: Backend, workflow_id: str) -> list[tuple[Any, ...]]:
    return backend.query(
        "SELECT function_id, output, started_at_epoch_ms, completed_at_epoch_ms "
        "FROM {s}.operation_outputs WHERE workflow_uuid = %s AND function_name = 'DBOS.sleep'",
        workflow_id,
    )


def test_sleep_returns_the_time_slept_and_records_the_deadline(backend: Backend) -> None:
    def napper(ctx: dbos.WorkflowContext) -> float:
        return dbos.sleep(ctx, timedelta(milliseconds=200)).total_seconds()

    ctx = backend.context_with(napper)
    ctx.launch()
    start = time.time()
    slept = dbos.run_workflow(ctx, napper, workflow_id="nap").get_result()
    elapsed = time.time() - start
    assert 0.2 <= slept <= elapsed
    [(step_id, output, started_ms, completed_ms)] = _sleep_rows(backend, "nap")
    assert step_id == 0
    assert completed_ms == int(str(output))  # output: the deadline in epoch ms
    assert 195 <= int(str(output)) - int(str(started_ms)) <= 205


def test_sleep_after_a_restart_waits_only_the_remainder(backend: Backend) -> None:
    duration = 3.0

    def napper(ctx: dbos.WorkflowContext) -> float:
        return dbos.sleep(ctx, timedelta(seconds=duration)).total_seconds()

    first = backend.context_with(napper)
    first.launch()
    dbos.run_workflow(first, napper, workflow_id="long-nap")
    wait_for(lambda: bool(_sleep_rows(backend, "long-nap")))
    deadline = _sleep_rows(backend, "long-nap")[0][1]
    # Half-way by the recorded deadline, however long the context took to start.
    halfway = int(str(deadline)) / 1000 - duration / 2
    wait_for(lambda: time.time() >= halfway)
    first.shutdown(timeout=timedelta(seconds=2))  # interrupts the sleep; stays PENDING
    assert backend.query(
        "SELECT status FROM {s}.workflow_status WHERE workflow_uuid = %s", "long-nap"
    ) == [("PENDING",)]

    relaunched = time.time()
    second = backend.context_with(napper)
    second.launch()
    slept = dbos.retrieve_workflow[float](second, "long-nap").get_result()
    finished = time.time()
    assert _sleep_rows(backend, "long-nap")[0][1] == deadline  # not moved
    assert slept < duration * 0.6  # the second run slept only what was left
    assert finished >= int(str(deadline)) / 1000 - 0.01
    # At most half the duration was left at the relaunch; a fresh sleep would take all of it.
    # The second sleep ends by the deadline whenever the relaunch happens, so the margin
    # (a second) is scheduling slack only.
    assert finished - relaunched < duration - 0.5


def test_a_past_deadline_is_not_slept_again(backend: Backend) -> None:
    def napper(ctx: dbos.WorkflowContext) -> float:
        return dbos.sleep(ctx, timedelta(0)).total_seconds()

    ctx = backend.context_with(napper)
    ctx.launch()
    assert dbos.run_workflow(ctx, napper).get_result() < 0.1
    with pytest.raises(dbos.InvalidOptionError):
        dbos.sleep(ctx, timedelta(seconds=1))  # type: ignore[arg-type]


def test_cancel_interrupts_a_sleep_promptly(backend: Backend) -> None:
    def napper(ctx: dbos.WorkflowContext) -> None:
        dbos.sleep(ctx, timedelta(seconds=60))

    ctx = backend.context_with(napper)
    ctx.launch()
    handle = dbos.run_workflow(ctx, napper, workflow_id="wake-up")
    wait_for(lambda: bool(_sleep_rows(backend, "wake-up")))
    start = time.monotonic()
    dbos.cancel_workflow(ctx, "wake-up")
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=timedelta(seconds=10))
    assert time.monotonic() - start < 5  # the sleep had 60 s to go


def test_sleep_is_refused_inside_a_step(backend: Backend) -> None:
    def napper(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_step(ctx, lambda: dbos.sleep(ctx, timedelta(seconds=1)), name="bad")
        except dbos.StepFailedError as exc:
            return exc.error_name
        return "accepted"

    ctx = backend.context_with(napper)
    ctx.launch()
    assert dbos.run_workflow(ctx, napper).get_result() == "InvalidOptionError"
