"""An application version chosen per start: recorded, and only its executors run it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from dbos_typed import testing
from tests.conftest import Backend

WAIT = timedelta(seconds=20)


def ping(ctx: dbos.WorkflowContext) -> str:
    return dbos.run_as_step(ctx, lambda: "pong", name="pong")


def _app(backend: Backend, version: str, executor: str) -> dbos.DBOSContext:
    ctx = backend.new_context("shop", application_version=version, executor_id=executor)
    dbos.register_workflow(ctx, ping, name="ping")
    dbos.register_queue(ctx, "orders")
    return ctx


def _version_and_status(backend: Backend, workflow_id: str) -> tuple[object, ...]:
    [row] = backend.query(
        "SELECT application_version, status FROM {s}.workflow_status WHERE workflow_uuid = %s",
        workflow_id,
    )
    return row


def test_a_direct_start_records_the_version_given_and_runs_here(backend: Backend) -> None:
    ctx = _app(backend, "v1", "only")
    ctx.launch()
    handle = dbos.run_workflow(ctx, ping, workflow_id="direct", application_version="v2")
    assert handle.get_result(timeout=WAIT) == "pong"
    assert handle.get_status().application_version == "v2"
    assert _version_and_status(backend, "direct") == ("v2", "SUCCESS")
    plain = dbos.run_workflow(ctx, ping, workflow_id="plain")
    assert plain.get_result(timeout=WAIT) == "pong"
    assert _version_and_status(backend, "plain") == ("v1", "SUCCESS")


def test_only_a_runner_of_the_version_given_dequeues_it(backend: Backend) -> None:
    old = _app(backend, "v1", "old")
    old.launch()
    mine = dbos.run_workflow(
        old, ping, queue="orders", workflow_id="for-v2", application_version="v2"
    )
    with dbos.new_client(backend.config("shop")) as client:
        theirs = dbos.enqueue[str](
            client, "orders", "ping", workflow_id="client-v2", application_version="v2"
        )
        # Enqueued after both, on the same queue: once v1 ran it, v1 has passed them over.
        later = dbos.run_workflow(old, ping, queue="orders", workflow_id="for-v1")
        assert later.get_result(timeout=WAIT) == "pong"
        assert _version_and_status(backend, "for-v2") == ("v2", "ENQUEUED")
        assert _version_and_status(backend, "client-v2") == ("v2", "ENQUEUED")

        new = _app(backend, "v2", "new")
        new.launch()
        assert mine.get_result(timeout=WAIT) == "pong"
        assert theirs.get_result(timeout=WAIT) == "pong"
    for workflow_id in ("for-v2", "client-v2"):
        assert _version_and_status(backend, workflow_id) == ("v2", "SUCCESS")
        assert dbos.retrieve_workflow(new, workflow_id).get_status().executor_id == "new"


def test_a_client_debounce_records_the_version_given(backend: Backend) -> None:
    old = _app(backend, "v1", "old")
    old.launch()
    with dbos.new_client(backend.config("shop")) as client:
        burst = dbos.debounce[str](
            client,
            "ping",
            "k",
            delay=timedelta(hours=1),
            queue="orders",
            workflow_id="burst-v2",
            application_version="v2",
        )
        assert _version_and_status(backend, "burst-v2") == ("v2", "DELAYED")
        # A call that joins the burst, with no version of its own, keeps the burst's.
        joined = dbos.debounce[str](client, "ping", "k", delay=timedelta(0), queue="orders")
        assert joined.workflow_id == "burst-v2"
        # Enqueued after the burst was due: once v1 ran it, v1 has passed the burst over.
        later = dbos.run_workflow(old, ping, queue="orders", workflow_id="for-v1")
        assert later.get_result(timeout=WAIT) == "pong"
        assert _version_and_status(backend, "burst-v2") == ("v2", "ENQUEUED")

        new = _app(backend, "v2", "new")
        new.launch()
        assert burst.get_result(timeout=WAIT) == "pong"
    assert _version_and_status(backend, "burst-v2") == ("v2", "SUCCESS")
    assert dbos.retrieve_workflow(new, "burst-v2").get_status().executor_id == "new"


def test_recovery_leaves_a_workflow_of_another_version_to_that_version(
    backend: Backend,
) -> None:
    ctx = _app(backend, "v1", "same")
    ctx.launch()
    with testing.crash_at(ctx, "pong") as point:
        handle = dbos.run_workflow(ctx, ping, workflow_id="crashed", application_version="v2")
        with pytest.raises(testing.SimulatedCrash):
            handle.get_result(timeout=WAIT)
    assert point.fired
    # A restart of v1 recovers this executor's own version only (launch recovers at once).
    restarted = testing.restart(ctx)
    assert _version_and_status(backend, "crashed") == ("v2", "PENDING")
    restarted.shutdown()
    # The same executor, launched at v2, takes it over.
    v2 = _app(backend, "v2", "same")
    v2.launch()
    assert dbos.retrieve_workflow[str](v2, "crashed").get_result(timeout=WAIT) == "pong"
    assert _version_and_status(backend, "crashed") == ("v2", "SUCCESS")


@pytest.mark.parametrize("version", ["", "v\x00", 5], ids=["empty", "nul", "int"])
def test_the_version_must_be_a_storable_name(backend: Backend, version: Any) -> None:
    ctx = _app(backend, "v1", "only")
    ctx.launch()
    with pytest.raises(dbos.InvalidOptionError) as direct:
        dbos.run_workflow(ctx, ping, application_version=version)
    with pytest.raises(dbos.InvalidOptionError) as queued:
        dbos.run_workflow(ctx, ping, queue="orders", application_version=version)
    with dbos.new_client(backend.config("shop")) as client:
        with pytest.raises(dbos.InvalidOptionError) as enqueued:
            dbos.enqueue(client, "orders", "ping", application_version=version)
        with pytest.raises(dbos.InvalidOptionError) as debounced:
            dbos.debounce(client, "ping", "k", delay=timedelta(0), application_version=version)
    for info in (direct, queued, enqueued, debounced):
        assert info.value.argument == "application_version"
    assert backend.query("SELECT workflow_uuid FROM {s}.workflow_status") == []
