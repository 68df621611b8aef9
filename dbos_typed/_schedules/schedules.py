"""Cron schedules kept in the database, and the calls that manage them at run time.

A schedule is a row of `workflow_schedules`: a name, the recorded name of the workflow it
starts, a cron expression, a time zone and a queue. Every launched process of the
application runs the schedules (`_scheduler`); each tick becomes one ENQUEUED workflow whose
ID, `sched-<schedule>-<tick time>`, is the same in every process, so a tick runs once no
matter how many processes fire it.

Every call here also accepts a `Client`: a schedule made from a client names its workflow by
its recorded name, and the application that registers that name runs the ticks.
"""

from __future__ import annotations

import enum
import functools
import json
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from dbos_typed._core.context import Connected, WorkflowContext
from dbos_typed._core.durable import checkpointed, in_workflow_body
from dbos_typed._core.handle import WorkflowHandle, handle_to
from dbos_typed._core.registry import describe
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.serialization import (
    Codec,
    JsonValue,
    TypedCall,
    codec_for,
    encode_any,
    encode_inputs,
)
from dbos_typed._core.validate import checked_name, optional_name
from dbos_typed._schedules.cron import (
    CronSchedule,
    format_fired_at,
    parse_fired_at,
    tick_workflow_id,
    trigger_workflow_id,
)
from dbos_typed._schedules.scheduled_input import (
    ScheduledInput,
    is_schedulable,
    is_scheduled_input,
)
from dbos_typed._sysdb._rows import INTERNAL_QUEUE, ScheduledTick, ScheduleRow
from dbos_typed.errors import InvalidOptionError, ScheduleNotFoundError, SerializationError

R = TypeVar("R")

#: At most this many ticks are enqueued by one backfill.
MAX_BACKFILL_TICKS = 100_000

_TICK_CODEC = codec_for(datetime)


