"""Configured instances: one method registered for several objects, each under a config name.

Every way a workflow runs (directly, from a queue, recovered after a crash, from a client's
enqueue, debounced) must run it on the object registered with the row's config name.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import dbos_typed as dbos
from dbos_typed import testing
from tests.conftest import Backend

WAIT = timedelta(seconds=20)
HOLD = timedelta(seconds=60)


class Greeter:
    """A receiver with state of its own: which greeting it uses, and whom it greeted."""

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting
        self.greeted: list[str] = []

    def greet(self, ctx: dbos.WorkflowContext, who: str) -> str:
        text = dbos.run_as_step(ctx, lambda: f"{self.greeting}, {who}", name="compose")
        dbos.run_as_step(ctx, lambda: self.greeted.append(who), name="note")
        return text


def _app(backend: Backend) -> tuple[dbos.DBOSContext, Greeter, Greeter]:
    ctx = backend.new_context("greet")
    a, b = Greeter("hello"), Greeter("bonjour")
    dbos.register_workflow(ctx, a.greet, config_name="a")
    dbos.register_workflow(ctx, b.greet, config_name="b")
    dbos.register_queue(ctx, "greetings")
    return ctx, a, b


def _row(backend: Backend, workflow_id: str) -> tuple[object, ...]:
    rows = backend.query(
        "SELECT name, class_name, config_name, status FROM {s}.workflow_status "
        "WHERE workflow_uuid = %s",
        workflow_id,
    )
    assert len(rows) == 1
    return rows[0]


def test_two_instances_run_on_their_own_receivers_directly_and_on_a_queue(
    backend: Backend,
) -> None:
    ctx, a, b = _app(backend)
    ctx.launch()
    assert dbos.run_workflow(ctx, a.greet, "ann").get_result(timeout=WAIT) == "hello, ann"
    assert dbos.run_workflow(ctx, b.greet, "bob").get_result(timeout=WAIT) == "bonjour, bob"
    queued_a = dbos.run_workflow(ctx, a.greet, "amy", queue="greetings")
    queued_b = dbos.run_workflow(ctx, b.greet, "ben", queue="greetings")
    assert queued_b.get_result(timeout=WAIT) == "bonjour, ben"
    assert queued_a.get_result(timeout=WAIT) == "hello, amy"
    assert a.greeted == ["ann", "amy"]
    assert b.greeted == ["bob", "ben"]


def test_the_row_and_the_status_record_the_class_and_config_name(backend: Backend) -> None:
    ctx, _, b = _app(backend)
    ctx.launch()
    handle = dbos.run_workflow(ctx, b.greet, "bob", workflow_id="g-b")
    handle.get_result(timeout=WAIT)
    assert _row(backend, "g-b") == ("Greeter.greet", "Greeter", "b", "SUCCESS")
    status = handle.get_status()
    assert (status.name, status.class_name, status.config_name) == ("Greeter.greet", "Greeter", "b")
    listed = dbos.list_workflows(ctx, workflow_ids=["g-b"])
    assert [(s.class_name, s.config_name) for s in listed] == [("Greeter", "b")]
    entries = dbos.list_registered_workflows(ctx)
    assert [(e.name, e.config_name, e.class_name) for e in entries] == [
        ("Greeter.greet", "a", "Greeter"),
        ("Greeter.greet", "b", "Greeter"),
    ]
    assert entries[1].function == b.greet


def test_a_crashed_workflow_of_instance_b_recovers_on_instance_b(backend: Backend) -> None:
    ctx, a, b = _app(backend)
    ctx.launch()
    with testing.crash_at(ctx, "note", when="before"):
        handle = dbos.run_workflow(ctx, b.greet, "bob", workflow_id="crashed-b")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result(timeout=WAIT)
    assert _row(backend, "crashed-b")[2:] == ("b", "PENDING")
    again = testing.restart(ctx)
    backend.contexts.append(again)
    recovered = dbos.retrieve_workflow[str](again, "crashed-b").get_result(timeout=WAIT)
    assert recovered == "bonjour, bob"
    assert b.greeted == ["bob"]
    assert a.greeted == []


def test_a_client_enqueue_with_config_name_reaches_that_instance(backend: Backend) -> None:
    ctx, a, b = _app(backend)
    ctx.launch()
    with dbos.new_client(backend.config("greet")) as client:
        # A client may enqueue any instance: one registered nowhere waits on the queue.
        unknown = dbos.enqueue[str](
            client, "greetings", "Greeter.greet", "zed", config_name="zz", workflow_id="g-zz"
        )
        plain = dbos.enqueue[str](client, "greetings", "Greeter.greet", "pat", workflow_id="g-0")
        to_a = dbos.enqueue[str](
            client, "greetings", "Greeter.greet", "amy", config_name="a", class_name="Greeter"
        )
        to_b = dbos.enqueue[str](client, "greetings", "Greeter.greet", "ben", config_name="b")
        assert to_b.get_result(timeout=WAIT) == "bonjour, ben"
        assert to_a.get_result(timeout=WAIT) == "hello, amy"
        status = to_a.get_status()
        assert (status.class_name, status.config_name) == ("Greeter", "a")
        assert to_b.get_status().config_name == "b"
    # Enqueued first, in the same queue: had they been claimable they would have run.
    assert unknown.workflow_id == "g-zz" and plain.workflow_id == "g-0"
    assert _row(backend, "g-zz")[2:] == ("zz", "ENQUEUED")
    assert _row(backend, "g-0")[2:] == (None, "ENQUEUED")
    assert a.greeted == ["amy"] and b.greeted == ["ben"]


def test_a_debounce_reaches_the_right_instance(backend: Backend) -> None:
    ctx, a, b = _app(backend)
    to_b = dbos.new_debouncer(ctx, b.greet)
    ctx.launch()
    first = to_b.debounce(ctx, "k", "bea", delay=HOLD)
    rows = backend.query(
        "SELECT deduplication_id, config_name FROM {s}.workflow_status WHERE workflow_uuid = %s",
        first.workflow_id,
    )
    assert rows == [("Greeter.greet/b-k", "b")]
    last = to_b.debounce(ctx, "k", "bob", delay=timedelta(milliseconds=10))
    assert last.workflow_id == first.workflow_id
    assert last.get_result(timeout=WAIT) == "bonjour, bob"
    with dbos.new_client(backend.config("greet")) as client:
        handle = dbos.debounce[str](
            client, "Greeter.greet", "k", "amy", delay=timedelta(milliseconds=10), config_name="a"
        )
        assert handle.get_result(timeout=WAIT) == "hello, amy"
        assert handle.get_status().config_name == "a"
    assert a.greeted == ["amy"] and b.greeted == ["bob"]


def test_registration_errors(backend: Backend) -> None:
    ctx = backend.new_context("greet")
    a, b, other = Greeter("hello"), Greeter("bonjour"), Greeter("hi")
    dbos.register_workflow(ctx, a.greet, config_name="a")
    with pytest.raises(dbos.RegistrationError, match="config name 'a'"):
        dbos.register_workflow(ctx, b.greet, config_name="a")
    with pytest.raises(dbos.RegistrationError, match="already registered"):
        dbos.register_workflow(ctx, a.greet, config_name="a2")

    def plain(ctx: dbos.WorkflowContext, who: str) -> str:
        return who

    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.register_workflow(ctx, plain, config_name="a")
    assert info.value.argument == "config_name"
    for bad in ("", "x\x00y", 3):
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.register_workflow(ctx, other.greet, config_name=bad)  # type: ignore[arg-type]
        assert info.value.argument == "config_name"
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.register_workflow(ctx, other.greet, config_name="o", schedule="@hourly")  # type: ignore[call-overload]
    assert info.value.argument == "config_name"
    # The same method bound to another object, with a config name of its own, is fine.
    dbos.register_workflow(ctx, b.greet, config_name="b")


def test_starting_an_instance_that_is_not_registered_fails(backend: Backend) -> None:
    ctx, _, _ = _app(backend)
    dbos.register_queue(ctx, "other")
    ctx.launch()
    stranger = Greeter("hey")
    # Neither directly nor on a queue: a context enqueues only what it registered.
    with pytest.raises(dbos.RegistrationError, match="configured instances") as info:
        dbos.run_workflow(ctx, stranger.greet, "sam")
    assert "'a', 'b'" in str(info.value)
    with pytest.raises(dbos.RegistrationError, match="configured instances"):
        dbos.run_workflow(ctx, stranger.greet, "sam", queue="greetings")
    with pytest.raises(dbos.RegistrationError, match="configured instances"):
        dbos.new_debouncer(ctx, stranger.greet)
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(0,)]


def test_a_registration_without_config_name_serves_rows_without_one(backend: Backend) -> None:
    ctx = backend.new_context("greet")
    plain, a = Greeter("hi"), Greeter("hello")
    dbos.register_workflow(ctx, plain.greet)
    dbos.register_workflow(ctx, a.greet, config_name="a")
    dbos.register_queue(ctx, "greetings")
    ctx.launch()
    assert dbos.run_workflow(ctx, plain.greet, "pat").get_result(timeout=WAIT) == "hi, pat"
    with dbos.new_client(backend.config("greet")) as client:
        default = dbos.enqueue[str](client, "greetings", "Greeter.greet", "ned", config_name="")
        chosen = dbos.enqueue[str](client, "greetings", "Greeter.greet", "amy", config_name="a")
        assert default.get_result(timeout=WAIT) == "hi, ned"
        assert chosen.get_result(timeout=WAIT) == "hello, amy"
        assert default.get_status().config_name is None
    assert plain.greeted == ["pat", "ned"] and a.greeted == ["amy"]
