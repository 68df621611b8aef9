"""`rename_application`: giving an application the rows another name holds."""

from __future__ import annotations

from dataclasses import dataclass

from dbos_typed._core.context import Connected
from dbos_typed._core.validate import checked_name
from dbos_typed.errors import InvalidOptionError

DEFAULT_RENAME_BATCH_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class ApplicationRowCounts:
    """How many rows `rename_application` moved, by kind.

    Attributes:
        queues: Declared queues.
        schedules: Cron schedules.
        versions: Recorded application versions.
        workflows: Workflows, finished or not.
        steps: Recorded steps.
    """

    queues: int = 0
    schedules: int = 0
    versions: int = 0
    workflows: int = 0
    steps: int = 0


def rename_application(
    ctx: Connected,
    old_name: str | None,
    new_name: str,
    /,
    *,
    adopt_unclaimed: bool = False,
    batch_size: int = DEFAULT_RENAME_BATCH_SIZE,
) -> ApplicationRowCounts:
    """Give the application `new_name` the rows that `old_name` holds in the database.

    Several applications may share one system database, each seeing its own queues,
    schedules, versions and workflows (and unclaimed rows, which belong to none). After an
    application is renamed in its configuration, this moves what it owned to the new name;
    `adopt_unclaimed` also gives it the unclaimed rows (`old_name` may then be None). Stop
    the application being renamed first: its executors would race the move.

    Durability: queues, schedules, versions and unfinished workflows move in one
    transaction, so the new name never sees queued work whose version or queue row it
    cannot see. Finished workflows and recorded steps follow in transactions of about
    `batch_size` workflows each; if the call is cut short, calling it again finishes the
    move. Not checkpointed when called from a workflow: it is an operator's tool.

    Args:
        ctx: Any context or client.
        old_name: The name to take the rows from; None to adopt unclaimed rows only.
        new_name: The application that ends up owning them.
        adopt_unclaimed: Also take the rows no application owns.
        batch_size: Workflows moved per transaction after the first.

    Returns:
        How many rows moved, by kind.

    Raises:
        InvalidOptionError: no name and no adoption, an empty or unchanged name, or a
            batch size below 1.
    """
    new_name = checked_name(new_name, "new_name")
    if old_name is None:
        if not adopt_unclaimed:
            raise InvalidOptionError(
                "old_name", "give the name to take rows from, adopt_unclaimed=True, or both"
            )
    else:
        old_name = checked_name(old_name, "old_name")
        if old_name == new_name:
            raise InvalidOptionError("new_name", f"the application is already named {new_name!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidOptionError("batch_size", "expected an int >= 1")
    return ApplicationRowCounts(
        *ctx._runtime.store.rename_application(
            old_name=old_name,
            new_name=new_name,
            adopt_unclaimed=adopt_unclaimed,
            batch_size=batch_size,
        )
    )