class ScheduleStatus(enum.StrEnum):
    """Whether a schedule fires."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


@dataclass(frozen=True, slots=True)
class WorkflowSchedule:
    """A schedule as stored in the `workflow_schedules` table.

    Attributes:
        schedule_id: The schedule's stable identity (kept when it is redefined).
        schedule_name: Its unique name.
        workflow_name: The recorded name of the workflow each tick starts.
        workflow_class_name: The class of that workflow, for schedules made by other SDKs.
        schedule: The cron expression.
        status: ACTIVE or PAUSED.
        context: The schedule's context value as plain JSON data (None when it has none);
            the stored text itself when another SDK wrote something that is not JSON.
        last_fired_at: The newest tick the scheduler enqueued, if any.
        automatic_backfill: Whether ticks missed while no process ran are enqueued at
            the next start.
        cron_timezone: The IANA time zone the expression is read in; None for UTC.
        queue_name: The queue ticks are enqueued on.
        application_name: The application that owns the schedule.
    """

    schedule_id: str
    schedule_name: str
    workflow_name: str
    workflow_class_name: str | None
    schedule: str
    status: ScheduleStatus
    context: JsonValue
    last_fired_at: datetime | None
    automatic_backfill: bool
    cron_timezone: str | None
    queue_name: str
    application_name: str | None


ScheduledWorkflow = (
    Callable[[WorkflowContext, datetime], object]
    | Callable[[WorkflowContext, ScheduledInput[Any]], object]
)


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """One schedule for `apply_schedules`.

    Attributes:
        name: The schedule's unique name.
        workflow: A registered workflow taking a `datetime` or a `ScheduledInput[C]`, or a
            workflow's recorded name.
        schedule: The cron expression (six fields with seconds, five without, or a
            descriptor such as `@daily`).
        timezone: The IANA time zone the expression is read in; None for UTC.
        queue: The queue ticks go on; None for the internal queue.
        automatic_backfill: Enqueue ticks missed while no process ran, at the next start.
        context: A JSON-serializable value each run receives (see `create_schedule`).
    """

    name: str
    workflow: ScheduledWorkflow | str
    schedule: str
    timezone: str | None = None
    queue: str | None = None
    automatic_backfill: bool = False
    context: object = None


def create_schedule(
    ctx: Connected,
    name: str,
    workflow: ScheduledWorkflow | str,
    schedule: str,
    *,
    timezone: str | None = None,
    queue: str | None = None,
    automatic_backfill: bool = False,
    context: object = None,
) -> WorkflowSchedule:
    """Create an ACTIVE schedule that starts `workflow` on every tick of `schedule`.

    The workflow may be given as a registered function or by its recorded name; a name
    need not be registered in this process, only in the processes that run the queue.
    Each tick enqueues the workflow with the tick's time as its input; with a `context`,
    with a `ScheduledInput` holding the time and the context.

    Durability: the schedule is a database row, so it outlives this process and every
    launched process of the application fires it (processes other than this one notice
    it within `Config.scheduler_polling_interval`). Each tick is enqueued exactly once,
    however many processes fire it, under the ID `sched-<name>-<tick time>`. In a workflow
    it is a checkpointed step (`DBOS.createSchedule`): replay returns the recorded
    schedule, and a retry after a crash accepts the identical schedule it created.

    Args:
        ctx: A context (it need not be launched), or a `Client`.
        name: The schedule's unique name.
        workflow: A registered workflow `(ctx, scheduled_time: datetime) -> R` or
            `(ctx, run: ScheduledInput[C]) -> R`, or the recorded name of one.
        schedule: A cron expression: six fields with seconds (`"*/5 * * * * *"`), five
            without (`"0 9 * * 1-5"`), or a descriptor such as `"@hourly"`.
        timezone: The IANA time zone the expression is read in; UTC by default.
        queue: The queue ticks go on; the internal queue by default.
        automatic_backfill: After a time when no process ran, enqueue the ticks missed
            since the last one fired.
        context: A value every run receives as `ScheduledInput.context`, stored as JSON
            (pydantic-serialized, like other values) in the schedule's `context` column.
            A workflow registered here must then take a `ScheduledInput[C]`, and the value
            must validate as `C`.

    Returns:
        The new schedule.

    Raises:
        InvalidOptionError: an invalid expression, time zone, name, workflow or context, or
            a schedule named `name` already exists.
    """
    runtime = _runtime_of(ctx)
    row = _row_for(
        runtime,
        ScheduleSpec(name, workflow, schedule, timezone, queue, automatic_backfill, context),
    )
    durable = in_workflow_body(ctx)

    def create() -> WorkflowSchedule:
        if not runtime.store.create_schedule(row):
            existing = runtime.store.get_schedule(row.schedule_name)
            # A workflow retried after a crash may find the schedule its first run made.
            if not (durable and existing is not None and _same_definition(existing, row)):
                raise InvalidOptionError("name", f"a schedule named {name!r} already exists")
            return _public(existing)
        runtime.schedule_wakeup.set()
        return _public(row)

    return checkpointed(ctx, "DBOS.createSchedule", create, _SCHEDULE_CODEC)


def apply_schedules(ctx: Connected, specs: Sequence[ScheduleSpec]) -> None:
    """Create or redefine several schedules at once, by name.

    Every spec is validated before anything is written; then all are written in one
    transaction. A schedule that already exists keeps its ID, status (a paused one stays
    paused) and `last_fired_at`; only its definition changes, and running schedulers
    restart it with the new one.

    Durability: all or nothing: one transaction writes every schedule, or none.

    Raises:
        InvalidOptionError: a spec is invalid, two specs share a name, or a schedule of
            that name belongs to another application.
    """
    runtime = _outside_workflow(ctx, "apply_schedules")
    if isinstance(specs, ScheduleSpec) or not isinstance(specs, Sequence):
        raise InvalidOptionError("specs", "expected a sequence of ScheduleSpec")
    rows: list[ScheduleRow] = []
    for spec in specs:
        if not isinstance(spec, ScheduleSpec):
            raise InvalidOptionError("specs", f"expected ScheduleSpec items, got {spec!r}")
        rows.append(_row_for(runtime, spec))
    names = [row.schedule_name for row in rows]
    if len(set(names)) != len(names):
        raise InvalidOptionError("specs", "two specs have the same name")
    foreign = runtime.store.upsert_schedules(rows)
    if foreign is not None:
        raise InvalidOptionError(
            "specs", f"schedule {foreign!r} belongs to another application; nothing was applied"
        )
    runtime.schedule_wakeup.set()


def get_schedule(ctx: Connected, name: str) -> WorkflowSchedule:
    """The schedule named `name`.

    In a workflow the read is a checkpointed step (`DBOS.getSchedule`), so replay sees the
    same schedule.

    Raises:
        ScheduleNotFoundError: there is no such schedule.
    """
    runtime = _runtime_of(ctx)
    checked = _checked_name(name)

    def get() -> WorkflowSchedule:
        row = runtime.store.get_schedule(checked)
        if row is None:
            raise ScheduleNotFoundError(checked)
        return _public(row)

    return checkpointed(ctx, "DBOS.getSchedule", get, _SCHEDULE_CODEC)


def list_schedules(
    ctx: Connected,
    *,
    statuses: Collection[ScheduleStatus] | None = None,
    workflow_names: Collection[str] | None = None,
    name_prefix: str | None = None,
) -> list[WorkflowSchedule]:
    """The application's schedules (and unclaimed ones), by name, optionally filtered.

    From a `Client` without an application name: every schedule in the database.

    In a workflow the read is a checkpointed step (`DBOS.listSchedules`).

    Args:
        ctx: A context, or a `Client`.
        statuses: Only schedules with one of these statuses.
        workflow_names: Only schedules starting one of these workflows.
        name_prefix: Only schedules whose name starts with this.
    """
    runtime = _runtime_of(ctx)
    wanted = None if statuses is None else {ScheduleStatus(s) for s in statuses}
    names = None if workflow_names is None else set(workflow_names)

    def list_() -> list[WorkflowSchedule]:
        return [
            schedule
            for schedule in map(_public, runtime.store.list_schedules(runtime.owner_name))
            if (wanted is None or schedule.status in wanted)
            and (names is None or schedule.workflow_name in names)
            and (name_prefix is None or schedule.schedule_name.startswith(name_prefix))
        ]

    return checkpointed(ctx, "DBOS.listSchedules", list_, _SCHEDULES_CODEC)


def pause_schedule(ctx: Connected, name: str) -> None:
    """Stop a schedule from firing until it is resumed.

    Durability: the status is stored, so the schedule stays paused across restarts and
    in every process; no process enqueues a tick of a paused schedule, even before its
    scheduler has re-read the table. `last_fired_at` is cleared, as in the Go SDK. In a
    workflow it is a checkpointed step (`DBOS.pauseSchedule`).

    Raises:
        ScheduleNotFoundError: there is no such schedule.
    """
    _set_status(ctx, name, ScheduleStatus.PAUSED, "DBOS.pauseSchedule")


def resume_schedule(ctx: Connected, name: str) -> None:
    """Let a paused schedule fire again, from its next tick.

    Durability: stored like `pause_schedule`. `last_fired_at` is cleared, so automatic
    backfill does not enqueue the ticks of the paused period (use `backfill_schedule`
    for those). In a workflow it is a checkpointed step (`DBOS.resumeSchedule`).

    Raises:
        ScheduleNotFoundError: there is no such schedule.
    """
    _set_status(ctx, name, ScheduleStatus.ACTIVE, "DBOS.resumeSchedule")


def delete_schedule(ctx: Connected, name: str) -> None:
    """Delete a schedule; deleting one that does not exist does nothing.

    Durability: the row is deleted; no process enqueues another tick of it. Workflows
    it already enqueued still run. In a workflow it is a checkpointed step
    (`DBOS.deleteSchedule`).
    """
    runtime = _runtime_of(ctx)
    checked = _checked_name(name)

    def delete() -> None:
        runtime.store.delete_schedule(checked)
        runtime.schedule_wakeup.set()

    checkpointed(ctx, "DBOS.deleteSchedule", delete, _NONE_CODEC)


def backfill_schedule(ctx: Connected, name: str, start: datetime, end: datetime) -> list[str]:
    """Enqueue every tick of a schedule strictly between `start` and `end`.

    Ticks that already have a workflow (fired, or backfilled before) are left alone, so
    calling it twice enqueues nothing the second time. It works on paused schedules too.

    Durability: the missing ticks are enqueued in one transaction, under the same IDs
    the scheduler gives them, so a backfill and a live tick never both run.

    Args:
        ctx: A context, or a `Client`.
        name: The schedule.
        start: Exclusive start; must carry a time zone.
        end: Exclusive end; must carry a time zone.

    Returns:
        The workflow ID of every tick in the range, enqueued now or before.

    Raises:
        ScheduleNotFoundError: there is no such schedule.
        InvalidOptionError: naive datetimes, or more than 100,000 ticks in the range.
    """
    runtime = _outside_workflow(ctx, "backfill_schedule")
    for argument, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidOptionError(argument, "expected a datetime with a time zone")
    row = runtime.store.get_schedule(_checked_name(name))
    if row is None:
        raise ScheduleNotFoundError(name)
    ticks = ticks_in(row, start, end)
    enqueue_ticks(runtime, row, ticks, only_if_active=False)
    return [tick_workflow_id(row.schedule_name, tick) for tick in ticks]


def trigger(ctx: Connected, name: str, *, codec: Codec[Any] | None = None) -> WorkflowHandle[Any]:
    """`trigger_schedule`, its result decoded with `codec` (None: the registered type)."""
    runtime = _outside_workflow(ctx, "trigger_schedule")
    row = runtime.store.get_schedule(_checked_name(name))
    if row is None:
        raise ScheduleNotFoundError(name)
    now = runtime.clock.now()
    workflow_id = trigger_workflow_id(row.schedule_name, now)
    runtime.store.enqueue_scheduled(
        [_tick(runtime, row, workflow_id, now, _owner_version(runtime, row))],
        only_if_active=False,
    )
    runtime.announce_work()
    if codec is None:
        spec = runtime.registry.by_name(row.workflow_name)
        codec = None if spec is None else spec.output_codec
    return handle_to(ctx, workflow_id, codec)


class TriggerSchedule(Protocol[R]):
    """The signature of `trigger_schedule[R]`."""

    def __call__(self, ctx: Connected, name: str) -> WorkflowHandle[R]:
        """Trigger a schedule; its run's handle is typed (and validated) as `R`."""
        ...


