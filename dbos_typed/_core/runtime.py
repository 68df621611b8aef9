"""The state one context owns: store, registry, worker threads, running executions, timers.

This module holds no workflow logic; `_lifecycle` wires the pieces together and
`_workflow` runs workflows on them.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from dbos_typed._core.clock import SYSTEM_CLOCK, Clock
from dbos_typed._core.config import Config
from dbos_typed._core.crash import Crashes
from dbos_typed._core.hand_off import LateHandOff, PendingRun, off_the_main_thread
from dbos_typed._core.registry import Registry
from dbos_typed._core.telemetry import Telemetry, install_log_fields
from dbos_typed._sysdb._listener import (
    QUEUE_SETTINGS_CHANNEL,
    QUEUES_CHANNEL,
    Listener,
    Notifier,
    Waiters,
    Waker,
)
from dbos_typed._sysdb._rows import INTERNAL_QUEUE, QueueRow
from dbos_typed._sysdb._store import SystemStore

logger = logging.getLogger("dbos_typed")

_SAFETY_RECHECK = 5.0
_POLL = 0.05


def now_ms() -> int:
    """Real time in epoch milliseconds, for what no context's clock governs.

    Whatever a context decides by time reads `Runtime.clock` instead.
    """
    return time.time_ns() // 1_000_000


class LoopShelf:
    """Event loops kept between async workflows, so that each run need not make its own.

    `run` is `asyncio.run` without a new loop each time: it takes an idle loop from the
    shelf (or makes one), runs the coroutine on it as a task in a copy of the caller's
    context, and when it returns (or raises) cancels and awaits the tasks it left, before
    its outcome is recorded. A run that leaves anything else on the loop (an async
    generator to finalize, the default executor, a callback not yet due, a changed
    handler, factory or debug mode) closes the loop as `asyncio.run` would; so does a
    loop that is not an `asyncio.BaseEventLoop`, whose leftovers cannot be seen. At most
    `keep` idle loops are kept (each holds a few file descriptors); `close` closes them,
    and any loop handed back later. Between runs the thread has no current event loop,
    as after `asyncio.run`.
    """

    __slots__ = ("_closed", "_idle", "_keep", "_lock")

    def __init__(self, keep: int = 32) -> None:
        self._keep = keep
        self._idle: list[tuple[asyncio.AbstractEventLoop, bool]] = []  # (loop, its debug)
        self._lock = threading.Lock()
        self._closed = False

    def run(self, coro: Any) -> Any:
        """Run `coro` to its end on this thread and return its result."""
        if not asyncio.iscoroutine(coro) or asyncio._get_running_loop() is not None:
            return asyncio.run(coro)  # raises as asyncio.run does
        with self._lock:
            kept = self._idle.pop() if self._idle else None
        if kept is None:
            loop = asyncio.new_event_loop()
            kept = (loop, loop.get_debug())
        loop = kept[0]
        asyncio.set_event_loop(loop)
        try:
            task = loop.create_task(coro, context=contextvars.copy_context())
            return loop.run_until_complete(task)
        finally:
            try:
                _cancel_leftovers(loop)
            finally:
                asyncio.set_event_loop(None)
                self._put_back(kept)

    def _put_back(self, kept: tuple[asyncio.AbstractEventLoop, bool]) -> None:
        loop, debug = kept
        if _clean(loop, debug):
            with self._lock:
                if not self._closed and len(self._idle) < self._keep:
                    self._idle.append(kept)
                    return
        _close_loop(loop)

    def close(self) -> None:
        """Close the idle loops, and from now on every loop handed back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for loop, _ in idle:
            # Nothing was left on an idle loop (`_clean`), so there is nothing to run: this
            # may be called from inside a running loop (a shutdown from async code).
            loop.close()


def _clean(loop: asyncio.AbstractEventLoop, debug: bool) -> bool:
    """Whether nothing of the last run is left on `loop` for the next one to meet."""
    if (
        loop.is_closed()
        or not isinstance(loop, asyncio.BaseEventLoop)
        or loop.get_exception_handler() is not None
        or loop.get_task_factory() is not None
        or loop.get_debug() != debug
    ):
        return False
    # Read only, and missing counts as left over: what `asyncio.run` would clear by
    # closing the loop, which is what happens here whenever one of them is not empty.
    if getattr(loop, "_asyncgens", True) or getattr(loop, "_ready", True):
        return False
    if getattr(loop, "_default_executor", True) is not None:
        return False
    scheduled: Any = getattr(loop, "_scheduled", None)
    return scheduled is not None and all(handle.cancelled() for handle in scheduled)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close `loop` as `asyncio.run` closes its own."""
    if loop.is_closed():
        return
    try:
        _cancel_leftovers(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still on `loop` and wait for them, as `asyncio.run` does at its end."""
    leftovers = asyncio.all_tasks(loop)
    if not leftovers:
        return
    for task in leftovers:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
    for task in leftovers:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during asyncio.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


