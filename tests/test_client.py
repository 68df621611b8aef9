"""The client: enqueue by name from outside an application, and steer workflows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from tests.conftest import Backend, Gate

WAIT = timedelta(seconds=20)


class Order(BaseModel):
    id: str
    cents: int


class Receipt(BaseModel):
    order_id: str
    charged: int


def checkout(ctx: dbos.WorkflowContext, order: Order) -> Receipt:
    charged = dbos.run_as_step(ctx, lambda: order.cents, name="charge")
    return Receipt(order_id=order.id, charged=charged)


def ping(ctx: dbos.WorkflowContext) -> str:
    return "pong"


def _app(backend: Backend, **queue_options: object) -> dbos.DBOSContext:
    ctx = backend.new_context("shop")
    dbos.register_workflow(ctx, checkout, name="checkout")
    dbos.register_workflow(ctx, ping, name="ping")
    dbos.register_queue(ctx, "orders", **queue_options)  # type: ignore[arg-type]
    return ctx


def _client(backend: Backend) -> dbos.Client:
    # A Config carries the test's schema; its app_name owns the rows the client writes.
    return dbos.new_client(backend.config("shop"))


def test_client_enqueues_to_a_context_queue_and_reads_the_result(backend: Backend) -> None:
    ctx = _app(backend)
    ctx.launch()
    with _client(backend) as client:
        handle = dbos.enqueue[Receipt](
            client, "orders", "checkout", Order(id="a1", cents=500), workflow_id="c-1"
        )
        assert handle.get_result(timeout=WAIT) == Receipt(order_id="a1", charged=500)
        untyped = dbos.enqueue(client, "orders", "ping")
        assert untyped.get_result(timeout=WAIT) == "pong"
        again = dbos.retrieve_workflow[Receipt](client, "c-1")
        assert again.get_result(timeout=WAIT).charged == 500
        assert again.get_status().status == dbos.StatusName.SUCCESS
    rows = backend.query(
        "SELECT application_version, application_name, queue_name, status "
        "FROM {s}.workflow_status WHERE workflow_uuid = 'c-1'"
    )
    # Enqueued without a version; claimed by (and stamped with) the latest version.
    assert rows == [("test-version", "shop", "orders", "SUCCESS")]


def test_unversioned_rows_wait_for_the_latest_version(backend: Backend) -> None:
    old = backend.new_context("shop", application_version="v1", executor_id="old")
    dbos.register_workflow(old, ping, name="ping")
    dbos.register_queue(old, "orders")
    old.launch()
    new = backend.new_context("shop", application_version="v2", executor_id="new")
    dbos.register_workflow(new, ping, name="ping")
    dbos.listen_queues(new, [])  # registers v2 as the latest but serves nothing
    new.launch()
    with _client(backend) as client:
        handle = dbos.enqueue[str](client, "orders", "ping", workflow_id="versionless")
        stamped = dbos.run_workflow(old, ping, queue="orders", workflow_id="stamped")
        assert stamped.get_result(timeout=WAIT) == "pong"
        # v1 is not the latest version: it leaves the unversioned row alone.
        assert handle.get_status().status == dbos.StatusName.ENQUEUED
        assert handle.get_status().application_version is None


def test_client_options_and_validation(backend: Backend) -> None:
    ctx = _app(backend, priority_enabled=True)
    dbos.register_queue(ctx, "keyed", partitioned=True)
    dbos.listen_queues(ctx, [])  # rows stay ENQUEUED for inspection
    ctx.launch()
    with _client(backend) as client:
        dbos.enqueue(
            client,
            "orders",
            "checkout",
            Order(id="x", cents=1),
            workflow_id="opts",
            priority=3,
            deduplication_id="dd",
            timeout=timedelta(seconds=5),
            delay=timedelta(hours=1),
        )
        row = backend.query(
            "SELECT status, priority, deduplication_id, workflow_timeout_ms, "
            "workflow_deadline_epoch_ms, application_version FROM {s}.workflow_status "
            "WHERE workflow_uuid = 'opts'"
        )
        assert row == [("DELAYED", 3, "dd", 5000, None, None)]
        with pytest.raises(dbos.QueueDeduplicatedError):
            dbos.enqueue(
                client, "orders", "checkout", Order(id="y", cents=1), deduplication_id="dd"
            )
        holder = dbos.enqueue(
            client,
            "orders",
            "checkout",
            Order(id="y", cents=1),
            deduplication_id="dd",
            deduplication_policy="return_existing",
        )
        assert holder.workflow_id == "opts"
        assert [w.workflow_id for w in dbos.list_workflows(client, deduplication_id="dd")] == [
            "opts"
        ]
        keyed = dbos.enqueue(client, "keyed", "ping", partition_key="k1", workflow_id="keyed-1")
        assert keyed.get_status().queue_partition_key == "k1"
        assert [w.queue_partition_key for w in dbos.list_workflows(client, queue_name="keyed")] == [
            "k1"
        ]
        bad: list[tuple[tuple[str, str], dict[str, object], str]] = [
            (("", "ping"), {}, "queue"),
            (("nowhere", "ping"), {}, "queue"),
            (("orders", ""), {}, "workflow_name"),
            (("keyed", "ping"), {}, "partition_key"),
            (("keyed", "ping"), {"partition_key": "k", "deduplication_id": "x"}, "partition_key"),
            (
                ("orders", "ping"),
                {"deduplication_policy": "return_existing"},
                "deduplication_policy",
            ),
            (("orders", "ping"), {"priority": -1}, "priority"),
        ]
        for (queue, name), kwargs, argument in bad:
            with pytest.raises(dbos.InvalidOptionError) as info:
                dbos.enqueue(client, queue, name, **kwargs)  # type: ignore[arg-type]
            assert info.value.argument == argument, (queue, name, kwargs)


def test_client_cancels_and_resumes(backend: Backend) -> None:
    ctx = backend.new_context("shop")
    gate = Gate()

    def held(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, lambda: "first", name="first")
        dbos.run_as_step(ctx, gate, name="gate")
        return "done"

    dbos.register_workflow(ctx, held, name="held")
    dbos.register_queue(ctx, "orders")
    ctx.launch()
    with _client(backend) as client:
        handle = dbos.enqueue[str](client, "orders", "held", workflow_id="steer")
        gate.wait_entered()
        dbos.cancel_workflow(client, "steer")
        with pytest.raises(dbos.AwaitedWorkflowCancelledError):
            handle.get_result(timeout=WAIT)
        gate.open()
        resumed = dbos.resume_workflow(client, "steer")
        assert resumed.get_result(timeout=WAIT) == "done"
        with pytest.raises(dbos.NonExistentWorkflowError):
            dbos.cancel_workflow(client, "missing")
        with pytest.raises(dbos.NonExistentWorkflowError):
            dbos.retrieve_workflow(client, "missing")


def test_client_declares_queues_and_nameless_clients_write_unclaimed_rows(
    backend: Backend,
) -> None:
    ctx = backend.new_context("shop")
    dbos.register_workflow(ctx, ping, name="ping")
    ctx.launch()
    url = backend.config().database_url
    assert url is not None
    with _client(backend) as client:
        assert client.application_name == "shop"
        dbos.register_queue(client, "from-client", worker_concurrency=1)
        handle = dbos.enqueue[str](client, "from-client", "ping")
        assert handle.get_result(timeout=WAIT) == "pong"
    if backend.name == "sqlite":
        with dbos.new_client(url) as nameless:
            assert nameless.application_name is None
            queued = dbos.enqueue[str](nameless, "from-client", "ping", workflow_id="nameless")
            assert queued.get_result(timeout=WAIT) == "pong"
        # Unclaimed when written; claimed by the application that ran it.
        assert backend.query(
            "SELECT application_name FROM {s}.workflow_status WHERE workflow_uuid = 'nameless'"
        ) == [("shop",)]


def test_client_never_creates_the_schema(backend: Backend, tmp_path: object) -> None:
    with pytest.raises(dbos.InitializationError):
        dbos.new_client(backend.config("shop", database_schema="never_created_here"))
    if backend.name == "sqlite":
        with pytest.raises(dbos.InitializationError):
            dbos.new_client(f"sqlite:///{tmp_path}/empty.sqlite")
    with pytest.raises(dbos.InvalidOptionError):
        dbos.new_client(backend.config("shop"), app_name="twice")


def test_closed_client_refuses_work(backend: Backend) -> None:
    _app(backend).launch()
    client = _client(backend)
    client.close()
    client.close()  # idempotent
    with pytest.raises(dbos.InvalidOptionError):
        dbos.enqueue(client, "orders", "ping")


def approval_flow(ctx: dbos.WorkflowContext, item: str) -> str:
    dbos.set_event(ctx, "status", f"waiting for {item}")
    for word in ("one", "two"):
        dbos.write_stream(ctx, "progress", word)
    dbos.close_stream(ctx, "progress")
    approved = dbos.recv[bool](ctx, "decision", timeout=timedelta(seconds=30))
    return "approved" if approved else "refused"


def test_client_sends_and_reads_events_and_streams(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, approval_flow)
    ctx.launch()
    handle = dbos.run_workflow(ctx, approval_flow, "invoice", workflow_id="flow")
    with dbos.new_client(backend.config()) as client:
        status = dbos.get_event[str](client, "flow", "status", timeout=timedelta(seconds=30))
        assert status == "waiting for invoice"
        assert list(dbos.read_stream[str](client, "flow", "progress")) == ["one", "two"]
        dbos.send(client, "flow", True, topic="decision", idempotency_key="decided")
        dbos.send(client, "flow", False, topic="decision", idempotency_key="decided")  # dropped
        assert (
            dbos.retrieve_workflow[str](client, "flow").get_result(timeout=timedelta(seconds=30))
            == "approved"
        )
    assert handle.get_result() == "approved"
    assert backend.query("SELECT count(*) FROM {s}.notifications") == [(1,)]
