"""Hostile input is data, never SQL; what cannot be stored is refused with a typed error."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed._core.handle import PENDING, OutcomeWatch
from dbos_typed._core.validate import LONGEST_WAIT
from tests.conftest import Backend, Gate, wait_for
from tests.strategies import Nested, json_values, nested_models

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
    orders = dbos.register_queue(ctx, "orders")
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
            "name": lambda: dbos.register_queue(ctx, "bad\x00queue"),
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


# The bad-input catalogue of docs/reliability.md: each case raises a typed error and writes
# nothing.


def count(backend: Backend, table: str, where: str = "", *params: object) -> int:
    [(found,)] = backend.query(f"SELECT count(*) FROM {{s}}.{table} {where}", *params)
    assert isinstance(found, int)
    return found


NON_FINITE = [float("nan"), float("inf"), float("-inf")]


def takes_float(ctx: dbos.WorkflowContext, x: float) -> float:
    return x


def test_non_finite_workflow_inputs_are_refused_on_every_start(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, takes_float)
    floats = dbos.register_queue(ctx, "floats")
    ctx.launch()
    client = dbos.new_client(backend.config())

    def starts(value: float) -> list[Callable[[], object]]:
        return [
            lambda: dbos.run_workflow(ctx, takes_float, value),
            lambda: dbos.run_workflow(ctx, takes_float, value, queue=floats),
        ]

    try:
        for value in NON_FINITE:
            for call in starts(value):
                with pytest.raises(dbos.SerializationError, match="the workflow input"):
                    call()
            # A client enqueues by name, with no declared type: the input is its argument.
            with pytest.raises(dbos.InvalidOptionError, match="no number for it") as info:
                dbos.enqueue[float](client, "floats", "takes_float", value)
            assert info.value.argument == "input"
    finally:
        client.close()
    assert count(backend, "workflow_status") == 0
    # What can be stored still is, and comes back from the database as it was.
    handle = dbos.run_workflow(ctx, takes_float, 1e308)
    assert dbos.retrieve_workflow[float](ctx, handle.workflow_id).get_result() == 1e308


def non_finite_outputs(ctx: dbos.WorkflowContext, where: str) -> float:
    if where == "typed step":
        return dbos.run_as_step(ctx, lambda: float("inf"), result_type=float)
    if where == "untyped step":
        return dbos.run_as_step(ctx, lambda: float("nan"))
    return float("-inf")


@pytest.mark.parametrize("where", ["typed step", "untyped step", "result"])
def test_non_finite_outputs_fail_the_workflow_instead_of_reading_back_as_null(
    backend: Backend, where: str
) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, non_finite_outputs)
    ctx.launch()
    handle = dbos.run_workflow(ctx, non_finite_outputs, where)
    with pytest.raises(dbos.WorkflowFailedError) as info:
        handle.get_result()
    assert info.value.error_name == "SerializationError"
    client = dbos.new_client(backend.config())
    try:
        with pytest.raises(dbos.WorkflowFailedError, match="no number for it"):
            dbos.retrieve_workflow[float](client, handle.workflow_id).get_result()
    finally:
        client.close()
    assert handle.get_status().output is None
    assert count(backend, "operation_outputs") == 0


def publishes_non_finite(ctx: dbos.WorkflowContext, destination: str) -> list[str]:
    refused = []
    calls: list[Callable[[], object]] = [
        lambda: dbos.send(ctx, destination, float("nan")),
        lambda: dbos.set_event(ctx, "level", float("inf")),
        lambda: dbos.write_stream(ctx, "levels", [1.0, float("-inf")]),
    ]
    for call in calls:
        try:
            call()
        except dbos.SerializationError as exc:
            refused.append(str(exc))
    return refused


def test_non_finite_messages_events_and_stream_values_are_refused(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, echo)
    dbos.register_workflow(ctx, publishes_non_finite)
    ctx.launch()
    dbos.run_workflow(ctx, echo, "x", workflow_id="target").get_result()
    with pytest.raises(dbos.SerializationError, match="the message"):
        dbos.send(ctx, "target", {"ratio": float("nan")})
    refused = dbos.run_workflow(ctx, publishes_non_finite, "target").get_result()
    assert len(refused) == 3
    assert "the message" in refused[0]
    assert "event 'level'" in refused[1]
    assert "stream 'levels'" in refused[2] and "[1]" in refused[2]
    for table in ("notifications", "workflow_events", "workflow_events_history", "streams"):
        assert count(backend, table) == 0, table
    assert count(backend, "operation_outputs") == 1  # echo's own step


def publishes_unserializable(ctx: dbos.WorkflowContext, destination: str) -> list[str]:
    refused = []
    calls: list[Callable[[], object]] = [
        lambda: dbos.send(ctx, destination, object()),
        lambda: dbos.send(ctx, destination, lambda: 1, "topic"),
        lambda: dbos.set_event(ctx, "level", object()),
        lambda: dbos.set_event(ctx, "level", {"nested": [lambda: 1]}),
        lambda: dbos.write_stream(ctx, "levels", object()),
        lambda: dbos.write_stream(ctx, "levels", lambda: 1),
    ]
    for call in calls:
        try:
            call()
        except dbos.SerializationError as exc:
            refused.append(str(exc))
    dbos.set_event(ctx, "after", "refusals took no step")
    return refused


def test_unserializable_messages_events_and_stream_values_are_refused(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, echo)
    dbos.register_workflow(ctx, publishes_unserializable)
    ctx.launch()
    dbos.run_workflow(ctx, echo, "x", workflow_id="target").get_result()
    with dbos.new_client(backend.config()) as client:
        for sender in (ctx, client):
            with pytest.raises(dbos.SerializationError, match="the message") as info:
                dbos.send(sender, "target", object())
            assert "object" in str(info.value)
            with pytest.raises(dbos.SerializationError, match="the message") as info:
                dbos.send(sender, "target", lambda: 1, idempotency_key="once")
            assert "function" in str(info.value)
    refused = dbos.run_workflow(
        ctx, publishes_unserializable, "target", workflow_id="publisher"
    ).get_result()
    assert len(refused) == 6
    assert all("the message" in r for r in refused[:2])
    assert all("event 'level'" in r for r in refused[2:4])
    assert all("stream 'levels'" in r for r in refused[4:])
    assert dbos.get_event[str](ctx, "publisher", "after") == "refusals took no step"
    for table in ("notifications", "streams"):
        assert count(backend, table) == 0, table
    # The one event written took step 0: the refused calls consumed no step ID.
    steps = backend.query(
        "SELECT function_id, function_name FROM {s}.operation_outputs WHERE workflow_uuid = %s",
        "publisher",
    )
    assert steps == [(0, "DBOS.setEvent")]
    assert backend.query("SELECT key FROM {s}.workflow_events") == [("after",)]


def takes_any(ctx: dbos.WorkflowContext, x: Any) -> Any:
    return x


def stores_json(ctx: dbos.WorkflowContext, value: dict[str, Any]) -> dict[str, Any]:
    return dbos.run_as_step(ctx, lambda: value, result_type=dict[str, Any])


class Labelled(BaseModel):
    label: str


# Values whose JSON form is plain JSON of another type: declared Any, they would come back
# as that type.
NOT_PLAIN_JSON: list[Any] = [
    {1, 2},
    frozenset({"a"}),
    (1, 2),
    b"bytes",
    Labelled(label="x"),
    datetime(2026, 1, 1, tzinfo=UTC),
    {1: "an int key"},
    [1, {"nested": {3}}],
]


def test_values_declared_any_that_would_come_back_as_another_type_are_refused(
    backend: Backend,
) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, takes_any)
    dbos.register_workflow(ctx, stores_json)
    ctx.launch()
    for value in NOT_PLAIN_JSON:
        with pytest.raises(dbos.SerializationError, match="declared Any") as info:
            dbos.run_workflow(ctx, takes_any, value)
        assert "the workflow input" in str(info.value)
    assert count(backend, "workflow_status") == 0
    # Inside a typed container too; a step output refused is a failed workflow, no step row.
    with pytest.raises(dbos.SerializationError, match=r"at \['tags'\]"):
        dbos.run_workflow(ctx, stores_json, {"tags": {"a", "b"}})
    handle = dbos.run_workflow(ctx, takes_any, [1, "two", {"three": None}])
    assert dbos.retrieve_workflow(ctx, handle.workflow_id).get_result() == [
        1,
        "two",
        {"three": None},
    ]


def takes_bytes(ctx: dbos.WorkflowContext, data: bytes) -> bytes:
    return data


def test_bytes_that_are_not_utf8_are_refused(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, takes_bytes)
    ctx.launch()
    with pytest.raises(dbos.SerializationError, match="utf-8"):
        dbos.run_workflow(ctx, takes_bytes, b"\xff\xfe")
    assert count(backend, "workflow_status") == 0
    handle = dbos.run_workflow(ctx, takes_bytes, "héllo".encode())
    assert dbos.retrieve_workflow[bytes](ctx, handle.workflow_id).get_result() == "héllo".encode()


SURROGATE = "a\udcffb"  # what os.fsdecode makes of an undecodable byte


def names_in_a_workflow(ctx: dbos.WorkflowContext, _: None) -> list[str]:
    named = []
    calls: list[Callable[[], object]] = [
        lambda: dbos.set_event(ctx, SURROGATE, 1),
        lambda: dbos.recv[str](ctx, SURROGATE, timeout=timedelta(0)),
        lambda: dbos.write_stream(ctx, SURROGATE, 1),
        lambda: dbos.run_as_step(ctx, lambda: 1, name=SURROGATE),
    ]
    for call in calls:
        try:
            call()
        except dbos.InvalidOptionError as exc:
            named.append(exc.argument)
    return named


def test_lone_surrogates_in_names_are_refused_before_anything_is_written(
    backend: Backend,
) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, echo)
    dbos.register_workflow(ctx, names_in_a_workflow)
    orders = dbos.register_queue(ctx, "orders")
    ctx.launch()
    calls: list[tuple[str, Callable[[], object]]] = [
        ("workflow_id", lambda: dbos.run_workflow(ctx, echo, "x", workflow_id=SURROGATE)),
        ("queue", lambda: dbos.run_workflow(ctx, echo, "x", queue=SURROGATE)),
        ("name", lambda: dbos.register_queue(ctx, SURROGATE)),
        (
            "partition_key",
            lambda: dbos.run_workflow(ctx, echo, "x", queue=orders, partition_key=SURROGATE),
        ),
        ("workflow_id", lambda: dbos.retrieve_workflow(ctx, SURROGATE)),
        ("topic", lambda: dbos.send(ctx, "anyone", "x", topic=SURROGATE)),
        ("idempotency_key", lambda: dbos.send(ctx, "anyone", "x", idempotency_key=SURROGATE)),
        ("key", lambda: dbos.get_event(ctx, "anyone", SURROGATE, timeout=timedelta(0))),
    ]
    for argument, call in calls:
        with pytest.raises(dbos.InvalidOptionError, match="surrogate") as info:
            call()
        assert info.value.argument == argument
    named = dbos.run_workflow(ctx, names_in_a_workflow, None, workflow_id="names").get_result()
    assert named == ["key", "topic", "key", "name"]
    # In a payload a surrogate is not text either: refused as a value.
    with pytest.raises(dbos.SerializationError, match="workflow input"):
        dbos.run_workflow(ctx, echo, SURROGATE)
    assert count(backend, "workflow_status") == 1  # "names"
    assert count(backend, "operation_outputs") == 0
    for table in ("notifications", "workflow_events", "streams"):
        assert count(backend, table) == 0, table


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _failed_start(config: dbos.Config, bound: float) -> tuple[float, BaseException | None]:
    """How long `new_context` took to fail (run on a thread, so a hang fails the test)."""
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            dbos.new_context(config).shutdown()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    began = time.monotonic()
    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"new_context still waiting after {bound}s"
    return time.monotonic() - began, outcome[0]


def test_a_server_that_is_down_is_waited_for_until_connect_timeout() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_unused_port()}/postgres"
    config = dbos.Config(app_name="x", database_url=url, connect_timeout=timedelta(seconds=1))
    elapsed, error = _failed_start(config, bound=20)
    assert isinstance(error, dbos.InitializationError), error
    assert "attempts in 1s" in str(error)
    assert 1.0 <= elapsed < 6.0


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_a_sub_second_connect_timeout_does_not_wait_forever(silent_server: int) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/postgres"
    config = dbos.Config(
        app_name="x", database_url=url, connect_timeout=timedelta(milliseconds=500)
    )
    # libpq given 0 (500 ms truncated) would wait for an answer that never comes.
    elapsed, error = _failed_start(config, bound=30)
    assert isinstance(error, dbos.InitializationError), error
    assert 0.5 <= elapsed < 15.0


HUGE = timedelta(days=999_999_999)


def test_a_huge_get_result_timeout_waits_instead_of_overflowing(backend: Backend) -> None:
    gate = Gate()

    def gated(ctx: dbos.WorkflowContext, value: str) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return value

    ctx = backend.new_context()
    dbos.register_workflow(ctx, gated)
    ctx.launch()
    handle = dbos.run_workflow(ctx, gated, "done")
    gate.wait_entered()
    # The run is here and unfinished: the handle waits on it for as long as it asks.
    watch = OutcomeWatch(handle, HUGE, None, threading.Event())
    try:
        assert watch.local_result() is PENDING and watch.local_pending
        wait = watch.next_wait()
        assert wait is not None and wait <= threading.TIMEOUT_MAX
    finally:
        watch.close()
    gate.open()
    assert handle.get_result(timeout=HUGE) == "done"


def waits_very_long(ctx: dbos.WorkflowContext, how: str) -> str:
    if how == "sleep":
        dbos.sleep(ctx, HUGE)
    elif how == "recv":
        dbos.recv[str](ctx, "never", timeout=HUGE)
    else:
        dbos.get_event[str](ctx, ctx.workflow_id, "never", timeout=HUGE)
    return how


@pytest.mark.parametrize("how", ["sleep", "recv", "get_event"])
def test_huge_durable_waits_record_a_deadline_a_century_ahead_at_most(
    backend: Backend, how: str
) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, waits_very_long)
    ctx.launch()
    handle = dbos.run_workflow(ctx, waits_very_long, how)
    wait_for(
        lambda: count(backend, "operation_outputs", "WHERE function_name = %s", "DBOS.sleep") == 1
    )
    [deadline] = [
        s.completed_at
        for s in dbos.get_workflow_steps(ctx, handle.workflow_id)
        if s.name == "DBOS.sleep"
    ]
    assert deadline is not None
    # Deadlines are whole milliseconds, and a sleep's may round up by one.
    assert deadline <= datetime.now(UTC) + LONGEST_WAIT + timedelta(milliseconds=1)
    dbos.cancel_workflow(ctx, handle.workflow_id)
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=timedelta(seconds=30))


def sleeps_negative(ctx: dbos.WorkflowContext, _: None) -> str:
    try:
        dbos.sleep(ctx, timedelta(seconds=-5))
    except dbos.InvalidOptionError as exc:
        refused = exc.argument
    else:
        refused = "nothing"
    dbos.sleep(ctx, timedelta(0))  # zero stays allowed: it returns at once
    return refused


def test_a_negative_sleep_is_refused_like_a_negative_timeout(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, sleeps_negative)
    ctx.launch()
    handle = dbos.run_workflow(ctx, sleeps_negative, None)
    assert handle.get_result() == "duration"
    # Only the zero sleep was recorded.
    assert [s.name for s in dbos.get_workflow_steps(ctx, handle.workflow_id)] == ["DBOS.sleep"]


def test_a_huge_workflow_timeout_or_delay_is_shortened_and_deadlines_still_fire(
    backend: Backend,
) -> None:
    def waits(ctx: dbos.WorkflowContext) -> str:
        dbos.recv[str](ctx, "never", timeout=timedelta(hours=1))
        return "late"

    ctx = backend.context_with(echo, waits)
    queue = dbos.register_queue(ctx, "later")
    ctx.launch()
    huge = timedelta(days=999_999_999)
    started = dbos.run_workflow(ctx, echo, "a", timeout=huge, workflow_id="huge-timeout")
    assert started.get_result(timeout=timedelta(seconds=20)) == "a"
    delayed = dbos.run_workflow(ctx, echo, "b", queue=queue, delay=huge, workflow_id="huge-delay")
    status = delayed.get_status()  # the stored times read back as datetimes
    assert status.status is dbos.StatusName.DELAYED
    assert status.delay_until is not None
    assert status.delay_until < datetime.now(UTC) + LONGEST_WAIT + timedelta(days=1)
    # The deadline thread survived both: a short timeout still cancels on time.
    short = dbos.run_workflow(ctx, waits, timeout=timedelta(milliseconds=300))
    with pytest.raises(dbos.WorkflowDeadlineExceededError):
        short.get_result(timeout=timedelta(seconds=20))
