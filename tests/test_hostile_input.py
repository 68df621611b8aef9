"""Hostile input is data, never SQL; what cannot be stored is refused with a typed error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed._core.serialization import codec_for, decode_inputs, encode_inputs
from tests.conftest import Backend

HOSTILE_IDS = [
    "it's",
    'say "hi"',
    "'; DROP TABLE workflow_status; --",
    "Robert'); DELETE FROM operation_outputs; --",
    "100%_done\\",
    "ünïcødé-工作流-🚀",
    "{s}.workflow_status",
    "%(workflow_id)s",
    " leading and trailing ",
]


def echo(ctx: dbos.WorkflowContext, value: str) -> str:
    return dbos.run_as_step(ctx, lambda: value, name=value.split("\x00")[0][:40] or "empty")


@pytest.mark.parametrize("workflow_id", HOSTILE_IDS)
def test_hostile_ids_and_payloads_are_plain_data(backend: Backend, workflow_id: str) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, echo)
    ctx.launch()
    payload = workflow_id + "\x00 and a NUL inside the payload"
    assert dbos.run_workflow(ctx, echo, payload, workflow_id=workflow_id).get_result() == payload
    assert dbos.retrieve_workflow[str](ctx, workflow_id).get_result() == payload
    [found] = dbos.list_workflows(ctx, workflow_id_prefix=workflow_id)
    assert found.workflow_id == workflow_id
    dbos.cancel_workflow(ctx, workflow_id)
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(1,)]
    assert backend.query("SELECT count(*) FROM {s}.operation_outputs") == [(1,)]


def test_nul_in_names_is_refused_before_anything_is_written(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, echo)
    ctx.launch()
    for call in (
        lambda: dbos.run_workflow(ctx, echo, "x", workflow_id="a\x00b"),
        lambda: dbos.retrieve_workflow(ctx, "a\x00b"),
        lambda: dbos.cancel_workflow(ctx, "a\x00b"),
        lambda: dbos.list_workflows(ctx, workflow_ids=["a\x00b"]),
    ):
        with pytest.raises(dbos.InvalidOptionError, match="NUL"):
            call()
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.register_workflow(backend.new_context(), echo, name="bad\x00name")
    assert info.value.argument == "name"
    dbos.run_workflow(ctx, echo, "ok", workflow_id="fine").get_result()
    with pytest.raises(dbos.InvalidOptionError, match="NUL"):
        dbos.set_workflow_attributes(ctx, "fine", {"k": "a\x00b"})
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(1,)]


def test_nul_in_queue_client_and_message_keys_is_refused(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, echo)
    orders = dbos.new_workflow_queue(ctx, "orders")
    ctx.launch()
    client = dbos.new_client(backend.config())
    try:
        calls: dict[str, Callable[[], object]] = {
            "deduplication_id": lambda: dbos.run_workflow(
                ctx, echo, "x", queue=orders, deduplication_id="a\x00b"
            ),
            "partition_key": lambda: dbos.run_workflow(
                ctx, echo, "x", queue=orders, partition_key="p\x00"
            ),
            "queue": lambda: dbos.run_workflow(ctx, echo, "x", queue="q\x00"),
            "workflow_id": lambda: dbos.enqueue[str](
                client, "orders", "echo", "x", workflow_id="a\x00b"
            ),
            "workflow_name": lambda: dbos.enqueue[str](client, "orders", "ec\x00ho", "x"),
            "idempotency_key": lambda: dbos.send(ctx, "fine", "x", idempotency_key="k\x00"),
            "name": lambda: dbos.new_workflow_queue(ctx, "bad\x00queue"),
        }
        for argument, call in calls.items():
            with pytest.raises(dbos.InvalidOptionError, match="NUL") as info:
                call()
            assert info.value.argument == argument
        with pytest.raises(dbos.InvalidOptionError, match="NUL") as info:
            dbos.new_client(backend.config(executor_id="e\x00"))
        assert info.value.argument == "executor_id"
    finally:
        client.close()
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(0,)]
    assert backend.query("SELECT count(*) FROM {s}.notifications") == [(0,)]


def test_absurd_timeouts_and_limits_are_refused(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, echo)
    ctx.launch()
    for timeout in (timedelta(seconds=-1), timedelta(0)):
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.run_workflow(ctx, echo, "x", timeout=timeout)
        assert info.value.argument == "timeout"
    with pytest.raises(dbos.InvalidOptionError):
        dbos.run_workflow(ctx, echo, "x").get_result(timeout=timedelta(seconds=-1))
    with pytest.raises(dbos.InvalidOptionError):
        dbos.list_workflows(ctx, limit=-5)
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(1,)]


class Nested(BaseModel):
    label: str
    when: datetime
    amount: Decimal
    tags: list[str]
    ref: UUID | None = None
    extra: dict[str, int] = {}


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
nested_models = st.builds(
    Nested,
    label=st.text(),
    when=st.datetimes(timezones=st.just(UTC)),
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=4),
    tags=st.lists(st.text(), max_size=3),
    ref=st.none() | st.uuids(),
    extra=st.dictionaries(st.text(), st.integers(), max_size=3),
)


@given(value=json_values)
def test_any_json_value_round_trips_through_the_input_envelope(value: Any) -> None:
    codec = codec_for(Any)
    assert decode_inputs(codec, encode_inputs(codec, value)) == value


@given(model=nested_models)
def test_models_round_trip_through_their_codec(model: Nested) -> None:
    codec = codec_for(Nested)
    assert codec.decode(codec.encode(model)) == model
    assert decode_inputs(codec, encode_inputs(codec, model)) == model


def store_model(ctx: dbos.WorkflowContext, model: Nested) -> Nested:
    copy = dbos.run_as_step(ctx, lambda: model, result_type=Nested)
    assert copy == model
    return copy


def store_json(ctx: dbos.WorkflowContext, value: dict[str, Any]) -> dict[str, Any]:
    return dbos.run_as_step(ctx, lambda: value, result_type=dict[str, Any])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(model=nested_models, value=st.dictionaries(st.text(), json_values, max_size=4))
def test_random_values_round_trip_through_real_workflows(
    backend: Backend, model: Nested, value: dict[str, Any]
) -> None:
    if not backend.contexts:
        ctx = backend.new_context()
        dbos.register_workflow(ctx, store_model)
        dbos.register_workflow(ctx, store_json)
        ctx.launch()
    ctx = backend.contexts[0]
    handle = dbos.run_workflow(ctx, store_model, model)
    assert handle.get_result() == model
    # A fresh handle decodes what the database holds, not the in-memory result.
    assert dbos.retrieve_workflow[Nested](ctx, handle.workflow_id).get_result() == model
    assert dbos.get_workflow_steps(ctx, handle.workflow_id)[0].output == Nested.model_validate(
        model
    ).model_dump(mode="json")
    stored = dbos.run_workflow(ctx, store_json, value)
    assert dbos.retrieve_workflow[dict[str, Any]](ctx, stored.workflow_id).get_result() == value


def listener(ctx: dbos.WorkflowContext, topic: str) -> str:
    dbos.set_event(ctx, topic, "ready")
    return dbos.recv[str](ctx, topic, timeout=timedelta(seconds=30))


@pytest.mark.parametrize("topic", ['it\'s "quoted"', "'; DROP TABLE notifications; --", "话题🚀"])
def test_hostile_topics_and_keys_are_plain_data(backend: Backend, topic: str) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, listener)
    ctx.launch()
    handle = dbos.run_workflow(ctx, listener, topic, workflow_id=f"listen {topic}")
    assert dbos.get_event[str](ctx, handle.workflow_id, topic) == "ready"
    dbos.send(ctx, handle.workflow_id, f"for {topic}", topic=topic)
    assert handle.get_result(timeout=timedelta(seconds=30)) == f"for {topic}"
    with pytest.raises(dbos.InvalidOptionError):
        dbos.send(ctx, handle.workflow_id, "x", topic="bad\x00topic")


def test_large_payloads_round_trip(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, echo)
    ctx.launch()
    big = "x" * (8 * 1024 * 1024) + "\x00end"
    handle = dbos.run_workflow(ctx, echo, big, workflow_id="big")
    assert handle.get_result() == big
    assert dbos.retrieve_workflow[str](ctx, "big").get_result() == big


def test_default_application_version_is_stable_across_restarts(backend: Backend) -> None:
    versions = []
    for _ in range(2):
        ctx = dbos.new_context(backend.config(application_version=None))
        dbos.register_workflow(ctx, echo)
        ctx.launch()
        versions.append(ctx.application_version)
        ctx.shutdown()
    other = dbos.new_context(backend.config(application_version=None))
    dbos.register_workflow(other, listener)
    other.launch()
    assert versions[0] == versions[1] != other.application_version
    other.shutdown()
