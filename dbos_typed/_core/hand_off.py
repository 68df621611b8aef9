"""Handing a synchronous workflow's run to a worker thread only if its caller does not take it.

A caller that starts a workflow and then waits on it with no timeout runs the body on its
own thread (`PendingRun`). Waking a worker at the start as well costs a thread switch and a
trip through the interpreter lock for a worker that then finds nothing to do: at many
concurrent one-step workflows, about a third of the client's CPU per workflow. So a start
from a thread that could wait this way gives the caller a short grace to take its run, and
only the runs still untaken after it go to the pool, in one pass of one thread for all the
runs that came due together.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# Long enough for a caller to reach its wait after the start returns (microseconds unless
# it lost the interpreter lock), short beside the start's own database write.
GRACE_SECONDS = 0.002

# Set where a start's handle is awaited on an event loop, which never runs the body itself.
_AWAITED: ContextVar[bool] = ContextVar("dbos_typed_awaited_start", default=False)


@contextmanager
def awaited_starts() -> Iterator[None]:
    """Within this block, starts go to the workers at once: their waits are awaitables."""
    token = _AWAITED.set(True)
    try:
        yield
    finally:
        _AWAITED.reset(token)


def off_the_main_thread() -> bool:
    """Whether a waiter on this thread may run a workflow itself.

    Never on the main thread, so that an interrupt (Ctrl-C) there reaches the caller
    rather than stopping the workflow's body.
    """
    return threading.current_thread() is not threading.main_thread()


def caller_may_run() -> bool:
    """Whether a start made here may later be run by its caller's own wait.

    Off the main thread (`off_the_main_thread`), and not for a start that will be awaited.
    """
    return off_the_main_thread() and not _AWAITED.get()


class PendingRun:
    """A workflow's run handed to the worker pool, executed once by whoever takes it first.

    A thread that blocks on the workflow's outcome before any worker has taken the run
    (`run_if_pending`) runs it itself: its wait would hold that thread anyway, the
    hand-off to a worker and back is a good part of a short workflow's CPU, and a wait
    cannot starve behind a pool whose threads are all busy.
    """

    __slots__ = ("_body",)

    def __init__(self, body: Callable[[], None]) -> None:
        self._body = [body]

    def take(self) -> Callable[[], None] | None:
        """The run, to the first caller only (`list.pop` is atomic); None afterwards."""
        try:
            return self._body.pop()
        except IndexError:
            return None

    def taken(self) -> bool:
        """Whether someone has taken the run (a hint: it may be taken right after)."""
        return not self._body

    def __call__(self) -> None:
        """A worker's turn: run it unless a waiting caller has taken it."""
        body = self.take()
        if body is not None:
            body()


class LateHandOff:
    """Runs submitted to a pool after a grace, unless their callers took them meanwhile.

    One daemon thread, started on first use, wakes half a grace after the oldest run
    comes due and submits every run due by then. After `stop` (shutdown), runs go to the
    pool at once, and those still waiting are submitted by `stop` itself.
    """

    def __init__(
        self,
        submit: Callable[[Callable[[], None]], None],
        name: str,
        grace: float = GRACE_SECONDS,
    ) -> None:
        self._submit = submit
        self._name = name
        self.grace = grace
        self._due: deque[tuple[float, PendingRun]] = deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def add(self, run: PendingRun) -> None:
        """Submit `run` once the grace has passed, if nobody has taken it by then."""
        with self._lock:
            if not self._stopped:
                first = not self._due
                self._due.append((time.monotonic() + self.grace, run))
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._serve, name=f"{self._name}-hand-off", daemon=True
                    )
                    self._thread.start()
                if first:  # a later run is due after the one the thread waits for
                    self._wakeup.set()
                return
        self._submit(run)

    def _serve(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                now = time.monotonic()
                ready = []
                while self._due and self._due[0][0] <= now:
                    ready.append(self._due.popleft()[1])
                # Past the oldest's due time by half a grace, so that the runs coming due
                # meanwhile go in the same pass rather than one wake-up each.
                wait = self._due[0][0] - now + self.grace / 2 if self._due else None
                if not ready:
                    # Cleared under the lock: an `add` to an empty queue from now on sets it.
                    self._wakeup.clear()
            if ready:
                self._hand(ready)
            else:
                self._wakeup.wait(wait)

    def _hand(self, runs: list[PendingRun]) -> None:
        for run in runs:
            if not run.taken():
                self._submit(run)

    def stop(self) -> None:
        """Submit every run still waiting, and from now on submit at once."""
        with self._lock:
            self._stopped = True
            left = [run for _, run in self._due]
            self._due.clear()
        self._wakeup.set()
        self._hand(left)
