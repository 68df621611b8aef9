"""Configuration: what a context needs to know, validated before anything connects."""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from dbos_typed._core.clock import Clock
from dbos_typed._core.validate import LONGEST_WAIT, optional_name, storable_text
from dbos_typed.errors import InvalidOptionError

_IDENTIFIER_LIMIT = 63  # Postgres truncates longer identifiers silently.
# Whitespace, NUL and other control characters: none may appear in an admin host.
_UNPRINTABLE = re.compile(r"[\s\x00-\x1f\x7f]")
# The admin token travels in an HTTP header, where only visible ASCII passes every client
# unchanged: whitespace would end it and control characters split the header.
_TOKEN = re.compile(r"[\x21-\x7e]+")

#: The application version of a context with patching enabled and no version set. It does
#: not change with the code, so workflows started before a deploy are recovered by the new
#: code, which tells old histories from new ones with `patch`. DBOS's other SDKs use the
#: same name.
PATCHING_VERSION = "PATCHING_ENABLED"


@dataclass(frozen=True, slots=True)
class Config:
    """Settings for `new_context`.

    Attributes:
        app_name: Names the application; required. Rows the application writes carry it,
            so several applications can share one system database.
        database_url: `postgresql://...` for Postgres, `sqlite:///path.sqlite` for a local
            file, or None for a SQLite file named after the application in the working
            directory. A Postgres URL's query parameters must be ones libpq knows
            (`sslmode`, `connect_timeout`, `options`, ...); any other is refused here,
            as libpq would refuse it at connect.
        database_schema: The Postgres schema holding the system tables (ignored by SQLite).
        executor_id: Identifies this process among those sharing the database; the
            `DBOS__VMID` environment variable overrides it. Default `"local"`.
        application_version: The code version; workflows are recovered only by executors of
            the same version. The `DBOS__APPVERSION` environment variable overrides it; by
            default it is a hash of the registered workflows' source code, or
            `"PATCHING_ENABLED"` with `enable_patching`.
        enable_patching: Allow `patch` and `deprecate_patch` in workflows. The default
            application version then stays the same across code changes, so that a new
            deploy recovers the workflows the previous one left unfinished.
        max_connections: Size of the Postgres connection pool (an int from 1 to 1000).
        connect_timeout: How long to wait for the database at start: a server that cannot
            be reached is retried, with backoff, for this long before `new_context` raises
            `InitializationError`. Each attempt's libpq `connect_timeout` is this rounded up
            to whole seconds (libpq counts whole seconds, and 0 would wait forever). Must
            be positive; longer than a century is shortened to a century.
        admin_server: Serve the admin HTTP endpoints while launched.
        admin_host: The address the admin server binds to (`127.0.0.1` by default). A
            host that is not a loopback address needs `admin_token`.
        admin_port: Its port (0 picks a free one; see `DBOSContext.admin_url`).
        admin_token: A secret the admin server then requires on every request, as
            `Authorization: Bearer <token>`; None (the default) requires none, which is
            safe only on loopback. It is left out of the config's repr.
        scheduler_polling_interval: How often the scheduler re-reads the schedules table,
            so schedules created, changed, paused or deleted by other processes take
            effect here. Changes made through this context take effect at once. Must be
            positive; longer than a century is shortened to a century.
        max_workflow_threads: At most this many workflows run at once in this process
            (each holds a thread while it runs or waits); more wait for a thread to come
            free, and the queue runner claims no more than there are threads for. A bound
            on a runaway, such as a workflow that keeps starting itself.
        executor_heartbeat_timeout: With a timeout, this process touches the workflows it
            runs a third of the timeout apart, and re-enqueues workflows of its application
            version that nobody touched for longer: those of a process that died and will
            not restart to recover them, whose queue slots are then free again. None (the
            default, as in DBOS) leaves them until their executor restarts. Set the same
            value on every executor of the application.
        system_database_pool: A `psycopg_pool.ConnectionPool` of your own for the Postgres
            system database (Go's `SystemDBPool`), used instead of one built from
            `database_url` (it wins over the URL, which may then be None). Its connections
            must be autocommit with the default tuple rows; it must be open. The library
            never closes it: shutting down leaves it to you. Not for SQLite.
        logger: The `logging.Logger` everything the context logs goes to, instead of the
            `dbos_typed` logger.
        clock: Where the context reads the time and waits for instants of it. None (the
            default) is real time; a test passes `dbos_typed.testing.VirtualClock`, and
            then every sleep, timeout, deadline, queue delay, debounce window, rate limit,
            schedule tick and retry backoff follows that clock alone.
    """

    app_name: str
    database_url: str | None = None
    database_schema: str = "dbos"
    executor_id: str | None = None
    application_version: str | None = None
    max_connections: int = 20
    connect_timeout: timedelta = field(default_factory=lambda: timedelta(seconds=10))
    admin_server: bool = False
    admin_host: str = "127.0.0.1"
    admin_port: int = 3001
    scheduler_polling_interval: timedelta = field(default_factory=lambda: timedelta(seconds=30))
    enable_patching: bool = False
    max_workflow_threads: int = 2000
    executor_heartbeat_timeout: timedelta | None = None
    tracer_provider: object | None = None
    meter_provider: object | None = None
    instrumentation: bool = True
    # Kept out of the repr, so a logged config does not carry the secret.
    admin_token: str | None = field(default=None, repr=False)
    system_database_pool: ConnectionPool[Any] | None = field(default=None, repr=False)
    logger: logging.Logger | None = None
    clock: Clock | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.app_name, str) or not self.app_name.strip():
            raise InvalidOptionError("app_name", "expected a non-empty string")
        storable_text(self.app_name, "app_name")
        if self.database_url is not None:
            parse_database_url(self.database_url)
        self._check_pool_and_logger()
        if self.clock is not None and not isinstance(self.clock, Clock):
            raise InvalidOptionError("clock", "expected a Clock, such as testing.VirtualClock")
        if not isinstance(self.database_schema, str) or not self.database_schema:
            raise InvalidOptionError("database_schema", "expected a non-empty string")
        storable_text(self.database_schema, "database_schema")
        if len(self.database_schema.encode()) > _IDENTIFIER_LIMIT:
            raise InvalidOptionError(
                "database_schema", f"expected at most {_IDENTIFIER_LIMIT} bytes"
            )
        for name in ("executor_id", "application_version"):
            value = getattr(self, name)
            optional_name(value, name)
        _check_int("max_connections", self.max_connections, 1, 1000)
        for name in ("connect_timeout", "scheduler_polling_interval"):
            # frozen: the shortened value is set the way dataclasses set fields.
            object.__setattr__(self, name, _positive_duration(name, getattr(self, name)))
        for name in ("admin_server", "enable_patching", "instrumentation"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOptionError(name, "expected a bool")
        self._check_admin_settings()
        _check_int("max_workflow_threads", self.max_workflow_threads, 1, 1_000_000)
        heartbeat = self.executor_heartbeat_timeout
        if heartbeat is not None and (
            not isinstance(heartbeat, timedelta) or heartbeat < timedelta(milliseconds=300)
        ):
            raise InvalidOptionError(
                "executor_heartbeat_timeout", "expected None or a timedelta of at least 300 ms"
            )

        for name, method in (("tracer_provider", "get_tracer"), ("meter_provider", "get_meter")):
            provider = getattr(self, name)
            if provider is not None and not callable(getattr(provider, method, None)):
                raise InvalidOptionError(
                    name, f"expected None or an OpenTelemetry provider (with {method}())"
                )

    def _check_pool_and_logger(self) -> None:
        pool = self.system_database_pool
        if pool is not None:
            if not isinstance(pool, ConnectionPool):
                raise InvalidOptionError(
                    "system_database_pool", "expected a psycopg_pool.ConnectionPool"
                )
            if (
                self.database_url is not None
                and parse_database_url(self.database_url).backend != "postgres"
            ):
                raise InvalidOptionError(
                    "system_database_pool",
                    "a pool is for a Postgres system database, but database_url is SQLite",
                )
        if self.logger is not None and not isinstance(self.logger, logging.Logger):
            raise InvalidOptionError("logger", "expected a logging.Logger")

    def _check_admin_settings(self) -> None:
        # Whether the host is a loopback one is known only once it resolves, at launch.
        _check_int("admin_port", self.admin_port, 0, 65535)
        host = self.admin_host
        if not isinstance(host, str) or not host or _UNPRINTABLE.search(host):
            raise InvalidOptionError("admin_host", "expected a host name or address")
        token = self.admin_token
        if token is not None and (not isinstance(token, str) or not _TOKEN.fullmatch(token)):
            raise InvalidOptionError(
                "admin_token",
                "expected a non-empty string of visible ASCII characters (no whitespace, NUL "
                "or other control characters)",
            )

    def resolved_executor_id(self) -> str:
        """The executor ID in force: environment, then config, then `"local"`."""
        return os.environ.get("DBOS__VMID") or self.executor_id or "local"

    def pinned_application_version(self) -> str | None:
        """The application version known before launch: environment, then config.

        With patching enabled and neither set, the fixed `PATCHING_ENABLED`; otherwise None,
        and launch derives the version from the registered workflows' code.
        """
        pinned = os.environ.get("DBOS__APPVERSION") or self.application_version
        if pinned is None and self.enable_patching:
            return PATCHING_VERSION
        return pinned


def _check_int(name: str, value: object, low: int, high: int) -> None:
    # bool is an int subclass, but True is no pool size or port number.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidOptionError(name, f"expected an int from {low} to {high}")


def _positive_duration(name: str, value: object) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidOptionError(name, "expected a positive timedelta")
    return min(value, LONGEST_WAIT)


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """Where the system database lives, parsed from the URL."""

    backend: Literal["postgres", "sqlite"]
    location: str  # a libpq URL, or a file path


_SQLITE_PREFIX = re.compile(r"^sqlite(3)?://")


def parse_database_url(url: str) -> DatabaseTarget:
    """Classify a database URL.

    Raises:
        InvalidOptionError: the URL names no supported database.
    """
    if not isinstance(url, str) or not url:
        raise InvalidOptionError("database_url", "expected a non-empty string")
    storable_text(url, "database_url")
    if url.startswith(("postgresql://", "postgres://")):
        _check_postgres_url(url)
        return DatabaseTarget("postgres", url)
    if _SQLITE_PREFIX.match(url):
        # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy spells them.
        path = _SQLITE_PREFIX.sub("", url, count=1)
        if not path.startswith("/"):
            raise InvalidOptionError("database_url", f"expected sqlite:///<path>, got {url!r}")
        path = path[1:]
        if not path:
            raise InvalidOptionError("database_url", "the SQLite URL names no file")
        return DatabaseTarget("sqlite", path)
    scheme = url.split(":", 1)[0]
    raise InvalidOptionError(
        "database_url",
        f"unsupported scheme {scheme!r}; expected postgresql://... or sqlite:///<path>",
    )


def _check_postgres_url(url: str) -> None:
    """Refuse what libpq would refuse at connect, naming an unknown query parameter."""
    for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name not in _libpq_parameters():
            raise InvalidOptionError(
                "database_url",
                f"unknown query parameter {name!r}: libpq accepts its connection parameters "
                "only (such as sslmode, connect_timeout or options)",
            )
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:  # a malformed URL; the message holds no password
        raise InvalidOptionError(
            "database_url", f"not a valid Postgres URL: {str(exc).strip()}"
        ) from None


@functools.cache
def _libpq_parameters() -> frozenset[str]:
    # Asked of the libpq in use, so a newer one's parameters are accepted; "ssl" is the
    # URI-only spelling of sslmode=require that libpq also takes.
    known = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    return frozenset(known | {"ssl"})


def default_sqlite_url(app_name: str) -> str:
    """The embedded default: a SQLite file named after the application."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", app_name)
    return f"sqlite:///{safe}.sqlite"