class WorkerPool:
    """Daemon threads that run workflows, reused when idle and added when all are busy.

    Workflows block (on steps, sleeps, children), so a thread is held for as long as one
    runs or waits. The pool grows up to `max_threads`; past that, new work waits for a
    thread to come free, so a runaway (a workflow that keeps starting itself) cannot take
    the process down with it. Concurrency limits of their own belong to queues. Daemon
    threads never hold the interpreter open at exit: an unfinished workflow is recovered
    by the next process.
    """

    def __init__(self, name: str, max_threads: int, log: logging.Logger | None = None) -> None:
        self._name = name
        self._log = log or logger
        self._max_threads = max_threads
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = 0
        self._waiting = 0  # tasks queued with no thread free to take them
        self._busy = 0  # tasks submitted and not finished
        self._stopped = False
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # The event loops async workflows run on, kept between runs.
        self.loops = LoopShelf()

    def submit(self, task: Callable[[], None]) -> None:
        """Run `task` on an idle thread, on a new one, or on the next to come free."""
        with self._lock:
            if self._stopped:
                # The queue now ends in stop markers: this task must not wait behind them.
                threading.Thread(
                    target=self._run, args=(task,), name=f"{self._name}-late", daemon=True
                ).start()
                return
            self._busy += 1
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self._max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                if self._waiting == 0:
                    self._log.warning(
                        "all %d workflow threads are busy; new workflows wait for one to "
                        "come free (Config.max_workflow_threads)",
                        self._max_threads,
                    )
                self._waiting += 1
        self._tasks.put(task)

    def spare(self) -> int:
        """How many more workflows could start now without waiting for a thread."""
        with self._lock:
            return self._max_threads - self._busy

    def thread_count(self) -> int:
        """How many threads the pool has started (they are reused, never more than the cap)."""
        with self._lock:
            return len(self._threads)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            self._run(task)
            with self._lock:
                self._busy -= 1
                if self._waiting > 0:
                    self._waiting -= 1  # this thread takes a task that was waiting
                else:
                    self._idle += 1

    def _run(self, task: Callable[[], None]) -> None:
        try:
            task()
        except BaseException:  # a task must never kill the worker silently
            self._log.exception("unexpected error in a workflow thread")

    def stop(self) -> None:
        """Let idle threads exit; busy ones finish their task first.

        A task submitted afterwards (a step of a workflow that is unwinding) runs on a
        thread of its own, which exits after it.
        """
        with self._lock:
            self._stopped = True
            count = len(self._threads)
        for _ in range(count):
            self._tasks.put(None)
        self.loops.close()


class DeadlineWatcher:
    """One thread that fires callbacks when workflow deadlines pass on the context's clock."""

    def __init__(self, log: logging.Logger | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._log = log or logger
        self._clock = clock
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self._counter = 0
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def add(self, deadline_ms: int, callback: Callable[[], None]) -> None:
        """Call `callback` once, at or shortly after `deadline_ms`."""
        with self._lock:
            self._counter += 1
            heapq.heappush(self._heap, (deadline_ms, self._counter, callback))
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="dbos-deadlines", daemon=True
                )
                self._thread.start()
        self._wakeup.set()

    def _run(self) -> None:
        clock = self._clock
        while True:
            self._wakeup.clear()  # before looking: an add from now on wakes the wait below
            with self._lock:
                if self._stopped:
                    return
                due = self._heap and self._heap[0][0] <= clock.now_ms()
                callback = heapq.heappop(self._heap)[2] if due else None
                earliest = self._heap[0][0] / 1000 if self._heap and not due else None
            if callback is not None:
                try:
                    callback()
                except Exception:
                    self._log.exception("error while enforcing a workflow deadline")
                continue
            clock.wait(self._wakeup, earliest, service=True)

    def stop(self) -> None:
        """Stop firing."""
        with self._lock:
            self._stopped = True
        self._wakeup.set()


