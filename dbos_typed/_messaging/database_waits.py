"""Waiting for something to appear in the database: a message, an event, a stream value.

A `Wait` registers one `threading.Event` under a notification key and, inside a workflow,
with the execution so cancellation interrupts it (`dbos_typed.aio` registers an event of
its loop the same way). Callers check the database, and only when that finds nothing call
`until`, which returns when the key is signalled (by a local write or the LISTEN thread),
when a periodic probe finds something, or at the deadline. The event is registered before
the first check, so a signal between a check and the wait is never lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Self, TypeVar

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.runtime import Runtime
from dbos_typed._sysdb._listener import Key, Waker
from dbos_typed.errors import DBOSError, WorkflowCancelledError

W = TypeVar("W", bound=Waker)


class Registration(Generic[W]):
    """A waker registered under one key (and with the waiting workflow); a context manager.

    `Wait` sleeps on a `threading.Event`; `dbos_typed.aio` has the same over an event loop.
    """

    __slots__ = ("_event", "_key", "_runtime", "_workflow")

    _workflow: WorkflowContext | None

    def __init__(self, ctx: Connected, key: Key, event: W, *, exclusive: bool = False) -> None:
        self._runtime: Runtime = ctx._runtime
        self._key = key
        self._event = event
        self._workflow = ctx if isinstance(ctx, WorkflowContext) else None
        if not self._runtime.waiters.add(key, event, exclusive=exclusive):
            raise DBOSError(f"another wait on {key[1]!r} is already in progress in this process")
        if self._workflow is not None:
            self._workflow._state.execution.add_waker(event)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unregister."""
        self._runtime.waiters.remove(self._key, self._event)
        if self._workflow is not None:
            self._workflow._state.execution.remove_waker(self._event)

    def next_wait(self, deadline: float | None, max_interval: float) -> float | None:
        """How long to sleep before re-checking the database; None once `deadline` passed.

        Raises:
            WorkflowCancelledError: the waiting workflow was cancelled.
            DBOSError: the context shut down.
        """
        self.check_stop()
        wait = min(self._runtime.recheck_interval(), max_interval)
        if deadline is not None:
            # The deadline is on the context's clock; `wait` bounds a real-time poll.
            if deadline <= self._runtime.clock.time():
                return None
        return wait

    def check_stop(self) -> None:
        """Raise if the wait must end: its workflow was cancelled, or the context shut down.

        Raises:
            WorkflowCancelledError: the waiting workflow was cancelled, or interrupted by shutdown.
            DBOSError: the context shut down (a wait outside a workflow).
        """
        if self._workflow is not None:
            self._workflow._state.check_cancelled()
        if not self._runtime.shutting_down.is_set():
            return
        if self._workflow is not None:
            # Not a failure of the workflow: it stays PENDING and is recovered later.
            raise WorkflowCancelledError(
                self._workflow._state.workflow_id, "interrupted by shutdown"
            )
        raise DBOSError("the context shut down during the wait")


class Wait(Registration[threading.Event]):
    """A registered `threading.Event` on one key; use it as a context manager."""

    __slots__ = ()

    def __init__(self, ctx: Connected, key: Key, *, exclusive: bool = False) -> None:
        super().__init__(ctx, key, threading.Event(), exclusive=exclusive)

    def until(
        self, deadline: float | None, probe: Callable[[], bool], *, max_interval: float = 60.0
    ) -> bool:
        """Wait for a signal; False once `deadline` (epoch seconds on the context's clock) passed.

        Between signals the database is re-checked with `probe` every few seconds (every
        few milliseconds without a LISTEN connection).

        Raises:
            WorkflowCancelledError: the waiting workflow was cancelled.
            DBOSError: the context shut down.
        """
        while True:
            wait = self.next_wait(deadline, max_interval)
            if wait is None:
                return False
            if self._runtime.clock.wait(self._event, deadline, wait):
                self._event.clear()
                # Checked again before the caller reads the database, which a shutdown
                # is about to close.
                self.check_stop()
                return True
            if probe():
                self.check_stop()
                return True
