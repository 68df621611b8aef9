"""An executor only claims queued workflows it can run; the rest wait for one that can."""

from __future__ import annotations

from datetime import timedelta

import pytest

import dbos_typed as dbos
from tests.conftest import Backend


def alpha(ctx: dbos.WorkflowContext, n: int) -> str:
    return f"alpha {n}"


def beta(ctx: dbos.WorkflowContext, n: int) -> str:
    return f"beta {n}"


def test_each_process_takes_only_the_workflows_it_registered(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    first = backend.new_context()
    second = backend.new_context()
    dbos.register_workflow(first, alpha)
    dbos.register_workflow(second, beta)
    for ctx in (first, second):
        dbos.new_workflow_queue(ctx, "shared", polling_interval=timedelta(milliseconds=20))
    with caplog.at_level("WARNING", logger="dbos_typed"):
        first.launch()
        second.launch()
        handles = [dbos.run_workflow(first, alpha, i, queue="shared") for i in range(5)]
        handles += [dbos.run_workflow(second, beta, i, queue="shared") for i in range(5)]
        results = [h.get_result(timeout=timedelta(seconds=30)) for h in handles]
    assert results == [f"alpha {i}" for i in range(5)] + [f"beta {i}" for i in range(5)]
    assert not [r for r in caplog.records if "not registered" in r.getMessage()]
    executors = {
        w.name: w.recovery_attempts for w in dbos.list_workflows(first, all_applications=True)
    }
    assert executors == {"alpha": 1, "beta": 1}  # each claimed once, by the right process
