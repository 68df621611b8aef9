"""Running workflows: results, status, idempotency, registration and input checks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from tests.conftest import Backend


class Order(BaseModel):
    id: str
    cents: int
    placed: datetime


class Receipt(BaseModel):
    order_id: str
    total: int


class PaymentDeclined(Exception):
    def __init__(self, message: str, code: int, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


calls: dict[str, int] = {}


def _count(key: str) -> None:
    calls[key] = calls.get(key, 0) + 1


def charge(order: Order) -> int:
    _count(f"charge-{order.id}")
    return order.cents


def checkout(ctx: dbos.WorkflowContext, order: Order) -> Receipt:
    total = dbos.run_as_step(ctx, lambda: charge(order), name="charge")
    note = dbos.run_as_step(ctx, lambda: f"charged {total}", name="note")
    assert note == f"charged {total}"
    return Receipt(order_id=order.id, total=total)


def no_input(ctx: dbos.WorkflowContext) -> list[int]:
    return [1, 2, dbos.run_as_step(ctx, lambda: 3)]


def declines(ctx: dbos.WorkflowContext, amount: int) -> str:
    raise PaymentDeclined("card declined", 402, {"amount": amount})


def other(ctx: dbos.WorkflowContext, x: int) -> int:
    return x


def _order(order_id: str = "a1") -> Order:
    return Order(id=order_id, cents=500, placed=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))


def _launched(backend: Backend) -> dbos.DBOSContext:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, checkout)
    dbos.register_workflow(ctx, no_input)
    dbos.register_workflow(ctx, declines)
    dbos.register_workflow(ctx, other)
    ctx.launch()
    return ctx


def test_workflow_runs_steps_and_returns_typed_result(backend: Backend) -> None:
    ctx = _launched(backend)
    handle = dbos.run_workflow(ctx, checkout, _order(), workflow_id="wf-1")
    assert handle.workflow_id == "wf-1"
    assert handle.get_result() == Receipt(order_id="a1", total=500)

    steps = backend.query(
        "SELECT function_id, function_name, output, serialization FROM {s}.operation_outputs "
        "WHERE workflow_uuid = %s ORDER BY function_id",
        "wf-1",
    )
    assert steps == [
        (0, "charge", "500", "portable_json"),
        (1, "note", '"charged 500"', "portable_json"),
    ]


def test_status_is_recorded_in_portable_json(backend: Backend) -> None:
    ctx = _launched(backend)
    handle = dbos.run_workflow(ctx, checkout, _order("b2"), workflow_id="wf-status")
    handle.get_result()
    status = handle.get_status()
    assert status.status is dbos.StatusName.SUCCESS
    assert status.name == "checkout"
    # Plain JSON, which the caller validates with the type it expects.
    assert status.input == _order("b2").model_dump(mode="json")
    assert Order.model_validate(status.input) == _order("b2")
    assert status.output == {"order_id": "b2", "total": 500}
    assert Receipt.model_validate(status.output) == Receipt(order_id="b2", total=500)
    assert status.error is None
    assert status.executor_id == "local"
    assert status.application_version == "test-version"
    assert status.application_name == "test-app"
    assert status.recovery_attempts == 1
    assert status.completed_at is not None and status.completed_at >= status.created_at

    row = backend.query(
        "SELECT ws.serialization, wi.inputs, wo.output FROM {s}.workflow_status ws "
        "JOIN {s}.workflow_input wi USING (workflow_uuid) "
        "JOIN {s}.workflow_output wo USING (workflow_uuid) WHERE workflow_uuid = %s",
        "wf-status",
    )
    assert row == [
        (
            "portable_json",
            '{"positionalArgs":[{"id":"b2","cents":500,"placed":"2026-01-02T03:04:05.678000Z"}],'
            '"namedArgs":{}}',
            '{"order_id":"b2","total":500}',
        )
    ]


def test_workflow_without_input(backend: Backend) -> None:
    ctx = _launched(backend)
    assert dbos.run_workflow(ctx, no_input).get_result() == [1, 2, 3]


def test_workflow_id_is_an_idempotency_key(backend: Backend) -> None:
    ctx = _launched(backend)
    calls.clear()
    first = dbos.run_workflow(ctx, checkout, _order("idem"), workflow_id="same").get_result()
    second = dbos.run_workflow(ctx, checkout, _order("ignored"), workflow_id="same").get_result()
    assert first == second == Receipt(order_id="idem", total=500)
    assert calls == {"charge-idem": 1}


def test_same_id_for_another_workflow_conflicts(backend: Backend) -> None:
    ctx = _launched(backend)
    dbos.run_workflow(ctx, other, 1, workflow_id="taken").get_result()
    with pytest.raises(dbos.ConflictingWorkflowError) as info:
        dbos.run_workflow(ctx, declines, 1, workflow_id="taken")
    assert info.value.existing_name == "other"
    assert info.value.workflow_id == "taken"


def test_workflow_exception_reaches_get_result_typed(backend: Backend) -> None:
    ctx = _launched(backend)
    handle = dbos.run_workflow(ctx, declines, 42, workflow_id="fails")
    with pytest.raises(dbos.WorkflowFailedError) as info:
        handle.get_result()
    assert info.value.error_name == "PaymentDeclined"
    assert info.value.error_message == "card declined"
    assert info.value.error_code == 402
    assert info.value.data == {"amount": 42}
    # A fresh handle reads the same failure from the database.
    with pytest.raises(dbos.WorkflowFailedError) as again:
        dbos.retrieve_workflow[str](ctx, "fails").get_result()
    assert (again.value.error_name, again.value.data) == ("PaymentDeclined", {"amount": 42})
    assert handle.get_status().status is dbos.StatusName.ERROR


def waits_then_receipts(ctx: dbos.WorkflowContext, order_id: str) -> Receipt:
    dbos.recv[str](ctx, "go", timeout=timedelta(seconds=30))
    return Receipt(order_id=order_id, total=1)


def test_an_untyped_handle_to_a_run_here_gives_plain_json(backend: Backend) -> None:
    ctx = backend.context_with(waits_then_receipts)
    ctx.launch()
    started = dbos.run_workflow(ctx, waits_then_receipts, "here", workflow_id="here")
    untyped = dbos.retrieve_workflow(ctx, "here")  # while it runs in this process
    dbos.send(ctx, "here", "go", "go")
    assert started.get_result() == Receipt(order_id="here", total=1)
    assert untyped.get_result() == {"order_id": "here", "total": 1}


def test_retrieve_workflow_typed_and_untyped(backend: Backend) -> None:
    ctx = _launched(backend)
    dbos.run_workflow(ctx, checkout, _order("r"), workflow_id="ret").get_result()
    typed = dbos.retrieve_workflow[Receipt](ctx, "ret")
    assert typed.get_result() == Receipt(order_id="r", total=500)
    untyped = dbos.retrieve_workflow(ctx, "ret")
    assert untyped.get_result() == {"order_id": "r", "total": 500}  # plain JSON
    as_dict = dbos.retrieve_workflow[dict[str, object]](ctx, "ret")
    assert as_dict.get_result() == {"order_id": "r", "total": 500}
    with pytest.raises(dbos.NonExistentWorkflowError):
        dbos.retrieve_workflow(ctx, "nope")


def test_wrong_input_type_is_refused_before_anything_is_written(backend: Backend) -> None:
    ctx = _launched(backend)
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.run_workflow(ctx, checkout, {"id": "x"}, workflow_id="bad-input")  # type: ignore[arg-type]
    assert info.value.argument == "input"
    assert "cents" in str(info.value)  # pydantic's message names the missing field
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(0,)]


def test_unregistered_workflow_is_refused(backend: Backend) -> None:
    ctx = backend.new_context()
    ctx.launch()
    with pytest.raises(dbos.RegistrationError, match="not a registered workflow"):
        dbos.run_workflow(ctx, other, 1)


def test_run_before_launch_is_refused(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, other)
    with pytest.raises(dbos.InitializationError):
        dbos.run_workflow(ctx, other, 1)


def test_registration_rules(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, other)
    with pytest.raises(dbos.RegistrationError, match="already registered"):
        dbos.register_workflow(ctx, other)
    with pytest.raises(dbos.RegistrationError, match="named 'other'"):
        dbos.register_workflow(ctx, declines, name="other")
    ctx.launch()
    with pytest.raises(dbos.RegistrationError, match="before launch"):
        dbos.register_workflow(ctx, no_input)
    with pytest.raises(dbos.InitializationError, match="already launched"):
        ctx.launch()


def test_two_contexts_in_one_process_are_independent(backend: Backend, tmp_path: Any) -> None:
    first = backend.new_context(app_name="first")
    if backend.name == "sqlite":
        second = backend.new_context(
            app_name="second", database_url=f"sqlite:///{tmp_path / 'second.sqlite'}"
        )
    else:
        second = backend.new_context(app_name="second", database_schema=backend.schema + "_b")
    dbos.register_workflow(first, other)
    dbos.register_workflow(second, other, name="renamed")
    first.launch()
    second.launch()
    assert dbos.run_workflow(first, other, 1, workflow_id="x").get_result() == 1
    assert dbos.run_workflow(second, other, 2, workflow_id="x").get_result() == 2
    assert dbos.retrieve_workflow(first, "x").get_status().name == "other"
    assert dbos.retrieve_workflow(second, "x").get_status().name == "renamed"
    second.shutdown()
    assert dbos.run_workflow(first, other, 3).get_result() == 3
    if backend.name == "postgres":
        backend.query("DROP SCHEMA " + '"' + backend.schema + '_b" CASCADE')


def test_many_concurrent_workflows(backend: Backend) -> None:
    ctx = _launched(backend)
    handles = [dbos.run_workflow(ctx, other, i) for i in range(50)]
    assert [h.get_result() for h in handles] == list(range(50))


def test_get_result_timeout(backend: Backend) -> None:
    release = threading.Event()

    def blocked(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, lambda: release.wait(30), name="block")
        return "done"

    ctx = backend.new_context()
    dbos.register_workflow(ctx, blocked)
    ctx.launch()
    handle = dbos.run_workflow(ctx, blocked)
    with pytest.raises(dbos.WaitTimeoutError) as info:
        handle.get_result(timeout=timedelta(milliseconds=50))
    assert isinstance(info.value, TimeoutError)
    release.set()
    assert handle.get_result(timeout=timedelta(seconds=10)) == "done"
