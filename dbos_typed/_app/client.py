"""`Client`: enqueue and steer workflows from code that is not a dbos_typed application.

A client only talks to the system database: it runs no workflows and no queue runner, and
never creates or migrates the schema. Every call that only reads or steers workflows
through the database accepts a client wherever it accepts a context: `retrieve_workflow`,
`send`, `get_event`, `read_stream`, `list_workflows`, `get_workflow_steps`,
`cancel_workflow`, `resume_workflow`, `fork_workflow`, `register_queue`, the schedule
calls (`create_schedule` by workflow name, `list_schedules`, `trigger_schedule`, ...) and the
rest.
`enqueue[R]` is the client's way to start a workflow, by its registered name, and
`debounce[R]` its way to debounce one.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol, TypedDict, TypeVar, Unpack, overload

from pydantic import TypeAdapter

from dbos_typed._app.lifecycle import open_store
from dbos_typed._core.config import Config
from dbos_typed._core.context import Connected
from dbos_typed._core.handle import WorkflowHandle
from dbos_typed._core.identity import Identity, labels_for
from dbos_typed._core.registry import NO_INPUT
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.serialization import Codec, JsonValue, TypedCall, encode_any
from dbos_typed._core.validate import checked_name, optional_name
from dbos_typed._queues.debouncer import Burst, checked_max_wait, debounce_queue, delay_ms_of
from dbos_typed._queues.enqueue import (
    ClientEnqueueOptions,
    DeduplicationPolicy,
    check_queue_options,
    checked_timeout_ms,
)
from dbos_typed._queues.queues import WorkflowQueue
from dbos_typed._sysdb._listener import Notifier
from dbos_typed._sysdb._postgres import PostgresStore
from dbos_typed._workflows.start import StartRequest, land_start
from dbos_typed.errors import InvalidOptionError, SerializationError

R = TypeVar("R")

_CLIENT_CONFIG_NAME = "dbos-client"


class Client(Connected):
    """A connection to a system database for code outside an application; see `new_client`.

    Use it with `enqueue`, `send`, `get_event`, `read_stream`, `retrieve_workflow` and the
    management calls; `close()` it (or use `with`) when done.
    """

    __slots__ = ("_closed",)

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._closed = threading.Event()

    @property
    def application_name(self) -> str | None:
        """The application whose rows this client writes, or None (unclaimed rows)."""
        return self._runtime.owner_name

    def close(self) -> None:
        """Release the database connections. Calling it again does nothing."""
        if not self._closed.is_set():
            self._closed.set()
            if self._runtime.notifier is not None:
                self._runtime.notifier.stop()
            self._runtime.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_client(config: Config | str, /, *, app_name: str | None = None) -> Client:
    """Connect a client to an existing system database.

    Args:
        config: A database URL (`postgresql://...` or `sqlite:///path`), or a `Config`
            (its `app_name` then owns the rows the client writes).
        app_name: With a URL: the application whose queues and workflows the client
            serves. Without one, enqueued rows belong to no application and any
            application's executors may run them.

    Raises:
        InvalidOptionError: a bad URL or config.
        InitializationError: the database cannot be reached, does not exist, or has no
            DBOS schema (a client never creates them: launch an application on the
            database first, or run `dbos-typed migrate`).
    """
    if isinstance(config, str):
        settings = Config(app_name=app_name or _CLIENT_CONFIG_NAME, database_url=config)
        owner = app_name
    elif isinstance(config, Config):
        if app_name is not None:
            raise InvalidOptionError("app_name", "give it in the Config, not separately")
        settings, owner = config, config.app_name
    else:
        raise InvalidOptionError("config", "expected a database URL or a dbos_typed.Config")
    store = open_store(settings, create_database=False)
    try:
        store.check_schema()
    except BaseException:
        store.close()
        raise
    runtime = Runtime(settings, store)
    runtime.owner_name = owner
    if isinstance(store, PostgresStore):
        # Enqueues tell the applications' runners at once (coalesced), not at their next poll.
        runtime.notifier = Notifier(store.notify)
    return Client(runtime)


class Enqueue(Protocol[R]):
    """The signature of `enqueue[R]`."""

    def __call__(
        self,
        client: Client,
        queue: WorkflowQueue | str,
        workflow_name: str,
        input: object = NO_INPUT,
        /,
        **options: Unpack[ClientEnqueueOptions],
    ) -> WorkflowHandle[R]:
        """Enqueue a workflow by name; its handle's result is typed (and validated) as `R`."""
        ...


