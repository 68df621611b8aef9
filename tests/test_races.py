"""Two executors racing for the same workflows: nothing is overwritten or completed twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, Gate, wait_for

runs: Counter[str] = Counter()
runs_lock = threading.Lock()


def count(label: str) -> str:
    with runs_lock:
        runs[label] += 1
    return label


def test_a_workflow_run_twice_at_once_completes_once(backend: Backend) -> None:
    gate = Gate()

    def contested(ctx: dbos.WorkflowContext) -> str:
        first = dbos.run_as_step(ctx, lambda: count("first"), name="first")
        dbos.run_as_step(ctx, gate, name="gate")
        last = dbos.run_as_step(ctx, lambda: count("last"), name="last")
        return first + last

    runs.clear()
    a = backend.new_context(executor_id="a")
    b = backend.new_context(executor_id="b")
    for ctx in (a, b):
        dbos.register_workflow(ctx, contested)
        ctx.launch()
    handle_a = dbos.run_workflow(a, contested, workflow_id="contested")
    gate.wait_entered()
    # Executor b takes the same workflow while a still runs it.
    handle_b = dbos.resume_workflow(b, "contested")
    gate.open()
    assert handle_a.get_result(timeout=timedelta(seconds=30)) == "firstlast"
    assert handle_b.get_result(timeout=timedelta(seconds=30)) == "firstlast"
    assert runs["first"] == 1  # recorded before b started: replayed by b
    assert runs["last"] == 1  # a lost the workflow to b at its next checkpoint and stopped
    rows = backend.query(
        "SELECT function_id, count(*) FROM {s}.operation_outputs WHERE workflow_uuid = %s "
        "GROUP BY function_id ORDER BY function_id",
        "contested",
    )
    assert rows == [(0, 1), (1, 1), (2, 1)]
    assert backend.query("SELECT count(*) FROM {s}.workflow_output") == [(1,)]
    assert backend.query("SELECT status FROM {s}.workflow_status") == [("SUCCESS",)]


def test_a_workflow_resumed_while_running_here_is_taken_over_by_this_process(
    backend: Backend,
) -> None:
    gate = Gate()

    def contested(ctx: dbos.WorkflowContext) -> str:
        first = dbos.run_as_step(ctx, lambda: count("first"), name="first")
        dbos.run_as_step(ctx, gate, name="gate")
        last = dbos.run_as_step(ctx, lambda: count("last"), name="last")
        return first + last

    runs.clear()
    ctx = backend.context_with(contested)
    ctx.launch()
    handle = dbos.run_workflow(ctx, contested, workflow_id="contested")
    gate.wait_entered()
    # A client resumes it: the only process that can claim it again is the one running it.
    with dbos.new_client(backend.config()) as client:
        dbos.resume_workflow(client, "contested")
    wait_for(lambda: backend.query("SELECT status FROM {s}.workflow_status") == [("PENDING",)])
    gate.open()
    assert handle.get_result(timeout=timedelta(seconds=30)) == "firstlast"
    assert (runs["first"], runs["last"]) == (1, 1)
    assert backend.query("SELECT status FROM {s}.workflow_status") == [("SUCCESS",)]


def test_two_executors_recovering_the_same_work_split_it(backend: Backend) -> None:
    gates = [Gate() for _ in range(6)]

    def stuck(ctx: dbos.WorkflowContext, i: int) -> int:
        dbos.run_as_step(ctx, lambda: count(f"before-{i}"), name="before")
        dbos.run_as_step(ctx, gates[i], name="gate")
        dbos.run_as_step(ctx, lambda: count(f"after-{i}"), name="after")
        return i

    runs.clear()
    first = backend.new_context()
    dbos.register_workflow(first, stuck)
    first.launch()
    for i in range(6):
        dbos.run_workflow(first, stuck, i, workflow_id=f"r{i}")
    for gate in gates:
        gate.wait_entered()
    first.shutdown(timeout=timedelta(0))
    for gate in gates:
        gate.open()

    # Two processes of the same executor and version come back at the same moment.
    survivors = [backend.new_context() for _ in range(2)]
    for ctx in survivors:
        dbos.register_workflow(ctx, stuck)
    start = threading.Barrier(2)

    def launch(ctx: dbos.DBOSContext) -> None:
        start.wait()
        ctx.launch()

    threads = [threading.Thread(target=launch, args=(ctx,)) for ctx in survivors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for i in range(6):
        handle = dbos.retrieve_workflow[int](survivors[i % 2], f"r{i}")
        assert handle.get_result(timeout=timedelta(seconds=30)) == i
    # Recorded steps were never run again; a step in flight at the crash ran at most once
    # more, even with both processes claiming to be the same executor.
    assert all(runs[f"before-{i}"] == 1 and runs[f"after-{i}"] in (1, 2) for i in range(6))
    rows = backend.query(
        "SELECT workflow_uuid, function_id, count(*) FROM {s}.operation_outputs "
        "GROUP BY workflow_uuid, function_id HAVING count(*) > 1"
    )
    assert rows == []
    assert backend.query("SELECT DISTINCT status FROM {s}.workflow_status") == [("SUCCESS",)]


def test_a_parent_cancelled_by_another_process_starts_no_child(backend: Backend) -> None:
    gate = Gate()

    def child(ctx: dbos.WorkflowContext) -> str:
        return count("child")

    def parent(ctx: dbos.WorkflowContext) -> str:
        gate()  # not a step: the child's start is the next write
        return dbos.run_workflow(ctx, child).get_result()

    runs.clear()
    ctx = backend.context_with(child, parent)
    ctx.launch()
    handle = dbos.run_workflow(ctx, parent, workflow_id="parent")
    gate.wait_entered()
    # Another process cancels it: this one has no in-memory flag to see.
    with dbos.new_client(backend.config()) as client:
        dbos.cancel_workflow(client, "parent")
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=timedelta(seconds=10))
    assert backend.query("SELECT workflow_uuid FROM {s}.workflow_status") == [("parent",)]
    assert runs["child"] == 0


def test_a_child_start_retried_after_a_lost_reply_still_runs_the_child(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def child(ctx: dbos.WorkflowContext) -> str:
        return count("child")

    def parent(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_workflow(ctx, child).get_result(timeout=timedelta(seconds=20))

    runs.clear()
    ctx = backend.context_with(child, parent)
    ctx.launch()
    store = ctx._runtime.store
    original = store._transaction

    def reply_lost(body: Any) -> Any:
        if "insert_child_workflow" in getattr(body, "__qualname__", ""):
            original(body)  # committed, but the reply never arrives: the retry runs again
        return original(body)

    monkeypatch.setattr(store, "_transaction", reply_lost)
    assert dbos.run_workflow(ctx, parent).get_result(timeout=timedelta(seconds=20)) == "child"
    assert runs["child"] == 1
