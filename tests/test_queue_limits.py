"""Flow control: worker and global concurrency (across real processes), rate limits,
partitions, and recovery of queued work after a worker is killed."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import dbos_typed as dbos
from tests.conftest import Backend, WorkerProcess, start_queue_worker

WAIT = timedelta(seconds=30)


class Tracker:
    """Counts workflows running at once, and holds them until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.started = 0
        self.changed = threading.Condition(self.lock)
        self.release = threading.Event()

    def run(self, key: str) -> None:
        with self.lock:
            self.current[key] += 1
            self.most[key] = max(self.most[key], self.current[key])
            self.started += 1
            self.changed.notify_all()
        try:
            assert self.release.wait(30)
        finally:
            with self.lock:
                self.current[key] -= 1

    def wait_started(self, count: int) -> None:
        with self.lock:
            assert self.changed.wait_for(lambda: self.started >= count, 10), self.started


def test_worker_concurrency_is_never_exceeded(backend: Backend) -> None:
    ctx = backend.new_context()
    tracker = Tracker()

    def task(ctx: dbos.WorkflowContext, n: int) -> int:
        dbos.run_as_step(ctx, lambda: tracker.run("all"), name="held")
        return n

    dbos.register_workflow(ctx, task)
    limited = dbos.register_queue(ctx, "three", worker_concurrency=3)
    ctx.launch()
    handles = [dbos.run_workflow(ctx, task, n, queue=limited) for n in range(12)]
    tracker.wait_started(3)
    rows = backend.query(
        "SELECT status, count(*) FROM {s}.workflow_status WHERE queue_name = 'three' "
        "GROUP BY status"
    )
    counts = {str(status): int(str(count)) for status, count in rows}
    assert counts == {"PENDING": 3, "ENQUEUED": 9}
    tracker.release.set()
    assert [h.get_result(timeout=WAIT) for h in handles] == list(range(12))
    assert tracker.most["all"] == 3


def test_partitions_have_their_own_limits(backend: Backend) -> None:
    ctx = backend.new_context()
    tracker = Tracker()

    def task(ctx: dbos.WorkflowContext, key: str) -> str:
        dbos.run_as_step(ctx, lambda: tracker.run(key), name="held")
        return key

    dbos.register_workflow(ctx, task)
    parts = dbos.register_queue(ctx, "per-key", worker_concurrency=1, partitioned=True)
    ctx.launch()
    handles = [
        dbos.run_workflow(ctx, task, key, queue=parts, partition_key=key)
        for key in ("a", "b", "a", "b", "c")
    ]
    # One per partition runs at once: three partitions, three running.
    tracker.wait_started(3)
    rows = backend.query(
        "SELECT queue_partition_key, count(*) FROM {s}.workflow_status "
        "WHERE status = 'PENDING' GROUP BY queue_partition_key ORDER BY 1"
    )
    assert rows == [("a", 1), ("b", 1), ("c", 1)]
    tracker.release.set()
    assert [h.get_result(timeout=WAIT) for h in handles] == ["a", "b", "a", "b", "c"]
    assert max(tracker.most.values()) == 1


def test_rate_limit_holds_over_any_window(backend: Backend) -> None:
    ctx = backend.new_context()

    def quick(ctx: dbos.WorkflowContext, n: int) -> int:
        return n

    dbos.register_workflow(ctx, quick)
    period_ms = 400
    limited = dbos.register_queue(
        ctx,
        "limited",
        limiter=dbos.RateLimit(3, timedelta(milliseconds=period_ms)),
        polling_interval=timedelta(milliseconds=20),
    )
    ctx.launch()
    handles = [dbos.run_workflow(ctx, quick, n, queue=limited) for n in range(9)]
    assert [h.get_result(timeout=WAIT) for h in handles] == list(range(9))
    rows = backend.query(
        "SELECT started_at_epoch_ms, rate_limited FROM {s}.workflow_status "
        "WHERE queue_name = 'limited' ORDER BY started_at_epoch_ms"
    )
    starts = [int(str(r[0])) for r in rows]
    assert all(bool(r[1]) for r in rows)
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s < start + period_ms]
        assert len(in_window) <= 3, (start, starts)
    # Three waves: the last start is at least two periods after the first.
    assert starts[-1] - starts[0] >= 2 * period_ms


