"""Queues: declaring them, enqueueing with options, and how the runner orders and delays work."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, Gate, wait_for

WAIT = timedelta(seconds=20)


def double(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n * 2, name="double")


def test_enqueue_runs_and_returns_typed_result(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, double)
    queue = dbos.register_queue(ctx, "work")
    ctx.launch()
    handle = dbos.run_workflow(ctx, double, 21, queue=queue)
    assert handle.get_result(timeout=WAIT) == 42
    by_name = dbos.run_workflow(ctx, double, 5, queue="work", workflow_id="by-name")
    assert by_name.get_result(timeout=WAIT) == 10
    rows = backend.query(
        "SELECT queue_name, status, recovery_attempts FROM {s}.workflow_status "
        "WHERE workflow_uuid = %s",
        "by-name",
    )
    assert rows == [("work", "SUCCESS", 1)]


def test_queue_row_is_persisted_and_updated(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_queue(
        ctx,
        "limited",
        worker_concurrency=2,
        concurrency=4,
        limiter=dbos.RateLimit(10, timedelta(seconds=2)),
        priority_enabled=True,
        polling_interval=timedelta(milliseconds=250),
    )
    rows = backend.query(
        "SELECT name, concurrency, worker_concurrency, rate_limit_max, rate_limit_period_sec, "
        "priority_enabled, partition_queue, polling_interval_sec, application_name "
        "FROM {s}.queues"
    )
    assert [tuple(r[:5]) for r in rows] == [("limited", 4, 2, 10, 2.0)]
    assert bool(rows[0][5]) and not bool(rows[0][6])
    assert rows[0][7] == 0.25 and rows[0][8] == "test-app"
    dbos.register_queue(ctx, "limited", concurrency=1)
    assert backend.query("SELECT concurrency, worker_concurrency FROM {s}.queues") == [(1, None)]
    other = backend.new_context("other-app")
    with pytest.raises(dbos.RegistrationError):
        dbos.register_queue(other, "limited")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"name": ""}, "name"),
        ({"name": "_dbos_internal_queue"}, "name"),
        ({"worker_concurrency": 0}, "worker_concurrency"),
        ({"concurrency": -1}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"worker_concurrency": 5, "concurrency": 2}, "worker_concurrency"),
        ({"polling_interval": timedelta(0)}, "polling_interval"),
        ({"limiter": (1, 2)}, "limiter"),
    ],
)
def test_queue_validation(backend: Backend, kwargs: dict[str, object], argument: str) -> None:
    ctx = backend.new_context()
    settings: dict[str, object] = {"name": "q", **kwargs}
    name = settings.pop("name")
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.register_queue(ctx, name, **settings)  # type: ignore[arg-type]
    assert info.value.argument == argument


def test_enqueue_option_validation(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, double)
    plain = dbos.register_queue(ctx, "plain")
    parts = dbos.register_queue(ctx, "parts", partitioned=True)
    ctx.launch()
    cases: list[tuple[dict[str, object], str]] = [
        ({"deduplication_id": "d"}, "deduplication_id"),
        ({"priority": 1}, "priority"),
        ({"partition_key": "k"}, "partition_key"),
        ({"delay": timedelta(seconds=1)}, "delay"),
        ({"deduplication_policy": "return_existing"}, "deduplication_policy"),
        ({"queue": plain, "deduplication_policy": "return_existing"}, "deduplication_policy"),
        ({"queue": plain, "deduplication_policy": "sometimes"}, "deduplication_policy"),
        ({"queue": plain, "priority": 1}, "priority"),  # not priority-enabled
        ({"queue": plain, "partition_key": "k"}, "partition_key"),
        ({"queue": parts}, "partition_key"),
        ({"queue": parts, "partition_key": "k", "deduplication_id": "d"}, "partition_key"),
        ({"queue": "nope"}, "queue"),
        ({"queue": plain, "delay": timedelta(seconds=-1)}, "delay"),
    ]
    for kwargs, argument in cases:
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.run_workflow(ctx, double, 1, **kwargs)  # type: ignore[call-overload]
        assert info.value.argument == argument, kwargs
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(0,)]


def test_priority_order_then_fifo(backend: Backend) -> None:
    ctx = backend.new_context()
    order: list[int] = []
    gate = Gate()

    def task(ctx: dbos.WorkflowContext, n: int) -> int:
        if n < 0:
            dbos.run_as_step(ctx, gate, name="gate")
        order.append(n)
        return n

    dbos.register_workflow(ctx, task)
    queue = dbos.register_queue(ctx, "serial", worker_concurrency=1, priority_enabled=True)
    ctx.launch()
    blocker = dbos.run_workflow(ctx, task, -1, queue=queue)
    gate.wait_entered()
    # With the only slot taken, everything below waits and is then run in priority order,
    # first in first out within a priority.
    priorities = {0: 5, 1: 2, 2: 0, 3: 2, 4: 0, 5: 1}
    handles = [
        dbos.run_workflow(ctx, task, n, queue=queue, priority=p) for n, p in priorities.items()
    ]
    gate.open()
    assert blocker.get_result(timeout=WAIT) == -1
    for handle in handles:
        handle.get_result(timeout=WAIT)
    assert order == [-1, 2, 4, 5, 1, 3, 0]


def test_deduplication_reject_and_return_existing(backend: Backend) -> None:
    ctx = backend.new_context()
    gate = Gate()

    def held(ctx: dbos.WorkflowContext, n: int) -> int:
        dbos.run_as_step(ctx, gate, name="gate")
        return n

    dbos.register_workflow(ctx, held)
    queue = dbos.register_queue(ctx, "dedup")
    ctx.launch()
    first = dbos.run_workflow(ctx, held, 1, queue=queue, deduplication_id="order-7")
    gate.wait_entered()
    with pytest.raises(dbos.QueueDeduplicatedError) as info:
        dbos.run_workflow(ctx, held, 2, queue=queue, deduplication_id="order-7")
    assert info.value.deduplication_id == "order-7" and info.value.queue_name == "dedup"
    existing = dbos.run_workflow(
        ctx,
        held,
        3,
        queue=queue,
        deduplication_id="order-7",
        deduplication_policy="return_existing",
    )
    assert existing.workflow_id == first.workflow_id
    # The same ID on another queue is independent.
    other = dbos.register_queue(ctx, "dedup-2")
    separate = dbos.run_workflow(ctx, held, 4, queue=other, deduplication_id="order-7")
    gate.open()
    assert first.get_result(timeout=WAIT) == 1
    assert existing.get_result(timeout=WAIT) == 1
    assert separate.get_result(timeout=WAIT) == 4
    # Released once the holder finished: the ID can be used again.
    again = dbos.run_workflow(ctx, held, 5, queue=queue, deduplication_id="order-7")
    assert again.get_result(timeout=WAIT) == 5
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(3,)]


def test_deduplication_released_by_cancel(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, double)
    queue = dbos.register_queue(ctx, "dedup-cancel")
    dbos.listen_queues(ctx, [])  # nothing serves the queue: the row stays ENQUEUED
    ctx.launch()
    first = dbos.run_workflow(ctx, double, 1, queue=queue, deduplication_id="d")
    with pytest.raises(dbos.QueueDeduplicatedError):
        dbos.run_workflow(ctx, double, 1, queue=queue, deduplication_id="d")
    dbos.cancel_workflow(ctx, first.workflow_id)
    second = dbos.run_workflow(ctx, double, 1, queue=queue, deduplication_id="d")
    assert second.workflow_id != first.workflow_id


def test_delay_is_respected(backend: Backend) -> None:
    ctx = backend.new_context()
    started: dict[str, int] = {}

    def stamp(ctx: dbos.WorkflowContext) -> int:
        started[dbos.get_workflow_id(ctx)] = time.time_ns() // 1_000_000
        return 1

    dbos.register_workflow(ctx, stamp)
    queue = dbos.register_queue(ctx, "later")
    ctx.launch()
    enqueued = time.time_ns() // 1_000_000
    handle = dbos.run_workflow(ctx, stamp, queue=queue, delay=timedelta(milliseconds=600))
    status = backend.query(
        "SELECT status, delay_until_epoch_ms FROM {s}.workflow_status WHERE workflow_uuid = %s",
        handle.workflow_id,
    )
    assert status[0][0] == "DELAYED"
    delay_until = int(str(status[0][1]))
    # The column outlives the delay, so the status reports it whether or not it has run yet.
    reported = handle.get_status().delay_until
    assert reported is not None and int(reported.timestamp() * 1000) == delay_until
    assert handle.get_result(timeout=WAIT) == 1
    assert started[handle.workflow_id] >= delay_until >= enqueued + 600
    # The runner sleeps until the delay is due rather than a whole polling interval more.
    assert started[handle.workflow_id] - delay_until < 900


def test_queued_timeout_starts_at_dequeue(backend: Backend) -> None:
    ctx = backend.new_context()
    gate = Gate()

    def slow(ctx: dbos.WorkflowContext, hold: bool) -> str:
        if hold:
            dbos.run_as_step(ctx, gate, name="gate")
        return "done"

    dbos.register_workflow(ctx, slow)
    queue = dbos.register_queue(ctx, "one", worker_concurrency=1)
    ctx.launch()
    blocker = dbos.run_workflow(ctx, slow, True, queue=queue)
    gate.wait_entered()
    waiting = dbos.run_workflow(ctx, slow, False, queue=queue, timeout=timedelta(milliseconds=300))
    row = backend.query(
        "SELECT workflow_timeout_ms, workflow_deadline_epoch_ms FROM {s}.workflow_status "
        "WHERE workflow_uuid = %s",
        waiting.workflow_id,
    )
    assert row == [(300, None)]
    # Wait in the queue for longer than the timeout: it must still run and succeed.
    time.sleep(0.5)  # the point of the test is time spent queued, not synchronisation
    gate.open()
    assert blocker.get_result(timeout=WAIT) == "done"
    assert waiting.get_result(timeout=WAIT) == "done"
    started, deadline = backend.query(
        "SELECT started_at_epoch_ms, workflow_deadline_epoch_ms FROM {s}.workflow_status "
        "WHERE workflow_uuid = %s",
        waiting.workflow_id,
    )[0]
    assert int(str(deadline)) == int(str(started)) + 300


def test_queued_timeout_cancels_a_running_workflow(backend: Backend) -> None:
    ctx = backend.new_context()
    release = threading.Event()

    def stuck(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, lambda: release.wait(10), name="wait")
        dbos.run_as_step(ctx, lambda: 1, name="after")
        return "finished"

    dbos.register_workflow(ctx, stuck)
    queue = dbos.register_queue(ctx, "timeouts")
    ctx.launch()
    handle = dbos.run_workflow(ctx, stuck, queue=queue, timeout=timedelta(milliseconds=200))
    give_up = time.monotonic() + 10
    while handle.get_status().status != dbos.StatusName.CANCELLED:
        assert time.monotonic() < give_up, "the deadline never cancelled the workflow"
        time.sleep(0.01)
    release.set()  # the step body is not interrupted; let it return
    with pytest.raises(dbos.WorkflowDeadlineExceededError):
        handle.get_result(timeout=WAIT)
    assert backend.query(
        "SELECT count(*) FROM {s}.operation_outputs WHERE function_name = 'after'"
    ) == [(0,)]


def test_child_enqueue_is_a_step_exactly_once(backend: Backend) -> None:
    ctx = backend.new_context()

    def fan_out(ctx: dbos.WorkflowContext, n: int) -> list[int]:
        handles = [dbos.run_workflow(ctx, double, i, queue="children") for i in range(n)]
        return [h.get_result() for h in handles]

    dbos.register_workflow(ctx, double)
    dbos.register_workflow(ctx, fan_out)
    dbos.register_queue(ctx, "children", worker_concurrency=2)
    ctx.launch()
    handle = dbos.run_workflow(ctx, fan_out, 3, workflow_id="parent")
    assert handle.get_result(timeout=WAIT) == [0, 2, 4]
    children = backend.query(
        "SELECT workflow_uuid, queue_name, parent_workflow_id FROM {s}.workflow_status "
        "WHERE parent_workflow_id IS NOT NULL ORDER BY workflow_uuid"
    )
    assert children == [(f"parent-{i}", "children", "parent") for i in range(3)]
    steps = backend.query(
        "SELECT function_id, function_name, child_workflow_id FROM {s}.operation_outputs "
        "WHERE workflow_uuid = 'parent' ORDER BY function_id"
    )
    assert [s[2] for s in steps[:3]] == ["parent-0", "parent-1", "parent-2"]
    assert [s[1] for s in steps[3:]] == ["DBOS.getResult"] * 3


def test_child_deduplication_conflict_is_recorded(backend: Backend) -> None:
    ctx = backend.new_context()

    def parent(ctx: dbos.WorkflowContext) -> str:
        dbos.run_workflow(ctx, double, 1, queue="held", deduplication_id="x")
        try:
            dbos.run_workflow(ctx, double, 2, queue="held", deduplication_id="x")
        except dbos.QueueDeduplicatedError:
            return "refused"
        return "accepted"

    dbos.register_workflow(ctx, double)
    dbos.register_workflow(ctx, parent)
    dbos.register_queue(ctx, "held")
    dbos.listen_queues(ctx, [])  # keep the first child ENQUEUED, holding the ID
    ctx.launch()
    assert dbos.run_workflow(ctx, parent, workflow_id="p").get_result(timeout=WAIT) == "refused"
    steps = backend.query(
        "SELECT function_id, error IS NOT NULL FROM {s}.operation_outputs "
        "WHERE workflow_uuid = 'p' ORDER BY function_id"
    )
    assert [(int(str(a)), bool(b)) for a, b in steps] == [(0, False), (1, True)]


def _count_passes(ctx: dbos.DBOSContext, monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """Record how long the context's queue runner waits after each of its passes."""
    wakeup = ctx._runtime.queue_wakeup
    original = wakeup.wait
    waits: list[float | None] = []

    def recorded(timeout: float | None = None) -> bool:
        waits.append(timeout)
        return original(timeout)

    monkeypatch.setattr(wakeup, "wait", recorded)
    return waits


