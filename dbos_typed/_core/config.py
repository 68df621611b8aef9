"""Configuration: what a context needs to know, validated before anything connects."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from dbos_typed._core.validate import optional_name
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
            directory.
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
        max_connections: Size of the Postgres connection pool.
        connect_timeout: How long to wait for the database at start.
        admin_server: Serve the admin HTTP endpoints while launched.
        admin_host: The address the admin server binds to (`127.0.0.1` by default). A
            host that is not a loopback address needs `admin_token`.
        admin_port: Its port (0 picks a free one; see `DBOSContext.admin_url`).
        admin_token: A secret the admin server then requires on every request, as
            `Authorization: Bearer <token>`; None (the default) requires none, which is
            safe only on loopback. It is left out of the config's repr.
        scheduler_polling_interval: How often the scheduler re-reads the schedules table,
            so schedules created, changed, paused or deleted by other processes take
            effect here. Changes made through this context take effect at once.
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
    # Kept out of the repr, so a logged config does not carry the secret.
    admin_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.app_name, str) or not self.app_name.strip():
            raise InvalidOptionError("app_name", "expected a non-empty string")
        if "\x00" in self.app_name:
            raise InvalidOptionError("app_name", "must not contain NUL characters")
        if self.database_url is not None:
            parse_database_url(self.database_url)
        if not isinstance(self.database_schema, str) or not self.database_schema:
            raise InvalidOptionError("database_schema", "expected a non-empty string")
        if len(self.database_schema.encode()) > _IDENTIFIER_LIMIT or "\x00" in self.database_schema:
            raise InvalidOptionError(
                "database_schema", f"expected at most {_IDENTIFIER_LIMIT} bytes and no NUL"
            )
        for name in ("executor_id", "application_version"):
            value = getattr(self, name)
            optional_name(value, name)
        if not isinstance(self.max_connections, int) or not 1 <= self.max_connections <= 1000:
            raise InvalidOptionError("max_connections", "expected an int from 1 to 1000")
        if not isinstance(self.connect_timeout, timedelta) or self.connect_timeout <= timedelta(0):
            raise InvalidOptionError("connect_timeout", "expected a positive timedelta")
        self._check_admin_settings()
        if not isinstance(
            self.scheduler_polling_interval, timedelta
        ) or self.scheduler_polling_interval <= timedelta(0):
            raise InvalidOptionError("scheduler_polling_interval", "expected a positive timedelta")
        if not isinstance(self.enable_patching, bool):
            raise InvalidOptionError("enable_patching", "expected a bool")
        threads = self.max_workflow_threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise InvalidOptionError("max_workflow_threads", "expected a positive int")
        heartbeat = self.executor_heartbeat_timeout
        if heartbeat is not None and (
            not isinstance(heartbeat, timedelta) or heartbeat < timedelta(milliseconds=300)
        ):
            raise InvalidOptionError(
                "executor_heartbeat_timeout", "expected None or a timedelta of at least 300 ms"
            )

    def _check_admin_settings(self) -> None:
        # Whether the host is a loopback one is known only once it resolves, at launch.
        port = self.admin_port
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise InvalidOptionError("admin_port", "expected a port number from 0 to 65535")
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
    if "\x00" in url:
        raise InvalidOptionError("database_url", "must not contain NUL characters")
    if url.startswith(("postgresql://", "postgres://")):
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


def default_sqlite_url(app_name: str) -> str:
    """The embedded default: a SQLite file named after the application."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", app_name)
    return f"sqlite:///{safe}.sqlite"
