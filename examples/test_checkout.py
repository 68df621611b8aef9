"""Testing the README's checkout workflow with dbos_typed.testing and its pytest fixtures.

Run it with `pytest examples/test_checkout.py`: the fixtures `dbos_context` and
`dbos_database_url` come from the plugin installed with dbos_typed, on a new SQLite file
per test (or a new Postgres database when DBOS_TYPED_TEST_DATABASE_URL names a server).
`docs/testing.md` walks through it.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed import testing
from dbos_typed.testing.pytest_plugin import DBOSContextFactory


class Order(BaseModel):
    id: str
    cents: int


class Receipt(BaseModel):
    order_id: str
    charged: int


#: What the payment provider and the mailer saw, by order (the side effects under test).
charges: Counter[str] = Counter()
receipts_sent: Counter[str] = Counter()
reviews_asked: Counter[str] = Counter()


def charge(order: Order) -> int:
    charges[order.id] += 1
    return order.cents


def notify(order: Order) -> None:
    receipts_sent[order.id] += 1


def checkout(ctx: dbos.WorkflowContext, order: Order) -> Receipt:
    charged = dbos.run_as_step(ctx, lambda: charge(order), name="charge", max_retries=3)
    dbos.run_as_step(ctx, lambda: notify(order), name="notify")
    return Receipt(order_id=order.id, charged=charged)


def ask_for_review(ctx: dbos.WorkflowContext, order: Order) -> None:
    """Three days after a checkout, ask the customer for a review."""
    dbos.sleep(ctx, timedelta(days=3))
    dbos.run_as_step(ctx, lambda: reviews_asked.update([order.id]), name="ask")


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    charges.clear()
    receipts_sent.clear()
    reviews_asked.clear()


def test_a_checkout_charges_and_sends_a_receipt(dbos_context: DBOSContextFactory) -> None:
    ctx = dbos_context(checkout)
    order = Order(id="a1", cents=500)
    receipt = dbos.run_workflow(ctx, checkout, order, workflow_id="order-a1").get_result()
    assert receipt == Receipt(order_id="a1", charged=500)
    assert (charges["a1"], receipts_sent["a1"]) == (1, 1)


def test_the_workflow_id_is_an_idempotency_key(dbos_context: DBOSContextFactory) -> None:
    ctx = dbos_context(checkout)
    order = Order(id="a1", cents=500)
    first = dbos.run_workflow(ctx, checkout, order, workflow_id="order-a1").get_result()
    again = dbos.run_workflow(ctx, checkout, order, workflow_id="order-a1").get_result()
    assert first == again
    assert charges["a1"] == 1


def test_a_crash_before_the_receipt_resumes_without_charging_again(
    dbos_context: DBOSContextFactory,
) -> None:
    ctx = dbos_context(checkout)
    order = Order(id="a1", cents=500)
    with testing.crash_at(ctx, "notify", when="before"):
        handle = dbos.run_workflow(ctx, checkout, order, workflow_id="order-a1")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result()
    assert (charges["a1"], receipts_sent["a1"]) == (1, 0)

    ctx = dbos_context.restart(ctx)  # a new process: recovers order-a1
    receipt = dbos.retrieve_workflow[Receipt](ctx, "order-a1").get_result()
    assert receipt.charged == 500
    assert (charges["a1"], receipts_sent["a1"]) == (1, 1)  # the charge was replayed


def test_a_crash_right_after_the_charge_charges_again_on_recovery(
    dbos_context: DBOSContextFactory,
) -> None:
    ctx = dbos_context(checkout)
    order = Order(id="a1", cents=500)
    with testing.crash_at(ctx, "charge", when="after"):
        handle = dbos.run_workflow(ctx, checkout, order, workflow_id="order-a1")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result()
    ctx = dbos_context.restart(ctx)
    dbos.retrieve_workflow[Receipt](ctx, "order-a1").get_result()
    # Steps are at-least-once: the charge ran before the crash and again after it. This
    # is the test that tells you to pass the provider an idempotency key (the workflow ID
    # from dbos.get_workflow_id(ctx), say).
    assert charges["a1"] == 2
    assert receipts_sent["a1"] == 1


def test_todays_code_replays_the_recorded_checkouts(dbos_context: DBOSContextFactory) -> None:
    ctx = dbos_context(checkout)
    for n in range(3):
        order = Order(id=f"o{n}", cents=100 * n)
        dbos.run_workflow(ctx, checkout, order, workflow_id=f"order-{n}").get_result()
    before = dict(charges)
    for status in dbos.list_workflows(ctx, name="checkout"):
        testing.check_replay(ctx, status.workflow_id)  # raises NonDeterminismError if not
    assert dict(charges) == before  # replaying ran no step


def test_the_review_request_waits_three_days(dbos_context: DBOSContextFactory) -> None:
    clock = testing.VirtualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    ctx = dbos_context(ask_for_review, clock=clock)
    order = Order(id="a1", cents=500)
    handle = dbos.run_workflow(ctx, ask_for_review, order, workflow_id="review-a1")
    clock.wait_for_waiters()  # the workflow is asleep
    clock.advance(timedelta(days=2))
    assert reviews_asked["a1"] == 0
    clock.advance(timedelta(days=1))  # the three days are up: the sleep ends at once
    handle.get_result()
    assert reviews_asked["a1"] == 1