def run_if_pending(execution: Execution) -> None:
    """Run `execution` on this thread if no worker has started it yet.

    Not on the main thread: an interrupt (Ctrl-C) there must reach the caller, not stop
    the workflow's body as an interruption.
    """
    pending = execution.pending
    if pending is None or not off_the_main_thread():
        return
    body = pending.take()
    if body is not None:
        # In a context of its own, as on a worker: nothing of the caller's (its current
        # span, its context variables) leaks into the run, nor the run's into the caller.
        contextvars.Context().run(body)


@dataclass(eq=False)
class Execution:
    """A workflow running in this process.

    `future` resolves to ("ok", value) or ("error", exception) when the outcome was written
    here, or ("database", None) when the caller must read the outcome from the database
    (the run was cancelled, superseded, or interrupted by shutdown).
    """

    workflow_id: str
    # The token the start or claim of this run set on the row; None when not fenced.
    owner_xid: str | None = None
    future: Future[tuple[str, Any]] = field(default_factory=Future)
    cancel_reason: str | None = None
    # On success: the codec the result was stored with, and the stored text, so that a
    # handle typed otherwise decodes what the database holds rather than the live value.
    stored_output: tuple[Any, str] | None = None
    wakers: list[Waker] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # A synchronous run not yet taken by a worker, which a waiting caller may run itself.
    pending: PendingRun | None = None

    def cancel(self, reason: str) -> None:
        """Ask the workflow to stop at its next durable operation, and wake its waits."""
        with self.lock:
            if self.cancel_reason is None:
                self.cancel_reason = reason
            wakers = list(self.wakers)
        for waker in wakers:
            waker.set()

    def add_waker(self, waker: Waker) -> None:
        """Register an event to set when the workflow is cancelled."""
        with self.lock:
            self.wakers.append(waker)
            if self.cancel_reason is not None:
                waker.set()

    def remove_waker(self, waker: Waker) -> None:
        """Forget an event registered with `add_waker`."""
        with self.lock:
            if waker in self.wakers:
                self.wakers.remove(waker)


@dataclass(frozen=True, slots=True)
class AttachedDatabase:
    """A data source's database as its context sees it: closed at shutdown, told of deletions."""

    close: Callable[[], None]
    # Called with the IDs of workflows this process deleted, to delete the completion rows
    # that database holds for them.
    forget: Callable[[Sequence[str]], None]


