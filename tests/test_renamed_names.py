"""Old public names keep working, warn with DeprecationWarning, and name their replacement."""

from __future__ import annotations

from datetime import timedelta

import pytest

import dbos_typed as dbos
from dbos_typed import errors
from tests.conftest import Backend


def ping(ctx: dbos.WorkflowContext) -> str:
    return "pong"


def test_new_workflow_queue_warns_and_still_declares_the_queue(backend: Backend) -> None:
    ctx = backend.context_with(ping)
    with pytest.warns(DeprecationWarning, match="use dbos_typed.register_queue") as caught:
        queue = dbos.new_workflow_queue(ctx, "old-name", worker_concurrency=2)
    # The warning points at the caller, not at the alias.
    assert caught[0].filename == __file__
    assert isinstance(queue, dbos.WorkflowQueue) and queue.worker_concurrency == 2
    ctx.launch()
    handle = dbos.run_workflow(ctx, ping, queue=queue)
    assert handle.get_result(timeout=timedelta(seconds=20)) == "pong"
    assert dbos.retrieve_queue(ctx, "old-name").worker_concurrency == 2


def test_workflow_cancelled_warns_and_is_the_new_class() -> None:
    with pytest.warns(DeprecationWarning, match="use dbos_typed.WorkflowCancelledError"):
        old = dbos.WorkflowCancelled
    assert old is dbos.WorkflowCancelledError
    with pytest.warns(DeprecationWarning, match="use WorkflowCancelledError"):
        from_errors = errors.WorkflowCancelled
    assert from_errors is errors.WorkflowCancelledError
    with pytest.raises(old):
        raise dbos.WorkflowCancelledError("w")
    assert "WorkflowCancelled" not in dbos.__all__ and "WorkflowCancelled" not in errors.__all__
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        _ = dbos.NoSuchName  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        _ = errors.NoSuchName  # type: ignore[attr-defined]
