"""`crash_at`: arm a simulated crash at a step, for the length of a `with` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import get_args

from dbos_typed._core.context import DBOSContext
from dbos_typed._core.crash import Crashes, CrashPoint, CrashWhen
from dbos_typed._core.validate import checked_name
from dbos_typed.errors import InvalidOptionError


@contextmanager
def crash_at(
    ctx: DBOSContext, step: str, *, when: CrashWhen = "before", occurrence: int = 1
) -> Iterator[CrashPoint]:
    """Crash the next run that reaches step `step`, as a kill at that point would.

    While the block runs, the `occurrence`-th time any workflow of this context (a
    child or queued one too: they run in this process) reaches a step named `step`, its
    run stops at once: with `when="before"` before the step's function is called, with
    `when="after"` after it returned (or gave up) and before its outcome is recorded,
    the case of a side effect that a recovery performs again. A transaction
    (`run_as_transaction`) is reached by its name as well: `"after"` is once it has
    committed, with its completion row, and before the system database records it (on
    the system database itself, whose commit is the record, before that commit, which
    then rolls back). A replayed step is not
    reached: it does not run. The crash is armed once; it disarms itself when it fires,
    and the block's end disarms it if it did not.

    The database is left as a SIGKILL at that point leaves it: nothing is recorded for
    the step and the workflow stays PENDING. The handle's `get_result()` raises
    `SimulatedCrash` at once (so does a parent's, when the crashed run was a child it
    waited on). `restart(ctx)` then recovers the workflow, as a new process would.
    Other workflows of the context keep running, unlike after a real crash.

    ```python
    with testing.crash_at(ctx, "charge", when="after") as point:
        handle = dbos.run_workflow(ctx, checkout, order)
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result()
    assert point.fired
    ```

    Args:
        ctx: The context whose workflows may crash.
        step: The step name, as recorded (`name=` of `run_as_step`).
        when: `"before"` or `"after"` the step's function.
        occurrence: Which reach of the step crashes (1: the first).

    Yields:
        The armed `CrashPoint`; `fired` and `crash` say whether and how it fired.

    Raises:
        InvalidOptionError: a bad argument (named).
    """
    if not isinstance(ctx, DBOSContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext from new_context()")
    checked_name(step, "step")
    if when not in get_args(CrashWhen):
        raise InvalidOptionError("when", "expected 'before' or 'after'")
    if not isinstance(occurrence, int) or isinstance(occurrence, bool) or occurrence < 1:
        raise InvalidOptionError("occurrence", "expected an int >= 1")
    runtime = ctx._runtime
    with runtime.lifecycle_lock:
        if runtime.crashes is None:
            runtime.crashes = Crashes()
        crashes = runtime.crashes
    point = CrashPoint(step, when, occurrence)
    crashes.arm(point)
    try:
        yield point
    finally:
        crashes.disarm(point)
