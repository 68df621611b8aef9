"""Checked by `mypy --strict`, never run: the public API's types, and misuse that must fail.

Each `# type: ignore[code]` marks a call that must be rejected; if the library stopped
rejecting it, mypy would report the ignore as unused and the check would fail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, assert_type

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, TypeAdapter

import dbos_typed as dbos


class Order(BaseModel):
    id: str


class Receipt(BaseModel):
    total: int


def checkout(ctx: dbos.WorkflowContext, order: Order) -> Receipt:
    total = dbos.run_as_step(ctx, lambda: 5, name="charge")
    assert_type(total, int)
    typed = dbos.run_as_step(ctx, lambda: Receipt(total=total), result_type=Receipt)
    assert_type(typed, Receipt)
    nested = dbos.run_as_step(ctx, lambda: [order.id], result_type=TypeAdapter(list[str]))
    timed = dbos.run_as_step(ctx, lambda: 5, name="timed", timeout=timedelta(seconds=3))
    assert_type(timed, int)
    assert_type(nested, list[str])
    assert_type(dbos.get_workflow_id(ctx), str)
    assert_type(dbos.get_step_id(ctx), int)
    child = dbos.run_workflow(ctx, no_input)
    assert_type(child, dbos.WorkflowHandle[list[int]])
    free = dbos.run_workflow(ctx, no_input, detached=True)
    assert_type(free, dbos.WorkflowHandle[list[int]])
    return typed


def no_input(ctx: dbos.WorkflowContext) -> list[int]:
    assert_type(dbos.get_identity(ctx), dbos.Identity)
    assert_type(dbos.get_identity(ctx).roles, tuple[str, ...])
    return [1]


def usage(ctx: dbos.DBOSContext) -> None:
    assert_type(
        dbos.register_workflow(ctx, checkout), Callable[[dbos.WorkflowContext, Order], Receipt]
    )
    handle = dbos.run_workflow(ctx, checkout, Order(id="a"), workflow_id="x")
    dbos.run_workflow(ctx, no_input, identity=dbos.Identity(user="u"), attributes={"k": 1})
    dbos.get_identity(ctx)  # type: ignore[arg-type]
    assert_type(handle, dbos.WorkflowHandle[Receipt])
    assert_type(handle.get_result(), Receipt)
    assert_type(handle.get_result(timeout=timedelta(seconds=1)), Receipt)
    assert_type(handle.get_status(), dbos.WorkflowStatus)
    assert_type(dbos.run_workflow(ctx, no_input).get_result(), list[int])

    assert_type(dbos.retrieve_workflow[Receipt](ctx, "x"), dbos.WorkflowHandle[Receipt])
    assert_type(dbos.retrieve_workflow[list[int]](ctx, "x").get_result(), list[int])
    assert_type(
        dbos.retrieve_workflow[TypeAdapter(int | None)](ctx, "x"),
        dbos.WorkflowHandle[int | None],
    )
    assert_type(dbos.retrieve_workflow(ctx, "x"), dbos.WorkflowHandle[dbos.JsonValue])
    assert_type(dbos.cancel_workflows(ctx, ["x", "y"], cancel_children=True), None)
    assert_type(dbos.resume_workflows(ctx, ["x"]), list[dbos.WorkflowHandle[Any]])
    assert_type(
        dbos.fork_workflows(ctx, [("x", 1), ("y", 0, "y2")]), list[dbos.WorkflowHandle[Any]]
    )
    dbos.fork_workflows(ctx, [("x", "1")])  # type: ignore[list-item]
    assert_type(dbos.list_registered_workflows(ctx), list[dbos.RegisteredWorkflow])
    assert_type(dbos.rename_application(ctx, "old", "new"), dbos.ApplicationRowCounts)
    assert_type(dbos.rename_application(ctx, None, "new", adopt_unclaimed=True).steps, int)
    assert_type(dbos.list_registered_workflows(ctx)[0].max_recovery_attempts, int | None)

    # Misuse that must not type-check.
    dbos.run_workflow(ctx, checkout, 42)  # type: ignore[arg-type]
    dbos.run_workflow(ctx, checkout)  # type: ignore[arg-type]
    dbos.run_as_step(ctx, lambda: 1)  # type: ignore[call-overload]
    dbos.run_as_step(ctx, 42)  # type: ignore[call-overload]
    dbos.get_step_id(ctx)  # type: ignore[arg-type]


def wrong_step(ctx: dbos.WorkflowContext) -> None:
    dbos.run_as_step(ctx, takes_nothing, result_type=str)  # type: ignore[arg-type]
    dbos.run_as_step(ctx, takes_nothing, timeout=3)  # type: ignore[call-overload]
    dbos.run_workflow(ctx, no_input, detached="yes")  # type: ignore[call-overload]
    dbos.run_as_step(ctx, takes_an_argument)  # type: ignore[arg-type]


def takes_an_argument(x: int) -> int:
    return x


def takes_nothing() -> int:
    return 1


def aggregates(ctx: dbos.DBOSContext) -> None:
    rows = dbos.get_workflow_aggregates(ctx, group_by=["status", "name"], bucket=timedelta(hours=1))
    assert_type(rows, list[dbos.WorkflowAggregate])
    assert_type(rows[0].max_latency, timedelta | None)
    steps = dbos.get_step_aggregates(ctx, group_by=["name", "status"])
    assert_type(steps, list[dbos.StepAggregate])
    assert_type(steps[0].max_duration, timedelta | None)

    # Only the columns each aggregate can group by are accepted.
    dbos.get_workflow_aggregates(ctx, group_by=["state"])  # type: ignore[list-item]
    dbos.get_step_aggregates(ctx, group_by=["queue_name"])  # type: ignore[list-item]


def debit(conn: psycopg.Connection[Any]) -> int:
    return 1


def transfer(ctx: dbos.WorkflowContext, ds: dbos.DataSource) -> None:
    assert_type(dbos.run_as_transaction(ctx, ds, debit), int)
    assert_type(dbos.run_as_transaction(ctx, ds, lambda conn: "x", name="note"), str)
    assert_type(
        dbos.run_as_transaction(ctx, ds, lambda conn: Receipt(total=1), result_type=Receipt),
        Receipt,
    )
    assert_type(dbos.run_as_transaction(ctx, ds, debit, isolation="serializable"), int)

    # Misuse that must not type-check.
    dbos.run_as_transaction(ctx, ds, debit, isolation="snapshot")  # type: ignore[call-overload]
    dbos.run_as_transaction(ctx, ds, takes_nothing)  # type: ignore[arg-type]
    dbos.run_as_transaction(ctx, ds, debit, result_type=str)  # type: ignore[arg-type]
    dbos.run_as_transaction(ctx, "ds", debit)  # type: ignore[call-overload]
    # A transaction has no timeout: its body holds a database transaction open.
    dbos.run_as_transaction(ctx, ds, debit, timeout=timedelta(1))  # type: ignore[call-overload]


def data_sources(ctx: dbos.DBOSContext, pool: ConnectionPool[Any]) -> None:
    ds = dbos.new_data_source(ctx, "postgresql://localhost/app", name="app", schema="dbos")
    assert_type(ds, dbos.DataSource)
    assert_type(dbos.new_data_source(ctx, pool), dbos.DataSource)
    assert_type(ds.pool, ConnectionPool[Any])

    # Misuse that must not type-check.
    dbos.new_data_source(ctx, 42)  # type: ignore[arg-type]
    dbos.run_as_transaction(ctx, ds, debit)  # type: ignore[call-overload]


def contexts(app: dbos.DBOSContext, inside: dbos.WorkflowContext, either: dbos.AppContext) -> None:
    # Both contexts are an AppContext: what works in either place accepts it.
    assert_type(dbos.run_workflow(either, checkout, Order(id="a")), dbos.WorkflowHandle[Receipt])
    assert_type(either.app_name, str)
    for ctx in (app, inside):
        dbos.list_workflows(ctx)
        dbos.send(ctx, "x", 1)
    # A workflow cannot run or stop the runtime, nor register workflows.
    inside.launch()  # type: ignore[attr-defined]
    inside.shutdown()  # type: ignore[attr-defined]
    inside.admin_url  # type: ignore[attr-defined]  # noqa: B018
    dbos.register_workflow(inside, checkout)  # type: ignore[call-overload]
    dbos.listen_queues(inside, ["q"])  # type: ignore[arg-type]
    with inside:  # type: ignore[attr-defined]
        pass
    # Durable in-workflow operations refuse a context that is not a workflow's.
    dbos.run_as_step(app, lambda: 1)  # type: ignore[call-overload]
    dbos.run_as_step(either, lambda: 1)  # type: ignore[call-overload]
    dbos.sleep(app, timedelta(seconds=1))  # type: ignore[arg-type]


def typed_steering(ctx: dbos.DBOSContext) -> None:
    assert_type(dbos.resume_workflow[Receipt](ctx, "x"), dbos.WorkflowHandle[Receipt])
    assert_type(dbos.resume_workflow(ctx, "x", queue="q"), dbos.WorkflowHandle[Any])
    assert_type(dbos.fork_workflow[Receipt](ctx, "x", 2), dbos.WorkflowHandle[Receipt])
    assert_type(
        dbos.fork_workflow[TypeAdapter(int | None)](ctx, "x", 0, new_workflow_id="y"),
        dbos.WorkflowHandle[int | None],
    )
    dbos.fork_workflow[Receipt](ctx, "x", "2")  # type: ignore[arg-type]
    dbos.resume_workflow[Receipt](ctx, "x", queue=3)  # type: ignore[arg-type]
