"""Checkpoints that coincide are written together, and each caller still gets its own outcome."""

from __future__ import annotations

import concurrent.futures
import functools
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

import dbos_typed as dbos
from dbos_typed._sysdb._group_commit import BatchKind, GroupCommit
from dbos_typed._sysdb._postgres import PostgresStore
from dbos_typed._sysdb._rows import NewWorkflow, RecordResult, StatusName, StepRecord
from dbos_typed.errors import SystemDatabaseError
from tests.conftest import Backend, wait_for


def one_step(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n * 2, name="double") + 1


def test_many_concurrent_workflows_each_record_and_return_their_own(backend: Backend) -> None:
    ctx = backend.context_with(one_step, max_connections=12)
    ctx.launch()
    with ThreadPoolExecutor(32) as pool:
        results = list(
            pool.map(lambda n: dbos.run_workflow(ctx, one_step, n).get_result(), range(160))
        )
    assert results == [n * 2 + 1 for n in range(160)]
    rows = backend.query(
        "SELECT ws.status, count(o.function_id), min(o.output) FROM {s}.workflow_status ws"
        " JOIN {s}.operation_outputs o ON o.workflow_uuid = ws.workflow_uuid"
        " GROUP BY ws.workflow_uuid, ws.status"
    )
    assert len(rows) == 160
    assert {(status, steps) for status, steps, _ in rows} == {("SUCCESS", 1)}
    assert sorted(int(str(output)) for _, _, output in rows) == [n * 2 for n in range(160)]


def _has_waiting(group: GroupCommit, count: int) -> bool:
    return len(group._waiting) == count


