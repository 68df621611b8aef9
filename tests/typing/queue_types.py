"""Checked by `mypy --strict`, never run: queues, enqueue options and the client's types.

Each `# type: ignore[code]` marks a call that must be rejected; if the library stopped
rejecting it, mypy would report the ignore as unused and the check would fail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, assert_type

from pydantic import BaseModel, TypeAdapter

import dbos_typed as dbos


class Order(BaseModel):
    id: str


class Receipt(BaseModel):
    total: int


def checkout(ctx: dbos.WorkflowContext, order: Order) -> Receipt:
    return Receipt(total=1)


def tick(ctx: dbos.WorkflowContext) -> int:
    return 1


def in_a_workflow(ctx: dbos.WorkflowContext, order: Order) -> list[Receipt]:
    child = dbos.run_workflow(ctx, checkout, order, queue="orders", priority=1)
    assert_type(child, dbos.WorkflowHandle[Receipt])
    return [child.get_result()]


def usage(ctx: dbos.DBOSContext) -> None:
    queue = dbos.register_queue(
        ctx,
        "orders",
        worker_concurrency=5,
        concurrency=10,
        limiter=dbos.RateLimit(limit=100, period=timedelta(seconds=1)),
        priority_enabled=True,
        partitioned=False,
        polling_interval=timedelta(milliseconds=500),
    )
    assert_type(queue, dbos.WorkflowQueue)
    assert_type(queue.worker_concurrency, int | None)
    assert_type(queue.limiter, dbos.RateLimit | None)
    dbos.listen_queues(ctx, [queue, "other"])

    handle = dbos.run_workflow(
        ctx,
        checkout,
        Order(id="a"),
        queue=queue,
        deduplication_id="a",
        deduplication_policy="return_existing",
        delay=timedelta(seconds=5),
        timeout=timedelta(minutes=1),
    )
    assert_type(handle, dbos.WorkflowHandle[Receipt])
    assert_type(handle.get_result(), Receipt)
    by_name = dbos.run_workflow(ctx, tick, queue="orders", partition_key=None)
    assert_type(by_name, dbos.WorkflowHandle[int])
    versioned = dbos.run_workflow(ctx, tick, queue="orders", application_version="v2")
    assert_type(versioned, dbos.WorkflowHandle[int])
    assert_type(dbos.run_workflow(ctx, tick, application_version=None), dbos.WorkflowHandle[int])

    # Misuse that must not type-check.
    dbos.run_workflow(ctx, checkout, Order(id="a"), queue=3)  # type: ignore[call-overload]
    dbos.run_workflow(
        ctx,
        checkout,
        Order(id="a"),
        queue=queue,
        deduplication_policy="sometimes",  # type: ignore[call-overload]
    )
    dbos.run_workflow(ctx, checkout, Order(id="a"), queue=queue, delay=5)  # type: ignore[call-overload]
    dbos.run_workflow(ctx, tick, application_version=2)  # type: ignore[call-overload]
    dbos.register_queue(ctx, "q", limiter=(1, 2))  # type: ignore[arg-type]
    dbos.listen_queues(ctx, [1])  # type: ignore[list-item]


def management_usage(ctx: dbos.DBOSContext, client: dbos.Client) -> None:
    assert_type(dbos.retrieve_queue(ctx, "orders"), dbos.WorkflowQueue)
    assert_type(dbos.retrieve_queue(client, "orders").application_name, str | None)
    assert_type(dbos.list_queues(ctx), list[dbos.WorkflowQueue])
    assert_type(dbos.list_queues(client, application_names=["shop"]), list[dbos.WorkflowQueue])
    updated = dbos.update_queue(
        ctx, "orders", worker_concurrency=None, limiter=dbos.RateLimit(1, timedelta(seconds=1))
    )
    assert_type(updated, dbos.WorkflowQueue)
    dbos.update_queue(client, "orders", polling_interval=timedelta(seconds=2), partitioned=True)
    dbos.delete_queue(client, "orders")
    dbos.set_workflow_delay(ctx, "wf", delay=timedelta(minutes=5))
    dbos.set_workflow_delay(client, "wf", until=datetime.now(UTC))

    # Misuse that must not type-check.
    dbos.update_queue(ctx, "orders", worker_concurrency="5")  # type: ignore[arg-type]
    dbos.update_queue(ctx, "orders", limiter=(1, 2))  # type: ignore[arg-type]
    dbos.update_queue(ctx, "orders", polling_interval=None)  # type: ignore[arg-type]
    dbos.update_queue(ctx, "orders", priority=1)  # type: ignore[call-arg]
    dbos.set_workflow_delay(ctx, "wf", delay=5)  # type: ignore[arg-type]
    dbos.set_workflow_delay(ctx, "wf", timedelta(minutes=5))  # type: ignore[call-arg]
    dbos.delete_queue(ctx, name="orders")  # type: ignore[call-arg]


def client_usage() -> None:
    client = dbos.new_client("postgresql://localhost/app", app_name="shop")
    assert_type(client, dbos.Client)
    assert_type(client.application_name, str | None)
    typed = dbos.enqueue[Receipt](client, "orders", "checkout", Order(id="a"))
    assert_type(typed, dbos.WorkflowHandle[Receipt])
    assert_type(typed.get_result(), Receipt)
    nested = dbos.enqueue[TypeAdapter(list[int])](client, "orders", "batch", [1, 2])
    assert_type(nested, dbos.WorkflowHandle[list[int]])
    assert_type(dbos.enqueue(client, "orders", "tick"), dbos.WorkflowHandle[dbos.JsonValue])
    assert_type(
        dbos.enqueue[int](client, "orders", "tick", priority=2, delay=timedelta(seconds=1)),
        dbos.WorkflowHandle[int],
    )
    assert_type(
        dbos.enqueue[int](client, "orders", "tick", application_version="v2"),
        dbos.WorkflowHandle[int],
    )
    assert_type(dbos.retrieve_workflow[Receipt](client, "x"), dbos.WorkflowHandle[Receipt])
    assert_type(dbos.resume_workflow(client, "x"), dbos.WorkflowHandle[Any])
    dbos.cancel_workflow(client, "x")
    dbos.register_queue(client, "from-client")
    with dbos.new_client(dbos.Config(app_name="shop")) as other:
        assert_type(other, dbos.Client)
    client.close()

    # Misuse that must not type-check.
    dbos.enqueue[Receipt](client, "orders")  # type: ignore[call-arg]
    dbos.enqueue(client, "orders", "tick", deduplication_policy="x")  # type: ignore[arg-type]
    dbos.enqueue(client, "orders", "tick", unknown=1)  # type: ignore[call-arg]
    dbos.enqueue(client, "orders", "tick", application_version=2)  # type: ignore[arg-type]
    dbos.listen_queues(client, [])  # type: ignore[arg-type]
    dbos.run_workflow(client, tick)  # type: ignore[call-overload]
    dbos.new_client(42)  # type: ignore[arg-type]
