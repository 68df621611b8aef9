"""What a scheduled workflow receives: the tick's time alone, or the time and a context.

A schedule without a context enqueues each tick with the time as its only argument, as
dbos_typed always has. A schedule created with a context enqueues two arguments, the time
and the context, as DBOS's Python SDK calls `workflow(scheduled_at, context)`; a workflow
typed `ScheduledInput[C]` reads both as one value (Go's `ScheduledWorkflowInput`). Such a
workflow also reads a bare time, with `context` None, so it can be scheduled with or without
a context, and an object `{"scheduled_time", "context"}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

C = TypeVar("C")


class ScheduledInput(BaseModel, Generic[C]):
    """The input of a workflow scheduled with a context: the tick's time and the context.

    Type the workflow's input with it, `def wf(ctx: WorkflowContext, run:
    ScheduledInput[Settings]) -> R`, and create the schedule with `context=Settings(...)`;
    each run gets `run.scheduled_time` (time-zone-aware, as for a plain scheduled workflow)
    and `run.context`, validated as `Settings`. A run of a schedule with no context (or a
    trigger of one) gets `context=None`.

    Attributes:
        scheduled_time: The tick's time (a trigger's: the time it was triggered).
        context: The schedule's context value.
    """

    model_config = ConfigDict(frozen=True)
    # The tick's arguments (time, context) are read as one value: see decode_inputs.
    __dbos_reads_all_arguments__: ClassVar[bool] = True

    scheduled_time: datetime
    context: C

    @model_validator(mode="before")
    @classmethod
    def _bare_time(cls, data: Any) -> Any:
        # A tick of a schedule without a context carries the time alone.
        if isinstance(data, str | datetime):
            return {"scheduled_time": data, "context": None}
        # DBOS's Python SDK records a tick as two arguments: the time and the context.
        if isinstance(data, list | tuple) and len(data) == 2:
            return {"scheduled_time": data[0], "context": data[1]}
        return data


def is_scheduled_input(tp: object) -> bool:
    """Whether `tp` is `ScheduledInput` or one of its parametrizations."""
    return isinstance(tp, type) and issubclass(tp, ScheduledInput)


def is_schedulable(tp: object) -> bool:
    """Whether a workflow whose input type is `tp` can be scheduled."""
    return tp is datetime or is_scheduled_input(tp)