class _Trigger(TypedCall):
    """Enqueue one run of a schedule's workflow now, outside its cron ticks.

    The workflow gets the current time (UTC) as its scheduled time; its ID is
    `sched-<name>-trigger-<time>`; the run receives the schedule's context, as its ticks
    do. `trigger_schedule(ctx, name)` returns a handle whose
    result is decoded with the workflow's return type when the workflow is registered in
    this process (plain JSON otherwise); `trigger_schedule[R](ctx, name)` validates it as
    `R` and is typed `WorkflowHandle[R]`, as a process that does not register the
    workflow (or a helper that only knows the schedule's name) needs.

    Durability: the run is an ENQUEUED workflow, recorded before this returns.

    Args:
        ctx: A context outside a workflow body, or a `Client`.
        name: The schedule's name.

    Returns:
        A handle to the run.

    Raises:
        ScheduleNotFoundError: there is no such schedule.
    """

    @overload
    def __getitem__(self, tp: type[R]) -> TriggerSchedule[R]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[R]) -> TriggerSchedule[R]: ...

    def __getitem__(self, tp: Any) -> TriggerSchedule[Any]:
        return self.typed(tp)

    def __call__(self, ctx: Connected, name: str) -> WorkflowHandle[Any]:
        """Trigger a schedule; see `trigger_schedule`."""
        return trigger(ctx, name)


