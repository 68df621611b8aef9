"""Durable queues: declaring them, and choosing which ones this process serves.

A queue is a row in the `queues` table, so every process and client sharing the database
sees the same settings. The queue runner (`_queue_runner`) does the dequeuing.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, ParamSpec, TypeVar, get_args

from dbos_typed._core.context import Connected, DBOSContext, WorkflowContext
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.validate import checked_name
from dbos_typed._sysdb._rows import INTERNAL_QUEUE, QueueRow
from dbos_typed.errors import InvalidOptionError, RegistrationError

_MAX_INT4 = 2**31 - 1

#: What declaring a queue does to a row of that name already in the database.
QueueConflictPolicy = Literal["update_if_latest_version", "always_update", "never_update"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` workflows of a queue start in any sliding window of `period`.

    Attributes:
        limit: How many starts the window allows; a positive int.
        period: The window's length; a positive timedelta.
    """

    limit: int
    period: timedelta

    def __post_init__(self) -> None:
        if not _is_int(self.limit) or not 0 < self.limit <= _MAX_INT4:
            raise InvalidOptionError("limiter.limit", "expected a positive int")
        if not isinstance(self.period, timedelta) or self.period <= timedelta(0):
            raise InvalidOptionError("limiter.period", "expected a positive timedelta")


@dataclass(frozen=True, slots=True)
class WorkflowQueue:
    """A declared queue and its flow control; made by `register_queue`.

    `retrieve_queue`, `list_queues` and `update_queue` return the stored settings in the
    same form. Pass it (or its name) as `run_workflow(..., queue=...)`. On a partitioned queue every
    limit applies to each partition key separately.

    Attributes:
        name: The queue's name, unique in the system database.
        worker_concurrency: At most this many of its workflows run at once in each process.
        concurrency: At most this many run at once across all processes.
        limiter: At most `limit` start per `period`, across all processes.
        priority_enabled: Whether enqueues may set a priority.
        partitioned: Whether every enqueue names a partition key.
        polling_interval: How often idle processes look for work enqueued elsewhere.
        application_name: The application that owns it (None: unclaimed, served by any).
    """

    name: str
    worker_concurrency: int | None = None
    concurrency: int | None = None
    limiter: RateLimit | None = None
    priority_enabled: bool = False
    partitioned: bool = False
    polling_interval: timedelta = timedelta(seconds=1)
    application_name: str | None = None


