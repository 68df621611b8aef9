"""`send_bulk`: many messages in one transaction; `get_all_events`: a workflow's events."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from dbos_typed import aio
from tests.conftest import Backend

WAIT = timedelta(seconds=20)


def inbox(ctx: dbos.WorkflowContext, count: int) -> list[str]:
    return [dbos.recv[str](ctx, "in", timeout=WAIT) for _ in range(count)]


def fan_out(ctx: dbos.WorkflowContext, targets: list[str]) -> int:
    dbos.send_bulk(ctx, [(t, f"hello {t}", "in") for t in targets])
    return len(targets)


def publisher(ctx: dbos.WorkflowContext) -> None:
    dbos.set_event(ctx, "stage", "charged")
    dbos.set_event(ctx, "total", {"cents": 500})
    dbos.set_event(ctx, "stage", "shipped")  # the latest value wins


def reader(ctx: dbos.WorkflowContext, workflow_id: str) -> dict[str, Any]:
    return dbos.get_all_events(ctx, workflow_id)


def _count(backend: Backend, table: str) -> int:
    return int(str(backend.query(f"SELECT count(*) FROM {{s}}.{table}")[0][0]))


def test_send_bulk_delivers_each_message_once(backend: Backend) -> None:
    ctx = backend.context_with(inbox, fan_out)
    ctx.launch()
    a = dbos.run_workflow(ctx, inbox, 2, workflow_id="a")
    b = dbos.run_workflow(ctx, inbox, 1, workflow_id="b")
    dbos.send_bulk(ctx, [("a", "one", "in"), ("a", "two", "in")], idempotency_key="batch-1")
    dbos.send_bulk(ctx, [("a", "one", "in"), ("a", "two", "in")], idempotency_key="batch-1")
    assert a.get_result(timeout=WAIT) == ["one", "two"]
    sender = dbos.run_workflow(ctx, fan_out, ["b"], workflow_id="sender")
    assert sender.get_result(timeout=WAIT) == 1 and b.get_result(timeout=WAIT) == ["hello b"]
    assert _count(backend, "notifications") == 3  # the repeated batch added nothing
    steps = dbos.get_workflow_steps(ctx, "sender")
    assert [s.name for s in steps] == ["DBOS.sendBulk"]


def test_send_bulk_is_all_or_nothing(backend: Backend) -> None:
    ctx = backend.context_with(inbox)
    ctx.launch()
    dbos.run_workflow(ctx, inbox, 1, workflow_id="there")
    with pytest.raises(dbos.NonExistentWorkflowError) as info:
        dbos.send_bulk(ctx, [("there", 1), ("nowhere", 2)])
    assert info.value.workflow_id == "nowhere"
    assert _count(backend, "notifications") == 0
    loose: Any = dbos
    for bad, argument in (
        ([("there",)], "messages[0]"),
        ([("there", 1), ("", 2)], "messages[1] destination_id"),
        ([("there", 1, 7)], "messages[0] topic"),
        ("there", "messages"),
    ):
        with pytest.raises(dbos.InvalidOptionError) as refused:
            loose.send_bulk(ctx, bad)
        assert refused.value.argument == argument
    with pytest.raises(dbos.SerializationError, match=r"messages\[1\]"):
        dbos.send_bulk(ctx, [("there", 1), ("there", float("nan"))])
    assert _count(backend, "notifications") == 0


def test_get_all_events_reads_the_latest_values_durably(backend: Backend) -> None:
    ctx = backend.context_with(publisher, reader)
    ctx.launch()
    dbos.run_workflow(ctx, publisher, workflow_id="pub").get_result(timeout=WAIT)
    expected = {"stage": "shipped", "total": {"cents": 500}}
    assert dbos.get_all_events(ctx, "pub") == expected
    handle = dbos.run_workflow(ctx, reader, "pub", workflow_id="reader")
    assert handle.get_result(timeout=WAIT) == expected
    assert [s.name for s in dbos.get_workflow_steps(ctx, "reader")] == ["DBOS.getAllEvents"]
    with pytest.raises(dbos.NonExistentWorkflowError):
        dbos.get_all_events(ctx, "missing")
    assert asyncio.run(aio.get_all_events(ctx, "pub")) == expected


def test_the_awaitable_send_bulk(backend: Backend) -> None:
    ctx = backend.context_with(inbox)
    ctx.launch()
    handle = dbos.run_workflow(ctx, inbox, 1, workflow_id="x")
    asyncio.run(aio.send_bulk(ctx, [("x", "async", "in")]))
    assert handle.get_result(timeout=WAIT) == ["async"]
