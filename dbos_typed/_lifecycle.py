"""`new_context`: builds a context, and the steps its launch and shutdown run."""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import wait

from dbos_typed._config import Config, default_sqlite_url, parse_database_url
from dbos_typed._context import DBOSContext
from dbos_typed._queue_runner import QueueRunner
from dbos_typed._runtime import Runtime, now_ms
from dbos_typed._sysdb._listener import Listener, Notifier
from dbos_typed._sysdb._postgres import PostgresStore
from dbos_typed._sysdb._store import SystemStore
from dbos_typed._version import __version__
from dbos_typed.errors import InvalidOptionError

logger = logging.getLogger("dbos_typed")


def new_context(config: Config) -> DBOSContext:
    """Create a context: connect to the system database and bring its schema up to date.

    With no `database_url`, the system database is a SQLite file named after the
    application in the working directory; no server is needed. On Postgres the database
    is created if it does not exist. Nothing runs until `launch()`.

    Raises:
        InvalidOptionError: the config is invalid.
        InitializationError: the database cannot be reached or its schema is unusable.
    """
    if not isinstance(config, Config):
        raise InvalidOptionError("config", "expected a dbos_typed.Config")
    store = open_store(config)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    runtime = Runtime(config, store)
    runner = QueueRunner(runtime)
    runtime.on_launch += [
        lambda: _register_version(runtime),
        lambda: _start_notifications(runtime),
        lambda: _recover(runtime),
        runner.start,
    ]
    runtime.on_shutdown += [
        runner.stop,
        lambda t: _stop_workflows(runtime, t),
        lambda _: _stop_notifications(runtime),
        lambda _: store.close(),
    ]
    return DBOSContext(runtime)


def open_store(config: Config) -> SystemStore:
    """Open the system database named by the config (without migrating it)."""
    target = parse_database_url(config.database_url or default_sqlite_url(config.app_name))
    if target.backend == "postgres":
        return PostgresStore(
            target.location,
            schema=config.database_schema,
            application_name=config.app_name,
            max_connections=config.max_connections,
            connect_timeout=config.connect_timeout.total_seconds(),
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
    runtime.store.register_version(runtime.app_name, runtime.application_version, now_ms())
    logger.info(
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
        runtime.listener = Listener(store.conninfo, runtime.waiters)
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
        runtime.executor_id, runtime.application_version, runtime.app_name, now_ms()
    )
    if recovered:
        logger.info("recovering %d pending workflow(s)", len(recovered))
        runtime.queue_wakeup.set()


def _stop_workflows(runtime: Runtime, timeout: float) -> None:
    with runtime.running_lock:
        executions = list(runtime.running.values())
    for execution in executions:
        execution.cancel("interrupted by shutdown")
    deadline = time.monotonic() + timeout
    _, unfinished = wait(
        [e.future for e in executions], timeout=max(0.0, deadline - time.monotonic())
    )
    if unfinished:
        logger.warning(
            "%d workflow(s) still running at shutdown; they will be recovered at the next launch",
            len(unfinished),
        )
    runtime.deadlines.stop()
    runtime.workers.stop()