def test_global_concurrency_holds_across_processes(backend: Backend, tmp_path: Path) -> None:
    # Each process may run two, so only the global limit of three stops them reaching four.
    settings = {"name": "shared", "worker_concurrency": 2, "concurrency": 3, "polling_ms": 20}
    workers = [start_queue_worker(backend, executor, "serve", settings) for executor in ("a", "b")]
    try:
        with _client(backend) as client:
            handles = [
                dbos.enqueue[str](client, "shared", "tracked", 60, workflow_id=f"wf-{n}")
                for n in range(16)
            ]
            assert sorted(h.get_result(timeout=WAIT) for h in handles) == sorted(
                f"wf-{n}" for n in range(16)
            )
    finally:
        for worker in workers:
            _stop_worker(worker)
    spans = _spans(backend)
    assert len(spans) == 16
    # At no instant were more than three workflows between their first and last step.
    events = sorted([(b, 1) for b, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    running = most = 0
    for _, delta in sorted(events, key=lambda ev: (ev[0], ev[1])):
        running += delta
        most = max(most, running)
    assert most <= 3
    executors = backend.query("SELECT DISTINCT executor_id FROM {s}.workflow_status ORDER BY 1")
    assert executors == [("a",), ("b",)]  # both processes took part


def test_queued_work_survives_sigkill_of_its_worker(backend: Backend) -> None:
    settings = {"name": "jobs", "worker_concurrency": 2, "polling_ms": 20}
    crashing = WorkerProcess(start_queue_worker(backend, "w1", "crash", settings))
    try:
        with _client(backend) as client:
            for n in range(4):
                dbos.enqueue(client, "jobs", "tracked", 10, workflow_id=f"job-{n}")
        entered = crashing.wait_entered(2, seconds=30)
    finally:
        crashing.kill()
    states = backend.query(
        "SELECT status, count(*) FROM {s}.workflow_status GROUP BY status ORDER BY 1"
    )
    assert states == [("ENQUEUED", 2), ("PENDING", 2)]
    # The same executor comes back: its PENDING work returns to its own queue and runs.
    restarted = start_queue_worker(backend, "w1", "serve", settings)
    try:
        with _client(backend) as client:
            for n in range(4):
                handle = dbos.retrieve_workflow[str](client, f"job-{n}")
                assert handle.get_result(timeout=WAIT) == f"job-{n}"
    finally:
        _stop_worker(restarted)
    rows = backend.query(
        "SELECT workflow_uuid, status, queue_name, recovery_attempts FROM {s}.workflow_status "
        "ORDER BY workflow_uuid"
    )
    for wid, status, queue_name, attempts in rows:
        assert (status, queue_name) == ("SUCCESS", "jobs")
        assert int(str(attempts)) == (2 if wid in entered else 1)
    begins = backend.query(
        "SELECT count(*) FROM {s}.operation_outputs WHERE function_name = 'begin'"
    )
    assert begins == [(4,)]  # recorded once each, replayed after the kill


def _client(backend: Backend) -> dbos.Client:
    # A Config rather than a bare URL: it carries the test's schema and owning app.
    return dbos.new_client(backend.config("queue-test"))


def _stop_worker(worker: subprocess.Popen[str]) -> None:
    if worker.poll() is None:
        out, _ = worker.communicate(input="", timeout=30)
        assert "stopped" in out, out


def _spans(backend: Backend) -> dict[str, tuple[int, int]]:
    rows = backend.query(
        "SELECT workflow_uuid, function_name, started_at_epoch_ms, completed_at_epoch_ms "
        "FROM {s}.operation_outputs WHERE function_name IN ('begin', 'end')"
    )
    begins = {str(r[0]): int(str(r[2])) for r in rows if r[1] == "begin"}
    ends = {str(r[0]): int(str(r[3])) for r in rows if r[1] == "end"}
    return {wid: (begins[wid], ends[wid]) for wid in begins}