class Runtime:
    """Everything a context owns. Shared by a `DBOSContext` and its `WorkflowContext`s."""

    def __init__(self, config: Config, store: SystemStore) -> None:
        self.config = config
        self.store = store
        self.registry = Registry()
        self.executor_id = config.resolved_executor_id()
        # The application_name written on new rows; a nameless client writes NULL.
        self.owner_name: str | None = config.app_name
        self.application_version: str = config.pinned_application_version() or ""
        # Everything this context logs goes here (Config.logger, else the dbos_typed logger).
        self.logger = config.logger or logger
        install_log_fields(self.logger)
        threads_name = f"dbos-{config.app_name}"[:40]
        self.workers = WorkerPool(threads_name, config.max_workflow_threads, self.logger)
        # Direct starts whose callers may run them themselves reach the workers through this.
        self.late_hand_off = LateHandOff(self.workers.submit, threads_name)
        # Where every time the context decides by comes from (Config.clock).
        self.clock: Clock = config.clock or SYSTEM_CLOCK
        self.deadlines = DeadlineWatcher(self.logger, self.clock)
        self.telemetry = Telemetry(
            config.tracer_provider, config.meter_provider, config.instrumentation
        )
        self.running: dict[str, Execution] = {}
        self.running_lock = threading.Lock()
        # Set to make the queue runner look for work now: a local enqueue, a finished
        # queued workflow, recovery, and (later) a database notification.
        self.queue_wakeup = threading.Event()
        self.queue_notifications = 0  # how often other processes announced work (for tests)
        # The queues this process serves; None means every queue of the application.
        self.listened: frozenset[str] | None = None
        # Queue settings known in this process, by name (declared here or read back).
        self.queues: dict[str, QueueRow] = {}
        # Queues declared before launch whose stored settings differ; launch writes these
        # settings over them if this process's version turns out to be the latest.
        self.deferred_queues: dict[str, QueueRow] = {}
        # Set when queue settings changed (here or, as notified, elsewhere): the queue
        # runner re-reads them at its next pass instead of within its refresh interval.
        self.queue_settings_stale = threading.Event()
        # Set when this process changes a schedule, so the scheduler reconciles at once.
        self.schedule_wakeup = threading.Event()
        self.launched = False
        self.shutting_down = threading.Event()
        self.lifecycle_lock = threading.Lock()
        # Run first at launch, before anything starts; if one raises, the context stays
        # unlaunched and may be launched again.
        self.launch_checks: list[Callable[[], None]] = []
        self.on_launch: list[Callable[[], None]] = []
        self.on_shutdown: list[Callable[[float], None]] = []
        # Stop the queue runner and the scheduler (given how long to wait for each), for
        # `deactivate`; set by the lifecycle, which owns both.
        self.on_deactivate: list[Callable[[float], None]] = []
        self.deactivated = False  # this process no longer dequeues nor fires schedules
        # The data sources opened on this context, closed after the `on_shutdown` hooks;
        # `testing.restart` hands them to the context it makes.
        self.data_sources: list[AttachedDatabase] = []
        self.admin_url: str | None = None
        self.created_ms = self.clock.now_ms()
        self.waiters = Waiters()
        self.listener: Listener | None = None
        self.notifier: Notifier | None = None
        # Crash points a test armed (dbos_typed.testing.crash_at); None, and then checked
        # with one attribute read per step, unless a test ever armed one here.
        self.crashes: Crashes | None = None
        self._message_clock = 0
        self._message_clock_lock = threading.Lock()

    def deactivate(self, timeout: float) -> None:
        """Stop dequeuing and firing schedules here, for good (before a deploy replaces it).

        Workflows already running go on; new ones are left to other processes. When this
        returns, the queue runner and the scheduler have stopped (or `timeout` passed for
        each): nothing more is claimed or fired here. Calling it again does nothing.
        """
        with self.lifecycle_lock:
            if self.deactivated:
                return
            self.deactivated = True
            hooks = list(self.on_deactivate)
        for stop in hooks:
            stop(timeout)

    def note_queued_work(self) -> None:
        """Another process announced queued work: wake the runner now, not at its next poll."""
        self.queue_notifications += 1
        self.queue_wakeup.set()

    def announce_work(self, queue_name: str | None = None) -> None:
        """Wake this process's queue runner, and (on Postgres) other processes' runners.

        Notifications go through the coalescing notifier: a burst of enqueues costs one
        NOTIFY per queue per batch, never one per row.
        """
        self.queue_wakeup.set()
        if self.notifier is not None:
            self.notifier.signal(QUEUES_CHANNEL, queue_name or INTERNAL_QUEUE)

    def note_queue_settings(self) -> None:
        """Queue settings changed (a declaration, update or deletion): re-read them now."""
        self.queue_settings_stale.set()
        self.queue_wakeup.set()

    def announce_queue_settings(self, queue_name: str) -> None:
        """Make this process's runner, and (on Postgres) other processes', re-read queues."""
        self.note_queue_settings()
        if self.notifier is not None:
            self.notifier.signal(QUEUE_SETTINGS_CHANNEL, queue_name)

    @property
    def app_name(self) -> str:
        """The application's name."""
        return self.config.app_name

    def recheck_interval(self) -> float:
        """How long a waiter trusts notifications before re-checking the database itself.

        With a live LISTEN connection the re-check is only a safety net; without one (SQLite,
        a context not launched, a lost connection) it is how waiters see other processes.
        """
        listener = self.listener
        return _SAFETY_RECHECK if listener is not None and listener.connected else _POLL

    def publish(self, channel: str, payload: str) -> None:
        """Wake this process's waiters on a key at once, and tell other processes."""
        self.waiters.wake((channel, payload))
        if self.notifier is not None:
            self.notifier.signal(channel, payload)

    def message_time_ms(self) -> int:
        """A send timestamp, strictly increasing within this process.

        Messages are received oldest first by `created_at_epoch_ms`; two sends in the same
        millisecond would otherwise tie, and the order of a burst would be lost.
        """
        with self._message_clock_lock:
            self._message_clock = max(self.clock.now_ms(), self._message_clock + 1)
            return self._message_clock

    def running_execution(self, workflow_id: str) -> Execution | None:
        """The local execution of a workflow, if it runs in this process."""
        with self.running_lock:
            return self.running.get(workflow_id)
