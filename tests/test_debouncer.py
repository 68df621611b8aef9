"""Debouncing: bursts of calls per key collapse into one run with the last input."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, Gate

WAIT = timedelta(seconds=20)
# Long enough that a burst never fires by itself during a test; a final call with a short
# delay then decides when it runs.
HOLD = timedelta(seconds=60)
NOW = timedelta(0)


def collect(ctx: dbos.WorkflowContext, value: str) -> str:
    return value


def tick(ctx: dbos.WorkflowContext) -> int:
    return 1


def _row(backend: Backend, workflow_id: str) -> dict[str, object]:
    columns = (
        "status",
        "name",
        "queue_name",
        "deduplication_id",
        "is_debounced",
        "delay_until_epoch_ms",
        "debounce_deadline_epoch_ms",
        "created_at",
        "started_at_epoch_ms",
        "application_version",
    )
    rows = backend.query(
        f"SELECT {', '.join(columns)} FROM {{s}}.workflow_status WHERE workflow_uuid = %s",
        workflow_id,
    )
    assert len(rows) == 1, rows
    return dict(zip(columns, rows[0], strict=True))


def _input(backend: Backend, workflow_id: str) -> object:
    return backend.query(
        "SELECT inputs FROM {s}.workflow_input WHERE workflow_uuid = %s", workflow_id
    )[0][0]


def _count(backend: Backend) -> int:
    return int(str(backend.query("SELECT count(*) FROM {s}.workflow_status")[0][0]))


def test_a_burst_runs_once_with_the_last_input(backend: Backend) -> None:
    runs: list[str] = []

    def record(ctx: dbos.WorkflowContext, value: str) -> str:
        runs.append(value)
        return value

    ctx = backend.context_with(record)
    debouncer = dbos.new_debouncer(ctx, record)
    ctx.launch()
    handles = [debouncer.debounce(ctx, "k", f"v{i}", delay=HOLD) for i in range(4)]
    burst = handles[0].workflow_id
    row = _row(backend, burst)
    assert row["status"] == "DELAYED" and bool(row["is_debounced"])
    assert row["deduplication_id"] == f"{debouncer.workflow_name}-k"
    assert row["queue_name"] == "_dbos_internal_queue"
    assert _input(backend, burst) == '{"positionalArgs":["v3"],"namedArgs":{}}'
    # A later call with a shorter delay brings the start forward.
    last = debouncer.debounce(ctx, "k", "last", delay=timedelta(milliseconds=50))
    assert {h.workflow_id for h in [*handles, last]} == {burst}
    assert last.get_result(timeout=WAIT) == "last"
    assert handles[0].get_result(timeout=WAIT) == "last"
    assert runs == ["last"]
    assert _count(backend) == 1
    # Promoted to the queue, the burst let its key go.
    assert _row(backend, burst)["deduplication_id"] is None


def test_each_call_restarts_the_delay(backend: Backend) -> None:
    ctx = backend.context_with(collect)
    debouncer = dbos.new_debouncer(ctx, collect)
    ctx.launch()
    delay = timedelta(seconds=1)
    first = debouncer.debounce(ctx, "k", "a", delay=delay)
    first_start = int(str(_row(backend, first.workflow_id)["delay_until_epoch_ms"]))
    time.sleep(0.2)  # the subject: time passing between two calls of a burst
    second = debouncer.debounce(ctx, "k", "b", delay=delay)
    assert second.workflow_id == first.workflow_id
    second_start = int(str(_row(backend, first.workflow_id)["delay_until_epoch_ms"]))
    assert second_start >= first_start + 200
    assert first.get_result(timeout=WAIT) == "b"
    started = int(str(_row(backend, first.workflow_id)["started_at_epoch_ms"]))
    assert started >= second_start


def test_max_wait_caps_a_steady_stream_of_calls(backend: Backend) -> None:
    ctx = backend.context_with(collect)
    debouncer = dbos.new_debouncer(ctx, collect, max_wait=timedelta(milliseconds=600))
    assert debouncer.max_wait == timedelta(milliseconds=600)
    ctx.launch()
    first = debouncer.debounce(ctx, "k", "0", delay=timedelta(milliseconds=300))
    landed = [first.workflow_id]
    give_up = time.monotonic() + 15
    # Each call alone would postpone the run by another 300 ms; only the cap ends the stream.
    while first.get_status().status == dbos.StatusName.DELAYED:
        assert time.monotonic() < give_up, "a steady stream of calls postponed the run forever"
        handle = debouncer.debounce(ctx, "k", str(len(landed)), delay=timedelta(milliseconds=300))
        landed.append(handle.workflow_id)
        time.sleep(0.05)  # the subject: the spacing of the calls
    # Every call before the run started joined the first burst (the last may start another).
    assert set(landed[:-1]) == {first.workflow_id}
    row = _row(backend, first.workflow_id)
    deadline = int(str(row["debounce_deadline_epoch_ms"]))
    assert deadline == int(str(row["created_at"])) + 600
    assert int(str(row["delay_until_epoch_ms"])) <= deadline
    assert int(str(row["started_at_epoch_ms"])) >= int(str(row["delay_until_epoch_ms"]))
    assert first.get_result(timeout=WAIT) in {str(i) for i in range(len(landed))}


def test_a_delay_longer_than_max_wait_is_capped_from_the_first_call(backend: Backend) -> None:
    ctx = backend.context_with(collect)
    debouncer = dbos.new_debouncer(ctx, collect, max_wait=timedelta(milliseconds=200))
    ctx.launch()
    handle = debouncer.debounce(ctx, "k", "soon", delay=timedelta(hours=1))
    row = _row(backend, handle.workflow_id)
    assert row["delay_until_epoch_ms"] == row["debounce_deadline_epoch_ms"]
    assert handle.get_result(timeout=WAIT) == "soon"


def test_a_bursts_status_reports_its_delay_deadline_and_key(backend: Backend) -> None:
    ctx = backend.context_with(collect, tick)
    debouncer = dbos.new_debouncer(ctx, collect, max_wait=timedelta(hours=1))
    ctx.launch()
    first = debouncer.debounce(ctx, "k", "a", delay=HOLD)
    status = first.get_status()
    row = _row(backend, first.workflow_id)

    def ms(value: object) -> int:
        assert isinstance(value, datetime)
        return int(value.timestamp() * 1000)

    assert status.status is dbos.StatusName.DELAYED
    assert (status.is_debounced, status.deduplication_id) == (True, "collect-k")
    assert ms(status.debounce_deadline) == row["debounce_deadline_epoch_ms"]
    assert ms(status.delay_until) == row["delay_until_epoch_ms"]
    assert ms(status.debounce_deadline) - ms(status.delay_until) > 0
    # A later call moves the start, never the deadline.
    debouncer.debounce(ctx, "k", "b", delay=HOLD * 2)
    later = first.get_status()
    assert ms(later.delay_until) > ms(status.delay_until)
    assert later.debounce_deadline == status.debounce_deadline
    plain = dbos.run_workflow(ctx, tick, workflow_id="plain")
    assert plain.get_result(timeout=WAIT) == 1
    assert (plain.get_status().is_debounced, plain.get_status().debounce_deadline) == (False, None)
    assert [w.workflow_id for w in dbos.list_workflows(ctx, is_debounced=True)] == [
        first.workflow_id
    ]
    assert [w.workflow_id for w in dbos.list_workflows(ctx, deduplication_id="collect-k")] == [
        first.workflow_id
    ]
    assert debouncer.debounce(ctx, "k", "c", delay=NOW).get_result(timeout=WAIT) == "c"
    done = first.get_status()
    # Once the burst has started its key is released; the flag and deadline stay.
    assert (done.is_debounced, done.deduplication_id) == (True, None)
    assert done.debounce_deadline == status.debounce_deadline
    assert dbos.list_workflows(ctx, deduplication_id="collect-k") == []


def test_the_next_call_after_the_run_starts_a_new_burst(backend: Backend) -> None:
    gate = Gate()

    def held(ctx: dbos.WorkflowContext, value: str) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return value

    ctx = backend.context_with(held)
    debouncer = dbos.new_debouncer(ctx, held)
    ctx.launch()
    first = debouncer.debounce(ctx, "k", "a", delay=NOW)
    gate.wait_entered()
    assert _row(backend, first.workflow_id)["status"] == "PENDING"
    # The running workflow no longer holds the key, so this call starts a second burst.
    second = debouncer.debounce(ctx, "k", "b", delay=NOW)
    assert second.workflow_id != first.workflow_id
    gate.open()
    assert first.get_result(timeout=WAIT) == "a"
    assert second.get_result(timeout=WAIT) == "b"


def test_keys_are_independent_and_scoped_to_the_queue(backend: Backend) -> None:
    ctx = backend.context_with(collect, tick)
    other_queue = dbos.register_queue(ctx, "other")
    debouncer = dbos.new_debouncer(ctx, collect)
    elsewhere = dbos.new_debouncer(ctx, collect, queue=other_queue)
    assert elsewhere.queue_name == "other"
    no_input = dbos.new_debouncer(ctx, tick)
    ctx.launch()
    a = debouncer.debounce(ctx, "a", "a1", delay=HOLD)
    b = debouncer.debounce(ctx, "b", "b1", delay=HOLD)
    a_there = elsewhere.debounce(ctx, "a", "a-other", delay=HOLD)
    ticks = no_input.debounce(ctx, "a", delay=HOLD)
    assert len({a.workflow_id, b.workflow_id, a_there.workflow_id, ticks.workflow_id}) == 4
    assert debouncer.debounce(ctx, "a", "a2", delay=NOW).workflow_id == a.workflow_id
    assert a.get_result(timeout=WAIT) == "a2"
    # The other bursts are untouched by the first one's run.
    assert _row(backend, b.workflow_id)["status"] == "DELAYED"
    assert _row(backend, a_there.workflow_id)["status"] == "DELAYED"
    assert debouncer.debounce(ctx, "b", "b2", delay=NOW).get_result(timeout=WAIT) == "b2"
    joined = elsewhere.debounce(ctx, "a", "a-other-2", delay=NOW)
    assert joined.workflow_id == a_there.workflow_id
    assert joined.get_result(timeout=WAIT) == "a-other-2"
    assert no_input.debounce(ctx, "a", None, delay=NOW).get_result(timeout=WAIT) == 1
    assert ticks.get_result(timeout=WAIT) == 1


def test_a_key_held_by_another_workflow_is_refused(backend: Backend) -> None:
    def job(ctx: dbos.WorkflowContext, value: str) -> str:
        return value

    def job_x(ctx: dbos.WorkflowContext, value: str) -> str:
        return value

    ctx = backend.new_context()
    dbos.register_workflow(ctx, collect, name="collect")
    dbos.register_workflow(ctx, job, name="job")
    dbos.register_workflow(ctx, job_x, name="job-x")
    queue = dbos.register_queue(ctx, "parked")
    dbos.listen_queues(ctx, [])  # keep the plain enqueue ENQUEUED, holding its ID
    ctx.launch()
    plain = dbos.run_workflow(ctx, collect, "plain", queue=queue, deduplication_id="collect-k")
    with pytest.raises(dbos.QueueDeduplicatedError) as info:
        dbos.new_debouncer(ctx, collect, queue=queue).debounce(ctx, "k", "v", delay=HOLD)
    assert info.value.queue_name == "parked" and info.value.deduplication_id == "collect-k"
    # Two debouncers whose name and key spell the same deduplication ID.
    held = dbos.new_debouncer(ctx, job).debounce(ctx, "x-1", "first", delay=HOLD)
    with pytest.raises(dbos.QueueDeduplicatedError) as info:
        dbos.new_debouncer(ctx, job_x).debounce(ctx, "1", "second", delay=HOLD)
    assert info.value.deduplication_id == "job-x-1"
    # A chosen ID that belongs to another workflow.
    with pytest.raises(dbos.ConflictingWorkflowError):
        dbos.new_debouncer(ctx, job).debounce(
            ctx, "y", "v", delay=HOLD, workflow_id=plain.workflow_id
        )
    assert _count(backend) == 2
    assert _input(backend, held.workflow_id) == '{"positionalArgs":["first"],"namedArgs":{}}'


def test_debounce_in_a_workflow_is_a_step_taken_once(backend: Backend) -> None:
    gate = Gate()
    inputs = ["first"]

    def caller(ctx: dbos.WorkflowContext) -> str:
        handle = debouncer.debounce(ctx, "k", inputs[0], delay=HOLD)
        dbos.run_as_step(ctx, gate, name="gate")
        return handle.workflow_id

    ctx = backend.context_with(collect, caller)
    debouncer = dbos.new_debouncer(ctx, collect)
    ctx.launch()
    dbos.run_workflow(ctx, caller, workflow_id="caller")
    gate.wait_entered()
    before = _row(backend, "caller-0")
    assert before["status"] == "DELAYED"
    dbos.cancel_workflow(ctx, "caller")
    inputs[0] = "second"  # a replay that called again would store this input
    gate.open()
    assert dbos.resume_workflow(ctx, "caller").get_result(timeout=WAIT) == "caller-0"
    assert _row(backend, "caller-0") == before
    assert _input(backend, "caller-0") == '{"positionalArgs":["first"],"namedArgs":{}}'
    steps = backend.query(
        "SELECT function_id, function_name, child_workflow_id FROM {s}.operation_outputs "
        "WHERE workflow_uuid = 'caller' ORDER BY function_id"
    )
    assert steps == [(0, "DBOS.debounce", "caller-0"), (1, "gate", None)]
    assert _count(backend) == 2


def test_a_refusal_inside_a_workflow_is_recorded(backend: Backend) -> None:
    def caller(ctx: dbos.WorkflowContext) -> str:
        try:
            debouncer.debounce(ctx, "k", "v", delay=HOLD)
        except dbos.QueueDeduplicatedError as exc:
            return exc.deduplication_id
        return "accepted"

    ctx = backend.context_with(collect, caller)
    queue = dbos.register_queue(ctx, "parked")
    debouncer = dbos.new_debouncer(ctx, collect, queue=queue)
    dbos.listen_queues(ctx, [])
    ctx.launch()
    dbos.run_workflow(
        ctx, collect, "plain", queue=queue, deduplication_id=f"{debouncer.workflow_name}-k"
    )
    result = dbos.run_workflow(ctx, caller, workflow_id="caller").get_result(timeout=WAIT)
    assert result == f"{debouncer.workflow_name}-k"
    steps = backend.query(
        "SELECT function_name, error IS NOT NULL FROM {s}.operation_outputs "
        "WHERE workflow_uuid = 'caller'"
    )
    assert [(name, bool(error)) for name, error in steps] == [("DBOS.debounce", True)]


def test_debounce_is_refused_inside_a_step(backend: Backend) -> None:
    def caller(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_step(
                ctx,
                lambda: debouncer.debounce(ctx, "k", "v", delay=HOLD).workflow_id,
                name="inner",
            )
        except dbos.StepFailedError as exc:
            return f"{exc.error_name}: {exc.error_message}"
        return "accepted"

    ctx = backend.context_with(collect, caller)
    debouncer = dbos.new_debouncer(ctx, collect)
    ctx.launch()
    result = dbos.run_workflow(ctx, caller).get_result(timeout=WAIT)
    assert result.startswith("InvalidOptionError") and "inside a step" in result
    assert _count(backend) == 1


def test_concurrent_calls_land_on_one_workflow(backend: Backend) -> None:
    ctx = backend.context_with(collect)
    debouncer = dbos.new_debouncer(ctx, collect)
    ctx.launch()
    start = threading.Barrier(8)
    landed: list[str] = []

    def call(i: int) -> None:
        start.wait(10)
        landed.append(debouncer.debounce(ctx, "k", f"v{i}", delay=HOLD).workflow_id)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(landed) == 8 and len(set(landed)) == 1
    assert _count(backend) == 1
    final = debouncer.debounce(ctx, "k", "final", delay=NOW)
    assert final.workflow_id == landed[0]
    assert final.get_result(timeout=WAIT) == "final"


def test_a_burst_outlives_the_process_that_started_it(backend: Backend) -> None:
    first = backend.context_with(collect)
    first.launch()
    started = dbos.new_debouncer(first, collect).debounce(first, "k", "before", delay=HOLD)
    first.shutdown()
    second = backend.context_with(collect)
    debouncer = dbos.new_debouncer(second, collect)
    second.launch()
    joined = debouncer.debounce(second, "k", "after", delay=NOW)
    assert joined.workflow_id == started.workflow_id
    assert joined.get_result(timeout=WAIT) == "after"


def test_clients_and_applications_share_bursts(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, collect, name="collect")
    dbos.register_workflow(ctx, tick, name="tick")
    debouncer = dbos.new_debouncer(ctx, collect)
    ctx.launch()
    with dbos.new_client(backend.config()) as client:
        one = dbos.debounce[str](client, "collect", "k", "one", delay=HOLD)
        assert _row(backend, one.workflow_id)["application_version"] is None
        two = debouncer.debounce(ctx, "k", "two", delay=HOLD)
        three = dbos.debounce[str](client, "collect", "k", "three", delay=NOW)
        assert one.workflow_id == two.workflow_id == three.workflow_id
        assert three.get_result(timeout=WAIT) == "three"
        untyped = dbos.debounce(client, "tick", "k", delay=NOW, workflow_id="tick-burst")
        assert untyped.workflow_id == "tick-burst"
        assert untyped.get_result(timeout=WAIT) == 1
        capped = dbos.debounce[str](
            client,
            "collect",
            "c",
            "capped",
            delay=timedelta(hours=1),
            max_wait=timedelta(milliseconds=200),
        )
        assert capped.get_result(timeout=WAIT) == "capped"
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.debounce(client, "collect", "", "v", delay=NOW)
        assert info.value.argument == "key"
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.debounce(client, "collect", "k", "v", delay=NOW, queue="missing")
        assert info.value.argument == "queue"
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.debounce(client, "collect", "k", "v", delay=NOW, max_wait=timedelta(0))
        assert info.value.argument == "max_wait"
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.debounce(client, "collect", "k", "v", delay=NOW, timeout=timedelta(0))
        assert info.value.argument == "timeout"
        limited = dbos.debounce(client, "collect", "t", "v", delay=HOLD, timeout=timedelta(days=1))
        assert limited.get_status().timeout == timedelta(days=1)
    assert _count(backend) == 4


def test_bad_arguments_are_refused_before_anything_is_written(backend: Backend) -> None:
    def unregistered(ctx: dbos.WorkflowContext, value: str) -> str:
        return value

    ctx = backend.context_with(collect)
    with pytest.raises(dbos.RegistrationError):
        dbos.new_debouncer(ctx, unregistered)
    partitioned = dbos.register_queue(ctx, "partitioned", partitioned=True)
    for kwargs, argument in (
        ({"max_wait": timedelta(0)}, "max_wait"),
        ({"max_wait": 5}, "max_wait"),
        ({"queue": "missing"}, "queue"),
        ({"queue": partitioned}, "queue"),
        ({"queue": "partitioned"}, "queue"),
    ):
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.new_debouncer(ctx, collect, **kwargs)
        assert info.value.argument == argument
    debouncer = dbos.new_debouncer(ctx, collect)
    with pytest.raises(dbos.InitializationError):
        debouncer.debounce(ctx, "k", "v", delay=NOW)
    ctx.launch()
    other = backend.new_context("other-app")
    loose: Any = debouncer  # for the calls mypy would refuse
    for call, argument in (
        (lambda: debouncer.debounce(ctx, "k", "v", delay=timedelta(seconds=-1)), "delay"),
        (lambda: debouncer.debounce(ctx, "", "v", delay=NOW), "key"),
        (lambda: debouncer.debounce(ctx, "k\x00", "v", delay=NOW), "key"),
        (lambda: loose.debounce(ctx, "k", 7, delay=NOW), "input"),
        (lambda: loose.debounce(ctx, "k", delay=NOW), "input"),
        (lambda: debouncer.debounce(ctx, "k", "v", delay=NOW, workflow_id=""), "workflow_id"),
        (lambda: debouncer.debounce(other, "k", "v", delay=NOW), "ctx"),
        (lambda: debouncer.debounce(ctx, "k", "v", delay=NOW, timeout=timedelta(0)), "timeout"),
    ):
        with pytest.raises(dbos.InvalidOptionError) as info:
            call()
        assert info.value.argument == argument
    assert _count(backend) == 0


def test_a_timeout_limits_the_burst_workflow_once_it_runs(backend: Backend) -> None:
    def waits(ctx: dbos.WorkflowContext, value: str) -> str:
        dbos.recv[str](ctx, "never", timeout=timedelta(hours=1))
        return value

    ctx = backend.new_context()
    dbos.register_workflow(ctx, waits, name="waits")
    debouncer = dbos.new_debouncer(ctx, waits)
    ctx.launch()
    first = debouncer.debounce(ctx, "k", "one", delay=HOLD, timeout=timedelta(milliseconds=300))
    # The time limit counts from the start of the run, not from the burst's first call.
    assert _row(backend, first.workflow_id)["status"] == "DELAYED"
    assert first.get_status().deadline is None
    last = debouncer.debounce(ctx, "k", "two", delay=NOW)
    assert last.workflow_id == first.workflow_id
    with pytest.raises(dbos.WorkflowDeadlineExceededError):
        last.get_result(timeout=WAIT)
    assert last.get_status().timeout == timedelta(milliseconds=300)
