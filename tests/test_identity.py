"""Who a workflow runs for, and its attributes: recorded, inherited, reported."""

from __future__ import annotations

from datetime import timedelta

import pytest

import dbos_typed as dbos
from tests.conftest import Backend

ALICE = dbos.Identity(user="alice", roles=("admin", "ops"), assumed_role="admin")


def child(ctx: dbos.WorkflowContext) -> dbos.Identity:
    return dbos.get_identity(ctx)


def parent(ctx: dbos.WorkflowContext) -> list[dbos.Identity]:
    direct = dbos.run_workflow(ctx, child).get_result()
    queued = dbos.run_workflow(ctx, child, queue="work").get_result()
    own = dbos.run_workflow(ctx, child, identity=dbos.Identity(user="bob")).get_result()
    return [dbos.get_identity(ctx), direct, queued, own]


def debouncing_parent(ctx: dbos.WorkflowContext) -> dbos.Identity:
    debouncer = dbos.new_debouncer(ctx, child)
    return debouncer.debounce(ctx, "key", delay=timedelta(0)).get_result()


def _ctx(backend: Backend) -> dbos.DBOSContext:
    ctx = backend.context_with(child, parent)
    dbos.register_queue(ctx, "work")
    ctx.launch()
    return ctx


def test_identity_and_attributes_are_recorded_and_children_inherit_the_identity(
    backend: Backend,
) -> None:
    ctx = _ctx(backend)
    handle = dbos.run_workflow(
        ctx, parent, workflow_id="p", identity=ALICE, attributes={"tenant": "acme", "n": 1}
    )
    seen = handle.get_result(timeout=timedelta(seconds=20))
    assert seen == [ALICE, ALICE, ALICE, dbos.Identity(user="bob")]
    status = handle.get_status()
    assert (status.authenticated_user, status.assumed_role) == ("alice", "admin")
    assert status.authenticated_roles == ("admin", "ops")
    assert status.attributes == {"tenant": "acme", "n": 1}
    children = dbos.list_workflows(ctx, parent_workflow_id="p")
    assert [c.authenticated_user for c in children] == ["alice", "alice", "bob"]
    assert [c.attributes for c in children] == [None, None, None]  # not inherited
    # Stored the way DBOS stores them, so its tools read them too.
    assert backend.query(
        "SELECT authenticated_roles FROM {s}.workflow_status WHERE workflow_uuid = %s", "p"
    ) == [('["admin", "ops"]',)]


def test_a_workflow_debounced_from_a_workflow_inherits_its_identity(backend: Backend) -> None:
    ctx = backend.context_with(child, debouncing_parent)
    ctx.launch()
    handle = dbos.run_workflow(ctx, debouncing_parent, workflow_id="d", identity=ALICE)
    assert handle.get_result(timeout=timedelta(seconds=20)) == ALICE
    (burst,) = [s for s in dbos.list_workflows(ctx) if s.workflow_id != "d"]
    assert burst.authenticated_user == "alice"
    assert burst.parent_workflow_id is None  # a burst may be shared: it has no parent


def test_a_workflow_without_identity_has_an_empty_one(backend: Backend) -> None:
    ctx = _ctx(backend)
    assert dbos.run_workflow(ctx, child).get_result() == dbos.Identity()
    status = dbos.list_workflows(ctx)[0]
    assert (status.authenticated_user, status.authenticated_roles, status.attributes) == (
        None,
        (),
        None,
    )


def test_a_queued_or_forked_workflow_keeps_its_identity_and_attributes(backend: Backend) -> None:
    ctx = _ctx(backend)
    queued = dbos.run_workflow(
        ctx, child, queue="work", workflow_id="q", identity=ALICE, attributes={"k": [1, 2]}
    )
    assert queued.get_result(timeout=timedelta(seconds=20)) == ALICE
    fork = dbos.fork_workflow(ctx, "q", 0)
    assert fork.get_result(timeout=timedelta(seconds=20)) == ALICE
    assert fork.get_status().attributes == {"k": [1, 2]}
    with dbos.new_client(backend.config()) as client:
        handle = dbos.enqueue(
            client, "work", "child", identity=dbos.Identity(user="svc"), attributes={"from": "c"}
        )
        assert handle.get_result(timeout=timedelta(seconds=20)) == {
            "user": "svc",
            "roles": [],
            "assumed_role": None,
        }
        assert handle.get_status().attributes == {"from": "c"}


def test_bad_identity_or_attributes_are_refused_and_nothing_is_written(backend: Backend) -> None:
    ctx = _ctx(backend)
    with pytest.raises(dbos.InvalidOptionError, match="identity"):
        dbos.run_workflow(ctx, child, identity="alice")  # type: ignore[call-overload]
    with pytest.raises(dbos.InvalidOptionError, match="attributes"):
        dbos.run_workflow(ctx, child, attributes={"when": object()})
    with pytest.raises(dbos.InvalidOptionError, match="attributes"):
        dbos.run_workflow(ctx, child, attributes=["not", "a", "mapping"])  # type: ignore[call-overload]
    with pytest.raises(dbos.InvalidOptionError, match=r"identity\.roles"):
        dbos.Identity(user="a", roles="admin")  # type: ignore[arg-type]
    with pytest.raises(dbos.InvalidOptionError, match=r"identity\.user"):
        dbos.Identity(user="")
    with pytest.raises(dbos.InvalidOptionError, match="ctx"):
        dbos.get_identity(ctx)  # type: ignore[arg-type]
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(0,)]
