"""Checked by `mypy --strict`, never run: the types of messaging, events, streams, sleep.

Each `# type: ignore[code]` marks a call that must be rejected; if the library stopped
rejecting it, mypy would report the ignore as unused and the check would fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import assert_type

from pydantic import BaseModel, TypeAdapter

import dbos_typed as dbos


class Approval(BaseModel):
    approved: bool
    by: str


def in_workflow(ctx: dbos.WorkflowContext) -> None:
    assert_type(dbos.recv[Approval](ctx, "approval", timeout=timedelta(seconds=5)), Approval)
    assert_type(dbos.recv[list[int]](ctx, "numbers"), list[int])
    assert_type(dbos.recv[TypeAdapter(int | None)](ctx), int | None)
    assert_type(dbos.recv(ctx, "raw"), dbos.JsonValue)
    assert_type(dbos.recv[TypeAdapter(dbos.JsonValue)](ctx, "raw"), dbos.JsonValue)
    # Untyped, a message is plain JSON that strict code must narrow before using it.
    raw = dbos.recv(ctx, "raw")
    text: str = raw  # type: ignore[assignment]
    if isinstance(raw, str):
        text = raw
    assert_type(text, str)
    if isinstance(raw, dict):
        assert_type(raw, dict[str, dbos.JsonValue])
    assert_type(dbos.sleep(ctx, timedelta(seconds=1)), timedelta)
    assert_type(dbos.send(ctx, "other", Approval(approved=True, by="me"), "t"), None)
    assert_type(dbos.set_event(ctx, "progress", 50), None)
    assert_type(dbos.write_stream(ctx, "out", [1, 2]), None)
    assert_type(dbos.close_stream(ctx, "out"), None)
    # A workflow may also read events and streams.
    assert_type(dbos.get_event[int](ctx, "other", "progress"), int)


def outside(ctx: dbos.DBOSContext) -> None:
    dbos.send(ctx, "wf", {"any": "json"}, idempotency_key="k")
    assert_type(dbos.get_event[Approval](ctx, "wf", "decision"), Approval)
    assert_type(
        dbos.get_event[list[int]](ctx, "wf", "numbers", timeout=timedelta(seconds=1)), list[int]
    )
    assert_type(dbos.get_event[TypeAdapter(int | None)](ctx, "wf", "maybe"), int | None)
    assert_type(dbos.get_event(ctx, "wf", "raw"), dbos.JsonValue)
    count: int = dbos.get_event(ctx, "wf", "raw")  # type: ignore[assignment]
    assert_type(count, int)
    assert_type(dbos.read_stream(ctx, "wf", "out"), Iterator[dbos.JsonValue])
    for raw in dbos.read_stream(ctx, "wf", "out"):
        words: list[str] = raw  # type: ignore[assignment]
        assert_type(words, list[str])
    assert_type(dbos.read_stream[Approval](ctx, "wf", "out"), Iterator[Approval])
    assert_type(dbos.read_stream[list[int]](ctx, "wf", "out"), Iterator[list[int]])
    assert_type(dbos.read_stream[TypeAdapter(int | None)](ctx, "wf", "out"), Iterator[int | None])
    for item in dbos.read_stream[int](ctx, "wf", "out"):
        assert_type(item, int)
    assert_type(
        dbos.read_stream[int](ctx, "wf", "out", from_offset=3, snapshot=True), Iterator[int]
    )
    dbos.read_stream[int](ctx, "wf", "out", 3)  # type: ignore[call-arg]

    # Workflow-only operations refuse a plain DBOSContext.
    dbos.recv[int](ctx, "topic")  # type: ignore[arg-type]
    dbos.recv(ctx)  # type: ignore[arg-type]
    dbos.sleep(ctx, timedelta(seconds=1))  # type: ignore[arg-type]
    dbos.set_event(ctx, "key", 1)  # type: ignore[arg-type]
    dbos.write_stream(ctx, "key", 1)  # type: ignore[arg-type]
    dbos.close_stream(ctx, "key")  # type: ignore[arg-type]


def misuse(ctx: dbos.WorkflowContext) -> None:
    dbos.sleep(ctx, 5)  # type: ignore[arg-type]
    dbos.recv[int](ctx, "t", timeout=5)  # type: ignore[arg-type]
    dbos.get_event[int](ctx, "wf", "k", timeout=1.5)  # type: ignore[arg-type]
    wrong: str = dbos.recv[int](ctx, "t")  # type: ignore[assignment]
    del wrong
