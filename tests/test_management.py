"""Listing, steps, cancel with descendants, fork, delete, attributes and retention."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from tests.conftest import Backend, Gate

step_runs: list[str] = []


def counted(label: str) -> str:
    step_runs.append(label)
    return label


def three_steps(ctx: dbos.WorkflowContext, tag: str) -> str:
    a = dbos.run_as_step(ctx, lambda: counted(f"{tag}-a"), name="a")
    b = dbos.run_as_step(ctx, lambda: counted(f"{tag}-b"), name="b")
    c = dbos.run_as_step(ctx, lambda: counted(f"{tag}-c"), name="c")
    return "+".join([a, b, c])


def fails(ctx: dbos.WorkflowContext, tag: str) -> str:
    raise ValueError(f"bad {tag}")


def _ctx(backend: Backend) -> dbos.DBOSContext:
    ctx = backend.new_context()
    dbos.register_workflow(ctx, three_steps)
    dbos.register_workflow(ctx, fails)
    ctx.launch()
    return ctx


def test_list_workflows_filters(backend: Backend) -> None:
    ctx = _ctx(backend)
    before = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(3):
        dbos.run_workflow(ctx, three_steps, f"t{i}", workflow_id=f"ok-{i}").get_result()
    with pytest.raises(dbos.WorkflowFailedError):
        dbos.run_workflow(ctx, fails, "x", workflow_id="bad-%_1").get_result()

    everything = dbos.list_workflows(ctx)
    ids = [w.workflow_id for w in everything]
    assert sorted(ids) == ["bad-%_1", "ok-0", "ok-1", "ok-2"]
    # Oldest first; workflows created in the same millisecond are ordered by ID.
    assert everything == sorted(everything, key=lambda w: (w.created_at, w.workflow_id))
    by_id = {w.workflow_id: w for w in everything}
    assert by_id["ok-0"].input == "t0" and by_id["ok-0"].output == "t0-a+t0-b+t0-c"
    failure = by_id["bad-%_1"].error
    assert failure is not None and failure.name == "ValueError"

    newest_two = dbos.list_workflows(ctx, sort_desc=True, limit=2)
    assert [w.workflow_id for w in newest_two] == ids[::-1][:2]
    assert [w.workflow_id for w in dbos.list_workflows(ctx, offset=3)] == ids[3:]
    assert len(dbos.list_workflows(ctx, status="SUCCESS")) == 3
    assert len(dbos.list_workflows(ctx, status=["ERROR", "CANCELLED"])) == 1
    assert len(dbos.list_workflows(ctx, name="fails")) == 1
    assert len(dbos.list_workflows(ctx, workflow_ids=["ok-1", "ok-2", "nope"])) == 2
    assert [w.workflow_id for w in dbos.list_workflows(ctx, workflow_id_prefix="bad-%")] == [
        "bad-%_1"
    ]
    assert dbos.list_workflows(ctx, workflow_id_prefix="bad-x") == []  # % and _ are literal
    assert (
        len(dbos.list_workflows(ctx, executor_id="local", application_version="test-version")) == 4
    )
    assert dbos.list_workflows(ctx, executor_id="elsewhere") == []
    assert len(dbos.list_workflows(ctx, created_after=before)) == 4
    assert dbos.list_workflows(ctx, created_before=before) == []
    assert len(dbos.list_workflows(ctx, completed_after=before, status="SUCCESS")) == 3
    bare = dbos.list_workflows(ctx, load_input=False, load_output=False, limit=1)
    assert bare[0].input is None and bare[0].output is None


def test_list_workflows_rejects_bad_filters(backend: Backend) -> None:
    ctx = _ctx(backend)
    for kwargs, argument in [
        ({"status": "DONE"}, "status"),
        ({"limit": -1}, "limit"),
        ({"created_after": datetime(2026, 1, 1)}, "created_after"),
        ({"workflow_ids": ["ok", ""]}, "workflow_ids"),
        ({"dequeued_after": datetime(2026, 1, 1)}, "dequeued_after"),
        ({"was_forked_from": 1}, "was_forked_from"),
        ({"has_parent": "no"}, "has_parent"),
        ({"schedule_name": [3]}, "schedule_name"),
        ({"application_name": [None]}, "application_name"),
        ({"attributes": {1: "x"}}, "attributes"),
    ]:
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.list_workflows(ctx, **kwargs)  # type: ignore[arg-type]
        assert info.value.argument == argument


def test_list_workflows_by_dequeue_time_lineage_schedule_and_application(
    backend: Backend,
) -> None:
    def parent(ctx: dbos.WorkflowContext, tag: str) -> str:
        return dbos.run_workflow(ctx, three_steps, tag, workflow_id="child").get_result()

    ctx = backend.context_with(three_steps, parent)
    ctx.launch()
    dbos.run_workflow(ctx, parent, "p", workflow_id="parent").get_result()
    dbos.run_workflow(ctx, three_steps, "o", workflow_id="orig").get_result()
    dbos.fork_workflow(ctx, "orig", 1, new_workflow_id="copy").get_result()

    def ids(**filters: Any) -> list[str]:
        return sorted(w.workflow_id for w in dbos.list_workflows(ctx, **filters))

    assert ids(has_parent=True) == ["child"]
    assert ids(has_parent=False) == ["copy", "orig", "parent"]
    assert ids(was_forked_from=True) == ["orig"]
    assert ids(was_forked_from=False) == ["child", "copy", "parent"]

    noon = datetime(2025, 1, 1, 12, tzinfo=UTC)
    noon_ms = int(noon.timestamp() * 1000)
    for workflow_id, started in (("orig", noon_ms - 1), ("copy", noon_ms), ("child", None)):
        backend.query(
            "UPDATE {s}.workflow_status SET started_at_epoch_ms = %s WHERE workflow_uuid = %s",
            started,
            workflow_id,
        )
    assert ids(dequeued_after=noon) == ["copy"]  # inclusive
    assert ids(dequeued_before=noon) == ["copy", "orig"]
    assert ids(dequeued_before=noon - timedelta(milliseconds=1)) == ["orig"]

    backend.query(
        "UPDATE {s}.workflow_status SET schedule_name = 'nightly' WHERE workflow_uuid = 'orig'"
    )
    backend.query(
        "UPDATE {s}.workflow_status SET schedule_name = 'hourly' WHERE workflow_uuid = 'copy'"
    )
    assert ids(schedule_name="nightly") == ["orig"]
    assert ids(schedule_name=["nightly", "hourly"]) == ["copy", "orig"]

    # application_name names the applications exactly, instead of "this one and unclaimed".
    backend.query(
        "UPDATE {s}.workflow_status SET application_name = 'other' WHERE workflow_uuid = 'orig'"
    )
    backend.query(
        "UPDATE {s}.workflow_status SET application_name = NULL WHERE workflow_uuid = 'copy'"
    )
    assert ids() == ["child", "copy", "parent"]
    assert ids(application_name="other") == ["orig"]
    assert ids(application_name=["other", "test-app"]) == ["child", "orig", "parent"]
    assert ids(all_applications=True) == ["child", "copy", "orig", "parent"]
    with pytest.raises(dbos.InvalidOptionError) as info:
        ids(application_name="other", all_applications=True)
    assert info.value.argument == "application_name"


def test_list_workflows_by_attributes(backend: Backend) -> None:
    ctx = _ctx(backend)
    for n in range(4):
        dbos.run_workflow(ctx, three_steps, str(n), workflow_id=f"w{n}").get_result()
    dbos.set_workflow_attributes(
        ctx, "w0", {"team": "payments", "n": 1, "vip": True, "note": None, "tags": ["x", "y"]}
    )
    dbos.set_workflow_attributes(ctx, "w1", {"team": "search", "n": 2.5, "vip": False})
    dbos.set_workflow_attributes(ctx, "w2", {"team": "payments", "n": 1.0, "tags": "x"})

    def ids(attributes: Mapping[str, object]) -> list[str]:
        return sorted(w.workflow_id for w in dbos.list_workflows(ctx, attributes=attributes))

    assert ids({"team": "payments"}) == ["w0", "w2"]
    assert ids({"team": "payments", "vip": True}) == ["w0"]
    assert ids({"n": 1}) == ["w0", "w2"]  # 1 and 1.0 are the same JSON number
    assert ids({"n": 2.5}) == ["w1"]
    assert ids({"n": "1"}) == []  # a string is not a number
    assert ids({"vip": False}) == ["w1"]
    assert ids({"vip": 0}) == []  # nor is a boolean
    assert ids({"note": None}) == ["w0"]  # present and null, not merely absent
    assert ids({"tags": "x"}) == ["w2"]  # a string is not contained in an array
    assert ids({"team": "Payments"}) == []
    assert ids({"missing": None}) == []
    assert ids({}) == ["w0", "w1", "w2"]  # every workflow that has attributes
    if backend.name == "postgres":
        assert ids({"tags": ["y"]}) == ["w0"]
    else:
        # SQLite cannot match nested values exactly, so it refuses rather than guess.
        with pytest.raises(dbos.InvalidOptionError) as info:
            ids({"tags": ["y"]})
        assert info.value.argument == "attributes"
    for bad in ({"n": float("nan")}, {"t": "\x00"}, {"n": object()}):
        with pytest.raises(dbos.InvalidOptionError) as info:
            ids(bad)
        assert info.value.argument == "attributes"


def test_get_workflow_steps(backend: Backend) -> None:
    ctx = _ctx(backend)
    dbos.run_workflow(ctx, three_steps, "s", workflow_id="steps").get_result()
    steps = dbos.get_workflow_steps(ctx, "steps")
    assert [(s.step_id, s.name, s.output) for s in steps] == [
        (0, "a", "s-a"),
        (1, "b", "s-b"),
        (2, "c", "s-c"),
    ]
    assert all(s.started_at and s.completed_at and s.error is None for s in steps)
    page = dbos.get_workflow_steps(ctx, "steps", limit=1, offset=1, load_output=False)
    assert [(s.step_id, s.output) for s in page] == [(1, None)]
    with pytest.raises(dbos.NonExistentWorkflowError):
        dbos.get_workflow_steps(ctx, "missing")


def test_cancel_with_descendants_and_queued_listing(backend: Backend) -> None:
    gate = Gate()

    def grandchild(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.run_as_step(ctx, lambda: "after", name="after")
        return "done"

    def child(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_workflow(ctx, grandchild).get_result()

    def root(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_workflow(ctx, child).get_result()

    ctx = backend.new_context()
    for wf in (grandchild, child, root):
        dbos.register_workflow(ctx, wf)
    ctx.launch()
    handle = dbos.run_workflow(ctx, root, workflow_id="root")
    gate.wait_entered()
    assert {w.workflow_id for w in dbos.list_workflows(ctx, status="PENDING")} == {
        "root",
        "root-0",
        "root-0-0",
    }
    assert [w.workflow_id for w in dbos.list_workflows(ctx, parent_workflow_id="root")] == [
        "root-0"
    ]
    dbos.cancel_workflow(ctx, "root", cancel_children=True)
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result()
    statuses = {w.workflow_id: w.status for w in dbos.list_workflows(ctx)}
    assert statuses == {
        "root": dbos.StatusName.CANCELLED,
        "root-0": dbos.StatusName.CANCELLED,
        "root-0-0": dbos.StatusName.CANCELLED,
    }
    assert dbos.list_queued_workflows(ctx) == []


def test_fork_from_a_middle_step_does_not_rerun_earlier_steps(backend: Backend) -> None:
    ctx = _ctx(backend)
    step_runs.clear()
    assert dbos.run_workflow(ctx, three_steps, "f", workflow_id="orig").get_result() == (
        "f-a+f-b+f-c"
    )
    fork = dbos.fork_workflow(ctx, "orig", 1, new_workflow_id="forked")
    assert fork.get_result(timeout=timedelta(seconds=20)) == "f-a+f-b+f-c"
    assert step_runs == ["f-a", "f-b", "f-c", "f-b", "f-c"]
    status = fork.get_status()
    assert (status.forked_from, status.was_forked_from) == ("orig", False)
    assert dbos.retrieve_workflow(ctx, "orig").get_status().was_forked_from is True
    assert [w.workflow_id for w in dbos.list_workflows(ctx, was_forked_from=True)] == ["orig"]
    assert [s.name for s in dbos.get_workflow_steps(ctx, "forked")] == ["a", "b", "c"]
    assert [w.workflow_id for w in dbos.list_workflows(ctx, forked_from="orig")] == ["forked"]
    assert backend.query(
        "SELECT was_forked_from FROM {s}.workflow_status WHERE workflow_uuid = %s", "orig"
    ) in ([(True,)], [(1,)])
    with pytest.raises(dbos.NonExistentWorkflowError):
        dbos.fork_workflow(ctx, "missing", 0)
    with pytest.raises(dbos.InvalidOptionError):
        dbos.fork_workflow(ctx, "orig", -1)


def test_delete_workflows_removes_everything(backend: Backend) -> None:
    def parent(ctx: dbos.WorkflowContext, tag: str) -> str:
        return dbos.run_workflow(ctx, three_steps, tag).get_result()

    ctx = backend.new_context()
    dbos.register_workflow(ctx, three_steps)
    dbos.register_workflow(ctx, parent)
    ctx.launch()
    dbos.run_workflow(ctx, parent, "d", workflow_id="del").get_result()
    dbos.run_workflow(ctx, three_steps, "k", workflow_id="keep").get_result()
    dbos.delete_workflows(ctx, ["del", "missing"], delete_children=True)
    assert [w.workflow_id for w in dbos.list_workflows(ctx)] == ["keep"]
    for table in ("operation_outputs", "workflow_input", "workflow_output"):
        rows = backend.query(f"SELECT DISTINCT workflow_uuid FROM {{s}}.{table}")
        assert rows == [("keep",)], table
    with pytest.raises(dbos.InvalidOptionError):
        dbos.delete_workflows(ctx, "keep")


def test_attributes_and_garbage_collection(backend: Backend) -> None:
    ctx = _ctx(backend)
    dbos.run_workflow(ctx, three_steps, "g", workflow_id="old").get_result()
    dbos.set_workflow_attributes(ctx, "old", {"team": "payments", "n": 1})
    [(attributes,)] = backend.query(
        "SELECT attributes FROM {s}.workflow_status WHERE workflow_uuid = %s", "old"
    )
    assert attributes in ({"team": "payments", "n": 1}, '{"team":"payments","n":1}')
    with pytest.raises(dbos.NonExistentWorkflowError):
        dbos.set_workflow_attributes(ctx, "missing", {})

    dbos.run_workflow(ctx, three_steps, "h", workflow_id="new").get_result()
    assert dbos.garbage_collect(ctx, keep_rows=1) == 1
    assert [w.workflow_id for w in dbos.list_workflows(ctx)] == ["new"]
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert dbos.garbage_collect(ctx, cutoff=future) == 1
    assert dbos.list_workflows(ctx) == []
    with pytest.raises(dbos.InvalidOptionError):
        dbos.garbage_collect(ctx)


def test_global_timeout_cancels_old_unfinished_workflows(backend: Backend) -> None:
    gate = Gate()

    def blocked(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.run_as_step(ctx, lambda: "x", name="after")
        return "finished"

    ctx = backend.new_context()
    dbos.register_workflow(ctx, blocked)
    ctx.launch()
    handle = dbos.run_workflow(ctx, blocked, workflow_id="stuck")
    gate.wait_entered()
    cancelled = dbos.global_timeout(ctx, datetime.now(UTC) + timedelta(seconds=1))
    assert cancelled == ["stuck"]
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result()
    assert dbos.garbage_collect(ctx, cutoff=datetime.now(UTC) + timedelta(seconds=1)) == 1


def test_management_calls_from_a_workflow_are_made_once_and_replayed(backend: Backend) -> None:
    gate = Gate()

    def steer(ctx: dbos.WorkflowContext) -> list[str]:
        fork = dbos.fork_workflow(ctx, "orig", 1)  # a random ID, drawn once
        listed = [w.workflow_id for w in dbos.list_workflows(ctx, name="three_steps")]
        steps = [s.name for s in dbos.get_workflow_steps(ctx, "orig")]
        dbos.set_workflow_attributes(ctx, "orig", {"by": "workflow"})
        dbos.cancel_workflow(ctx, "victim")
        try:
            dbos.fork_workflow(ctx, "missing", 0)
        except dbos.NonExistentWorkflowError as exc:
            missing = exc.workflow_id
        dbos.run_as_step(ctx, gate, name="gate")
        return [fork.workflow_id, *listed, *steps, missing]

    first = backend.context_with(three_steps, steer)
    dbos.register_queue(first, "later")
    first.launch()
    dbos.run_workflow(first, three_steps, "o", workflow_id="orig").get_result()
    dbos.run_workflow(
        first, three_steps, "v", workflow_id="victim", queue="later", delay=timedelta(hours=1)
    )
    dbos.run_workflow(first, steer, workflow_id="steer")
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))
    gate.open()

    # Between the two runs the world changes: a replay must not act or read again.
    backend.query(
        "UPDATE {s}.workflow_status SET status = 'DELAYED' WHERE workflow_uuid = %s", "victim"
    )
    second = backend.context_with(three_steps, steer)
    second.launch()
    dbos.set_workflow_attributes(second, "orig", {"by": "operator"})
    dbos.run_workflow(second, three_steps, "n", workflow_id="newer").get_result()
    result = dbos.retrieve_workflow[list[str]](second, "steer").get_result(
        timeout=timedelta(seconds=30)
    )

    forks = dbos.list_workflows(second, forked_from="orig")
    assert [w.workflow_id for w in forks] == [result[0]]  # one fork, the recorded one
    # The listing holds what the first run saw: not the workflow started in between.
    # (The fork and "victim" may share a creation millisecond, which orders them by ID.)
    assert sorted(result[1:4]) == sorted(["orig", "victim", result[0]])
    assert result[4:] == ["a", "b", "c", "missing"]
    assert backend.query(
        "SELECT status FROM {s}.workflow_status WHERE workflow_uuid = %s", "victim"
    ) == [("DELAYED",)]
    assert "operator" in str(
        backend.query("SELECT attributes FROM {s}.workflow_status WHERE workflow_uuid = %s", "orig")
    )
    assert [s.name for s in dbos.get_workflow_steps(second, "steer")] == [
        "DBOS.forkWorkflow",
        "DBOS.listWorkflows",
        "DBOS.getWorkflowSteps",
        "DBOS.updateWorkflowAttributes",
        "DBOS.cancelWorkflow",
        "DBOS.forkWorkflow",
        "gate",
    ]


def test_resume_onto_a_queue_runs_under_its_limits(backend: Backend) -> None:
    gate = Gate()

    def gated(ctx: dbos.WorkflowContext, tag: str) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return tag

    ctx = backend.context_with(gated)
    serial = dbos.register_queue(ctx, "serial", worker_concurrency=1)
    dbos.register_queue(ctx, "split", partitioned=True)
    ctx.launch()
    running = dbos.run_workflow(ctx, gated, "running", queue=serial)
    gate.wait_entered()
    stopped = dbos.run_workflow(ctx, gated, "stopped", workflow_id="stopped", queue=serial)
    dbos.cancel_workflow(ctx, "stopped")

    dbos.resume_workflow(ctx, "stopped", queue="serial")
    # It waits its turn behind the running one instead of starting at once.
    assert stopped.get_status().status is dbos.StatusName.ENQUEUED
    assert stopped.get_status().queue_name == "serial"
    gate.open()
    assert running.get_result(timeout=timedelta(seconds=20)) == "running"
    assert stopped.get_result(timeout=timedelta(seconds=20)) == "stopped"

    with pytest.raises(dbos.InvalidOptionError, match="no queue named"):
        dbos.resume_workflow(ctx, "stopped", queue="nowhere")
    with pytest.raises(dbos.InvalidOptionError, match="partitioned"):
        dbos.resume_workflow(ctx, "stopped", queue="split")


def test_batch_cancel_and_resume_skip_missing_and_finished_workflows(backend: Backend) -> None:
    ctx = _ctx(backend)
    dbos.register_queue(ctx, "later")
    dbos.run_workflow(ctx, three_steps, "d", workflow_id="done").get_result()
    for workflow_id in ("w1", "w2"):
        dbos.run_workflow(
            ctx,
            three_steps,
            workflow_id,
            workflow_id=workflow_id,
            queue="later",
            delay=timedelta(hours=1),
        )

    dbos.cancel_workflows(ctx, ["w1", "missing", "done", "w2"])
    statuses = {w.workflow_id: w.status for w in dbos.list_workflows(ctx)}
    assert statuses == {
        "done": dbos.StatusName.SUCCESS,
        "w1": dbos.StatusName.CANCELLED,
        "w2": dbos.StatusName.CANCELLED,
    }

    handles = dbos.resume_workflows(ctx, ["w2", "missing", "w1", "w2"])
    assert [h.workflow_id for h in handles] == ["w2", "w1"]
    assert [h.get_result(timeout=timedelta(seconds=20)) for h in handles] == [
        "w2-a+w2-b+w2-c",
        "w1-a+w1-b+w1-c",
    ]
    with pytest.raises(dbos.InvalidOptionError, match="workflow_ids"):
        dbos.cancel_workflows(ctx, "w1")
    with pytest.raises(dbos.InvalidOptionError, match="workflow_ids"):
        dbos.resume_workflows(ctx, "w1")
    with pytest.raises(dbos.InvalidOptionError, match="no queue named"):
        dbos.resume_workflows(ctx, ["w1"], queue="nowhere")


def test_batch_cancel_reaches_descendants(backend: Backend) -> None:
    gate = Gate()

    def child(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        dbos.run_as_step(ctx, lambda: "after", name="after")
        return "done"

    def parent(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_workflow(ctx, child).get_result()

    ctx = backend.context_with(child, parent)
    ctx.launch()
    handle = dbos.run_workflow(ctx, parent, workflow_id="parent")
    gate.wait_entered()
    dbos.cancel_workflows(ctx, ["parent"], cancel_children=True)
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=timedelta(seconds=20))
    statuses = {w.workflow_id: w.status for w in dbos.list_workflows(ctx)}
    assert statuses == {"parent": dbos.StatusName.CANCELLED, "parent-0": dbos.StatusName.CANCELLED}
    # The child stopped in its gate step: neither that step's result nor the next is recorded.
    assert dbos.get_workflow_steps(ctx, "parent-0") == []


def test_batch_calls_from_a_workflow_are_recorded_once(backend: Backend) -> None:
    def steer(ctx: dbos.WorkflowContext) -> list[str]:
        dbos.cancel_workflows(ctx, ["target", "missing"])
        return [h.workflow_id for h in dbos.resume_workflows(ctx, ["missing", "target"])]

    ctx = backend.context_with(three_steps, steer)
    dbos.register_queue(ctx, "later")
    ctx.launch()
    dbos.run_workflow(
        ctx, three_steps, "t", workflow_id="target", queue="later", delay=timedelta(hours=1)
    )
    assert dbos.run_workflow(ctx, steer, workflow_id="steer").get_result() == ["target"]
    assert (
        dbos.retrieve_workflow[str](ctx, "target").get_result(timeout=timedelta(seconds=20))
        == "t-a+t-b+t-c"
    )
    assert [(s.name, s.output) for s in dbos.get_workflow_steps(ctx, "steer")] == [
        ("DBOS.cancelWorkflows", None),
        ("DBOS.resumeWorkflows", ["target"]),
    ]


def test_status_reports_every_recorded_field_and_lists_by_debounce_and_deduplication(
    backend: Backend,
) -> None:
    def tag(ctx: dbos.WorkflowContext, value: str) -> str:
        return value

    ctx = backend.context_with(tag)
    dbos.register_queue(ctx, "later")
    split = dbos.register_queue(ctx, "split", partitioned=True)
    debouncer = dbos.new_debouncer(ctx, tag, queue="later")
    ctx.launch()
    hour = timedelta(hours=1)
    before = datetime.now(UTC)
    dbos.run_workflow(ctx, tag, "o", workflow_id="orig").get_result()
    dbos.fork_workflow(ctx, "orig", 0, new_workflow_id="copy").get_result()
    dbos.run_workflow(ctx, tag, "d", workflow_id="delayed", queue="later", delay=hour)
    dbos.run_workflow(
        ctx, tag, "u", workflow_id="unique", queue="later", delay=hour, deduplication_id="u-1"
    )
    dbos.run_workflow(ctx, tag, "p", workflow_id="part", queue=split, partition_key="k1")
    burst = debouncer.debounce(ctx, "key", "b", delay=hour)
    backend.query(
        "UPDATE {s}.workflow_status SET schedule_name = 'nightly', class_name = 'Jobs', "
        "config_name = 'main' WHERE workflow_uuid = 'orig'"
    )
    by_id = {w.workflow_id: w for w in dbos.list_workflows(ctx)}

    orig = by_id["orig"]
    assert (orig.was_forked_from, orig.schedule_name) == (True, "nightly")
    assert (orig.class_name, orig.config_name) == ("Jobs", "main")
    assert orig.serialization == "portable_json"
    assert by_id["copy"].was_forked_from is False
    delayed = by_id["delayed"]
    assert delayed.status is dbos.StatusName.DELAYED
    assert delayed.delay_until is not None and delayed.delay_until >= before + hour
    assert by_id["part"].queue_partition_key == "k1"
    assert by_id["unique"].deduplication_id == "u-1"
    debounced = by_id[burst.workflow_id]
    assert debounced.is_debounced and not delayed.is_debounced
    assert debounced.debounce_deadline is None  # no max_wait
    assert burst.get_status().is_debounced  # the handle's status reads the same row

    def ids(**filters: Any) -> list[str]:
        return sorted(w.workflow_id for w in dbos.list_workflows(ctx, **filters))

    assert ids(is_debounced=True) == [burst.workflow_id]
    assert burst.workflow_id not in ids(is_debounced=False)
    assert ids(deduplication_id="u-1") == ["unique"]
    assert debounced.deduplication_id is not None
    assert ids(deduplication_id=["u-1", debounced.deduplication_id]) == sorted(
        ["unique", burst.workflow_id]
    )
    [group] = dbos.get_workflow_aggregates(ctx, group_by=["status"], is_debounced=True)
    assert group.count == 1
    with pytest.raises(dbos.InvalidOptionError) as info:
        ids(is_debounced="yes")
    assert info.value.argument == "is_debounced"


def test_fork_workflows_copies_all_or_none(backend: Backend) -> None:
    ctx = _ctx(backend)
    step_runs.clear()
    dbos.run_workflow(ctx, three_steps, "x", workflow_id="x").get_result()
    dbos.run_workflow(ctx, three_steps, "y", workflow_id="y").get_result()
    step_runs.clear()

    with pytest.raises(dbos.NonExistentWorkflowError) as info:
        dbos.fork_workflows(ctx, [("x", 1, "x-copy"), ("missing", 0)])
    assert info.value.workflow_id == "missing"
    assert dbos.list_workflows(ctx, workflow_ids=["x-copy"]) == []  # nothing was written
    assert dbos.list_workflows(ctx, was_forked_from=True) == []

    handles = dbos.fork_workflows(ctx, [("x", 2, "x-copy"), ("y", 1)], queue_name="later")
    assert handles[0].workflow_id == "x-copy"
    assert [h.get_status().queue_name for h in handles] == ["later", "later"]
    dbos.register_queue(ctx, "later")
    assert [h.get_result(timeout=timedelta(seconds=20)) for h in handles] == [
        "x-a+x-b+x-c",
        "y-a+y-b+y-c",
    ]
    assert sorted(step_runs) == ["x-c", "y-b", "y-c"]  # earlier steps were copied, not run
    assert [w.forked_from for w in dbos.list_workflows(ctx, workflow_ids=["x-copy"])] == ["x"]

    for forks in ("x", [("x",)], [("x", -1)], [("x", 0, "same"), ("y", 0, "same")]):
        with pytest.raises(dbos.InvalidOptionError) as bad:
            dbos.fork_workflows(ctx, forks)  # type: ignore[arg-type]
        assert bad.value.argument == "forks"


def test_fork_workflows_from_a_workflow_is_made_once(backend: Backend) -> None:
    def steer(ctx: dbos.WorkflowContext) -> list[str]:
        return [h.workflow_id for h in dbos.fork_workflows(ctx, [("orig", 1), ("orig", 2)])]

    ctx = backend.context_with(three_steps, steer)
    ctx.launch()
    dbos.run_workflow(ctx, three_steps, "o", workflow_id="orig").get_result()
    copies = dbos.run_workflow(ctx, steer, workflow_id="steer").get_result()
    assert len(set(copies)) == 2
    again = dbos.fork_workflow(ctx, "steer", 1, new_workflow_id="steer-again")
    assert again.get_result(timeout=timedelta(seconds=20)) == copies  # the recorded answer
    assert sorted(w.workflow_id for w in dbos.list_workflows(ctx, forked_from="orig")) == sorted(
        copies
    )


def test_an_unknown_filter_is_refused_like_an_unknown_keyword(backend: Backend) -> None:
    ctx = backend.new_context()
    loose: Any = dbos
    with pytest.raises(
        TypeError, match="list_workflows\\(\\) got an unexpected keyword argument 'colour'"
    ):
        loose.list_workflows(ctx, colour="red")
    with pytest.raises(TypeError, match="'colour'"):
        loose.get_workflow_aggregates(ctx, group_by=["status"], colour="red")


class Total(BaseModel):
    cents: int


def test_a_handle_typed_otherwise_decodes_a_run_of_this_process_as_stored(
    backend: Backend,
) -> None:
    gate = Gate()

    def totals(ctx: dbos.WorkflowContext) -> dict[str, int]:
        dbos.run_as_step(ctx, gate, name="gate")
        return {"cents": 250}

    ctx = backend.context_with(totals)
    ctx.launch()
    plain = dbos.run_workflow(ctx, totals, workflow_id="local")
    gate.wait_entered()
    typed = dbos.retrieve_workflow[Total](ctx, "local")  # attached to the run going on here
    gate.open()
    assert typed.get_result(timeout=timedelta(seconds=20)) == Total(cents=250)
    assert plain.get_result() == {"cents": 250}


def test_resume_and_fork_take_a_result_type(backend: Backend) -> None:
    gate = Gate()

    def totals(ctx: dbos.WorkflowContext) -> dict[str, int]:
        dbos.run_as_step(ctx, gate, name="gate")
        return {"cents": dbos.run_as_step(ctx, lambda: 250, name="price")}

    ctx = backend.context_with(totals)
    ctx.launch()
    dbos.run_workflow(ctx, totals, workflow_id="t")
    gate.wait_entered()
    dbos.cancel_workflow(ctx, "t")
    gate.open()
    resumed = dbos.resume_workflow[Total](ctx, "t")
    assert resumed.get_result(timeout=timedelta(seconds=20)) == Total(cents=250)
    fork = dbos.fork_workflow[Total](ctx, "t", 1, new_workflow_id="t2")
    assert fork.get_result(timeout=timedelta(seconds=20)) == Total(cents=250)
    # Untyped, as before: the registered workflow's result type.
    assert dbos.fork_workflow(ctx, "t", 1).get_result(timeout=timedelta(seconds=20)) == {
        "cents": 250
    }
    assert dbos.resume_workflow(ctx, "t").get_result() == {"cents": 250}
