"""With heartbeats on, the workflows of a process that died are taken over in time."""

from __future__ import annotations

from datetime import timedelta

import dbos_typed as dbos
from tests.conftest import Backend, Gate, WorkerProcess, start_queue_worker, wait_for

HEARTBEAT = timedelta(milliseconds=300)
PATIENCE = timedelta(seconds=30)


def test_a_silent_workflow_of_a_dead_process_runs_elsewhere(backend: Backend) -> None:
    gate = Gate()

    def waits(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return dbos.get_workflow_id(ctx)

    dead = backend.context_with(waits, executor_id="dead", application_version="v")
    dead.launch()
    dbos.run_workflow(dead, waits, workflow_id="orphan")
    gate.wait_entered()
    dead.shutdown(timeout=timedelta(0))  # the process "dies": the row stays PENDING
    gate.open()

    alive = backend.context_with(
        waits, executor_id="alive", application_version="v", executor_heartbeat_timeout=HEARTBEAT
    )
    alive.launch()
    handle = dbos.retrieve_workflow[str](alive, "orphan")
    assert handle.get_result(timeout=PATIENCE) == "orphan"
    status = handle.get_status()
    assert (status.executor_id, status.recovery_attempts) == ("alive", 2)


def test_a_long_workflow_of_a_live_process_is_left_alone(backend: Backend) -> None:
    gate = Gate()

    def waits(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return "mine"

    first = backend.context_with(
        waits, executor_id="first", application_version="v", executor_heartbeat_timeout=HEARTBEAT
    )
    other = backend.context_with(
        waits, executor_id="other", application_version="v", executor_heartbeat_timeout=HEARTBEAT
    )
    first.launch()
    other.launch()
    handle = dbos.run_workflow(first, waits, workflow_id="long")
    gate.wait_entered()
    # Several timeouts pass while the step runs; the heartbeats keep the row alive.
    start = handle.get_status().updated_at
    wait_for(lambda: handle.get_status().updated_at > start + 3 * HEARTBEAT)
    assert other._runtime.workers.thread_count() == 0  # it never ran it
    gate.open()
    assert handle.get_result(timeout=PATIENCE) == "mine"
    assert handle.get_status().recovery_attempts == 1


def test_a_killed_worker_gives_its_queue_slot_back(backend: Backend) -> None:
    settings = {"name": "jobs", "concurrency": 1, "polling_ms": 20, "heartbeat_ms": 300}
    crashing = _worker(backend, "doomed", "crash", settings)
    with dbos.new_client(backend.config("queue-test")) as client:
        first = dbos.enqueue[str](client, "jobs", "tracked", 5, workflow_id="first")
        second = dbos.enqueue[str](client, "jobs", "tracked", 5, workflow_id="second")
        assert crashing.wait_entered(1) == {"first"}
        crashing.kill()
        serving = _worker(backend, "survivor", "serve", settings)
        try:
            assert first.get_result(timeout=PATIENCE) == "first"
            assert second.get_result(timeout=PATIENCE) == "second"
            assert first.get_status().executor_id == "survivor"
        finally:
            serving.kill()


def _worker(
    backend: Backend, executor_id: str, mode: str, settings: dict[str, object]
) -> WorkerProcess:
    return WorkerProcess(start_queue_worker(backend, executor_id, mode, settings))