trigger_schedule = _Trigger(
    lambda codec: functools.partial(trigger, codec=codec), "trigger_schedule"
)


# -- shared with the scheduler -------------------------------------------------------------


def cron_of(row: ScheduleRow) -> CronSchedule:
    """The parsed expression of a stored schedule.

    Raises:
        InvalidOptionError: the stored expression or time zone is not usable here.
    """
    return CronSchedule(row.schedule, row.cron_timezone)


def ticks_in(row: ScheduleRow, start: datetime, end: datetime) -> list[datetime]:
    """A schedule's ticks strictly between `start` and `end`.

    Raises:
        InvalidOptionError: more than `MAX_BACKFILL_TICKS` of them.
    """
    ticks: list[datetime] = []
    for tick in cron_of(row).ticks_between(start, end):
        if len(ticks) == MAX_BACKFILL_TICKS:
            raise InvalidOptionError(
                "end", f"the range holds more than {MAX_BACKFILL_TICKS} ticks; split it"
            )
        ticks.append(tick)
    return ticks


def enqueue_ticks(
    runtime: Runtime, row: ScheduleRow, ticks: Sequence[datetime], *, only_if_active: bool
) -> list[str]:
    """Enqueue the given ticks of a schedule (those not enqueued yet); return the new IDs.

    The scheduler's own ticks pass `only_if_active` and record `last_fired_at`.
    """
    if not ticks:
        return []
    version = _owner_version(runtime, row)
    created = runtime.store.enqueue_scheduled(
        [_tick(runtime, row, tick_workflow_id(row.schedule_name, t), t, version) for t in ticks],
        only_if_active=only_if_active,
        last_fired_at=format_fired_at(ticks[-1]) if only_if_active else None,
    )
    if created:
        runtime.announce_work()
    return created


