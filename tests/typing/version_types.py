"""Checked by `mypy --strict`, never run: patching, application versions, conflict policies.

Each `# type: ignore[code]` marks a call that must be rejected; if the library stopped
rejecting it, mypy would report the ignore as unused and the check would fail.
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_type

import dbos_typed as dbos


def priced(ctx: dbos.WorkflowContext) -> int:
    assert_type(dbos.patch(ctx, "new-pricing"), bool)
    dbos.deprecate_patch(ctx, "old-pricing")
    return 1


def usage(ctx: dbos.DBOSContext, client: dbos.Client) -> None:
    assert_type(dbos.list_application_versions(ctx), list[dbos.VersionInfo])
    everyone = dbos.list_application_versions(client, all_applications=True)
    assert_type(everyone, list[dbos.VersionInfo])
    latest = dbos.get_latest_application_version(client)
    assert_type(latest.name, str)
    assert_type(latest.timestamp, datetime)
    assert_type(latest.application_name, str | None)
    dbos.set_latest_application_version(ctx, latest.name)
    for policy in ("update_if_latest_version", "always_update", "never_update"):
        dbos.register_queue(client, "orders", on_conflict=policy)

    # Misuse that must not type-check.
    dbos.patch(ctx, "new-pricing")  # type: ignore[arg-type]
    dbos.deprecate_patch(ctx, "new-pricing")  # type: ignore[arg-type]
    dbos.register_queue(ctx, "orders", on_conflict="sometimes")  # type: ignore[arg-type]
    dbos.set_latest_application_version(ctx, name="v1")  # type: ignore[call-arg]
