"""Application versions: the ones recorded in the database, and which one is the latest.

Every launch records its version in `application_versions`. The latest version (the one
with the newest timestamp) is the one that claims workflows enqueued without a version (by
clients and tools) and, by default, the one whose queue declarations overwrite stored
settings. These calls act on the database directly and are not checkpointed when called
from inside a workflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dbos_typed._core.context import Connected
from dbos_typed._core.validate import checked_name
from dbos_typed._sysdb._rows import VersionRow
from dbos_typed.errors import ApplicationVersionNotFoundError, InvalidOptionError


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One recorded application version.

    Attributes:
        id: The row's ID.
        name: The version (`Config.application_version`, or the default hash).
        timestamp: When it last became the latest; the newest timestamp wins.
        created_at: When it was first recorded.
        application_name: The application that recorded it, or None if unclaimed.
    """

    id: str
    name: str
    timestamp: datetime
    created_at: datetime
    application_name: str | None


def list_application_versions(
    ctx: Connected, /, *, all_applications: bool = False
) -> list[VersionInfo]:
    """The recorded application versions, the latest first.

    Args:
        ctx: Any context.
        all_applications: Include versions of other applications sharing the database;
            by default this application's and unclaimed ones.

    Returns:
        The versions, newest timestamp first.
    """
    if not isinstance(all_applications, bool):
        raise InvalidOptionError("all_applications", "expected a bool")
    runtime = ctx._runtime
    rows = runtime.store.list_versions(None if all_applications else runtime.app_name)
    return [_info(row) for row in rows]


def get_latest_application_version(ctx: Connected, /) -> VersionInfo:
    """This application's latest version (unclaimed versions count too).

    Raises:
        ApplicationVersionNotFoundError: no version is recorded.
    """
    runtime = ctx._runtime
    rows = runtime.store.list_versions(runtime.app_name)
    if not rows:
        raise ApplicationVersionNotFoundError()
    return _info(rows[0])


def set_latest_application_version(ctx: Connected, name: str, /) -> None:
    """Make a recorded version this application's latest, for example to roll back.

    Durability: the version's timestamp is set to now, or just past the newest version's
    if that is later, in one statement; from then on it is the latest for every process.

    Args:
        ctx: Any context.
        name: A version of this application, or an unclaimed one.

    Raises:
        InvalidOptionError: `name` is not a non-empty string.
        ApplicationVersionNotFoundError: no such version is recorded for this application.
    """
    name = checked_name(name, "name")
    runtime = ctx._runtime
    if not runtime.store.set_latest_version(name, runtime.app_name, runtime.clock.now_ms()):
        raise ApplicationVersionNotFoundError(name)


def _info(row: VersionRow) -> VersionInfo:
    return VersionInfo(
        id=row.version_id,
        name=row.version_name,
        timestamp=datetime.fromtimestamp(row.timestamp_ms / 1000, tz=UTC),
        created_at=datetime.fromtimestamp(row.created_at_ms / 1000, tz=UTC),
        application_name=row.application_name,
    )
