"""Declaring a queue that already exists: the three conflict policies, across versions."""

from __future__ import annotations

import pytest

import dbos_typed as dbos
from tests.conftest import Backend


def _concurrency(backend: Backend, name: str = "orders") -> object:
    rows = backend.query("SELECT concurrency FROM {s}.queues WHERE name = %s", name)
    assert len(rows) == 1
    return rows[0][0]


def _launched(backend: Backend, version: str) -> dbos.DBOSContext:
    ctx = backend.new_context(application_version=version)
    ctx.launch()
    return ctx


def test_always_and_never_update(backend: Backend) -> None:
    ctx = _launched(backend, "v1")
    _launched(backend, "v2")
    dbos.set_latest_application_version(ctx, "v2")  # ctx no longer runs the latest
    dbos.register_queue(ctx, "orders", concurrency=5, on_conflict="never_update")
    assert _concurrency(backend) == 5  # a missing queue is created under every policy

    declared = dbos.register_queue(ctx, "orders", concurrency=9, on_conflict="never_update")
    assert declared.concurrency == 9
    assert _concurrency(backend) == 5
    assert ctx._runtime.queues["orders"].concurrency == 5  # this process applies the stored row

    dbos.register_queue(ctx, "orders", concurrency=7, on_conflict="always_update")
    assert _concurrency(backend) == 7
    assert ctx._runtime.queues["orders"].concurrency == 7

    other = backend.new_context("other-app")
    for policy in ("never_update", "always_update", "update_if_latest_version"):
        with pytest.raises(dbos.RegistrationError):
            dbos.register_queue(other, "orders", on_conflict=policy)
    assert _concurrency(backend) == 7


def test_only_the_latest_version_updates_by_default(backend: Backend) -> None:
    old = _launched(backend, "v1")
    new = _launched(backend, "v2")
    dbos.set_latest_application_version(new, "v2")
    dbos.register_queue(old, "orders", concurrency=3)
    assert _concurrency(backend) == 3  # created by the older version: nothing to overwrite
    dbos.register_queue(new, "orders", concurrency=4)
    assert _concurrency(backend) == 4
    dbos.register_queue(old, "orders", concurrency=5)
    assert _concurrency(backend) == 4  # an older executor does not undo the newer settings

    dbos.set_latest_application_version(new, "v1")  # a rollback
    dbos.register_queue(old, "orders", concurrency=6)
    assert _concurrency(backend) == 6


def test_with_no_version_recorded_every_declaration_updates(backend: Backend) -> None:
    first = backend.new_context(application_version="v1")
    second = backend.new_context(application_version="v2")
    dbos.register_queue(first, "orders", concurrency=1)
    dbos.register_queue(second, "orders", concurrency=2)
    assert _concurrency(backend) == 2
    dbos.register_queue(first, "orders", concurrency=3)
    assert _concurrency(backend) == 3


def test_declared_before_launch_updates_at_launch_if_latest(backend: Backend) -> None:
    _launched(backend, "v1")
    for name in ("orders", "refunds"):
        dbos.register_queue(backend.new_context(application_version="v1"), name, concurrency=2)
    # v1 was recorded earlier than anything launched below.
    backend.query("UPDATE {s}.application_versions SET version_timestamp = version_timestamp - 1")

    deploy = backend.new_context(application_version="v2")
    dbos.register_queue(deploy, "orders", concurrency=8)
    assert _concurrency(backend) == 2  # v2 is not recorded yet: wait for launch
    dbos.register_queue(deploy, "refunds", concurrency=9)
    dbos.register_queue(deploy, "refunds", concurrency=2)  # the last declaration counts
    deploy.launch()
    assert dbos.get_latest_application_version(deploy).name == "v2"
    assert _concurrency(backend) == 8
    assert _concurrency(backend, "refunds") == 2
    assert deploy._runtime.queues["orders"].concurrency == 8

    # An executor of the previous version restarting during the deploy keeps v2's settings.
    straggler = backend.new_context(application_version="v1")
    dbos.register_queue(straggler, "orders", concurrency=1)
    straggler.launch()
    assert _concurrency(backend) == 8


def test_a_client_without_a_version_updates_only_when_told(backend: Backend) -> None:
    app = _launched(backend, "v1")
    dbos.register_queue(app, "orders", concurrency=2)
    with dbos.new_client(backend.config(application_version=None)) as client:
        dbos.register_queue(client, "orders", concurrency=3)
        assert _concurrency(backend) == 2
        dbos.register_queue(client, "orders", concurrency=4, on_conflict="always_update")
        assert _concurrency(backend) == 4
    with dbos.new_client(backend.config(application_version="v1")) as client:
        dbos.register_queue(client, "orders", concurrency=5)  # speaks for the latest
        assert _concurrency(backend) == 5


def test_the_policy_is_validated(backend: Backend) -> None:
    ctx = backend.new_context()
    with pytest.raises(dbos.InvalidOptionError) as refused:
        dbos.register_queue(ctx, "orders", on_conflict="sometimes")  # type: ignore[arg-type]
    assert refused.value.argument == "on_conflict"
    assert backend.query("SELECT name FROM {s}.queues") == []