class _Enqueuer(TypedCall):
    """Put a workflow on a queue by its registered name, from a `Client`.

    Durability: the ENQUEUED row (and its input) is committed before this returns; an
    executor of the application's latest version (or of the `application_version` given)
    runs it, and it survives crashes. The
    workflow ID is an idempotency key, as with `run_workflow`.

    `enqueue(client, queue, workflow_name, input, **options)` returns a handle whose result is
    plain JSON data; `enqueue[R](client, ...)` validates the result as `R` and is typed
    `WorkflowHandle[R]`. The options are those of `run_workflow` with a queue: `workflow_id`,
    `timeout` (counted from dequeue), `deduplication_id`, `deduplication_policy`, `priority`,
    `partition_key`, `delay`, `identity`, `attributes`, and `application_version`: only a
    queue runner of that version dequeues the workflow (by default, one of the
    application's latest version does). Two more name a configured instance (see
    `register_workflow`): `config_name`, the instance whose object runs the workflow
    (None or "": the workflow registered without one), and `class_name`, recorded with
    the row (for other SDKs that dispatch by class; this one dispatches by config name).
    Neither is checked here: a client may enqueue any name and instance, and the work
    waits for an executor that registers them.

    Raises:
        InvalidOptionError: a bad option, or an unknown queue.
        QueueDeduplicatedError: the deduplication ID is taken (policy "reject").
    """

    @overload
    def __getitem__(self, tp: type[R]) -> Enqueue[R]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[R]) -> Enqueue[R]: ...

    def __getitem__(self, tp: Any) -> Enqueue[Any]:
        return self.typed(tp)

    def __call__(
        self,
        client: Client,
        queue: WorkflowQueue | str,
        workflow_name: str,
        input: object = NO_INPUT,
        /,
        **options: Unpack[ClientEnqueueOptions],
    ) -> WorkflowHandle[JsonValue]:
        """Enqueue a workflow by name; the handle's result is plain JSON data."""
        return enqueue_named(client, queue, workflow_name, input, **options)


def enqueue_named(
    client: Client,
    queue: WorkflowQueue | str,
    workflow_name: str,
    input: object = NO_INPUT,
    *,
    codec: Codec[Any] | None = None,
    workflow_id: str | None = None,
    timeout: timedelta | None = None,
    deduplication_id: str | None = None,
    deduplication_policy: DeduplicationPolicy = "reject",
    priority: int | None = None,
    partition_key: str | None = None,
    delay: timedelta | None = None,
    identity: Identity | None = None,
    attributes: Mapping[str, Any] | None = None,
    application_version: str | None = None,
    config_name: str | None = None,
    class_name: str | None = None,
) -> WorkflowHandle[Any]:
    """Enqueue a workflow by name from a client (`enqueue`); `codec` decodes its result.

    Raises:
        InvalidOptionError: a bad option, or an unknown queue.
        QueueDeduplicatedError: the deduplication ID is taken (policy "reject").
    """
    _check_client(client)
    if queue is None:
        raise InvalidOptionError("queue", "expected a WorkflowQueue or a queue name")
    _check_workflow_name(workflow_name)
    optional_name(workflow_id, "workflow_id")
    version = optional_name(application_version, "application_version")
    timeout_ms = checked_timeout_ms(timeout)
    runtime = client._runtime
    options = check_queue_options(
        runtime,
        queue,
        deduplication_id=deduplication_id,
        deduplication_policy=deduplication_policy,
        priority=priority,
        partition_key=partition_key,
        delay=delay,
    )
    assert options is not None  # a queue is always given
    request = StartRequest(
        name=workflow_name,
        inputs=_inputs_of(input),
        codec=codec,
        timeout_ms=timeout_ms,
        queue=options,
        labels=labels_for(client, identity, attributes),
        # No version: whichever executor runs the application's latest version takes it.
        application_version=version,
        config_name=_instance_name(config_name, "config_name"),
        class_name=_instance_name(class_name, "class_name"),
    )
    return land_start(client, request, workflow_id or str(uuid.uuid4()), step_id=None)


enqueue = _Enqueuer(lambda codec: functools.partial(enqueue_named, codec=codec), "enqueue")


def _check_client(client: object) -> None:
    if not isinstance(client, Client):
        raise InvalidOptionError("client", "expected a Client from new_client()")
    if client._closed.is_set():
        raise InvalidOptionError("client", "this client is closed")


def _check_workflow_name(workflow_name: object) -> None:
    if not isinstance(workflow_name, str) or not workflow_name:
        raise InvalidOptionError("workflow_name", "expected the registered name of a workflow")
    checked_name(workflow_name, "workflow_name")


def _instance_name(value: object, argument: str) -> str | None:
    """A client's `config_name` or `class_name`, checked; "" is as if not given."""
    return None if value == "" else optional_name(value, argument)


def _inputs_of(input: object) -> str:
    """The input envelope of a workflow started by name (no input: an empty one)."""
    try:
        payload = "" if input is NO_INPUT else encode_any(input)
    except SerializationError as exc:
        raise InvalidOptionError("input", str(exc)) from exc
    return '{"positionalArgs":[' + payload + '],"namedArgs":{}}'