def test_listen_queues_restricts_what_a_process_serves(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = backend.new_context("app", executor_id="a")
    idle = backend.new_context("app", executor_id="b")
    for ctx in (served, idle):
        dbos.register_workflow(ctx, double)
    first = dbos.register_queue(served, "first")
    second = dbos.register_queue(served, "second")
    dbos.listen_queues(served, [first])
    dbos.listen_queues(idle, [])
    with pytest.raises(dbos.InvalidOptionError):
        dbos.listen_queues(served, "first")  # a str is iterable; refused at run time
    passes = {ctx: _count_passes(ctx, monkeypatch) for ctx in (served, idle)}
    served.launch()
    idle.launch()
    done = dbos.run_workflow(idle, double, 1, queue=first)
    assert done.get_result(timeout=WAIT) == 2
    before = {ctx: len(waits) for ctx, waits in passes.items()}
    waiting = dbos.run_workflow(served, double, 2, queue=second)
    # Two full passes of each runner after the enqueue committed: one that would take the
    # workflow has had every chance to.
    wait_for(lambda: all(len(w) >= before[ctx] + 2 for ctx, w in passes.items()))
    assert waiting.get_status().status == dbos.StatusName.ENQUEUED
    executors = backend.query(
        "SELECT executor_id FROM {s}.workflow_status WHERE workflow_uuid = %s", done.workflow_id
    )
    assert executors == [("a",)]
    with pytest.raises(dbos.InvalidOptionError):
        dbos.listen_queues(served, [second])  # after launch


def test_idle_runner_polls_with_one_query_per_interval(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = backend.new_context()
    dbos.register_queue(ctx, "idle-a", polling_interval=timedelta(milliseconds=100))
    dbos.register_queue(ctx, "idle-b", polling_interval=timedelta(milliseconds=100))
    store = ctx._runtime.store
    calls: list[str] = []
    for method in ("queue_backlog", "claim_queued", "promote_delayed", "list_queues"):
        original = getattr(store, method)

        def counted(*args: object, _name: str = method, _fn: object = original) -> object:
            calls.append(_name)
            assert callable(_fn)
            return _fn(*args)

        monkeypatch.setattr(store, method, counted)
    waits = _count_passes(ctx, monkeypatch)
    ctx.launch()
    wait_for(lambda: len(waits) >= 5)
    passes = len(waits)
    # Each idle pass is one probe for all queues, then a wait of the shortest interval.
    assert set(calls) == {"queue_backlog"}
    assert passes <= len(calls) <= passes + 1  # a pass may be probing as we look
    assert set(waits[:passes]) == {0.1}
