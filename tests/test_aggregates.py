"""Workflow and step aggregates: groups, time buckets, metrics, filters, errors and replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, Gate

# An hour boundary, so one-hour buckets are easy to read: 2025-01-01T00:00:00Z.
T0 = 1_735_689_600_000
HOUR = 3_600_000
T0_DATETIME = datetime(2025, 1, 1, tzinfo=UTC)


def tally(ctx: dbos.WorkflowContext, tag: str) -> str:
    return dbos.run_as_step(ctx, lambda: tag, name="echo")


def broken(ctx: dbos.WorkflowContext, tag: str) -> str:
    raise ValueError(f"bad {tag}")


def mixed(ctx: dbos.WorkflowContext, tag: str) -> str:
    dbos.run_as_step(ctx, lambda: tag, name="fetch")
    dbos.run_as_step(ctx, lambda: tag, name="store")
    try:
        dbos.run_as_step(ctx, lambda: _fail(tag), name="store")
    except dbos.StepFailedError:
        pass
    return tag


def _fail(tag: str) -> str:
    raise RuntimeError(tag)


def _times(
    backend: Backend,
    workflow_id: str,
    created: int,
    started: int | None = None,
    completed: int | None = None,
) -> None:
    backend.query(
        "UPDATE {s}.workflow_status SET created_at = %s, started_at_epoch_ms = %s, "
        "completed_at = %s WHERE workflow_uuid = %s",
        created,
        started,
        completed,
        workflow_id,
    )


def _populated(backend: Backend) -> dbos.DBOSContext:
    """Five workflows at known times: three SUCCESS, one ERROR, one DELAYED on a queue."""
    ctx = backend.context_with(tally, broken)
    dbos.register_queue(ctx, "later")
    ctx.launch()
    for n in range(3):
        dbos.run_workflow(ctx, tally, str(n), workflow_id=f"ok-{n}").get_result()
    with pytest.raises(dbos.WorkflowFailedError):
        dbos.run_workflow(ctx, broken, "x", workflow_id="bad").get_result()
    dbos.run_workflow(
        ctx, tally, "d", workflow_id="delayed", queue="later", delay=timedelta(hours=1)
    )
    _times(backend, "ok-0", T0 + 1000, started=T0 + 1500, completed=T0 + 4000)
    _times(backend, "ok-1", T0 + 2000, completed=T0 + 2100)
    _times(backend, "ok-2", T0 + HOUR + 10, completed=T0 + HOUR + 20)
    _times(backend, "bad", T0 + 5000, completed=T0 + 5200)
    _times(backend, "delayed", T0 + 6000)
    return ctx


def _summary(rows: list[dbos.WorkflowAggregate]) -> list[tuple[Any, ...]]:
    return [(r.bucket_start, dict(r.group), r.count) for r in rows]


def test_group_by_one_column_with_metrics(backend: Backend) -> None:
    ctx = _populated(backend)
    rows = dbos.get_workflow_aggregates(ctx, group_by=["status"])
    assert _summary(rows) == [
        (None, {"status": "DELAYED"}, 1),
        (None, {"status": "ERROR"}, 1),
        (None, {"status": "SUCCESS"}, 3),
    ]
    delayed, error, success = rows
    assert success.first_created_at == T0_DATETIME + timedelta(seconds=1)
    assert success.max_queue_wait == timedelta(milliseconds=500)  # only ok-0 was dequeued
    assert success.max_latency == timedelta(seconds=3)
    assert error.first_created_at == T0_DATETIME + timedelta(seconds=5)
    assert (error.max_queue_wait, error.max_latency) == (None, timedelta(milliseconds=200))
    assert (delayed.max_queue_wait, delayed.max_latency) == (None, None)

    by_queue = dbos.get_workflow_aggregates(ctx, group_by=["queue_name"])
    assert _summary(by_queue) == [
        (None, {"queue_name": "later"}, 1),
        (None, {"queue_name": None}, 4),
    ]


def test_group_by_two_and_by_every_column(backend: Backend) -> None:
    ctx = _populated(backend)
    rows = dbos.get_workflow_aggregates(ctx, group_by=["name", "status"])
    assert _summary(rows) == [
        (None, {"name": "broken", "status": "ERROR"}, 1),
        (None, {"name": "tally", "status": "DELAYED"}, 1),
        (None, {"name": "tally", "status": "SUCCESS"}, 3),
    ]
    # The group keeps the order of group_by, and the rows sort by it.
    swapped = dbos.get_workflow_aggregates(ctx, group_by=["status", "name"])
    assert [list(r.group) for r in swapped] == [["status", "name"]] * 3
    assert [r.group["status"] for r in swapped] == ["DELAYED", "ERROR", "SUCCESS"]

    every = dbos.get_workflow_aggregates(
        ctx,
        group_by=[
            "application_name",
            "application_version",
            "executor_id",
            "queue_name",
            "status",
            "name",
        ],
        status="SUCCESS",
    )
    assert _summary(every) == [
        (
            None,
            {
                "application_name": "test-app",
                "application_version": "test-version",
                "executor_id": "local",
                "queue_name": None,
                "status": "SUCCESS",
                "name": "tally",
            },
            3,
        )
    ]


def test_time_buckets(backend: Backend) -> None:
    ctx = _populated(backend)
    hourly = dbos.get_workflow_aggregates(ctx, bucket=timedelta(hours=1))
    assert _summary(hourly) == [
        (T0_DATETIME, {}, 4),
        (T0_DATETIME + timedelta(hours=1), {}, 1),
    ]
    assert hourly[0].bucket_start is not None and hourly[0].bucket_start.tzinfo is UTC
    assert hourly[0].max_latency == timedelta(seconds=3)
    assert hourly[1].first_created_at == T0_DATETIME + timedelta(hours=1, milliseconds=10)

    by_status = dbos.get_workflow_aggregates(ctx, group_by=["status"], bucket=timedelta(hours=1))
    assert _summary(by_status) == [
        (T0_DATETIME, {"status": "DELAYED"}, 1),
        (T0_DATETIME, {"status": "ERROR"}, 1),
        (T0_DATETIME, {"status": "SUCCESS"}, 2),
        (T0_DATETIME + timedelta(hours=1), {"status": "SUCCESS"}, 1),
    ]
    # Narrower buckets split the first hour; a filter applies before bucketing.
    seconds = dbos.get_workflow_aggregates(ctx, bucket=timedelta(seconds=2), status="SUCCESS")
    assert _summary(seconds) == [
        (T0_DATETIME, {}, 1),
        (T0_DATETIME + timedelta(seconds=2), {}, 1),
        (T0_DATETIME + timedelta(hours=1), {}, 1),
    ]
    daily = dbos.get_workflow_aggregates(ctx, bucket=timedelta(days=1), name="broken")
    assert _summary(daily) == [(T0_DATETIME, {}, 1)]


def test_filters_apply_to_aggregates(backend: Backend) -> None:
    ctx = _populated(backend)
    dbos.set_workflow_attributes(ctx, "ok-1", {"team": "payments"})

    def counts(**filters: Any) -> dict[str | None, int]:
        rows = dbos.get_workflow_aggregates(ctx, group_by=["status"], **filters)
        return {r.group["status"]: r.count for r in rows}

    assert counts(name="broken") == {"ERROR": 1}
    assert counts(workflow_id_prefix="ok-") == {"SUCCESS": 3}
    assert counts(attributes={"team": "payments"}) == {"SUCCESS": 1}
    assert counts(queue_name="later") == {"DELAYED": 1}
    assert counts(created_after=T0_DATETIME + timedelta(hours=1)) == {"SUCCESS": 1}
    assert counts(dequeued_after=T0_DATETIME) == {"SUCCESS": 1}
    assert counts(has_parent=True) == {}

    # Scope: this application and unclaimed rows, unless told otherwise.
    backend.query(
        "UPDATE {s}.workflow_status SET application_name = 'other' WHERE workflow_uuid = 'bad'"
    )
    assert counts() == {"DELAYED": 1, "SUCCESS": 3}
    assert counts(all_applications=True) == {"DELAYED": 1, "ERROR": 1, "SUCCESS": 3}
    assert counts(application_name="other") == {"ERROR": 1}


def _step_times(backend: Backend, workflow_id: str, step_id: int, started: int, done: int) -> None:
    backend.query(
        "UPDATE {s}.operation_outputs SET started_at_epoch_ms = %s, completed_at_epoch_ms = %s "
        "WHERE workflow_uuid = %s AND function_id = %s",
        started,
        done,
        workflow_id,
        step_id,
    )


def _step_summary(rows: list[dbos.StepAggregate]) -> list[tuple[Any, ...]]:
    return [(r.bucket_start, dict(r.group), r.count, r.max_duration) for r in rows]


def test_step_aggregates(backend: Backend) -> None:
    ctx = backend.context_with(mixed)
    ctx.launch()
    for workflow_id in ("m1", "m2"):
        assert dbos.run_workflow(ctx, mixed, "t", workflow_id=workflow_id).get_result() == "t"
    # Each ran fetch (0), store (1) and a failing store (2).
    _step_times(backend, "m1", 0, T0, T0 + 10)
    _step_times(backend, "m1", 1, T0, T0 + 300)
    _step_times(backend, "m1", 2, T0 + 400, T0 + 450)
    _step_times(backend, "m2", 0, T0 + HOUR, T0 + HOUR + 70)
    _step_times(backend, "m2", 1, T0 + HOUR, T0 + HOUR + 20)
    _step_times(backend, "m2", 2, T0 + HOUR, T0 + HOUR + 900)
    ms = timedelta(milliseconds=1)

    assert _step_summary(dbos.get_step_aggregates(ctx, group_by=["name"])) == [
        (None, {"name": "fetch"}, 2, 70 * ms),
        (None, {"name": "store"}, 4, 900 * ms),
    ]
    assert _step_summary(dbos.get_step_aggregates(ctx, group_by=["status"])) == [
        (None, {"status": "ERROR"}, 2, 900 * ms),
        (None, {"status": "SUCCESS"}, 4, 300 * ms),
    ]
    assert _step_summary(dbos.get_step_aggregates(ctx, group_by=["name", "status"])) == [
        (None, {"name": "fetch", "status": "SUCCESS"}, 2, 70 * ms),
        (None, {"name": "store", "status": "ERROR"}, 2, 900 * ms),
        (None, {"name": "store", "status": "SUCCESS"}, 2, 300 * ms),
    ]
    hourly = dbos.get_step_aggregates(ctx, bucket=timedelta(hours=1), group_by=["status"])
    assert _step_summary(hourly) == [
        (T0_DATETIME, {"status": "ERROR"}, 1, 50 * ms),
        (T0_DATETIME, {"status": "SUCCESS"}, 2, 300 * ms),
        (T0_DATETIME + timedelta(hours=1), {"status": "ERROR"}, 1, 900 * ms),
        (T0_DATETIME + timedelta(hours=1), {"status": "SUCCESS"}, 2, 70 * ms),
    ]
    only_m2 = dbos.get_step_aggregates(ctx, group_by=["name"], workflow_ids=["m2"])
    assert _step_summary(only_m2) == [
        (None, {"name": "fetch"}, 1, 70 * ms),
        (None, {"name": "store"}, 2, 900 * ms),
    ]
    first_hour = dbos.get_step_aggregates(
        ctx,
        bucket=timedelta(days=1),
        completed_after=T0_DATETIME + timedelta(milliseconds=300),
        completed_before=T0_DATETIME + timedelta(minutes=59),
    )
    assert _step_summary(first_hour) == [(T0_DATETIME, {}, 2, 300 * ms)]

    # Steps of another application's workflows are left out unless asked for.
    backend.query(
        "UPDATE {s}.workflow_status SET application_name = 'other' WHERE workflow_uuid = 'm1'"
    )
    assert [r.count for r in dbos.get_step_aggregates(ctx, group_by=["name"])] == [1, 2]
    everything = dbos.get_step_aggregates(ctx, group_by=["name"], all_applications=True)
    assert [r.count for r in everything] == [2, 4]


def test_bad_arguments_are_refused(backend: Backend) -> None:
    ctx = backend.new_context()
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "group_by"),
        ({"group_by": []}, "group_by"),
        ({"group_by": "status"}, "group_by"),
        ({"group_by": ["state"]}, "group_by"),
        ({"group_by": ["status", "status"]}, "group_by"),
        ({"bucket": timedelta(0)}, "bucket"),
        ({"bucket": timedelta(hours=-1)}, "bucket"),
        ({"bucket": timedelta(microseconds=1500)}, "bucket"),
        ({"bucket": 3600}, "bucket"),
        ({"group_by": ["name"], "status": "DONE"}, "status"),
        (
            {"group_by": ["name"], "application_name": "a", "all_applications": True},
            "application_name",
        ),
        ({"group_by": ["name"], "attributes": ["team"]}, "attributes"),
        ({"group_by": ["name"], "has_parent": "yes"}, "has_parent"),
    ]
    for kwargs, argument in cases:
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.get_workflow_aggregates(ctx, **kwargs)
        assert info.value.argument == argument, kwargs
    step_cases: list[tuple[dict[str, Any], str]] = [
        ({}, "group_by"),
        ({"group_by": ["queue_name"]}, "group_by"),
        ({"bucket": timedelta(seconds=-1)}, "bucket"),
        ({"group_by": ["name"], "workflow_ids": [""]}, "workflow_ids"),
        ({"group_by": ["name"], "completed_after": datetime(2025, 1, 1)}, "completed_after"),
    ]
    for kwargs, argument in step_cases:
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.get_step_aggregates(ctx, **kwargs)
        assert info.value.argument == argument, kwargs


def test_aggregates_from_a_workflow_are_recorded_and_replayed(backend: Backend) -> None:
    gate = Gate()

    def report(ctx: dbos.WorkflowContext) -> list[str]:
        workflows = dbos.get_workflow_aggregates(ctx, group_by=["status"], name="tally")
        steps = dbos.get_step_aggregates(
            ctx, group_by=["name"], bucket=timedelta(days=1), workflow_ids=["before", "after"]
        )
        dbos.run_as_step(ctx, gate, name="gate")
        return [f"{r.group['status']}={r.count}" for r in workflows] + [
            f"{r.group['name']}@{r.bucket_start is not None}={r.count}" for r in steps
        ]

    first = backend.context_with(tally, report)
    first.launch()
    dbos.run_workflow(first, tally, "a", workflow_id="before").get_result()
    dbos.run_workflow(first, report, workflow_id="report")
    gate.wait_entered()
    first.shutdown(timeout=timedelta(0))
    gate.open()

    # Between the two runs the data changes; a replay must return what the first run read.
    backend.query("UPDATE {s}.workflow_status SET status = 'ERROR' WHERE workflow_uuid = 'before'")
    second = backend.context_with(tally, report)
    second.launch()
    dbos.run_workflow(second, tally, "b", workflow_id="after").get_result()
    result = dbos.retrieve_workflow[list[str]](second, "report").get_result(
        timeout=timedelta(seconds=30)
    )
    assert result == ["SUCCESS=1", "echo@True=1"]
    assert [s.name for s in dbos.get_workflow_steps(second, "report")] == [
        "DBOS.getWorkflowAggregates",
        "DBOS.getStepAggregates",
        "gate",
    ]
    # Outside a workflow the same calls read the data as it is now.
    now = dbos.get_workflow_aggregates(second, group_by=["status"], name="tally")
    assert {(r.group["status"], r.count) for r in now} == {("ERROR", 1), ("SUCCESS", 1)}
    steps_now = dbos.get_step_aggregates(
        second, group_by=["name"], workflow_ids=["before", "after"]
    )
    assert [(r.group["name"], r.count) for r in steps_now] == [("echo", 2)]