def declared_rows(runtime: Runtime) -> list[ScheduleRow]:
    """The schedules declared with `register_workflow(..., schedule=...)`."""
    return [
        _new_row(runtime, workflow_name, workflow_name, cron, None, False, _NO_CONTEXT)
        for workflow_name, cron in sorted(runtime.registry.declared_schedules().items())
    ]


# -- helpers -------------------------------------------------------------------------------


def _runtime_of(ctx: Connected) -> Runtime:
    if not isinstance(ctx, Connected):
        raise InvalidOptionError("ctx", "expected a DBOSContext, a WorkflowContext or a Client")
    return ctx._runtime


def _outside_workflow(ctx: Connected, call: str) -> Runtime:
    if in_workflow_body(ctx):
        # As in the Go SDK: these write many rows and are not checkpointed operations.
        raise InvalidOptionError(
            "ctx", f"{call} cannot be called from a workflow; call it from a step"
        )
    return _runtime_of(ctx)


_SCHEDULE_CODEC: Codec[Any] = codec_for(WorkflowSchedule)
_SCHEDULES_CODEC: Codec[Any] = codec_for(list[WorkflowSchedule])
_NONE_CODEC: Codec[Any] = codec_for(None)


def _same_definition(a: ScheduleRow, b: ScheduleRow) -> bool:
    return (
        a.workflow_name,
        a.schedule,
        a.cron_timezone,
        a.queue_name,
        a.automatic_backfill,
        a.application_name,
        a.context,
    ) == (
        b.workflow_name,
        b.schedule,
        b.cron_timezone,
        b.queue_name,
        b.automatic_backfill,
        b.application_name,
        b.context,
    )


def _checked_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidOptionError("name", "expected a non-empty schedule name")
    return checked_name(name, "name")


def _set_status(ctx: Connected, name: str, status: ScheduleStatus, step_name: str) -> None:
    runtime = _runtime_of(ctx)
    checked = _checked_name(name)

    def set_status() -> None:
        if not runtime.store.set_schedule_status(checked, status.value):
            raise ScheduleNotFoundError(checked)
        runtime.schedule_wakeup.set()

    checkpointed(ctx, step_name, set_status, _NONE_CODEC)


def _scheduled_spec(runtime: Runtime, workflow: object) -> tuple[str, Codec[Any] | None]:
    """The recorded name of a scheduled workflow, and its input codec if registered here."""
    if isinstance(workflow, str):
        if not workflow:
            raise InvalidOptionError("workflow", "expected a non-empty workflow name")
        spec = runtime.registry.by_name(workflow)
    elif callable(workflow):
        spec = runtime.registry.by_fn(workflow)
        if spec is None:
            raise InvalidOptionError(
                "workflow",
                f"{describe(workflow)} is not a registered workflow; register it first "
                "or give its recorded name",
            )
    else:
        raise InvalidOptionError("workflow", "expected a registered workflow or its name")
    if spec is None:
        return str(workflow), None
    if spec.config_name is not None:
        raise InvalidOptionError(
            "workflow",
            f"workflow {spec.name!r} is registered for a configured instance "
            f"({spec.config_name!r}); a schedule starts a workflow by name only",
        )
    if spec.input_codec is None or not is_schedulable(spec.input_codec.tp):
        raise InvalidOptionError(
            "workflow",
            f"workflow {spec.name!r} cannot be scheduled: a scheduled workflow takes the "
            "tick's time, as in `def wf(ctx: WorkflowContext, scheduled_time: datetime)`, "
            "or a `ScheduledInput[C]`",
        )
    return spec.name, spec.input_codec


def _context_text(context: object, workflow_name: str, codec: Codec[Any] | None) -> str:
    """The schedule's context as stored JSON, checked against the workflow's input type."""
    try:
        text = encode_any(context, "the schedule context")
    except SerializationError as exc:
        raise InvalidOptionError("context", str(exc)) from exc
    if codec is None or (text == _NO_CONTEXT and not is_scheduled_input(codec.tp)):
        return text
    if not is_scheduled_input(codec.tp):
        raise InvalidOptionError(
            "context",
            f"workflow {workflow_name!r} takes a datetime, so it cannot receive a context; "
            "type its input as ScheduledInput[C]",
        )
    try:
        codec.validate({"scheduled_time": datetime.now(UTC), "context": json.loads(text)})
    except SerializationError as exc:
        raise InvalidOptionError(
            "context", f"does not match the input of workflow {workflow_name!r}: {exc}"
        ) from exc
    return text


