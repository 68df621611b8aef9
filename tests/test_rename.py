"""rename_application: an application takes over the rows another name (or none) holds."""

from __future__ import annotations

from datetime import timedelta

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, Gate

TABLES = {
    "queues": "queues",
    "schedules": "workflow_schedules",
    "versions": "application_versions",
    "workflows": "workflow_status",
    "steps": "operation_outputs",
}


def two_steps(ctx: dbos.WorkflowContext, tag: str) -> str:
    for _ in range(2):
        dbos.run_as_step(ctx, lambda: "s", name="s")
    return tag


def _owned(backend: Backend, owner: str | None) -> dict[str, int]:
    condition = "application_name IS NULL" if owner is None else "application_name = %s"
    params = () if owner is None else (owner,)
    return {
        kind: int(
            str(
                backend.query(f"SELECT count(*) FROM {{s}}.{table} WHERE {condition}", *params)[0][
                    0
                ]
            )
        )
        for kind, table in TABLES.items()
    }


def test_rows_move_to_the_new_name_in_batches_and_others_stay(backend: Backend) -> None:
    first = backend.new_context("app-a", application_version="a-version")
    dbos.register_workflow(first, two_steps, name="two_steps")
    queue = dbos.register_queue(first, "rename-queue")
    first.launch()
    for i in range(3):
        dbos.run_workflow(first, two_steps, f"t{i}", queue=queue).get_result()
    dbos.run_workflow(
        first, two_steps, "later", workflow_id="later", queue=queue, delay=timedelta(hours=1)
    )
    dbos.create_schedule(first, "rename-schedule", "ticks", "0 0 0 1 1 *")
    other = backend.new_context("app-b", application_version="b-version")
    dbos.register_workflow(other, two_steps, name="two_steps")
    other.launch()
    dbos.run_workflow(other, two_steps, "b", workflow_id="b-one").get_result()
    first.shutdown()

    before = _owned(backend, "app-a")
    assert before["workflows"] == 4 and before["steps"] == 6 and before["schedules"] == 1
    untouched = _owned(backend, "app-b")
    with dbos.new_client(backend.config("tools")) as client:
        counts = dbos.rename_application(client, "app-a", "app-c", batch_size=1)
    assert counts == dbos.ApplicationRowCounts(**before)
    assert _owned(backend, "app-a") == dict.fromkeys(TABLES, 0)
    assert _owned(backend, "app-c") == before
    assert _owned(backend, "app-b") == untouched

    # The new name sees its workflows, and its executors run the one still queued.
    renamed = backend.new_context("app-c", application_version="a-version")
    dbos.register_workflow(renamed, two_steps, name="two_steps")
    dbos.register_queue(renamed, "rename-queue")
    renamed.launch()
    assert len(dbos.list_workflows(renamed, name="two_steps")) == 4
    dbos.set_workflow_delay(renamed, "later", delay=timedelta(0))
    later = dbos.retrieve_workflow[str](renamed, "later")
    assert later.get_result(timeout=timedelta(seconds=20)) == "later"


def test_unclaimed_rows_move_only_when_adopted(backend: Backend) -> None:
    ctx = backend.new_context("owner")
    dbos.register_workflow(ctx, two_steps, name="two_steps")
    ctx.launch()
    dbos.run_workflow(ctx, two_steps, "x", workflow_id="loose").get_result()
    dbos.run_workflow(ctx, two_steps, "y", workflow_id="kept").get_result()
    backend.query(
        "UPDATE {s}.workflow_status SET application_name = NULL WHERE workflow_uuid = 'loose'"
    )
    unclaimed = _owned(backend, None)
    assert unclaimed["workflows"] == 1

    assert dbos.rename_application(ctx, "no-such-app", "adopter") == dbos.ApplicationRowCounts()
    counts = dbos.rename_application(ctx, None, "adopter", adopt_unclaimed=True)
    assert counts == dbos.ApplicationRowCounts(**unclaimed)
    assert _owned(backend, None) == dict.fromkeys(TABLES, 0)
    owners = backend.query(
        "SELECT workflow_uuid, application_name FROM {s}.workflow_status ORDER BY workflow_uuid"
    )
    assert owners == [("kept", "owner"), ("loose", "adopter")]


def test_bad_arguments_are_refused_and_change_nothing(backend: Backend) -> None:
    ctx = backend.new_context("owner")
    ctx.launch()
    before = _owned(backend, "owner")
    for args, kwargs, argument in (
        ((None, "new"), {}, "old_name"),
        (("owner", "owner"), {}, "new_name"),
        (("owner", ""), {}, "new_name"),
        (("", "new"), {}, "old_name"),
        (("owner", "new"), {"batch_size": 0}, "batch_size"),
        (("owner", "new"), {"batch_size": True}, "batch_size"),
    ):
        with pytest.raises(dbos.InvalidOptionError) as info:
            dbos.rename_application(ctx, *args, **kwargs)
        assert info.value.argument == argument
    assert _owned(backend, "owner") == before


def test_the_new_name_recovers_a_workflow_the_old_one_left_pending(backend: Backend) -> None:
    gate = Gate()

    def held(ctx: dbos.WorkflowContext) -> str:
        dbos.run_as_step(ctx, gate, name="gate")
        return "done"

    old = backend.new_context("app-a")
    dbos.register_workflow(old, held, name="held")
    old.launch()
    dbos.run_workflow(old, held, workflow_id="stranded")
    gate.wait_entered()
    old.shutdown(timeout=timedelta(0))  # the process "dies": the row stays PENDING
    gate.open()

    # Recovery is scoped by application name: before the rename the new name leaves it.
    early = backend.new_context("app-c")
    dbos.register_workflow(early, held, name="held")
    early.launch()
    status = dbos.retrieve_workflow(early, "stranded").get_status()
    assert status.status is dbos.StatusName.PENDING
    early.shutdown()

    with dbos.new_client(backend.config("tools")) as client:
        counts = dbos.rename_application(client, "app-a", "app-c")
    assert (counts.workflows, counts.steps) == (1, 0)
    renamed = backend.new_context("app-c")
    dbos.register_workflow(renamed, held, name="held")
    renamed.launch()
    result = dbos.retrieve_workflow[str](renamed, "stranded").get_result(
        timeout=timedelta(seconds=20)
    )
    assert result == "done"
    assert [s.name for s in dbos.get_workflow_steps(renamed, "stranded")] == ["gate"]
