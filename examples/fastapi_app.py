"""A FastAPI service whose orders are durable workflows.

- The app's lifespan creates, launches and shuts down the dbos_typed context, so every
  start of the service recovers the orders a previous one left unfinished.
- `POST /orders` starts the checkout workflow with the request's `Idempotency-Key` header
  as its workflow ID: a client that retries the POST (a timeout, a lost reply) gets the
  same workflow back, and the card is charged once.
- `GET /orders/{workflow_id}` reports the workflow's status and, once done, its receipt;
  `?wait=2` waits up to two seconds for it to finish.
- `POST /orders/queued` enqueues the checkout on the `orders` queue instead, for work the
  service takes on at its own pace.

Run it with any ASGI server (`uvicorn examples.fastapi_app:app`), or run
`python -m examples.fastapi_app` for a short demonstration through FastAPI's test client.
`docs/integrations.md` explains the pattern and how it fits other frameworks.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Request
from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed import aio

QUEUE = "orders"


class Order(BaseModel):
    id: str
    cents: int


class Receipt(BaseModel):
    order_id: str
    charged: int


class Started(BaseModel):
    workflow_id: str


class OrderState(BaseModel):
    workflow_id: str
    status: str
    receipt: Receipt | None = None
    error: str | None = None


#: What the payment provider saw, by order: a stand-in for the outside world, which a
#: step may reach twice if the process dies after the call and before its checkpoint.
charges: Counter[str] = Counter()


def charge(order: Order) -> int:
    charges[order.id] += 1  # call the payment provider here
    return order.cents


def checkout(ctx: dbos.WorkflowContext, order: Order) -> Receipt:
    charged = dbos.run_as_step(ctx, lambda: charge(order), name="charge")
    dbos.run_as_step(ctx, lambda: f"receipt for {order.id}", name="notify")
    return Receipt(order_id=order.id, charged=charged)


def create_app(config: dbos.Config) -> FastAPI:
    """The service, on the system database `config` names."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = dbos.new_context(config)
        dbos.register_workflow(ctx, checkout)
        dbos.register_queue(ctx, QUEUE, worker_concurrency=4)
        ctx.launch()  # recovers what the last run of the service left unfinished
        app.state.dbos = ctx
        try:
            yield
        finally:
            ctx.shutdown(timeout=timedelta(seconds=5))

    app = FastAPI(title="shop", lifespan=lifespan)

    @app.post("/orders", status_code=202)
    async def start_order(
        order: Order, request: Request, idempotency_key: Annotated[str, Header()]
    ) -> Started:
        # The key is the workflow ID: a retried POST finds the workflow the first made.
        handle = await aio.run_workflow(
            context_of(request), checkout, order, workflow_id=idempotency_key
        )
        return Started(workflow_id=handle.workflow_id)

    @app.post("/orders/queued", status_code=202)
    async def enqueue_order(
        order: Order, request: Request, idempotency_key: Annotated[str, Header()]
    ) -> Started:
        handle = await aio.run_workflow(
            context_of(request), checkout, order, workflow_id=idempotency_key, queue=QUEUE
        )
        return Started(workflow_id=handle.workflow_id)

    @app.get("/orders/{workflow_id}")
    async def order_state(workflow_id: str, request: Request, wait: float = 0) -> OrderState:
        try:
            return await _state_of(context_of(request), workflow_id, wait)
        except dbos.NonExistentWorkflowError as exc:
            raise HTTPException(404, f"no order workflow {workflow_id!r}") from exc

    return app


async def _state_of(ctx: dbos.DBOSContext, workflow_id: str, wait: float) -> OrderState:
    handle = await aio.retrieve_workflow[Receipt](ctx, workflow_id)
    if wait > 0:
        try:
            await handle.get_result(timeout=timedelta(seconds=min(wait, 30)))
        except dbos.WaitTimeoutError:
            pass  # not finished yet: the status says where it stands
        except (dbos.WorkflowFailedError, dbos.AwaitedWorkflowCancelledError):
            pass  # the status says how it ended
    status = await handle.get_status()
    state = OrderState(workflow_id=workflow_id, status=status.status)
    if status.status == "SUCCESS":
        state.receipt = await handle.get_result()
    elif status.error is not None:
        state.error = status.error.message
    return state


def context_of(request: Request) -> dbos.DBOSContext:
    """The context the lifespan launched for the app serving `request`."""
    ctx = request.app.state.dbos
    assert isinstance(ctx, dbos.DBOSContext)
    return ctx


app = create_app(dbos.Config(app_name="shop-api", database_url=os.environ.get("DBOS_DATABASE_URL")))


def main() -> None:
    from fastapi.testclient import TestClient

    order = {"id": "a1", "cents": 500}
    with TestClient(app) as client:
        for attempt in (1, 2):  # the second POST is a client's retry
            started = client.post("/orders", json=order, headers={"Idempotency-Key": "k-a1"})
            print(f"POST /orders (attempt {attempt}): {started.status_code} {started.json()}")
        state = client.get("/orders/k-a1", params={"wait": 5}).json()
        print(f"GET /orders/k-a1: {state['status']}, receipt {state['receipt']}")
        client.post(
            "/orders/queued", json={"id": "b2", "cents": 300}, headers={"Idempotency-Key": "k-b2"}
        )
        queued = client.get("/orders/k-b2", params={"wait": 5}).json()
        print(f"GET /orders/k-b2: {queued['status']}, receipt {queued['receipt']}")
    print(f"charges: {dict(charges)}")


if __name__ == "__main__":
    main()
