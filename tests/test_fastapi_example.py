"""examples/fastapi_app.py through FastAPI's TestClient: idempotent starts, a queue, a crash.

Each `with TestClient(app)` block is one run of the service: entering it runs the
lifespan (a new context, launched, recovering what an earlier run left), leaving it
shuts the context down.
"""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import dbos_typed as dbos
from dbos_typed import testing
from examples import fastapi_app
from examples.fastapi_app import Receipt, charges, create_app
from tests.conftest import Backend


def _order() -> dict[str, object]:
    return {"id": f"o-{uuid.uuid4().hex[:8]}", "cents": 500}


def _context(client: TestClient) -> dbos.DBOSContext:
    app = client.app
    assert isinstance(app, FastAPI)
    ctx = app.state.dbos
    assert isinstance(ctx, dbos.DBOSContext)
    return ctx


def test_a_retried_post_returns_the_same_workflow(backend: Backend) -> None:
    app = create_app(backend.config("shop-api"))
    order = _order()
    with TestClient(app) as client:
        first = client.post("/orders", json=order, headers={"Idempotency-Key": "key-1"})
        retry = client.post("/orders", json=order, headers={"Idempotency-Key": "key-1"})
        assert (first.status_code, retry.status_code) == (202, 202)
        assert first.json() == retry.json() == {"workflow_id": "key-1"}
        state = client.get("/orders/key-1", params={"wait": 10}).json()
        assert state["status"] == "SUCCESS"
        assert state["receipt"] == {"order_id": order["id"], "charged": 500}
        assert [w.workflow_id for w in dbos.list_workflows(_context(client))] == ["key-1"]
    assert charges[str(order["id"])] == 1


def test_a_post_without_a_key_is_refused_and_an_unknown_order_is_404(backend: Backend) -> None:
    app = create_app(backend.config("shop-api"))
    with TestClient(app) as client:
        assert client.post("/orders", json=_order()).status_code == 422
        assert client.get("/orders/nobody").status_code == 404
        assert client.get("/orders/nobody", params={"wait": 1}).status_code == 404


def test_a_queued_order_runs_on_the_queue(backend: Backend) -> None:
    app = create_app(backend.config("shop-api"))
    order = _order()
    with TestClient(app) as client:
        started = client.post("/orders/queued", json=order, headers={"Idempotency-Key": "q-1"})
        assert started.json() == {"workflow_id": "q-1"}
        state = client.get("/orders/q-1", params={"wait": 10}).json()
        assert state["status"] == "SUCCESS" and state["receipt"]["charged"] == 500
        status = dbos.retrieve_workflow(_context(client), "q-1").get_status()
        assert status.queue_name == fastapi_app.QUEUE


def test_an_order_crashed_after_the_charge_is_recovered_by_the_next_start(
    backend: Backend,
) -> None:
    app = create_app(backend.config("shop-api"))
    order = _order()
    with TestClient(app) as client:
        ctx = _context(client)
        with testing.crash_at(ctx, "charge", when="after") as point:
            client.post("/orders", json=order, headers={"Idempotency-Key": "crash-1"})
            with pytest.raises(testing.SimulatedCrash):
                dbos.retrieve_workflow[Receipt](ctx, "crash-1").get_result()
        assert point.fired
        assert client.get("/orders/crash-1").json()["status"] == "PENDING"
    assert charges[str(order["id"])] == 1

    with TestClient(app) as client:  # the service starts again and recovers the order
        state = client.get("/orders/crash-1", params={"wait": 10}).json()
        assert state["status"] == "SUCCESS"
        assert state["receipt"] == {"order_id": order["id"], "charged": 500}
        # The charge ran again: the provider must be told the idempotency key too.
        assert charges[str(order["id"])] == 2
        again = client.post("/orders", json=order, headers={"Idempotency-Key": "crash-1"})
        assert again.json() == {"workflow_id": "crash-1"}
    assert charges[str(order["id"])] == 2
