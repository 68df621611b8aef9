"""send and recv[T]: order, exactly-once delivery, topics, idempotency, durable timeouts."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel, TypeAdapter

import dbos_typed as dbos
from tests.conftest import Backend, Gate, wait_for


class Note(BaseModel):
    text: str
    n: int


def _steps(backend: Backend, workflow_id: str) -> list[tuple[Any, ...]]:
    return backend.query(
        "SELECT function_id, function_name, output, error, completed_at_epoch_ms "
        "FROM {s}.operation_outputs WHERE workflow_uuid = %s ORDER BY function_id",
        workflow_id,
    )


def _sleep_rows(backend: Backend, workflow_id: str) -> list[tuple[Any, ...]]:
    return [r for r in _steps(backend, workflow_id) if r[1] == "DBOS.sleep"]


def test_messages_arrive_in_order_exactly_once(backend: Backend) -> None:
    def receiver(ctx: dbos.WorkflowContext, count: int) -> list[int]:
        return [dbos.recv[int](ctx, "t", timeout=timedelta(seconds=10)) for _ in range(count)]

    ctx = backend.context_with(receiver)
    ctx.launch()
    handle = dbos.run_workflow(ctx, receiver, 20, workflow_id="r1")
    for i in range(20):
        dbos.send(ctx, "r1", i, "t")
    assert handle.get_result() == list(range(20))
    rows = backend.query(
        "SELECT message, consumed, consumed_by_function_id, serialization "
        "FROM {s}.notifications WHERE destination_uuid = %s ORDER BY created_at_epoch_ms",
        "r1",
    )
    assert [r[0] for r in rows] == [str(i) for i in range(20)]
    assert all(bool(r[1]) for r in rows)  # consumed, and the rows are kept
    assert {r[3] for r in rows} == {"portable_json"}
    recv_steps = {r[0] for r in _steps(backend, "r1") if r[1] == "DBOS.recv"}
    assert {r[2] for r in rows} == recv_steps  # each message consumed by its own recv step
    outputs = [r[2] for r in _steps(backend, "r1") if r[1] == "DBOS.recv"]
    assert outputs == [str(i) for i in range(20)]


def test_topics_are_isolated_and_none_is_a_topic(backend: Backend) -> None:
    def receiver(ctx: dbos.WorkflowContext) -> list[str]:
        a = dbos.recv[str](ctx, "a", timeout=timedelta(seconds=10))
        none = dbos.recv[str](ctx, timeout=timedelta(seconds=10))
        b = dbos.recv[str](ctx, "b", timeout=timedelta(seconds=10))
        return [a, none, b]

    ctx = backend.context_with(receiver)
    ctx.launch()
    dest = "topics"
    handle = dbos.run_workflow(ctx, receiver, workflow_id=dest)
    dbos.send(ctx, dest, "to-b", "b")
    dbos.send(ctx, dest, "to-none")
    dbos.send(ctx, dest, "to-a", "a")
    assert handle.get_result() == ["to-a", "to-none", "to-b"]
    topics = backend.query(
        "SELECT topic FROM {s}.notifications WHERE destination_uuid = %s ORDER BY topic", dest
    )
    assert topics == [("__null__topic__",), ("a",), ("b",)]


def test_message_sent_before_the_receiver_waits_is_kept(backend: Backend) -> None:
    gate = Gate()

    def receiver(ctx: dbos.WorkflowContext) -> Note:
        dbos.run_as_step(ctx, gate, name="gate")
        return dbos.recv[Note](ctx, "notes", timeout=timedelta(seconds=10))

    ctx = backend.context_with(receiver)
    ctx.launch()
    handle = dbos.run_workflow(ctx, receiver, workflow_id="early")
    gate.wait_entered()
    dbos.send(ctx, "early", Note(text="hi", n=1), "notes")
    gate.open()
    assert handle.get_result() == Note(text="hi", n=1)
    # The message was waiting, so no timeout had to be checkpointed.
    assert [r[1] for r in _steps(backend, "early")] == ["gate", "DBOS.recv"]


def test_send_from_a_workflow_is_a_step_sent_once_across_recovery(backend: Backend) -> None:
    gate = Gate()

    def receiver(ctx: dbos.WorkflowContext) -> str:
        first = dbos.recv[str](ctx, "t", timeout=timedelta(seconds=20))
        second = dbos.recv[str](ctx, "t", timeout=timedelta(seconds=20))
        return first + second

    def sender(ctx: dbos.WorkflowContext, dest: str) -> str:
        dbos.send(ctx, dest, "once", "t")
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.send(ctx, dest, "-twice", "t")
        return "sent"

    first = backend.context_with(receiver, sender)
    first.launch()
    dbos.run_workflow(first, receiver, workflow_id="dest")
    dbos.run_workflow(first, sender, "dest", workflow_id="sender")
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))  # the sender dies after its first send
    gate.open()

    second = backend.context_with(receiver, sender)
    second.launch()
    assert dbos.retrieve_workflow[str](second, "sender").get_result() == "sent"
    assert dbos.retrieve_workflow[str](second, "dest").get_result() == "once-twice"
    messages = backend.query(
        "SELECT message FROM {s}.notifications WHERE destination_uuid = %s "
        "ORDER BY created_at_epoch_ms",
        "dest",
    )
    assert messages == [('"once"',), ('"-twice"',)]
    assert [r[1] for r in _steps(backend, "sender")] == ["DBOS.send", "gate", "DBOS.send"]


def test_idempotency_key_delivers_once_per_destination(backend: Backend) -> None:
    def receiver(ctx: dbos.WorkflowContext) -> int:
        return dbos.recv[int](ctx, timeout=timedelta(seconds=10))

    ctx = backend.context_with(receiver)
    ctx.launch()
    a = dbos.run_workflow(ctx, receiver, workflow_id="a")
    b = dbos.run_workflow(ctx, receiver, workflow_id="b")
    for _ in range(3):
        dbos.send(ctx, "a", 1, idempotency_key="k")
    dbos.send(ctx, "b", 2, idempotency_key="k")
    assert (a.get_result(), b.get_result()) == (1, 2)
    rows = backend.query("SELECT message_uuid FROM {s}.notifications ORDER BY message_uuid")
    assert rows == [("k::a",), ("k::b",)]


def test_send_to_a_missing_workflow_raises(backend: Backend) -> None:
    def sender(ctx: dbos.WorkflowContext) -> None:
        dbos.send(ctx, "nobody", "hello")

    ctx = backend.context_with(sender)
    ctx.launch()
    with pytest.raises(dbos.NonExistentWorkflowError) as caught:
        dbos.send(ctx, "nobody", "hello")
    assert caught.value.workflow_id == "nobody"
    with pytest.raises(dbos.WorkflowFailedError) as failed:
        dbos.run_workflow(ctx, sender).get_result()
    assert failed.value.error_name == "NonExistentWorkflowError"
    assert backend.query("SELECT count(*) FROM {s}.notifications") == [(0,)]


def test_recv_validates_the_message_type(backend: Backend) -> None:
    def optional(ctx: dbos.WorkflowContext) -> int | None:
        return dbos.recv[TypeAdapter(int | None)](ctx, "o", timeout=timedelta(seconds=10))

    def strict(ctx: dbos.WorkflowContext) -> int:
        return dbos.recv[int](ctx, "s", timeout=timedelta(seconds=10))

    ctx = backend.context_with(optional, strict)
    ctx.launch()
    h1 = dbos.run_workflow(ctx, optional)
    dbos.send(ctx, h1.workflow_id, None, "o")
    assert h1.get_result() is None
    h2 = dbos.run_workflow(ctx, strict)
    dbos.send(ctx, h2.workflow_id, "not a number", "s")
    with pytest.raises(dbos.WorkflowFailedError) as failed:
        h2.get_result()
    assert failed.value.error_name == "SerializationError"


def test_recv_is_refused_outside_a_workflow_and_inside_a_step(backend: Backend) -> None:
    def in_step(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.run_as_step(ctx, lambda: dbos.recv[int](ctx), name="bad")
        except dbos.StepFailedError as exc:
            return exc.error_name
        return "accepted"

    ctx = backend.context_with(in_step)
    ctx.launch()
    with pytest.raises(dbos.InvalidOptionError):
        dbos.recv[int](ctx, "t")  # type: ignore[arg-type]
    assert dbos.run_workflow(ctx, in_step).get_result() == "InvalidOptionError"


def test_recv_timeout_is_checkpointed_and_replayed(backend: Backend) -> None:
    gate = Gate()

    def waiter(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.recv[int](ctx, "t", timeout=timedelta(milliseconds=200))
            outcome = "message"
        except dbos.WaitTimeoutError as exc:
            outcome = f"timeout {exc.timeout.total_seconds()}"
        dbos.run_as_step(ctx, gate, name="gate")
        return outcome

    first = backend.context_with(waiter)
    first.launch()
    dbos.run_workflow(first, waiter, workflow_id="to")
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))
    names = [r[1] for r in _steps(backend, "to")]
    assert names == ["DBOS.recv", "DBOS.sleep"]
    assert "WaitTimeoutError" in str(_steps(backend, "to")[0][3])

    second = backend.context_with(waiter)
    # A message that arrives now must not change the replayed outcome.
    dbos.send(second, "to", 5, "t")
    gate.open()
    second.launch()
    start = time.monotonic()
    assert dbos.retrieve_workflow[str](second, "to").get_result() == "timeout 0.2"
    assert time.monotonic() - start < 5
    assert backend.query(
        "SELECT consumed FROM {s}.notifications WHERE destination_uuid = %s", "to"
    ) in ([(False,)], [(0,)])


def test_recv_timeout_survives_a_restart_and_waits_only_the_remainder(backend: Backend) -> None:
    timeout = 3.0

    def waiter(ctx: dbos.WorkflowContext) -> str:
        try:
            return str(dbos.recv[int](ctx, "t", timeout=timedelta(seconds=timeout)))
        except dbos.WaitTimeoutError:
            return "timed out"

    first = backend.context_with(waiter)
    first.launch()
    started = time.time()
    dbos.run_workflow(first, waiter, workflow_id="durable-timeout")
    wait_for(lambda: bool(_sleep_rows(backend, "durable-timeout")))
    recorded = time.time()
    (_, _, deadline_text, _, completed_at) = _sleep_rows(backend, "durable-timeout")[0]
    deadline_ms = int(str(deadline_text))
    assert completed_at == deadline_ms  # as the Go SDK records a durable sleep
    # The deadline is the timeout after the wait began (millisecond rounding aside).
    assert started - 0.01 <= deadline_ms / 1000 - timeout <= recorded + 0.01
    # Let half the timeout pass, by the recorded deadline, so a wait restarted from
    # scratch would show.
    wait_for(lambda: time.time() >= deadline_ms / 1000 - timeout / 2)
    first.shutdown(timeout=timedelta(seconds=2))  # interrupts the wait; stays PENDING
    assert backend.query(
        "SELECT status FROM {s}.workflow_status WHERE workflow_uuid = %s", "durable-timeout"
    ) == [("PENDING",)]

    relaunched = time.time()
    second = backend.context_with(waiter)
    second.launch()
    result = dbos.retrieve_workflow[str](second, "durable-timeout").get_result()
    finished = time.time()
    assert result == "timed out"
    # The recorded deadline did not move, and the second wait ended at it: at most half
    # the timeout after the relaunch, where a fresh wait would take the whole timeout.
    assert _sleep_rows(backend, "durable-timeout")[0][2] == deadline_text
    assert finished >= deadline_ms / 1000 - 0.01
    assert finished - relaunched < timeout - 0.5
    assert [r[1] for r in _steps(backend, "durable-timeout")] == ["DBOS.recv", "DBOS.sleep"]


def test_cancel_interrupts_a_waiting_recv_promptly(backend: Backend) -> None:
    def waiter(ctx: dbos.WorkflowContext) -> int:
        return dbos.recv[int](ctx, "t", timeout=timedelta(seconds=60))

    ctx = backend.context_with(waiter)
    ctx.launch()
    handle = dbos.run_workflow(ctx, waiter, workflow_id="cancel-me")
    wait_for(lambda: bool(_sleep_rows(backend, "cancel-me")))
    start = time.monotonic()
    dbos.cancel_workflow(ctx, "cancel-me")
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=timedelta(seconds=10))
    assert time.monotonic() - start < 5  # the wait had 60 s to go
    assert [r[1] for r in _steps(backend, "cancel-me")] == ["DBOS.sleep"]


def test_a_send_from_another_context_wakes_the_receiver(backend: Backend) -> None:
    def waiter(ctx: dbos.WorkflowContext) -> int:
        return dbos.recv[int](ctx, "t", timeout=timedelta(seconds=30))

    receiving = backend.context_with(waiter)
    receiving.launch()
    sending = backend.new_context(app_name="other-app")  # another process, in effect
    handle = dbos.run_workflow(receiving, waiter, workflow_id="remote")
    wait_for(lambda: bool(_sleep_rows(backend, "remote")))
    start = time.monotonic()
    dbos.send(sending, "remote", 42, "t")
    assert handle.get_result(timeout=timedelta(seconds=10)) == 42
    # Woken by LISTEN/NOTIFY or by polling, not by the periodic safety net (5 s).
    assert time.monotonic() - start < 2.5


def test_many_workflows_wait_at_once_without_a_connection_each(backend: Backend) -> None:
    def waiter(ctx: dbos.WorkflowContext) -> int:
        return dbos.recv[int](ctx, "t", timeout=timedelta(seconds=60))

    ctx = backend.context_with(waiter, max_connections=4)
    ctx.launch()
    handles = [dbos.run_workflow(ctx, waiter, workflow_id=f"many-{i}") for i in range(100)]
    wait_for(
        lambda: (
            backend.query(
                "SELECT count(*) FROM {s}.operation_outputs WHERE function_name = 'DBOS.sleep'"
            )
            == [(100,)]
        ),
        seconds=30,
    )
    for i in range(100):
        dbos.send(ctx, f"many-{i}", i, "t")
    assert [h.get_result(timeout=timedelta(seconds=30)) for h in handles] == list(range(100))


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_listener_reconnects_and_wakes_waiters(backend: Backend) -> None:
    def waiter(ctx: dbos.WorkflowContext) -> int:
        return dbos.recv[int](ctx, "t", timeout=timedelta(seconds=30))

    receiving = backend.context_with(waiter, app_name="listening-app")
    receiving.launch()
    sending = backend.new_context(app_name="other-app")
    handle = dbos.run_workflow(receiving, waiter, workflow_id="reconnect")
    wait_for(lambda: bool(_sleep_rows(backend, "reconnect")))
    with psycopg.connect(backend.url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'listening-app' AND query LIKE 'LISTEN%%'"
        ).fetchall()
    assert killed == [(True,)]
    dbos.send(sending, "reconnect", 7, "t")  # may be notified while nobody listens
    assert handle.get_result(timeout=timedelta(seconds=10)) == 7


def test_concurrent_senders_each_deliver_once(backend: Backend) -> None:
    def receiver(ctx: dbos.WorkflowContext) -> list[int]:
        return sorted(dbos.recv[int](ctx, "t", timeout=timedelta(seconds=20)) for _ in range(40))

    ctx = backend.context_with(receiver)
    ctx.launch()
    handle = dbos.run_workflow(ctx, receiver, workflow_id="fan-in")

    def send_range(start: int) -> None:
        for i in range(start, start + 10):
            dbos.send(ctx, "fan-in", i, "t")

    threads = [threading.Thread(target=send_range, args=(n * 10,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handle.get_result() == list(range(40))


def test_untyped_reads_are_plain_json_and_json_value_validates(backend: Backend) -> None:
    class Note(BaseModel):
        text: str
        tags: set[str]

    def reader(ctx: dbos.WorkflowContext) -> list[dbos.JsonValue]:
        plain = dbos.recv(ctx, "plain", timeout=timedelta(seconds=20))
        checked = dbos.recv[TypeAdapter(dbos.JsonValue)](ctx, "checked", timeout=timedelta(0))
        return [plain, checked]

    ctx = backend.context_with(reader)
    ctx.launch()
    handle = dbos.run_workflow(ctx, reader, workflow_id="reader")
    dbos.send(ctx, "reader", [1, {"x": None}], "checked")
    dbos.send(ctx, "reader", Note(text="hi", tags={"a"}), "plain")
    # The model arrives as the JSON it was written as; a set as a list.
    assert handle.get_result(timeout=timedelta(seconds=20)) == [
        {"text": "hi", "tags": ["a"]},
        [1, {"x": None}],
    ]