class _Batches:
    """A store's group commit with one leader, a way to hold it, and a log of its batches."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.written: list[list[str]] = []
        self.group = GroupCommit(self._run, leaders=1)
        store._group = self.group
        self.release = threading.Event()
        self.holding = BatchKind("hold", alone=lambda _: self.release.wait(10), key=id)
        self.pool = ThreadPoolExecutor(16)

    def _run(self, groups: list[tuple[BatchKind[Any], list[Mapping[str, Any]]]]) -> Any:
        self.written.append([kind.name for kind, batch in groups for _ in batch])
        return self.store._write_batch(groups)

    def queued(
        self, *calls: Callable[[], Any], before_release: Callable[[], object] = lambda: None
    ) -> list[Future[Any]]:
        """Run `calls` on threads, all queued behind a held leader, then let them go."""
        leader = self.pool.submit(self.group.write, self.holding, {})
        wait_for(lambda: self.group._active == 1)
        futures = []
        for n, call in enumerate(calls):
            futures.append(self.pool.submit(call))
            wait_for(functools.partial(_has_waiting, self.group, n + 1))
        before_release()
        self.release.set()
        assert leader.result(10)
        # Wait for every call: a batch is still being written when its leader returns.
        concurrent.futures.wait(futures, timeout=60)
        return futures


def _pending(store: PostgresStore, workflow_id: str, creator: str = "me") -> None:
    store.insert_workflow(_row(workflow_id, creator))


def _row(workflow_id: str, creator: str) -> NewWorkflow:
    return NewWorkflow(
        workflow_id=workflow_id,
        status=StatusName.PENDING,
        name="one_step",
        inputs='{"args": [], "kwargs": {}}',
        executor_id="local",
        application_version="test-version",
        application_name="test-app",
        application_id=None,
        creator_xid=creator,
        now_ms=1_000,
        attributes='{"team": "a"}',
    )


def _step(step_id: int) -> StepRecord:
    return StepRecord(
        step_id=step_id,
        name="s",
        output="1",
        error=None,
        child_workflow_id=None,
        started_at_ms=1_000,
        completed_at_ms=1_001,
    )


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Backend]:
    """A Postgres system database of its own (group commit batches Postgres's checkpoints)."""
    state = Backend("postgres", postgres_url, f"t_{uuid.uuid4().hex[:16]}", [])
    try:
        yield state
    finally:
        for ctx in state.contexts:
            ctx.shutdown()
        state.query("DROP SCHEMA {s} CASCADE")


@pytest.fixture
def batches(postgres: Backend) -> _Batches:
    ctx = postgres.new_context()
    ctx.launch()
    store = ctx._runtime.store
    assert isinstance(store, PostgresStore)
    return _Batches(store)


@pytest.mark.postgres_only
def test_starts_steps_and_outcomes_share_one_batch_each_with_its_own_outcome(
    batches: _Batches, postgres: Backend
) -> None:
    store = batches.store
    for workflow_id in ("running", "finished", "finishing", "existing"):
        _pending(store, workflow_id)
    store.complete_workflow("finished", StatusName.SUCCESS, "1", None, 2_000)
    new, again, written, refused, done, not_pending = batches.queued(
        lambda: store.insert_workflow(_row("new", "me")),
        lambda: store.insert_workflow(_row("existing", "someone else")),
        lambda: store.record_step("running", _step(1), "test-app"),
        lambda: store.record_step("finished", _step(1), "test-app"),
        lambda: store.complete_workflow("finishing", StatusName.ERROR, None, "boom", 3_000),
        lambda: store.complete_workflow("finished", StatusName.ERROR, None, "late", 3_000),
    )
    assert batches.written == [["start", "start", "step", "step", "outcome", "outcome"]]
    assert new.result(10).created and new.result(10).status is StatusName.PENDING
    assert not again.result(10).created  # the row another start made is left as it was
    assert written.result(10) is RecordResult.WRITTEN
    assert refused.result(10) is RecordResult.NOT_PENDING
    assert done.result(10) is True
    assert not_pending.result(10) is False
    rows = postgres.query(
        "SELECT ws.workflow_uuid, ws.status, ws.attributes::text, wi.inputs, wo.error"
        " FROM {s}.workflow_status ws"
        " LEFT JOIN {s}.workflow_input wi ON wi.workflow_uuid = ws.workflow_uuid"
        " LEFT JOIN {s}.workflow_output wo ON wo.workflow_uuid = ws.workflow_uuid"
        " ORDER BY 1"
    )
    by_id = {r[0]: r[1:] for r in rows}
    assert by_id["new"] == ("PENDING", '{"team": "a"}', '{"args": [], "kwargs": {}}', None)
    assert by_id["finishing"][0] == "ERROR" and by_id["finishing"][3] == "boom"
    assert by_id["finished"][0] == "SUCCESS" and by_id["finished"][3] is None
    assert store.get_step("running", 1) == _step(1)
    assert store.get_step("finished", 1) is None


@pytest.mark.postgres_only
def test_one_bad_row_fails_only_its_own_caller(batches: _Batches) -> None:
    store = batches.store
    _pending(store, "a")
    _pending(store, "b")
    good, bad, other = batches.queued(
        lambda: store.record_step("a", _step(1), "test-app"),
        lambda: store.record_step("a", _step(2**40), "test-app"),  # out of the column's range
        lambda: store.record_step("b", _step(1), "test-app"),
    )
    assert good.result(10) is RecordResult.WRITTEN
    assert other.result(10) is RecordResult.WRITTEN
    with pytest.raises(SystemDatabaseError, match="out of range"):
        bad.result(10)
    assert [s.step_id for s in store.list_steps("a")] == [1]


@pytest.mark.postgres_only
def test_two_writes_of_one_row_are_not_batched_together(batches: _Batches) -> None:
    store = batches.store
    _pending(store, "a")
    first, second = batches.queued(
        lambda: store.record_step("a", _step(1), "test-app"),
        lambda: store.record_step("a", _step(1), "test-app"),
    )
    assert first.result(10) is RecordResult.WRITTEN
    assert second.result(10) is RecordResult.ALREADY_RECORDED
    assert batches.written == []  # each went alone: the second waited for the first


@pytest.mark.postgres_only
def test_any_text_survives_a_batch_unchanged(batches: _Batches) -> None:
    store = batches.store
    texts = ['say "hi"', "back\\slash \\\\ twice", "{a,b}", "NULL", "", "naïve ✓ 雪", "new\nline"]
    for n in range(len(texts)):
        _pending(store, f"w{n}")
    steps = [
        StepRecord(
            step_id=1,
            name=text,
            output=text,
            error=None,
            child_workflow_id=None,
            completed_at_ms=5,
        )
        for text in texts
    ]
    futures = batches.queued(
        *(
            functools.partial(store.record_step, f"w{n}", step, "test-app")
            for n, step in enumerate(steps)
        )
    )
    assert [f.result(10) for f in futures] == [RecordResult.WRITTEN] * len(texts)
    assert batches.written == [["step"] * len(texts)]
    assert [store.get_step(f"w{n}", 1) for n in range(len(texts))] == steps
