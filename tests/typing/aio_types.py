"""Checked by `mypy --strict`, never run: async workflows and the awaitable API.

Each `# type: ignore[code]` marks a call that must be rejected; if the library stopped
rejecting it, mypy would report the ignore as unused and the check would fail.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, assert_type

import psycopg
from pydantic import BaseModel, TypeAdapter

import dbos_typed as dbos
from dbos_typed import aio


class Order(BaseModel):
    id: str


class Receipt(BaseModel):
    total: int


async def price(sku: str) -> int:
    return len(sku)


def blocking_price(sku: str) -> int:
    return len(sku)


async def checkout(ctx: dbos.WorkflowContext, order: Order) -> Receipt:
    one = await aio.run_as_step(ctx, functools.partial(price, order.id))
    assert_type(one, int)
    two = await aio.run_as_step(ctx, lambda: price("b"), name="lambda", max_retries=2)
    assert_type(two, int)
    timed = await aio.run_as_step(ctx, lambda: price("t"), timeout=timedelta(seconds=1))
    assert_type(timed, int)
    three = await aio.run_as_step(ctx, lambda: blocking_price("c"))
    assert_type(three, int)
    typed = await aio.run_as_step(ctx, lambda: Receipt(total=1), result_type=Receipt)
    assert_type(typed, Receipt)
    many = await asyncio.gather(aio.run_as_step(ctx, lambda: 1), aio.run_as_step(ctx, lambda: "x"))
    assert_type(many, tuple[int, str])
    unawaited = aio.run_as_step(ctx, lambda: 1)
    _ = assert_type(unawaited, Coroutine[None, None, int])
    unawaited.close()

    assert_type(await aio.sleep(ctx, timedelta(seconds=1)), timedelta)
    assert_type(await aio.recv[Order](ctx, "orders", timeout=timedelta(seconds=5)), Order)
    assert_type(await aio.recv[TypeAdapter(int | None)](ctx), int | None)
    assert_type(await aio.recv(ctx, "raw"), dbos.JsonValue)
    assert_type(await aio.get_event(ctx, "other", "raw"), dbos.JsonValue)
    async for raw in aio.read_stream(ctx, "other", "out"):
        assert_type(raw, dbos.JsonValue)
    assert_type(await aio.set_event(ctx, "progress", 50), None)
    assert_type(await aio.get_event[int](ctx, "other", "progress"), int)
    assert_type(await aio.write_stream(ctx, "out", [1, 2]), None)
    assert_type(await aio.close_stream(ctx, "out"), None)
    assert_type(await aio.send(ctx, "other", order, "topic"), None)

    child = await aio.run_workflow(ctx, no_input)
    assert_type(child, aio.AsyncWorkflowHandle[list[int]])
    assert_type(await child.get_result(), list[int])

    # A blocking durable call still type-checks inside an async workflow.
    assert_type(dbos.run_as_step(ctx, lambda: 1), int)
    return Receipt(total=one + two + three)


def no_input(ctx: dbos.WorkflowContext) -> list[int]:
    return [1]


async def async_no_input(ctx: dbos.WorkflowContext) -> str:
    return "x"


def registration(ctx: dbos.DBOSContext) -> None:
    assert_type(
        dbos.register_workflow(ctx, checkout),
        Callable[[dbos.WorkflowContext, Order], Coroutine[Any, Any, Receipt]],
    )
    # The blocking calls type an async workflow's handle by what it returns.
    assert_type(dbos.run_workflow(ctx, checkout, Order(id="a")), dbos.WorkflowHandle[Receipt])
    assert_type(dbos.run_workflow(ctx, async_no_input), dbos.WorkflowHandle[str])
    assert_type(dbos.new_debouncer(ctx, checkout), dbos.Debouncer[Order, Receipt])
    assert_type(dbos.new_debouncer(ctx, async_no_input), dbos.Debouncer[None, str])


async def application(ctx: dbos.DBOSContext, client: dbos.Client) -> None:
    handle = await aio.run_workflow(ctx, checkout, Order(id="a"), workflow_id="x")
    assert_type(handle, aio.AsyncWorkflowHandle[Receipt])
    assert_type(handle.workflow_id, str)
    assert_type(await handle.get_result(timeout=timedelta(seconds=1)), Receipt)
    assert_type(await handle.get_status(), dbos.WorkflowStatus)
    assert_type(await aio.run_workflow(ctx, async_no_input), aio.AsyncWorkflowHandle[str])
    assert_type(await aio.run_workflow(ctx, no_input), aio.AsyncWorkflowHandle[list[int]])

    assert_type(await aio.retrieve_workflow[Receipt](ctx, "x"), aio.AsyncWorkflowHandle[Receipt])
    assert_type(
        await aio.retrieve_workflow[TypeAdapter(int | None)](client, "x"),
        aio.AsyncWorkflowHandle[int | None],
    )
    assert_type(await aio.retrieve_workflow(ctx, "x"), aio.AsyncWorkflowHandle[dbos.JsonValue])
    assert_type(
        await aio.enqueue[Receipt](client, "q", "checkout", Order(id="a"), priority=1),
        aio.AsyncWorkflowHandle[Receipt],
    )
    assert_type(await aio.enqueue(client, "q", "checkout"), aio.AsyncWorkflowHandle[dbos.JsonValue])
    assert_type(
        await aio.debounce[Receipt](
            client, "checkout", "k", Order(id="a"), delay=timedelta(seconds=1), max_wait=None
        ),
        aio.AsyncWorkflowHandle[Receipt],
    )
    assert_type(
        await aio.debounce(client, "checkout", "k", delay=timedelta(0)),
        aio.AsyncWorkflowHandle[dbos.JsonValue],
    )
    await aio.debounce(client, "checkout", "k")  # type: ignore[call-arg]  # delay is required

    assert_type(await aio.get_event[Order](client, "x", "decision"), Order)
    assert_type(aio.read_stream[int](ctx, "x", "out"), AsyncIterator[int])
    async for value in aio.read_stream[Order](ctx, "x", "out", from_offset=2):
        assert_type(value, Order)
    await aio.send(client, "x", {"any": "json"}, idempotency_key="k")

    assert_type(await aio.cancel_workflow(ctx, "x", cancel_children=True), None)
    assert_type(await aio.resume_workflow(client, "x"), aio.AsyncWorkflowHandle[Any])
    assert_type(await aio.cancel_workflows(client, ["x"]), None)
    assert_type(await aio.resume_workflows(ctx, ["x"]), list[aio.AsyncWorkflowHandle[Any]])
    assert_type(await aio.fork_workflow(ctx, "x", 2), aio.AsyncWorkflowHandle[Any])
    assert_type(await aio.list_workflows(ctx, status="ERROR", limit=5), list[dbos.WorkflowStatus])
    assert_type(await aio.list_queued_workflows(ctx), list[dbos.WorkflowStatus])
    assert_type(await aio.get_workflow_steps(ctx, "x"), list[dbos.StepInfo])

    # Misuse that must not type-check.
    await aio.run_workflow(ctx, checkout, 42)  # type: ignore[arg-type]
    await aio.run_workflow(ctx, checkout)  # type: ignore[arg-type]
    await aio.run_as_step(ctx, lambda: 1)  # type: ignore[call-overload]
    await aio.recv[int](ctx, "topic")  # type: ignore[arg-type]
    await aio.sleep(ctx, timedelta(seconds=1))  # type: ignore[arg-type]
    await aio.set_event(ctx, "key", 1)  # type: ignore[arg-type]
    await aio.list_workflows(ctx, stauts="ERROR")  # type: ignore[call-arg]
    await aio.read_stream[int](ctx, "x", "out")  # type: ignore[misc]
    aio.cancel_workflow(ctx, "x")  # type: ignore[unused-coroutine]
    wrong: str = await handle.get_result()  # type: ignore[assignment]
    del wrong


async def forgotten_awaits(ctx: dbos.WorkflowContext) -> None:
    # A durable call that is never awaited is flagged.
    aio.run_as_step(ctx, functools.partial(price, "a"))  # type: ignore[unused-coroutine]
    aio.sleep(ctx, timedelta(seconds=1))  # type: ignore[unused-coroutine]
    aio.send(ctx, "other", 1)  # type: ignore[unused-coroutine]
    await aio.sleep(ctx, 5)  # type: ignore[arg-type]
    await aio.recv[int](ctx, "t", timeout=5)  # type: ignore[arg-type]


async def transfer(ctx: dbos.WorkflowContext, ds: dbos.DataSource) -> None:
    async def debit(conn: psycopg.AsyncConnection[Any]) -> int:
        await conn.execute("SELECT 1")
        return 1

    assert_type(await aio.run_as_transaction(ctx, ds, debit), int)
    assert_type(
        await aio.run_as_transaction(
            ctx, ds, debit, isolation="serializable", name="debit", max_retries=2
        ),
        int,
    )

    async def receipt(conn: psycopg.AsyncConnection[Any]) -> Receipt:
        return Receipt(total=1)

    assert_type(await aio.run_as_transaction(ctx, ds, receipt, result_type=Receipt), Receipt)
    assert_type(await aio.run_as_transaction(ctx, ds, lambda conn: price("p")), int)

    def blocking(conn: psycopg.Connection[Any]) -> int:
        return 1

    await aio.run_as_transaction(ctx, ds, blocking)  # type: ignore[arg-type]
    unawaited = aio.run_as_transaction(ctx, ds, debit)
    _ = assert_type(unawaited, Coroutine[None, None, int])
    unawaited.close()
    aio.run_as_transaction(ctx, ds, debit, timeout=timedelta(seconds=1))  # type: ignore[call-overload]
    aio.run_as_transaction(ctx, ds, debit, isolation="snapshot")  # type: ignore[call-overload]


def add_one(ctx: dbos.WorkflowContext, n: int) -> int:
    return n + 1


async def debounced_and_scheduled(ctx: dbos.DBOSContext) -> None:
    with_input = aio.new_debouncer(ctx, add_one)
    assert_type(with_input, aio.AsyncDebouncer[int, int])
    handle = await with_input.debounce(ctx, "k", 1, delay=timedelta(seconds=1))
    assert_type(handle, aio.AsyncWorkflowHandle[int])
    await with_input.debounce(ctx, "k", "one", delay=timedelta(seconds=1))  # type: ignore[arg-type]
    without = aio.new_debouncer(ctx, async_no_input)
    assert_type(without, aio.AsyncDebouncer[None, str])
    assert_type(await without.debounce(ctx, "k", delay=timedelta(0)), aio.AsyncWorkflowHandle[str])

    assert_type(await aio.trigger_schedule[int](ctx, "s"), aio.AsyncWorkflowHandle[int])
    assert_type(await aio.trigger_schedule(ctx, "s"), aio.AsyncWorkflowHandle[Any])
    assert_type(await aio.get_schedule(ctx, "s"), dbos.WorkflowSchedule)
    assert_type(await aio.list_schedules(ctx), list[dbos.WorkflowSchedule])
    assert_type(await aio.backfill_schedule(ctx, "s", datetime.now(), datetime.now()), list[str])
    assert_type(await aio.garbage_collect(ctx, keep_rows=5), int)
