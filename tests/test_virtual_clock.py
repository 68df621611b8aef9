"""testing.VirtualClock: everything a context decides by time follows the clock alone.

A test waits for the wait it means to end (`wait_for_waiters`) before it advances, and
never for real time to pass.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

import dbos_typed as dbos
from dbos_typed import aio, testing
from dbos_typed._schedules.cron import tick_workflow_id
from tests.conftest import Backend

START = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)
WAIT = timedelta(seconds=30)


def _status(ctx: dbos.DBOSContext, workflow_id: str) -> str:
    return dbos.retrieve_workflow(ctx, workflow_id).get_status().status


def month_long(ctx: dbos.WorkflowContext) -> str:
    dbos.sleep(ctx, timedelta(days=30))
    return "woke"


def test_a_thirty_day_sleep_ends_when_the_clock_has_moved_thirty_days(backend: Backend) -> None:
    clock = testing.VirtualClock(START)
    ctx = backend.context_with(month_long, clock=clock)
    ctx.launch()
    handle = dbos.run_workflow(ctx, month_long, workflow_id="month")
    clock.wait_for_waiters(until=START + timedelta(days=30))
    clock.advance(timedelta(days=29))
    assert _status(ctx, "month") == "PENDING"
    assert clock.wait_for_waiters(until=START + timedelta(days=30)) == 1  # still asleep
    clock.advance(timedelta(days=1))
    assert handle.get_result(timeout=WAIT) == "woke"
    [step] = dbos.get_workflow_steps(ctx, "month")
    assert step.name == "DBOS.sleep"
    assert clock.now() == START + timedelta(days=30)


def test_a_restart_mid_sleep_keeps_the_clock(backend: Backend) -> None:
    clock = testing.VirtualClock(START)
    ctx = backend.context_with(month_long, clock=clock)
    ctx.launch()
    dbos.run_workflow(ctx, month_long, workflow_id="month")
    clock.wait_for_waiters(until=START + timedelta(days=30))
    clock.advance(timedelta(days=10))
    ctx = testing.restart(ctx)
    backend.contexts.append(ctx)
    # The recovered run waits for the recorded deadline, on the same clock.
    clock.wait_for_waiters(until=START + timedelta(days=30))
    clock.advance(timedelta(days=19))
    assert _status(ctx, "month") == "PENDING"
    clock.advance(timedelta(days=1))
    assert dbos.retrieve_workflow[str](ctx, "month").get_result(timeout=WAIT) == "woke"


def receiver(ctx: dbos.WorkflowContext) -> str:
    try:
        return dbos.recv[str](ctx, "topic", timeout=timedelta(hours=2))
    except dbos.WaitTimeoutError:
        return "timed out"


def test_a_recv_timeout_follows_the_clock(backend: Backend) -> None:
    clock = testing.VirtualClock(START)
    ctx = backend.context_with(receiver, clock=clock)
    ctx.launch()
    handle = dbos.run_workflow(ctx, receiver, workflow_id="r")
    clock.wait_for_waiters(until=START + timedelta(hours=2))
    clock.advance(timedelta(hours=1, minutes=59))
    assert _status(ctx, "r") == "PENDING"
    clock.advance(timedelta(minutes=1))
    assert handle.get_result(timeout=WAIT) == "timed out"


def test_a_get_event_timeout_follows_the_clock(backend: Backend) -> None:
    clock = testing.VirtualClock(START)
    ctx = backend.new_context(clock=clock)
    ctx.launch()
    with ThreadPoolExecutor(1) as pool:
        read = pool.submit(dbos.get_event[str], ctx, "nobody", "key", timeout=timedelta(hours=5))
        clock.wait_for_waiters(until=START + timedelta(hours=5))
        clock.advance(timedelta(hours=4))
        assert not read.done()
        clock.advance(timedelta(hours=1))
        with pytest.raises(dbos.WaitTimeoutError):
            read.result(timeout=WAIT.total_seconds())


def test_a_workflow_timeout_follows_the_clock(backend: Backend) -> None:
    clock = testing.VirtualClock(START)
    ctx = backend.context_with(month_long, clock=clock)
    ctx.launch()
    handle = dbos.run_workflow(ctx, month_long, workflow_id="t", timeout=timedelta(hours=6))
    status = handle.get_status()
    assert status.deadline == START + timedelta(hours=6)
    # The sleep and the deadline both wait on the clock.
    clock.wait_for_waiters(2, until=START + timedelta(days=30))
    clock.advance(timedelta(hours=5))
    assert _status(ctx, "t") == "PENDING"
    clock.advance(timedelta(hours=1))
    with pytest.raises(dbos.WorkflowDeadlineExceededError):
        handle.get_result(timeout=WAIT)


def double(ctx: dbos.WorkflowContext, n: int) -> int:
    return n * 2


def test_a_queue_delay_follows_the_clock(backend: Backend) -> None:
    clock = testing.VirtualClock(START)
    ctx = backend.context_with(double, clock=clock)
    dbos.register_queue(ctx, "later")
    ctx.launch()
    handle = dbos.run_workflow(
        ctx, double, 21, workflow_id="d", queue="later", delay=timedelta(days=2)
    )
    clock.wait_for_waiters(until=START + timedelta(days=2))
    clock.advance(timedelta(days=1))
    assert _status(ctx, "d") == "DELAYED"
    clock.advance(timedelta(days=1))
    assert handle.get_result(timeout=WAIT) == 42


def test_a_debounce_window_follows_the_clock(backend: Backend) -> None:
    clock = testing.VirtualClock(START)
    ctx = backend.context_with(double, clock=clock)
    debouncer = dbos.new_debouncer(ctx, double)
    ctx.launch()
    first = debouncer.debounce(ctx, "k", 1, delay=timedelta(hours=3))
    clock.advance(timedelta(hours=2))
    # Within the window: joins the burst and restarts its delay from now.
    last = debouncer.debounce(ctx, "k", 5, delay=timedelta(hours=3))
    assert last.workflow_id == first.workflow_id
    clock.advance(timedelta(hours=2))
    assert _status(ctx, first.workflow_id) == "DELAYED"
    clock.advance(timedelta(hours=1))
    assert first.get_result(timeout=WAIT) == 10


def test_a_rate_limit_window_follows_the_clock(backend: Backend) -> None:
    clock = testing.VirtualClock(START)
    ctx = backend.context_with(double, clock=clock)
    dbos.register_queue(ctx, "slow", limiter=dbos.RateLimit(1, timedelta(hours=1)))
    ctx.launch()
    first = dbos.run_workflow(ctx, double, 1, workflow_id="first", queue="slow")
    assert first.get_result(timeout=WAIT) == 2
    second = dbos.run_workflow(ctx, double, 2, workflow_id="second", queue="slow")
    clock.advance(timedelta(minutes=59))
    assert _status(ctx, "second") == "ENQUEUED"
    clock.advance(timedelta(minutes=1))
    assert second.get_result(timeout=WAIT) == 4


_FAILURES: dict[str, int] = {}
_FAILURES_LOCK = threading.Lock()


def flaky(ctx: dbos.WorkflowContext) -> int:
    def attempt() -> int:
        with _FAILURES_LOCK:
            _FAILURES["flaky"] = _FAILURES.get("flaky", 0) + 1
            if _FAILURES["flaky"] <= 2:
                raise RuntimeError("not yet")
            return _FAILURES["flaky"]

    return dbos.run_as_step(
        ctx,
        attempt,
        name="attempt",
        max_retries=3,
        base_interval=timedelta(hours=1),
        backoff_factor=2.0,
        max_interval=timedelta(days=1),
    )


def test_retry_backoff_follows_the_clock(backend: Backend) -> None:
    _FAILURES.clear()
    clock = testing.VirtualClock(START)
    ctx = backend.context_with(flaky, clock=clock)
    ctx.launch()
    handle = dbos.run_workflow(ctx, flaky, workflow_id="f")
    # Backoffs are jittered by 5% either way: an hour, then two.
    clock.wait_for_waiters(until=START + timedelta(hours=2))  # the first backoff
    clock.advance(timedelta(minutes=50))
    assert _FAILURES["flaky"] == 1
    clock.advance(timedelta(minutes=20))
    clock.wait_for_waiters(until=START + timedelta(hours=4))  # the second
    assert _FAILURES["flaky"] == 2
    clock.advance(timedelta(hours=1))
    assert _FAILURES["flaky"] == 2
    clock.advance(timedelta(hours=2))
    assert handle.get_result(timeout=WAIT) == 3


_TICKS: list[datetime] = []
_TICKS_LOCK = threading.Lock()


def hourly(ctx: dbos.WorkflowContext, scheduled_time: datetime) -> str:
    with _TICKS_LOCK:
        _TICKS.append(scheduled_time)
    return scheduled_time.isoformat()


def test_an_hourly_schedule_fires_each_tick_of_two_days_once_in_order(backend: Backend) -> None:
    _TICKS.clear()
    clock = testing.VirtualClock(START)
    ctx = backend.new_context(clock=clock)
    dbos.register_workflow(ctx, hourly, schedule="0 0 * * * *", name="hourly")
    ctx.launch()
    clock.wait_for_waiters(until=START + timedelta(hours=1))  # the scheduler's first tick
    clock.advance(timedelta(days=2))
    expected = [START.replace(minute=0) + timedelta(hours=h) for h in range(1, 49)]
    for tick in expected:
        handle = dbos.retrieve_workflow[str](ctx, tick_workflow_id("hourly", tick))
        assert handle.get_result(timeout=WAIT) == tick.isoformat()
    runs = dbos.list_workflows(ctx, name="hourly")
    assert len(runs) == 48
    # Each tick was enqueued at its own instant of the clock, one after the other.
    by_creation = sorted(runs, key=lambda status: status.created_at)
    assert [status.workflow_id for status in by_creation] == [
        tick_workflow_id("hourly", tick) for tick in expected
    ]
    assert [status.created_at for status in by_creation] == expected
    assert sorted(_TICKS) == expected and len(_TICKS) == 48


def test_advance_refuses_going_back() -> None:
    clock = testing.VirtualClock(START)
    with pytest.raises(dbos.InvalidOptionError):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(dbos.InvalidOptionError):
        testing.VirtualClock(datetime(2026, 1, 1))  # naive
    clock.advance(timedelta(hours=1))
    assert clock.now() == START + timedelta(hours=1)
    assert clock.now_ms() == int((START + timedelta(hours=1)).timestamp() * 1000)


async def async_week(ctx: dbos.WorkflowContext) -> str:
    await aio.sleep(ctx, timedelta(days=7))
    try:
        return await aio.recv[str](ctx, "topic", timeout=timedelta(days=1))
    except dbos.WaitTimeoutError:
        return "woke and timed out"


def test_an_async_workflow_sleeps_and_waits_on_the_clock(backend: Backend) -> None:
    clock = testing.VirtualClock(START)
    ctx = backend.context_with(async_week, clock=clock)
    ctx.launch()
    handle = dbos.run_workflow(ctx, async_week, workflow_id="a")
    clock.wait_for_waiters(until=START + timedelta(days=7))
    clock.advance(timedelta(days=6))
    assert _status(ctx, "a") == "PENDING"
    clock.advance(timedelta(days=1))
    clock.wait_for_waiters(until=START + timedelta(days=8))  # now in recv
    clock.advance(timedelta(hours=23))
    assert _status(ctx, "a") == "PENDING"
    clock.advance(timedelta(hours=1))
    assert handle.get_result(timeout=WAIT) == "woke and timed out"


def test_a_config_refuses_what_is_not_a_clock() -> None:
    with pytest.raises(dbos.InvalidOptionError, match="clock"):
        dbos.Config(app_name="a", clock="tomorrow")  # type: ignore[arg-type]
    clock = testing.VirtualClock(START)
    assert dbos.Config(app_name="a", clock=clock).clock is clock
