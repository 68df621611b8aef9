"""Checked by `mypy --strict`, never run: configured instances' registration and starts.

Each `# type: ignore[code]` marks a call that must be rejected; if the library stopped
rejecting it, mypy would report the ignore as unused and the check would fail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import assert_type

from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed import aio


class Order(BaseModel):
    id: str


class Receipt(BaseModel):
    total: int


class Shop:
    def __init__(self, region: str) -> None:
        self.region = region

    def checkout(self, ctx: dbos.WorkflowContext, order: Order) -> Receipt:
        return Receipt(total=1)

    def ping(self, ctx: dbos.WorkflowContext) -> str:
        return self.region


def usage(ctx: dbos.DBOSContext) -> None:
    eu, us = Shop("eu"), Shop("us")
    assert_type(
        dbos.register_workflow(ctx, eu.checkout, config_name="eu"),
        Callable[[dbos.WorkflowContext, Order], Receipt],
    )
    dbos.register_workflow(ctx, us.checkout, config_name="us", max_recovery_attempts=3)
    dbos.register_workflow(ctx, eu.ping, config_name="eu", name="ping")
    assert_type(dbos.run_workflow(ctx, eu.checkout, Order(id="a")), dbos.WorkflowHandle[Receipt])
    assert_type(dbos.run_workflow(ctx, us.ping, queue="q"), dbos.WorkflowHandle[str])
    assert_type(dbos.new_debouncer(ctx, eu.checkout), dbos.Debouncer[Order, Receipt])
    entry = dbos.list_registered_workflows(ctx)[0]
    assert_type(entry.config_name, str | None)
    assert_type(entry.class_name, str | None)

    # Misuse that must not type-check.
    dbos.register_workflow(ctx, eu.checkout, config_name=1)  # type: ignore[call-overload]
    dbos.run_workflow(ctx, eu.checkout, Order(id="a"), config_name="eu")  # type: ignore[call-overload]


def client_usage(client: dbos.Client) -> None:
    assert_type(
        dbos.enqueue[Receipt](client, "q", "Shop.checkout", Order(id="a"), config_name="eu"),
        dbos.WorkflowHandle[Receipt],
    )
    dbos.enqueue(client, "q", "Shop.ping", config_name="eu", class_name="Shop")
    assert_type(
        dbos.debounce[Receipt](
            client, "Shop.checkout", "k", Order(id="a"), delay=timedelta(0), config_name="us"
        ),
        dbos.WorkflowHandle[Receipt],
    )
    dbos.enqueue(client, "q", "Shop.ping", config_name=1)  # type: ignore[arg-type]
    dbos.debounce(client, "Shop.ping", "k", delay=timedelta(0), class_name=1)  # type: ignore[arg-type]


async def aio_usage(client: dbos.Client) -> None:
    order = Order(id="a")
    handle = await aio.enqueue[Receipt](client, "q", "Shop.checkout", order, config_name="eu")
    assert_type(handle, aio.AsyncWorkflowHandle[Receipt])
    await aio.enqueue(client, "q", "Shop.ping", config_name=2)  # type: ignore[arg-type]
