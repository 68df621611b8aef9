"""Detached children: free of their parent's deadline and cancellation."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, wait_for

FOREVER = timedelta(hours=1)
WAIT = timedelta(seconds=20)


def waits(ctx: dbos.WorkflowContext) -> str:
    return dbos.recv[str](ctx, "go", timeout=FOREVER) or "none"


def parent(ctx: dbos.WorkflowContext) -> str:
    dbos.run_workflow(ctx, waits, workflow_id="attached")
    dbos.run_workflow(ctx, waits, workflow_id="detached", detached=True)
    dbos.run_workflow(ctx, waits, workflow_id="queued-detached", queue="q", detached=True)
    dbos.run_workflow(ctx, waits, workflow_id="queued-attached", queue="q")
    return waits(ctx)


def _rows(backend: Backend) -> dict[str, tuple[object, ...]]:
    rows = backend.query(
        "SELECT workflow_uuid, parent_workflow_id, workflow_deadline_epoch_ms, "
        "workflow_timeout_ms FROM {s}.workflow_status"
    )
    return {str(r[0]): tuple(r[1:]) for r in rows}


def _started(backend: Backend) -> dbos.DBOSContext:
    ctx = backend.context_with(waits, parent)
    dbos.register_queue(ctx, "q")
    ctx.launch()
    return ctx


def _wait_started(ctx: dbos.DBOSContext, *workflow_ids: str) -> None:
    # Queued children are PENDING once a runner has dequeued them.
    def started(workflow_id: str) -> bool:
        found = dbos.list_workflows(ctx, workflow_ids=[workflow_id])
        return bool(found) and found[0].status == dbos.StatusName.PENDING

    for workflow_id in workflow_ids:
        wait_for(functools.partial(started, workflow_id))


def test_cancelling_the_tree_leaves_detached_children_running(backend: Backend) -> None:
    ctx = _started(backend)
    root = dbos.run_workflow(ctx, parent, workflow_id="root")
    _wait_started(ctx, "attached", "detached", "queued-detached", "queued-attached")
    rows = _rows(backend)
    assert rows["attached"][0] == "root" and rows["queued-attached"][0] == "root"
    assert rows["detached"][0] is None and rows["queued-detached"][0] is None

    dbos.cancel_workflow(ctx, "root", cancel_children=True)
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        root.get_result(timeout=WAIT)
    for workflow_id in ("attached", "queued-attached"):
        with pytest.raises(dbos.AwaitedWorkflowCancelledError):
            dbos.retrieve_workflow(ctx, workflow_id).get_result(timeout=WAIT)
    for workflow_id in ("detached", "queued-detached"):
        dbos.send(ctx, workflow_id, "done", topic="go")
        assert dbos.retrieve_workflow[str](ctx, workflow_id).get_result(timeout=WAIT) == "done"


def test_a_detached_child_inherits_no_deadline(backend: Backend) -> None:
    ctx = _started(backend)
    root = dbos.run_workflow(ctx, parent, workflow_id="root", timeout=timedelta(seconds=2))
    _wait_started(ctx, "attached", "detached", "queued-detached", "queued-attached")
    rows = _rows(backend)
    [(root_deadline,)] = backend.query(
        "SELECT workflow_deadline_epoch_ms FROM {s}.workflow_status WHERE workflow_uuid = 'root'"
    )
    assert rows["attached"][1] == root_deadline
    assert rows["queued-attached"][2] is not None  # what was left of the parent's timeout
    assert rows["detached"][1:] == (None, None)
    assert rows["queued-detached"][1:] == (None, None)
    # The parent's deadline passes and takes its attached children with it...
    with pytest.raises(dbos.WorkflowDeadlineExceededError):
        root.get_result(timeout=WAIT)
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        dbos.retrieve_workflow(ctx, "attached").get_result(timeout=WAIT)
    # ...but not the detached ones.
    for workflow_id in ("detached", "queued-detached"):
        assert dbos.retrieve_workflow(ctx, workflow_id).get_status().status == "PENDING"
        dbos.send(ctx, workflow_id, "after", topic="go")
        assert dbos.retrieve_workflow[str](ctx, workflow_id).get_result(timeout=WAIT) == "after"


def test_a_parent_awaits_a_detached_child_as_any_other(backend: Backend) -> None:
    def child(ctx: dbos.WorkflowContext, n: int) -> int:
        return n * 2

    def awaits(ctx: dbos.WorkflowContext) -> int:
        return dbos.run_workflow(ctx, child, 21, detached=True).get_result()

    ctx = backend.context_with(child, awaits)
    ctx.launch()
    assert dbos.run_workflow(ctx, awaits, workflow_id="p").get_result(timeout=WAIT) == 42
    [(child_id,)] = backend.query(
        "SELECT DISTINCT child_workflow_id FROM {s}.operation_outputs "
        "WHERE workflow_uuid = 'p' AND child_workflow_id IS NOT NULL"
    )
    assert _rows(backend)[str(child_id)][0] is None


@pytest.mark.parametrize("detached", [True, False])
def test_outside_a_workflow_detached_changes_nothing(backend: Backend, detached: bool) -> None:
    ctx = backend.context_with(waits)
    ctx.launch()
    handle = dbos.run_workflow(ctx, waits, workflow_id="top", detached=detached)
    dbos.send(ctx, "top", "x", topic="go")
    assert handle.get_result(timeout=WAIT) == "x"
    assert _rows(backend)["top"] == (None, None, None)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_detached_must_be_a_bool(backend: Backend, value: Any) -> None:
    ctx = backend.context_with(waits)
    ctx.launch()
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.run_workflow(ctx, waits, detached=value)
    assert info.value.argument == "detached"
    assert backend.query("SELECT workflow_uuid FROM {s}.workflow_status") == []