class DebounceOptions(TypedDict, total=False):
    """The optional keyword options of a client's `debounce`, as its signatures take them."""

    max_wait: timedelta | None
    queue: WorkflowQueue | str | None
    workflow_id: str | None
    timeout: timedelta | None
    application_version: str | None
    config_name: str | None
    class_name: str | None


class Debounce(Protocol[R]):
    """The signature of a client's `debounce[R]`."""

    def __call__(
        self,
        client: Client,
        workflow_name: str,
        key: str,
        input: object = NO_INPUT,
        /,
        *,
        delay: timedelta,
        **options: Unpack[DebounceOptions],
    ) -> WorkflowHandle[R]:
        """Debounce a workflow by name; its handle's result is typed (and validated) as `R`."""
        ...


class _Debounce(TypedCall):
    """Debounce a workflow by its registered name, from a `Client`.

    The client's counterpart of `Debouncer.debounce`: a call with a key that has no burst
    going on the queue starts one; later calls with the key join it. The workflow starts
    `delay` after the latest call of its burst, with that call's input, and no later than
    `max_wait` after the burst's first call. Calls from clients and from an application's
    `Debouncer` for the same workflow, queue and key join the same burst.

    Durability: the burst is a DELAYED row on the queue (with the input), committed before
    this returns; joining it (new start time and input) is one transaction. An executor of
    the application's latest version (or of the `application_version` given) runs it, and
    it survives crashes.

    `debounce(client, workflow_name, key, input, delay=...)` returns a handle whose result is
    plain JSON data; `debounce[R](client, ...)` validates the result as `R` and is typed
    `WorkflowHandle[R]`. Options: `delay` (required, at least zero), `max_wait` (counted
    from the burst's first call; the call that starts a burst sets it), `queue` (the
    internal queue by default; not a partitioned one), `workflow_id`, `timeout` (the
    workflow's time limit, counted from when it starts running) and `application_version`
    (recorded on the row, as with `enqueue`: only a queue runner of that version runs the
    workflow); these three are used if this call starts a burst, and a call that joins one
    leaves the burst's as they are. `config_name` and `class_name` name a configured
    instance, as with `enqueue`; an instance's bursts are keyed apart from the others'.

    Raises:
        InvalidOptionError: a bad option, key or input, or an unknown or partitioned queue.
        QueueDeduplicatedError: the key's deduplication ID (`<workflow name>-<key>`) is held
            on the queue by a workflow that is not a burst of this workflow.
        ConflictingWorkflowError: `workflow_id` belongs to a different workflow.
    """

    @overload
    def __getitem__(self, tp: type[R]) -> Debounce[R]: ...

    @overload
    def __getitem__(self, tp: TypeAdapter[R]) -> Debounce[R]: ...

    def __getitem__(self, tp: Any) -> Debounce[Any]:
        return self.typed(tp)

    def __call__(
        self,
        client: Client,
        workflow_name: str,
        key: str,
        input: object = NO_INPUT,
        /,
        *,
        delay: timedelta,
        **options: Unpack[DebounceOptions],
    ) -> WorkflowHandle[JsonValue]:
        """Debounce a workflow by name; the handle's result is plain JSON data."""
        return debounce_named(client, workflow_name, key, input, delay=delay, **options)


def debounce_named(
    client: Client,
    workflow_name: str,
    key: str,
    input: object = NO_INPUT,
    *,
    delay: timedelta,
    max_wait: timedelta | None = None,
    queue: WorkflowQueue | str | None = None,
    workflow_id: str | None = None,
    timeout: timedelta | None = None,
    application_version: str | None = None,
    config_name: str | None = None,
    class_name: str | None = None,
    codec: Codec[Any] | None = None,
) -> WorkflowHandle[Any]:
    _check_client(client)
    _check_workflow_name(workflow_name)
    version = optional_name(application_version, "application_version")
    runtime = client._runtime
    request = StartRequest(
        name=workflow_name,
        inputs=_inputs_of(input),
        codec=codec,
        timeout_ms=checked_timeout_ms(timeout),
        queue=None,
        labels=labels_for(client, None, None),
        # No version: whichever executor runs the application's latest version takes it.
        application_version=version,
        burst=Burst(
            key=checked_name(key, "key"),
            queue_name=debounce_queue(runtime, queue),
            delay_ms=delay_ms_of(delay),
            max_wait_ms=checked_max_wait(max_wait),
        ),
        config_name=_instance_name(config_name, "config_name"),
        class_name=_instance_name(class_name, "class_name"),
    )
    workflow_id = optional_name(workflow_id, "workflow_id")
    return land_start(client, request, workflow_id or str(uuid.uuid4()), step_id=None)


debounce = _Debounce(lambda codec: functools.partial(debounce_named, codec=codec), "debounce")
