"""Awaitable forms of the schedule calls.

Each is the blocking call of `dbos_typed._schedules.schedules` made on a thread (inside a
workflow, made when called, on the workflow's loop, so it takes its step ID in call
order), with the same arguments, answers, errors and durability; `trigger_schedule`
hands back an awaitable handle.
"""

from __future__ import annotations

import functools
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected
from dbos_typed._core.serialization import Codec, TypedCall
from dbos_typed._schedules import schedules as _schedules
from dbos_typed.aio._handle import AsyncWorkflowHandle, wrap
from dbos_typed.aio._loop import awaitable_form, performed, same

R = TypeVar("R")

create_schedule = awaitable_form(_schedules.create_schedule, same)
apply_schedules = awaitable_form(_schedules.apply_schedules, same)
get_schedule = awaitable_form(_schedules.get_schedule, same)
list_schedules = awaitable_form(_schedules.list_schedules, same)
pause_schedule = awaitable_form(_schedules.pause_schedule, same)
resume_schedule = awaitable_form(_schedules.resume_schedule, same)
delete_schedule = awaitable_form(_schedules.delete_schedule, same)
backfill_schedule = awaitable_form(_schedules.backfill_schedule, same)


def _trigger_schedule(
    ctx: Connected, name: str, *, codec: Codec[Any] | None = None
) -> Coroutine[None, None, AsyncWorkflowHandle[Any]]:
    def trigger() -> AsyncWorkflowHandle[Any]:
        return wrap(_schedules.trigger(ctx, name, codec=codec))

    return performed(ctx, trigger)


# <generated: TriggerSchedule>
# Copied from dbos_typed/_schedules/schedules.py by scripts/generate_aio.py.
class TriggerSchedule(Protocol[R]):
    """The signature of `trigger_schedule[R]`."""

    def __call__(self, ctx: Connected, name: str) -> Coroutine[None, None, AsyncWorkflowHandle[R]]:
        """Trigger a schedule; its run's handle is typed (and validated) as `R`."""
        ...


# </generated: TriggerSchedule>


class _Trigger(TypedCall):
    """Enqueue one run of a schedule's workflow now; await its handle.

    The awaitable form of `dbos_typed.trigger_schedule`, with the same arguments and
    errors: `await trigger_schedule(ctx, name)` returns a handle whose result is decoded
    with the workflow's return type when it is registered here (plain JSON otherwise);
    `await trigger_schedule[R](ctx, name)` validates it as `R` and is typed
    `AsyncWorkflowHandle[R]`. The insert is made on a thread.

    Durability: the run is an ENQUEUED workflow, recorded before the handle is returned.
    """

    # <generated: trigger_schedule[R]>
    # Copied from dbos_typed/_schedules/schedules.py by scripts/generate_aio.py.
    @overload
    def __getitem__(self, tp: type[R]) -> TriggerSchedule[R]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[R]) -> TriggerSchedule[R]: ...

    def __getitem__(self, tp: Any) -> TriggerSchedule[Any]:
        return self.typed(tp)

    # </generated: trigger_schedule[R]>

    def __call__(
        self, ctx: Connected, name: str
    ) -> Coroutine[None, None, AsyncWorkflowHandle[Any]]:
        """Trigger a schedule; see `trigger_schedule`."""
        return _trigger_schedule(ctx, name)


trigger_schedule = _Trigger(
    lambda codec: functools.partial(_trigger_schedule, codec=codec), "trigger_schedule"
)
