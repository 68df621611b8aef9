"""Partitioned queues: limits held per partition key, and forks onto a partition."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from dbos_typed import aio
from tests.conftest import Backend

WAIT = timedelta(seconds=30)


def held(ctx: dbos.WorkflowContext, tag: str) -> str:
    """Says it runs, then holds its queue slot until told to go."""
    dbos.set_event(ctx, "running", True)
    dbos.recv[str](ctx, "go", timeout=WAIT)
    return tag


def quick(ctx: dbos.WorkflowContext, tag: str) -> str:
    return dbos.run_as_step(ctx, lambda: tag.upper(), name="upper")


def _running(ctx: dbos.DBOSContext, workflow_id: str) -> None:
    assert dbos.get_event[bool](ctx, workflow_id, "running", timeout=WAIT) is True


def _status(backend: Backend, workflow_id: str) -> object:
    [(status,)] = backend.query(
        "SELECT status FROM {s}.workflow_status WHERE workflow_uuid = %s", workflow_id
    )
    return status


@pytest.mark.parametrize("limit", ["worker_concurrency", "concurrency"])
def test_each_partition_runs_up_to_its_limit(backend: Backend, limit: str) -> None:
    ctx = backend.context_with(held)
    settings: dict[str, Any] = {limit: 2}
    parts = dbos.register_queue(ctx, "parts", partitioned=True, **settings)
    ctx.launch()

    def enqueue(workflow_id: str) -> dbos.WorkflowHandle[str]:
        key = workflow_id[0]
        return dbos.run_workflow(
            ctx, held, workflow_id, queue=parts, partition_key=key, workflow_id=workflow_id
        )

    handles = {wid: enqueue(wid) for wid in ("a1", "a2", "b1", "b2")}
    for wid in handles:
        _running(ctx, wid)  # both partitions run two at once
    handles["a3"] = enqueue("a3")
    # c1 is enqueued after a3, so the pass that starts c1 has already passed a3 over.
    handles["c1"] = enqueue("c1")
    _running(ctx, "c1")
    assert _status(backend, "a3") == "ENQUEUED"
    rows = backend.query(
        "SELECT queue_partition_key, count(*) FROM {s}.workflow_status "
        "WHERE status = 'PENDING' GROUP BY queue_partition_key ORDER BY 1"
    )
    assert rows == [("a", 2), ("b", 2), ("c", 1)]

    dbos.send(ctx, "a1", "go", "go")  # a slot of partition a comes free: a3 takes it
    assert handles["a1"].get_result(timeout=WAIT) == "a1"
    _running(ctx, "a3")
    for wid in ("a2", "a3", "b1", "b2", "c1"):
        dbos.send(ctx, wid, "go", "go")
    assert {wid: h.get_result(timeout=WAIT) for wid, h in handles.items()} == {
        wid: wid for wid in handles
    }


def test_a_fork_runs_on_the_partition_it_names(backend: Backend) -> None:
    ctx = backend.context_with(quick)
    dbos.register_queue(ctx, "parts", partitioned=True, worker_concurrency=1)
    ctx.launch()
    dbos.run_workflow(ctx, quick, "x", workflow_id="x").get_result()
    dbos.run_workflow(ctx, quick, "y", workflow_id="y").get_result()

    copy = dbos.fork_workflow[str](
        ctx, "x", 0, new_workflow_id="x-copy", queue_name="parts", queue_partition_key="k1"
    )
    assert copy.get_result(timeout=WAIT) == "X"
    status = copy.get_status()
    assert (status.queue_name, status.queue_partition_key) == ("parts", "k1")

    copies = dbos.fork_workflows(
        ctx, [("x", 0), ("y", 1)], queue_name="parts", queue_partition_key="k2"
    )
    assert [h.get_result(timeout=WAIT) for h in copies] == ["X", "Y"]
    assert {h.get_status().queue_partition_key for h in copies} == {"k2"}

    async def from_async_code() -> str | None:
        handle = await aio.fork_workflow(ctx, "y", 0, queue_name="parts", queue_partition_key="k3")
        assert await handle.get_result(timeout=WAIT) == "Y"
        return (await handle.get_status()).queue_partition_key

    assert asyncio.run(from_async_code()) == "k3"

    with dbos.new_client(backend.config()) as client:
        remote = dbos.fork_workflow[str](
            client, "x", 0, queue_name="parts", queue_partition_key="k4"
        )
        assert remote.get_result(timeout=WAIT) == "X"
        assert remote.get_status().queue_partition_key == "k4"


def test_a_fork_with_a_wrong_partition_key_writes_nothing(backend: Backend) -> None:
    ctx = backend.context_with(quick)
    dbos.register_queue(ctx, "parts", partitioned=True)
    dbos.register_queue(ctx, "plain")
    ctx.launch()
    dbos.run_workflow(ctx, quick, "x", workflow_id="x").get_result()

    attempts: list[dict[str, Any]] = [
        {"queue_name": "parts"},  # a partitioned queue needs a key
        {"queue_name": "plain", "queue_partition_key": "k"},  # a plain one takes none
        {"queue_name": "unknown", "queue_partition_key": "k"},  # nor does an unknown one
        {"queue_partition_key": "k"},  # nor the internal queue
        {"queue_name": "parts", "queue_partition_key": ""},
    ]
    with dbos.new_client(backend.config()) as client:
        for steer in (ctx, client):
            for options in attempts:
                with pytest.raises(dbos.InvalidOptionError) as one:
                    dbos.fork_workflow(steer, "x", 0, new_workflow_id="never", **options)
                assert one.value.argument == "queue_partition_key", options
                with pytest.raises(dbos.InvalidOptionError) as many:
                    dbos.fork_workflows(steer, [("x", 0, "never")], **options)
                assert many.value.argument == "queue_partition_key", options

    async def from_async_code() -> str:
        with pytest.raises(dbos.InvalidOptionError) as info:
            await aio.fork_workflow(ctx, "x", 0, queue_name="parts")
        return info.value.argument

    assert asyncio.run(from_async_code()) == "queue_partition_key"
    assert backend.query("SELECT count(*) FROM {s}.workflow_status") == [(1,)]
    assert backend.query("SELECT was_forked_from FROM {s}.workflow_status") in (
        [(False,)],
        [(0,)],
    )
