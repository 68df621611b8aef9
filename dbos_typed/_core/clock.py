"""The clock a context reads and waits on: real time, or a virtual clock a test moves.

Every instant the runtime decides something by (a sleep's deadline, a wait's timeout, a
workflow's deadline, a queue delay, a rate limit's window, a schedule's next tick, a
retry's backoff) comes from `Runtime.clock`, and every wait for such an instant goes
through it. Polling that only looks for work (a database re-check, a heartbeat) stays in
real time: it decides nothing a caller observes.

`SystemClock` is the default and costs what reading `time.time_ns()` and waiting on an
event cost. `VirtualClock` stands still until a test calls `advance`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from dbos_typed._core.validate import single_wait
from dbos_typed.errors import InvalidOptionError


class ClockWaker(Protocol):
    """What a clock wakes when a deadline passes: a `threading.Event` or a loop's waker."""

    def set(self) -> None:
        """Wake the waiter; safe from any thread, more than once."""


@runtime_checkable
class Clock(Protocol):
    """Where a context reads the time and waits for instants of it.

    Deadlines are absolute, in this clock's epoch seconds. `poll` bounds a wait in real
    seconds, for the polling a waiter does anyway (re-checking the database); it decides
    nothing by itself.
    """

    #: True when time moves only when a test says so.
    virtual: bool

    def now_ms(self) -> int:
        """The current time in epoch milliseconds, the unit every timestamp column uses."""
        ...

    def time(self) -> float:
        """The current time in epoch seconds."""
        ...

    def now(self) -> datetime:
        """The current time as an aware datetime in UTC."""
        ...

    def wait(
        self,
        event: threading.Event,
        deadline: float | None,
        poll: float | None = None,
        *,
        service: bool = False,
    ) -> bool:
        """Wait until `event` is set, `deadline` is reached, or `poll` real seconds passed.

        Returns whether `event` is set. A clock may set `event` itself when the deadline
        is reached, so a caller re-reads the time rather than trusting the answer.
        `service` marks a loop that always waits again (the scheduler, the queue
        runner): a virtual clock waits for it to do so before moving time further.
        """
        ...

    def real_timeout(self, deadline: float | None, poll: float | None) -> float | None:
        """How long (real seconds, None for ever) one wait for `deadline` may last."""
        ...

    def alarm(self, deadline: float | None, waker: ClockWaker, *, service: bool = False) -> object:
        """Have `waker` set when the clock reaches `deadline`; cancel with `cancel_alarm`.

        A real clock keeps no alarms (the waiter's timeout does the job) and returns None.
        """
        ...

    def cancel_alarm(self, token: object) -> None:
        """Forget an alarm `alarm` returned (after its waiter stopped waiting)."""
        ...


class SystemClock:
    """Real time: `time.time_ns()`, and waits that time out when the deadline passes."""

    __slots__ = ()

    virtual = False

    def now_ms(self) -> int:
        """The current time in epoch milliseconds."""
        return time.time_ns() // 1_000_000

    def time(self) -> float:
        """The current time in epoch seconds."""
        return time.time()

    def now(self) -> datetime:
        """The current time, in UTC."""
        return datetime.now(UTC)

    def real_timeout(self, deadline: float | None, poll: float | None) -> float | None:
        """The shorter of `poll` and the time left until `deadline` (never negative)."""
        if deadline is None:
            return poll
        left = max(0.0, deadline - time.time())
        return single_wait(left if poll is None else min(poll, left))

    def wait(
        self,
        event: threading.Event,
        deadline: float | None,
        poll: float | None = None,
        *,
        service: bool = False,
    ) -> bool:
        """Wait on `event` until it is set, `deadline` passes or `poll` seconds passed."""
        return event.wait(self.real_timeout(deadline, poll))

    def alarm(self, deadline: float | None, waker: ClockWaker, *, service: bool = False) -> object:
        """Nothing to keep: a real wait times out by itself."""
        return None

    def cancel_alarm(self, token: object) -> None:
        """Nothing to forget."""


#: The clock of a context whose `Config.clock` is None.
SYSTEM_CLOCK = SystemClock()

# How long `advance` waits (real seconds) for the runtime to take in one instant before
# moving on regardless; reached only when a woken thread is stuck elsewhere.
_SETTLE_LIMIT = 30.0
_SETTLE_POLL = 0.02


