"""Checked by `mypy --strict`, never run: debouncers, and debouncing from a client.

Each `# type: ignore[code]` marks a call that must be rejected; if the library stopped
rejecting it, mypy would report the ignore as unused and the check would fail.
"""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

from pydantic import BaseModel, TypeAdapter

import dbos_typed as dbos

SOON = timedelta(seconds=2)


class Edit(BaseModel):
    document: str
    text: str


class Saved(BaseModel):
    revision: int


def save(ctx: dbos.WorkflowContext, edit: Edit) -> Saved:
    return Saved(revision=1)


def reindex(ctx: dbos.WorkflowContext) -> list[str]:
    return []


def usage(ctx: dbos.DBOSContext) -> None:
    queue = dbos.register_queue(ctx, "saves")
    saves = dbos.new_debouncer(ctx, save, max_wait=timedelta(minutes=1), queue=queue)
    assert_type(saves, dbos.Debouncer[Edit, Saved])
    assert_type(saves.workflow_name, str)
    assert_type(saves.queue_name, str)
    assert_type(saves.max_wait, timedelta | None)
    handle = saves.debounce(ctx, "doc-1", Edit(document="doc-1", text="hi"), delay=SOON)
    assert_type(handle, dbos.WorkflowHandle[Saved])
    assert_type(handle.get_result(), Saved)
    chosen = saves.debounce(ctx, "doc-1", Edit(document="d", text=""), delay=SOON, workflow_id="x")
    saves.debounce(ctx, "doc-1", Edit(document="d", text=""), delay=SOON, timeout=SOON)
    saves.debounce(ctx, "doc-1", Edit(document="d", text=""), delay=SOON, timeout=5)  # type: ignore[arg-type]
    assert_type(chosen, dbos.WorkflowHandle[Saved])

    reindexes = dbos.new_debouncer(ctx, reindex, queue="saves")
    assert_type(reindexes, dbos.Debouncer[None, list[str]])
    assert_type(reindexes.debounce(ctx, "all", delay=SOON), dbos.WorkflowHandle[list[str]])

    # Misuse that must not type-check.
    saves.debounce(ctx, "doc-1", "text", delay=SOON)  # type: ignore[arg-type]
    saves.debounce(ctx, "doc-1", delay=SOON)  # type: ignore[call-arg]
    saves.debounce(ctx, "doc-1", Edit(document="d", text=""))  # type: ignore[call-arg]
    saves.debounce(ctx, "doc-1", Edit(document="d", text=""), delay=2)  # type: ignore[arg-type]
    reindexes.debounce(ctx, "all", 3, delay=SOON)  # type: ignore[call-overload]
    dbos.new_debouncer(ctx, save, max_wait=60)  # type: ignore[call-overload]
    dbos.new_debouncer(ctx, save, queue=3)  # type: ignore[call-overload]


def in_a_workflow(ctx: dbos.WorkflowContext, edit: Edit) -> Saved:
    saves = dbos.new_debouncer(ctx, save)
    handle = saves.debounce(ctx, edit.document, edit, delay=SOON)
    assert_type(handle, dbos.WorkflowHandle[Saved])
    return handle.get_result()


def client_usage(ctx: dbos.DBOSContext) -> None:
    client = dbos.new_client("postgresql://localhost/app", app_name="docs")
    edit = Edit(document="d", text="")
    typed = dbos.debounce[Saved](client, "save", "d", edit, delay=SOON, max_wait=SOON)
    assert_type(typed, dbos.WorkflowHandle[Saved])
    assert_type(typed.get_result(), Saved)
    nested = dbos.debounce[TypeAdapter(list[str])](client, "reindex", "all", delay=SOON)
    assert_type(nested, dbos.WorkflowHandle[list[str]])
    assert_type(
        dbos.debounce(client, "reindex", "all", delay=SOON, queue="saves", workflow_id="r"),
        dbos.WorkflowHandle[dbos.JsonValue],
    )

    # Misuse that must not type-check.
    dbos.debounce[Saved](client, "save", "d", edit)  # type: ignore[call-arg]
    dbos.debounce(client, "save", "d", edit, delay=2)  # type: ignore[arg-type]
    dbos.debounce(ctx, "save", "d", edit, delay=SOON)  # type: ignore[arg-type]
    saves = dbos.new_debouncer(ctx, save)
    saves.debounce(client, "d", edit, delay=SOON)  # type: ignore[arg-type]
