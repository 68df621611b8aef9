"""Recovery, cancellation, resume, timeouts, dead-lettering and child workflows."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, Gate

executed: list[str] = []


def test_pending_workflow_is_recovered_at_launch(backend: Backend) -> None:
    gate = Gate()
    runs: list[str] = []

    def record(name: str) -> str:
        runs.append(name)
        return name

    def two_steps(ctx: dbos.WorkflowContext, label: str) -> str:
        a = dbos.run_as_step(ctx, lambda: record("a"), name="a")
        dbos.run_as_step(ctx, gate, name="gate")
        b = dbos.run_as_step(ctx, lambda: record("b"), name="b")
        return f"{label}:{a}{b}"

    first = backend.context_with(two_steps)
    first.launch()
    dbos.run_workflow(first, two_steps, "x", workflow_id="crashy")
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))  # the process "dies": the row stays PENDING
    assert backend.query(
        "SELECT status FROM {s}.workflow_status WHERE workflow_uuid = %s", "crashy"
    ) == [("PENDING",)]

    gate.open()  # the old run's step finishes, but it can no longer record anything
    second = backend.context_with(two_steps)
    second.launch()
    assert dbos.retrieve_workflow[str](second, "crashy").get_result() == "x:ab"
    assert runs.count("a") == 1  # recorded before the crash: replayed, not re-run
    status = dbos.retrieve_workflow(second, "crashy").get_status()
    assert status.recovery_attempts == 2


def test_recovery_ignores_other_versions_and_executors(backend: Backend) -> None:
    gate = Gate()

    def wf(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return "done"

    first = backend.context_with(wf)
    first.launch()
    dbos.run_workflow(first, wf, workflow_id="v1")
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))
    gate.open()
    other_version = backend.context_with(wf, application_version="v2")
    other_version.launch()
    other_executor = backend.context_with(wf, executor_id="elsewhere")
    other_executor.launch()
    status = dbos.retrieve_workflow(other_version, "v1").get_status()
    assert status.status is dbos.StatusName.PENDING
    other_version.shutdown()
    other_executor.shutdown()
    same = backend.context_with(wf)
    same.launch()
    assert dbos.retrieve_workflow[str](same, "v1").get_result() == "done"


def test_cancel_stops_a_running_workflow_at_its_next_step(backend: Backend) -> None:
    gate = Gate()
    after: list[str] = []

    def record_after() -> str:
        after.append("ran")
        return "x"

    def wf(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.run_as_step(ctx, record_after, name="after")
        return "finished"

    ctx = backend.context_with(wf)
    ctx.launch()
    handle = dbos.run_workflow(ctx, wf, workflow_id="c1")
    gate.wait_entered()
    dbos.cancel_workflow(ctx, "c1")
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result()
    assert after == []
    assert handle.get_status().status is dbos.StatusName.CANCELLED
    assert backend.query(
        "SELECT count(*) FROM {s}.workflow_output WHERE workflow_uuid = %s", "c1"
    ) == [(0,)]
    steps = backend.query(
        "SELECT function_name FROM {s}.operation_outputs WHERE workflow_uuid = %s", "c1"
    )
    assert steps == []  # the gate step finished after the cancel, so it was not recorded

    # Resume continues from the last recorded step and finishes.
    assert dbos.resume_workflow(ctx, "c1").get_result() == "finished"
    assert after == ["ran"]
    with pytest.raises(dbos.NonExistentWorkflowError):
        dbos.cancel_workflow(ctx, "missing")


def test_cancel_finished_workflow_changes_nothing(backend: Backend) -> None:
    def wf(ctx: dbos.WorkflowContext) -> int:
        return 7

    ctx = backend.context_with(wf)
    ctx.launch()
    handle = dbos.run_workflow(ctx, wf)
    assert handle.get_result() == 7
    dbos.cancel_workflow(ctx, handle.workflow_id)
    assert handle.get_status().status is dbos.StatusName.SUCCESS
    assert dbos.resume_workflow(ctx, handle.workflow_id).get_result() == 7


def test_timeout_cancels_workflow_and_children(backend: Backend) -> None:
    def child(ctx: dbos.WorkflowContext) -> str:
        while True:
            dbos.run_as_step(ctx, lambda: time.sleep(0.01), name="tick")

    def parent(ctx: dbos.WorkflowContext) -> str:
        handle = dbos.run_workflow(ctx, child)
        return handle.get_result()

    ctx = backend.context_with(parent, child)
    ctx.launch()
    handle = dbos.run_workflow(ctx, parent, workflow_id="p", timeout=timedelta(milliseconds=300))
    with pytest.raises(dbos.WorkflowDeadlineExceededError):
        handle.get_result(timeout=timedelta(seconds=20))
    child_handle = dbos.retrieve_workflow(ctx, "p-0")
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        child_handle.get_result(timeout=timedelta(seconds=20))
    assert child_handle.get_status().status is dbos.StatusName.CANCELLED
    parent_status = handle.get_status()
    assert parent_status.timeout == timedelta(milliseconds=300)
    assert parent_status.deadline is not None
    assert child_handle.get_status().deadline == parent_status.deadline


def test_deadline_survives_a_restart(backend: Backend) -> None:
    gate = Gate()

    def slow(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        while True:
            dbos.run_as_step(ctx, lambda: time.sleep(0.01), name="tick")

    first = backend.context_with(slow)
    first.launch()
    dbos.run_workflow(first, slow, workflow_id="t", timeout=timedelta(milliseconds=500))
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))
    gate.open()
    second = backend.context_with(slow)
    second.launch()
    with pytest.raises(dbos.WorkflowDeadlineExceededError):
        dbos.retrieve_workflow(second, "t").get_result(timeout=timedelta(seconds=20))


def test_dead_letter_after_too_many_recoveries(backend: Backend) -> None:
    gates = [Gate() for _ in range(3)]
    starts: list[int] = []

    def fragile(ctx: dbos.WorkflowContext) -> str:
        starts.append(1)
        dbos.run_as_step(ctx, gates[len(starts) - 1], name="gate")
        return "survived"

    for attempt in range(2):
        ctx = backend.new_context()
        dbos.register_workflow(ctx, fragile, max_recovery_attempts=1)
        ctx.launch()
        if attempt == 0:
            dbos.run_workflow(ctx, fragile, workflow_id="dl")
        gates[attempt].wait_entered()
        ctx.shutdown(timeout=timedelta(0))
        gates[attempt].open()

    last = backend.new_context()
    dbos.register_workflow(last, fragile, max_recovery_attempts=1)
    last.launch()
    with pytest.raises(dbos.DeadLetterError):
        dbos.retrieve_workflow(last, "dl").get_result(timeout=timedelta(seconds=20))
    assert len(starts) == 2
    status = dbos.retrieve_workflow(last, "dl").get_status()
    assert status.status is dbos.StatusName.MAX_RECOVERY_ATTEMPTS_EXCEEDED

    gates[2].open()
    assert dbos.resume_workflow(last, "dl").get_result(timeout=timedelta(seconds=20)) == "survived"


def test_child_workflows_get_derived_ids_and_durable_results(backend: Backend) -> None:
    def child(ctx: dbos.WorkflowContext, n: int) -> int:
        return dbos.run_as_step(ctx, lambda: n * 10)

    def parent(ctx: dbos.WorkflowContext) -> list[int]:
        first = dbos.run_workflow(ctx, child, 1)
        second = dbos.run_workflow(ctx, child, 2, workflow_id="custom-child")
        return [
            first.get_result(),
            second.get_result(),
            dbos.get_workflow_id(ctx) == ctx.workflow_id,
        ]

    ctx = backend.context_with(parent, child)
    ctx.launch()
    assert dbos.run_workflow(ctx, parent, workflow_id="par").get_result() == [10, 20, True]
    steps = backend.query(
        "SELECT function_id, function_name, child_workflow_id FROM {s}.operation_outputs "
        "WHERE workflow_uuid = %s ORDER BY function_id",
        "par",
    )
    assert steps == [
        (0, "test_child_workflows_get_derived_ids_and_durable_results.<locals>.child", "par-0"),
        (
            1,
            "test_child_workflows_get_derived_ids_and_durable_results.<locals>.child",
            "custom-child",
        ),
        (2, "DBOS.getResult", "par-0"),
        (3, "DBOS.getResult", "custom-child"),
    ]
    parents = backend.query(
        "SELECT workflow_uuid, parent_workflow_id FROM {s}.workflow_status "
        "WHERE parent_workflow_id IS NOT NULL ORDER BY workflow_uuid"
    )
    assert parents == [("custom-child", "par"), ("par-0", "par")]


def test_child_cannot_start_inside_a_step(backend: Backend) -> None:
    def child(ctx: dbos.WorkflowContext) -> int:
        return 1

    def parent(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_step(ctx, lambda: dbos.run_workflow(ctx, child).workflow_id)
        except dbos.StepFailedError as exc:
            return exc.error_name
        return "started"

    ctx = backend.context_with(parent, child)
    ctx.launch()
    assert dbos.run_workflow(ctx, parent).get_result() == "InvalidOptionError"


def test_work_of_another_version_is_reported_and_can_be_taken_over(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate()

    def wf(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return "adopted"

    old = backend.context_with(wf, application_version="v-old")
    old.launch()
    dbos.run_workflow(old, wf, workflow_id="stranded")
    gate.wait_entered()
    old.shutdown(timeout=timedelta(0))
    gate.open()

    new = backend.context_with(wf, application_version="v-new")
    with caplog.at_level("WARNING", logger="dbos_typed"):
        new.launch()
    assert any("v-old" in r.getMessage() and "stranded" in r.getMessage() for r in caplog.records)
    assert dbos.retrieve_workflow(new, "stranded").get_status().status is dbos.StatusName.PENDING
    assert dbos.recover_pending_workflows(new, application_versions=["v-old"]) == ["stranded"]
    handle = dbos.retrieve_workflow[str](new, "stranded")
    assert handle.get_result(timeout=timedelta(seconds=20)) == "adopted"
    assert handle.get_status().application_version == "v-new"