class _Alarm:
    __slots__ = ("deadline_ms", "service", "thread", "waker")

    def __init__(
        self, deadline_ms: int | None, waker: ClockWaker, service: bool, thread: threading.Thread
    ) -> None:
        self.deadline_ms = deadline_ms
        self.waker = waker
        self.service = service
        self.thread = thread


class VirtualClock:
    """A clock that stands still until `advance` moves it; for tests.

    Pass it as `Config(clock=VirtualClock(start))`. Everything the context decides by
    time follows it: a three-day `sleep` ends when the test advances three days, not
    before, and no real time leaks in. `testing.restart` keeps it, so a restarted
    context goes on from the same instant.

    It is thread-safe, and several contexts may share one.
    """

    virtual = True

    def __init__(self, start: datetime) -> None:
        """Start the clock at `start`, a time-zone-aware datetime.

        Raises:
            InvalidOptionError: `start` is not an aware datetime.
        """
        if not isinstance(start, datetime) or start.tzinfo is None:
            raise InvalidOptionError("start", "expected a time-zone-aware datetime")
        self._now_ms = _epoch_ms(start)
        self._cond = threading.Condition()
        self._alarms: dict[int, _Alarm] = {}
        self._heap: list[tuple[int, int]] = []  # (deadline_ms, alarm id), lazily pruned
        self._ids = itertools.count()
        # Alarms `advance` fired and still waits for the runtime to take in.
        self._unsettled: dict[int, _Alarm] = {}
        self._advancing = threading.Lock()

    def __repr__(self) -> str:
        return f"VirtualClock({self.now().isoformat()})"

    def now(self) -> datetime:
        """The clock's current time, in UTC."""
        with self._cond:
            return datetime.fromtimestamp(self._now_ms / 1000, UTC)

    def now_ms(self) -> int:
        """The clock's current time in epoch milliseconds."""
        with self._cond:
            return self._now_ms

    def time(self) -> float:
        """The clock's current time in epoch seconds."""
        with self._cond:
            return self._now_ms / 1000

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by `delta`, waking what falls due on the way.

        Time moves from one pending deadline to the next, in order: at each, the waits
        due then are woken, and the clock waits (in real time) until each woken wait has
        ended, and each woken loop of the runtime (the scheduler, the queue runner) is
        waiting again, before it moves on. So schedule ticks inside the span fire in
        order, once each, and a three-day sleep ends once three days have passed. What
        a woken workflow does next runs on its own thread and may still be going when
        this returns.

        Raises:
            InvalidOptionError: `delta` is not a non-negative timedelta.
        """
        if not isinstance(delta, timedelta) or delta < timedelta(0):
            raise InvalidOptionError("delta", "expected a non-negative timedelta")
        step = delta // timedelta(milliseconds=1)
        with self._advancing, self._cond:
            target = self._now_ms + step
            while True:
                due = self._next_due(target)
                if due is None:
                    break
                self._now_ms = max(self._now_ms, due)
                self._fire(
                    lambda alarm: (
                        alarm.deadline_ms is not None and alarm.deadline_ms <= self._now_ms
                    )
                )
                self._settle()
            self._now_ms = target
            # Loops that poll rather than wait for a deadline (a rate limit's window, a
            # claim that read the old time) look again at the new time.
            self._fire(lambda alarm: alarm.service)
            self._settle()

    def set(self, instant: datetime) -> None:
        """Advance the clock to `instant` (as `advance` does); earlier than now is refused.

        Raises:
            InvalidOptionError: `instant` is naive or before the clock's current time.
        """
        if not isinstance(instant, datetime) or instant.tzinfo is None:
            raise InvalidOptionError("instant", "expected a time-zone-aware datetime")
        delta = timedelta(milliseconds=_epoch_ms(instant) - self.now_ms())
        if delta < timedelta(0):
            raise InvalidOptionError("instant", "a virtual clock never goes back")
        self.advance(delta)

    def wait_for_waiters(
        self,
        count: int = 1,
        *,
        until: datetime | None = None,
        timeout: timedelta = timedelta(seconds=30),
    ) -> int:
        """Block (in real time) until `count` waits for a deadline are pending.

        A test calls this before `advance`, so the wait it means to end has started:
        with `until`, only deadlines at or before `until` count. Returns how many there
        are.

        Raises:
            TimeoutError: fewer were pending after `timeout` of real time.
        """
        limit_ms = None if until is None else _epoch_ms(until)
        give_up = time.monotonic() + timeout.total_seconds()
        with self._cond:
            while True:
                pending = sum(
                    1
                    for alarm in self._alarms.values()
                    if alarm.deadline_ms is not None
                    and (limit_ms is None or alarm.deadline_ms <= limit_ms)
                )
                if pending >= count:
                    return pending
                left = give_up - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{pending} of {count} wait(s) pending on {self!r}")
                self._cond.wait(left)

    # The Clock protocol.

    def real_timeout(self, deadline: float | None, poll: float | None) -> float | None:
        """`poll`, unless `deadline` has passed (then 0): virtual deadlines wake by alarm."""
        if deadline is not None and deadline * 1000 <= self.now_ms():
            return 0.0
        return poll

    def wait(
        self,
        event: threading.Event,
        deadline: float | None,
        poll: float | None = None,
        *,
        service: bool = False,
    ) -> bool:
        """Wait until `event` is set (by anyone, or by `advance` at `deadline`) or `poll`."""
        token = self.alarm(deadline, event, service=service)
        try:
            if token is None:
                return event.is_set()
            return event.wait(None if poll is None else single_wait(poll))
        finally:
            self.cancel_alarm(token)

    def alarm(self, deadline: float | None, waker: ClockWaker, *, service: bool = False) -> object:
        """Have `advance` set `waker` at `deadline`; None when that has passed already."""
        deadline_ms = None if deadline is None else _ceil_ms(deadline)
        thread = threading.current_thread()
        with self._cond:
            if deadline_ms is not None and deadline_ms <= self._now_ms:
                self._settle_thread(thread)
                return None
            alarm_id = next(self._ids)
            self._alarms[alarm_id] = _Alarm(deadline_ms, waker, service, thread)
            if deadline_ms is not None:
                heapq.heappush(self._heap, (deadline_ms, alarm_id))
            # A loop `advance` woke is waiting again: it has taken that instant in.
            self._settle_thread(thread)
            self._cond.notify_all()
            return alarm_id

    def cancel_alarm(self, token: object) -> None:
        """Forget an alarm; a fired wait that is not a loop has now taken its instant in."""
        if not isinstance(token, int):
            return
        with self._cond:
            self._alarms.pop(token, None)
            fired = self._unsettled.get(token)
            if fired is not None and not fired.service:
                del self._unsettled[token]
            self._cond.notify_all()

    # Internals; called with self._cond held.

    def _next_due(self, target: int) -> int | None:
        while self._heap:
            deadline_ms, alarm_id = self._heap[0]
            if alarm_id not in self._alarms:
                heapq.heappop(self._heap)
                continue
            return deadline_ms if deadline_ms <= target else None
        return None

    def _fire(self, which: Callable[[_Alarm], bool]) -> None:
        for alarm_id, alarm in list(self._alarms.items()):
            if which(alarm):
                del self._alarms[alarm_id]
                self._unsettled[alarm_id] = alarm
                alarm.waker.set()

    def _settle_thread(self, thread: threading.Thread) -> None:
        for alarm_id, alarm in list(self._unsettled.items()):
            if alarm.service and alarm.thread is thread:
                del self._unsettled[alarm_id]

    def _settle(self) -> None:
        give_up = time.monotonic() + _SETTLE_LIMIT
        while self._unsettled and time.monotonic() < give_up:
            for alarm_id, alarm in list(self._unsettled.items()):
                if not alarm.thread.is_alive():
                    del self._unsettled[alarm_id]
            if self._unsettled:
                self._cond.wait(_SETTLE_POLL)
        self._unsettled.clear()


def _epoch_ms(instant: datetime) -> int:
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _ceil_ms(seconds: float) -> int:
    # A deadline computed in float seconds from whole milliseconds comes back a hair
    # above or below them; within a microsecond it is taken as that millisecond.
    ms = seconds * 1000
    nearest = round(ms)
    return nearest if abs(ms - nearest) < 1e-3 else int(ms) + 1