def register_queue(
    ctx: Connected,
    name: str,
    *,
    worker_concurrency: int | None = None,
    concurrency: int | None = None,
    limiter: RateLimit | None = None,
    priority_enabled: bool = False,
    partitioned: bool = False,
    polling_interval: timedelta = timedelta(seconds=1),
    on_conflict: QueueConflictPolicy = "update_if_latest_version",
) -> WorkflowQueue:
    """Declare a queue, or update its settings; before or after `launch()`.

    A queue that does not exist yet is created with these settings. One that exists is
    handled by `on_conflict`, so that during a rolling deploy the executors still running
    the previous version do not overwrite the settings the new version declares:

    - `"update_if_latest_version"` (the default): overwrite the stored settings if this
      process runs the latest application version, or if no version is recorded yet. A
      context declaring queues before `launch()` learns its version at launch: the
      overwrite then happens at launch, once its version is recorded, if it is the latest.
      A client runs no version (unless its config sets one), so it overwrites only while
      no version is recorded.
    - `"always_update"`: overwrite the stored settings.
    - `"never_update"`: keep the stored settings.

    Durability: the row is written to the `queues` table at once (or, under the default
    policy before launch, at launch), so every process and client sharing the database
    applies the stored settings (running processes at their next pass; on SQLite,
    processes other than this one within about a second). `update_queue` changes only
    some settings of an existing queue.

    Args:
        ctx: A context or a `Client`.
        name: The queue's name; `_dbos_internal_queue` is reserved.
        worker_concurrency: Per-process limit on running workflows, or None.
        concurrency: Limit on running workflows across all processes, or None; at least
            `worker_concurrency` when both are set.
        limiter: A rate limit on starts, or None.
        priority_enabled: Allow `priority=` on enqueues (lower runs first).
        partitioned: Require a `partition_key=` on every enqueue; limits apply per key.
        polling_interval: How often idle processes poll the database for this queue.
        on_conflict: What to do with a queue of this name that already exists.

    Returns:
        The queue as declared here, to pass to `run_workflow(..., queue=...)`. When an
        existing row is kept, its stored settings are the ones the runners apply.

    Raises:
        InvalidOptionError: a setting is out of range; the argument is named.
        RegistrationError: another application owns a queue of that name (whatever the
            policy).
    """
    if not isinstance(ctx, Connected) or isinstance(ctx, WorkflowContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext or Client (not a workflow's)")
    checked_name(name, "name")
    if name == INTERNAL_QUEUE:
        raise InvalidOptionError("name", f"{INTERNAL_QUEUE!r} is reserved for dbos_typed")
    if on_conflict not in get_args(QueueConflictPolicy):
        raise InvalidOptionError(
            "on_conflict", "expected 'update_if_latest_version', 'always_update' or 'never_update'"
        )
    runtime = ctx._runtime
    queue = WorkflowQueue(
        name=name,
        worker_concurrency=worker_concurrency,
        concurrency=concurrency,
        limiter=limiter,
        priority_enabled=priority_enabled,
        partitioned=partitioned,
        polling_interval=polling_interval,
        application_name=runtime.owner_name,
    )
    check_settings(queue)
    row = row_of(queue)
    overwrite = _overwrites(runtime, on_conflict, can_wait=isinstance(ctx, DBOSContext))
    stored = runtime.store.upsert_queue(
        row, runtime.clock.now_ms(), update_existing=overwrite is True
    )
    if stored is None:
        raise RegistrationError(f"queue {name!r} belongs to another application")
    # The last declaration made before launch is the one launch may write.
    runtime.deferred_queues.pop(name, None)
    if overwrite is None and stored != row:
        runtime.deferred_queues[name] = row
    runtime.queues[name] = stored
    runtime.announce_queue_settings(name)
    return queue


P = ParamSpec("P")
T = TypeVar("T")


def _renamed(fn: Callable[P, T], old_name: str) -> Callable[P, T]:
    """`fn` under its old name: the same call, after a `DeprecationWarning` naming `fn`."""

    @functools.wraps(fn)
    def alias(*args: P.args, **kwargs: P.kwargs) -> T:
        warnings.warn(
            f"dbos_typed.{old_name} is deprecated; use dbos_typed.{fn.__name__}",
            DeprecationWarning,
            stacklevel=2,
        )
        return fn(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name
    alias.__doc__ = (
        f"Deprecated: the old name of `{fn.__name__}`, which it calls after a "
        f"DeprecationWarning.\n\n{fn.__doc__ or ''}"
    )
    return alias


#: The name this call had before it took Go's (`RegisterQueue`); it still works, and warns.
new_workflow_queue = _renamed(register_queue, "new_workflow_queue")


def _overwrites(runtime: Runtime, policy: QueueConflictPolicy, *, can_wait: bool) -> bool | None:
    """Whether declaring a queue overwrites a stored row now; None: decide at launch."""
    if policy != "update_if_latest_version":
        return policy == "always_update"
    latest = runtime.store.latest_version(runtime.app_name)
    if latest is None or latest == runtime.application_version:
        return True
    # Before launch a context's version may not be known or recorded yet; launch records
    # it (as the latest, for a new deploy) and then settles the question.
    return None if can_wait and not runtime.launched else False


def apply_deferred_queues(runtime: Runtime) -> None:
    """At launch: write the settings of queues declared before it, if this version is latest.

    Runs once this process's version is recorded. Under the default conflict policy a
    queue declared before launch was only created if missing; an existing row gets the
    declared settings now, unless another application version is the latest.
    """
    deferred, runtime.deferred_queues = runtime.deferred_queues, {}
    if not deferred:
        return
    latest = runtime.store.latest_version(runtime.app_name)
    if latest is not None and latest != runtime.application_version:
        runtime.logger.info(
            "kept the stored settings of queue(s) %s: application version %r is the latest, not %r",
            ", ".join(sorted(deferred)),
            latest,
            runtime.application_version,
        )
        return
    for name, row in deferred.items():
        stored = runtime.store.upsert_queue(row, runtime.clock.now_ms())
        if stored is None:
            runtime.logger.warning("queue %r now belongs to another application; not updated", name)
            continue
        runtime.queues[name] = stored


def listen_queues(ctx: DBOSContext, queues: Iterable[WorkflowQueue | str], /) -> None:
    """Serve only these queues in this process (and always the internal queue).

    By default a process serves every queue of its application. Call this before
    `launch()`; each call replaces the previous choice. Workflows enqueued on queues this
    process does not serve wait for a process that does.

    Raises:
        InvalidOptionError: not a context, a bad name, or the context is launched.
    """
    if not isinstance(ctx, DBOSContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext from new_context()")
    if isinstance(queues, str | WorkflowQueue):
        raise InvalidOptionError("queues", "expected a list of queues or queue names")
    names = set()
    for queue in queues:
        name = queue.name if isinstance(queue, WorkflowQueue) else queue
        if not isinstance(name, str) or not name:
            raise InvalidOptionError("queues", "expected WorkflowQueue objects or non-empty names")
        names.add(checked_name(name, "queues"))
    runtime = ctx._runtime
    if runtime.launched:
        raise InvalidOptionError("ctx", "call listen_queues before launch()")
    runtime.listened = frozenset(names | {INTERNAL_QUEUE})


def check_settings(queue: WorkflowQueue) -> None:
    """Check a queue's flow-control settings, as declared or as changed.

    Raises:
        InvalidOptionError: a setting is out of range; the argument is named.
    """
    for argument, value in (
        ("worker_concurrency", queue.worker_concurrency),
        ("concurrency", queue.concurrency),
    ):
        if value is not None and (not _is_int(value) or not 0 < value <= _MAX_INT4):
            raise InvalidOptionError(argument, "expected a positive int or None")
    if queue.worker_concurrency is not None and queue.concurrency is not None:
        if queue.worker_concurrency > queue.concurrency:
            raise InvalidOptionError(
                "worker_concurrency", f"expected at most concurrency ({queue.concurrency})"
            )
    if queue.limiter is not None and not isinstance(queue.limiter, RateLimit):
        raise InvalidOptionError("limiter", "expected a RateLimit or None")
    for argument, flag in (
        ("priority_enabled", queue.priority_enabled),
        ("partitioned", queue.partitioned),
    ):
        if not isinstance(flag, bool):
            raise InvalidOptionError(argument, "expected a bool")
    polling_interval = queue.polling_interval
    if not isinstance(polling_interval, timedelta) or polling_interval <= timedelta(0):
        raise InvalidOptionError("polling_interval", "expected a positive timedelta")


def row_of(queue: WorkflowQueue) -> QueueRow:
    """The `queues` row that stores a queue's settings."""
    limiter = queue.limiter
    return QueueRow(
        name=queue.name,
        concurrency=queue.concurrency,
        worker_concurrency=queue.worker_concurrency,
        rate_limit_max=None if limiter is None else limiter.limit,
        rate_limit_period_sec=None if limiter is None else limiter.period.total_seconds(),
        priority_enabled=queue.priority_enabled,
        partition_queue=queue.partitioned,
        polling_interval_sec=queue.polling_interval.total_seconds(),
        application_name=queue.application_name,
    )


def queue_of(row: QueueRow) -> WorkflowQueue:
    """The queue whose settings a `queues` row stores."""
    limiter = None
    if row.rate_limit_max is not None and row.rate_limit_period_sec is not None:
        limiter = RateLimit(row.rate_limit_max, timedelta(seconds=row.rate_limit_period_sec))
    return WorkflowQueue(
        name=row.name,
        worker_concurrency=row.worker_concurrency,
        concurrency=row.concurrency,
        limiter=limiter,
        priority_enabled=row.priority_enabled,
        partitioned=row.partition_queue,
        polling_interval=timedelta(seconds=row.polling_interval_sec),
        application_name=row.application_name,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
