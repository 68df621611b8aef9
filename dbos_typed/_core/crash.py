"""Simulated crashes at chosen steps, armed by `dbos_typed.testing.crash_at`.

A runtime holds no `Crashes` until a test arms one, so a step in production pays a single
attribute check. The crash itself is a `BaseException`, which stops a run the way the
execution layer stops any run on one: nothing more is recorded, the row stays PENDING.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

#: Where in a step a crash is simulated: before its function runs, or after it ended and
#: before its outcome is recorded.
CrashWhen = Literal["before", "after"]


class SimulatedCrash(BaseException):
    """A crash simulated by `dbos_typed.testing.crash_at`: the run stopped as if killed.

    It is a `BaseException`, so workflow code that catches `Exception` does not swallow
    it. The handle of the crashed run (and of a parent that waited on it) raises it from
    `get_result()`.

    Attributes:
        workflow_id: The workflow whose run crashed.
        step_name: The step it crashed at.
        when: `"before"` the step ran, or `"after"` it ran and before it was recorded.
    """

    def __init__(self, workflow_id: str, step_name: str, when: str) -> None:
        super().__init__(workflow_id, step_name, when)
        self.workflow_id = workflow_id
        self.step_name = step_name
        self.when = when

    def __str__(self) -> str:
        return (
            f"simulated crash of workflow {self.workflow_id!r} {self.when} step {self.step_name!r}"
        )


@dataclass(eq=False)
class CrashPoint:
    """One armed crash: the `occurrence`-th time a step of this name is reached, it fires.

    Attributes:
        step_name: The step name it waits for.
        when: `"before"` or `"after"` the step's function.
        occurrence: Which reach of the step fires it (1: the first).
        reached: How often the step was reached while it was armed.
        crash: The crash it raised, once it fired; None before.
    """

    step_name: str
    when: CrashWhen
    occurrence: int = 1
    reached: int = 0
    crash: SimulatedCrash | None = None

    @property
    def fired(self) -> bool:
        """Whether the crash happened."""
        return self.crash is not None


class Crashes:
    """The crash points armed on one runtime, and the runs they stopped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[CrashPoint] = []
        # By workflow: the crash, and the owner token of the run it stopped.
        self._stopped: dict[str, tuple[SimulatedCrash, str | None]] = {}

    def arm(self, point: CrashPoint) -> None:
        """Make `point` fire at its step from now on."""
        with self._lock:
            self._armed.append(point)

    def disarm(self, point: CrashPoint) -> None:
        """Stop `point` from firing (whether it fired or not)."""
        with self._lock:
            if point in self._armed:
                self._armed.remove(point)

    def reach(
        self, workflow_id: str, owner_xid: str | None, step_name: str, when: CrashWhen
    ) -> None:
        """A run of `workflow_id` reached `when` of a step not replayed: crash if armed.

        `owner_xid` is the token the run's start or claim set on the row.

        Raises:
            SimulatedCrash: an armed point fired here.
        """
        with self._lock:
            for point in self._armed:
                if point.step_name != step_name or point.when != when:
                    continue
                point.reached += 1
                if point.reached == point.occurrence:
                    self._armed.remove(point)
                    crash = SimulatedCrash(workflow_id, step_name, when)
                    point.crash = crash
                    self._stopped[workflow_id] = (crash, owner_xid)
                    raise crash

    def stopped(self, workflow_id: str) -> tuple[SimulatedCrash, str | None] | None:
        """The crash that stopped a run of `workflow_id` here, with that run's owner token."""
        with self._lock:
            return self._stopped.get(workflow_id)

    def forget(self, workflow_id: str) -> None:
        """A new run of `workflow_id` starts here: its earlier crash is history."""
        with self._lock:
            self._stopped.pop(workflow_id, None)
