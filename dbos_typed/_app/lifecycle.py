"""`new_context`: builds a context, and the steps its launch and shutdown run."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import wait

from dbos_typed._app.admin import AdminServer
from dbos_typed._core.config import Config, default_sqlite_url, parse_database_url
from dbos_typed._core.context import DBOSContext
from dbos_typed._core.runtime import Runtime
from dbos_typed._core.version import __version__
from dbos_typed._queues.heartbeat import Heartbeat
from dbos_typed._queues.queues import apply_deferred_queues
from dbos_typed._queues.runner import QueueRunner
from dbos_typed._schedules.scheduler import Scheduler
from dbos_typed._sysdb._listener import Listener, Notifier
from dbos_typed._sysdb._postgres import PostgresStore
from dbos_typed._sysdb._store import SystemStore
from dbos_typed.errors import InitializationError, InvalidOptionError


def new_context(config: Config) -> DBOSContext:
    """Create a context: connect to the system database and bring its schema up to date.

    With no `database_url`, the system database is a SQLite file named after the
    application in the working directory; no server is needed. On Postgres the database
    is created if it does not exist. Nothing runs until `launch()`.

    Raises:
        InvalidOptionError: the config is invalid.
        InitializationError: the database cannot be reached or its schema is unusable.
    """
    return connect(config, migrate=True)


def connect(config: Config, *, migrate: bool) -> DBOSContext:
    """Open a context; without `migrate`, refuse a database that has no system tables."""
    if not isinstance(config, Config):
        raise InvalidOptionError("config", "expected a dbos_typed.Config")
    store = open_store(config, create_database=migrate)
    try:
        if migrate:
            store.migrate()
        elif store.schema_version() is None:
            raise InitializationError(
                "the database has no DBOS system tables"
                + (f" in schema {config.database_schema!r}" if store.backend == "postgres" else "")
                + "; create them with `dbos-typed migrate` or by launching an application"
            )
    except BaseException:
        store.close()
        raise
    runtime = Runtime(config, store)
    context = DBOSContext(runtime)
    runner = QueueRunner(runtime)
    scheduler = Scheduler(runtime)
    heartbeat = Heartbeat(runtime)
    runtime.on_launch += [
        lambda: _register_version(runtime),
        lambda: apply_deferred_queues(runtime),
        lambda: _start_notifications(runtime),
        lambda: _recover(runtime),
        lambda: runtime.telemetry.watch_queues(runtime),
        runner.start,
        scheduler.start,
        heartbeat.start,
    ]
    if config.admin_server:
        _serve_admin(context)
    runtime.on_deactivate += [scheduler.stop, runner.stop]
    runtime.on_shutdown += [
        heartbeat.stop,
        scheduler.stop,
        runner.stop,
        lambda t: _stop_workflows(runtime, t),
        lambda _: _stop_notifications(runtime),
        lambda _: store.close(),
    ]
    return context


def _serve_admin(ctx: DBOSContext) -> None:
    runtime = ctx._runtime
    config = runtime.config
    servers: list[AdminServer] = []

    def bind() -> None:
        # A launch check, run before anything starts: a taken port or a refused host leaves
        # the context unlaunched, and launch() may be called again.
        if not servers:
            servers.append(
                AdminServer(ctx, config.admin_host, config.admin_port, token=config.admin_token)
            )

    def start() -> None:
        servers[0].start()
        runtime.admin_url = servers[0].url

    def stop(_: float) -> None:
        while servers:
            servers.pop().stop()
        runtime.admin_url = None

    runtime.launch_checks.append(bind)
    runtime.on_launch.append(start)
    runtime.on_shutdown.insert(0, stop)


def open_store(config: Config, *, create_database: bool) -> SystemStore:
    """Open the system database named by the config (without migrating it).

    With `create_database`, a Postgres database that does not exist is created; without
    it, a missing one is an `InitializationError`.
    """
    if config.system_database_pool is not None:
        # The caller's pool wins over a URL, as Go's SystemDBPool does.
        return PostgresStore(
            "",
            schema=config.database_schema,
            application_name=config.app_name,
            connect_timeout=config.connect_timeout.total_seconds(),
            pool=config.system_database_pool,
        )
    target = parse_database_url(config.database_url or default_sqlite_url(config.app_name))
    if target.backend == "postgres":
        return PostgresStore(
            target.location,
            schema=config.database_schema,
            application_name=config.app_name,
            max_connections=config.max_connections,
            connect_timeout=config.connect_timeout.total_seconds(),
            create_database=create_database,
        )
    from dbos_typed._sysdb._sqlite import SqliteStore

    return SqliteStore(target.location)


def _register_version(runtime: Runtime) -> None:
    if not runtime.application_version:
        digest = hashlib.sha256()
        for part in (runtime.registry.code_fingerprint(), __version__, runtime.app_name):
            digest.update(part.encode())
            digest.update(b"\0")
        runtime.application_version = digest.hexdigest()[:32]
    runtime.store.register_version(
        runtime.app_name, runtime.application_version, runtime.clock.now_ms()
    )
    runtime.logger.info(
        "launched %r as executor %r, application version %s",
        runtime.app_name,
        runtime.executor_id,
        runtime.application_version,
    )


def _start_notifications(runtime: Runtime) -> None:
    store = runtime.store
    if isinstance(store, PostgresStore):
        # Workflows wait for messages and events on one LISTEN connection; SQLite polls.
        runtime.notifier = Notifier(store.notify)
        runtime.listener = Listener(
            store.conninfo,
            runtime.waiters,
            on_queued_work=runtime.note_queued_work,
            on_queue_settings=runtime.note_queue_settings,
        )
        runtime.listener.start()


def _stop_notifications(runtime: Runtime) -> None:
    # Waits outside workflows (workflows were cancelled already) end now, not at timeout.
    runtime.waiters.wake_all()
    # The notifier goes first: what the last workflows published still reaches others.
    if runtime.notifier is not None:
        runtime.notifier.stop()
    if runtime.listener is not None:
        runtime.listener.stop()


def _recover(runtime: Runtime) -> None:
    recovered = runtime.store.recover_pending(
        runtime.executor_id,
        runtime.application_version,
        runtime.app_name,
        runtime.clock.now_ms(),
        launched_ms=runtime.created_ms,
    )
    if recovered:
        runtime.logger.info("recovering %d pending workflow(s)", len(recovered))
        runtime.announce_work()
    for version, count, example in runtime.store.stranded_versions(
        executor_id=runtime.executor_id,
        version=runtime.application_version,
        application_name=runtime.app_name,
    ):
        # Never silently stranded: say what waits for whom, and how to take it over.
        runtime.logger.warning(
            "%d PENDING workflow(s) of executor %r run application version %r (for example "
            "%r), but this process runs version %r and will not recover them. Launch that "
            "version, or take them over with dbos_typed.recover_pending_workflows(ctx, "
            "application_versions=[%r])",
            count,
            runtime.executor_id,
            version,
            example,
            runtime.application_version,
            version,
        )


def _stop_workflows(runtime: Runtime, timeout: float) -> None:
    with runtime.running_lock:
        executions = list(runtime.running.values())
    for execution in executions:
        execution.cancel("interrupted by shutdown")
    # Runs still held for their callers go to the workers now, to stop there like the rest.
    runtime.late_hand_off.stop()
    deadline = time.monotonic() + timeout
    _, unfinished = wait(
        [e.future for e in executions], timeout=max(0.0, deadline - time.monotonic())
    )
    if unfinished:
        runtime.logger.warning(
            "%d workflow(s) still running at shutdown; they will be recovered at the next launch",
            len(unfinished),
        )
    runtime.deadlines.stop()
    runtime.workers.stop()