def _row_for(runtime: Runtime, spec: ScheduleSpec) -> ScheduleRow:
    name = _checked_name(spec.name)
    workflow_name, codec = _scheduled_spec(runtime, spec.workflow)
    cron = CronSchedule(spec.schedule, spec.timezone)
    optional_name(spec.queue, "queue")
    if not isinstance(spec.automatic_backfill, bool):
        raise InvalidOptionError("automatic_backfill", "expected a bool")
    context = _context_text(spec.context, workflow_name, codec)
    return _new_row(
        runtime, name, workflow_name, cron, spec.queue, spec.automatic_backfill, context
    )


def _new_row(
    runtime: Runtime,
    name: str,
    workflow_name: str,
    cron: CronSchedule,
    queue: str | None,
    automatic_backfill: bool,
    context: str,
) -> ScheduleRow:
    return ScheduleRow(
        schedule_id=str(uuid.uuid4()),
        schedule_name=name,
        workflow_name=workflow_name,
        workflow_class_name=None,
        schedule=cron.expression,
        status=ScheduleStatus.ACTIVE.value,
        context=context,
        last_fired_at=None,
        automatic_backfill=automatic_backfill,
        cron_timezone=cron.timezone,
        queue_name=queue,
        # A client without an application name leaves the schedule unclaimed.
        application_name=runtime.owner_name,
    )


def _owner_version(runtime: Runtime, row: ScheduleRow) -> str | None:
    # Like DBOS: the owner's newest version runs a tick, whichever process fired it.
    owner = row.application_name or runtime.owner_name
    return None if owner is None else runtime.store.latest_version(owner)


def _tick(
    runtime: Runtime, row: ScheduleRow, workflow_id: str, tick: datetime, version: str | None
) -> ScheduledTick:
    return ScheduledTick(
        workflow_id=workflow_id,
        name=row.workflow_name,
        # Kept for schedules made by other SDKs, which dispatch class methods by it.
        class_name=row.workflow_class_name,
        inputs=_tick_inputs(row, tick),
        queue_name=row.queue_name or INTERNAL_QUEUE,
        schedule_name=row.schedule_name,
        application_version=version,
        application_name=row.application_name or runtime.owner_name,
        now_ms=runtime.clock.now_ms(),
    )


_NO_CONTEXT = "null"  # the column is NOT NULL: a schedule without a context stores JSON null


def _tick_inputs(row: ScheduleRow, tick: datetime) -> str:
    """A tick's input envelope: the time alone, or the time and the context.

    The two-argument form is the call DBOS's Python SDK records for a scheduled workflow,
    `(scheduled_at, context)`; `ScheduledInput` reads it as one value.
    """
    try:
        context = json.loads(row.context)
    except ValueError:
        context = None  # another SDK's serializer: nothing a dbos_typed workflow could read
    if context is None:
        return encode_inputs(_TICK_CODEC, tick)
    time_json = _TICK_CODEC.encode(tick, "the tick's time")
    return '{"positionalArgs":[' + time_json + "," + row.context + '],"namedArgs":{}}'


def _public(row: ScheduleRow) -> WorkflowSchedule:
    try:
        context = json.loads(row.context)
    except ValueError:
        context = row.context  # written by an SDK with another serializer
    try:
        status = ScheduleStatus(row.status)
    except ValueError:
        status = ScheduleStatus.PAUSED  # an unknown status never fires
    return WorkflowSchedule(
        schedule_id=row.schedule_id,
        schedule_name=row.schedule_name,
        workflow_name=row.workflow_name,
        workflow_class_name=row.workflow_class_name,
        schedule=row.schedule,
        status=status,
        context=context,
        last_fired_at=parse_fired_at(row.last_fired_at),
        automatic_backfill=row.automatic_backfill,
        cron_timezone=row.cron_timezone,
        queue_name=row.queue_name or INTERNAL_QUEUE,
        application_name=row.application_name,
    )
