"""export_workflow / import_workflow: a workflow's rows moved to another system database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

import dbos_typed as dbos
from tests.conftest import Backend
from tests.fresh_databases import fresh_database

WAIT = timedelta(seconds=10)


class Total(BaseModel):
    amount: int
    note: str


def child(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n * 10, name="times-ten")


def parent(ctx: dbos.WorkflowContext, n: int) -> Total:
    first = dbos.run_as_step(ctx, lambda: n + 1, name="add-one")
    dbos.set_event(ctx, "stage", "started")
    dbos.write_stream(ctx, "log", "a")
    from_child = dbos.run_workflow(ctx, child, n, workflow_id="export-child").get_result()
    dbos.write_stream(ctx, "log", "b")
    dbos.close_stream(ctx, "log")
    dbos.set_event(ctx, "stage", "done")
    return Total(amount=first + from_child, note="ok")


def _source(backend: Backend) -> dbos.DBOSContext:
    ctx = backend.context_with(parent, child)
    ctx.launch()
    assert dbos.run_workflow(ctx, parent, 4, workflow_id="export-parent").get_result() == Total(
        amount=45, note="ok"
    )
    return ctx


@pytest.fixture(params=["sqlite", "postgres"])
def target_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _target(backend: Backend, url: str) -> dbos.DBOSContext:
    ctx = dbos.new_context(dbos.Config(app_name="test-app", database_url=url))
    backend.contexts.append(ctx)
    dbos.register_workflow(ctx, parent)
    dbos.register_workflow(ctx, child)
    return ctx


def test_export_import_round_trips_into_either_backend(
    backend: Backend, target_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = _source(backend)
    exported = dbos.export_workflow(source, "export-parent", children=True)
    assert [w["workflow_status"]["workflow_uuid"] for w in exported] == [
        "export-parent",
        "export-child",
    ]
    # Plain JSON data: it survives a trip through text.
    text = json.dumps(exported)
    postgres_url = request.getfixturevalue("postgres_url") if target_kind == "postgres" else ""
    with fresh_database(target_kind, postgres_url, tmp_path) as url:
        target = _target(backend, url)
        dbos.import_workflow(target, text)
        assert dbos.retrieve_workflow[Total](target, "export-parent").get_result(
            timeout=WAIT
        ) == Total(amount=45, note="ok")
        assert dbos.retrieve_workflow[int](target, "export-child").get_result(timeout=WAIT) == 40
        listed = {w.workflow_id: w for w in dbos.list_workflows(target)}
        original = {w.workflow_id: w for w in dbos.list_workflows(source)}
        assert set(listed) == set(original) == {"export-parent", "export-child"}
        for workflow_id, status in listed.items():
            theirs = original[workflow_id]
            assert (status.status, status.name, status.created_at, status.input) == (
                theirs.status,
                theirs.name,
                theirs.created_at,
                theirs.input,
            )
            assert status.parent_workflow_id == theirs.parent_workflow_id
        steps = [
            (s.step_id, s.name, s.output, s.child_workflow_id)
            for s in dbos.get_workflow_steps(target, "export-parent")
        ]
        assert steps == [
            (s.step_id, s.name, s.output, s.child_workflow_id)
            for s in dbos.get_workflow_steps(source, "export-parent")
        ]
        assert dbos.get_event[str](target, "export-parent", "stage", timeout=WAIT) == "done"
        assert list(dbos.read_stream[str](target, "export-parent", "log")) == ["a", "b"]
        # The event history came along too: an export from the target is the same document.
        again = dbos.export_workflow(target, "export-parent", children=True)
        assert again == exported
        assert len(again[0]["workflow_events_history"]) == 2
        target.shutdown()


def test_an_existing_id_refuses_the_whole_import(backend: Backend) -> None:
    ctx = _source(backend)
    exported = dbos.export_workflow(ctx, "export-parent", children=True)
    # The parent is new under another ID, but the child's ID is taken: nothing is written.
    exported[0]["workflow_status"]["workflow_uuid"] = "renamed"
    for table in ("workflow_input", "workflow_output"):
        exported[0][table]["workflow_uuid"] = "renamed"
    for table in ("operation_outputs", "workflow_events", "workflow_events_history", "streams"):
        for row in exported[0][table]:
            row["workflow_uuid"] = "renamed"
    with pytest.raises(dbos.WorkflowExistsError, match="export-child") as caught:
        dbos.import_workflow(ctx, exported)
    assert caught.value.workflow_id == "export-child"
    assert backend.query("SELECT 1 FROM {s}.workflow_status WHERE workflow_uuid = 'renamed'") == []
    assert backend.query("SELECT 1 FROM {s}.streams WHERE workflow_uuid = 'renamed'") == []


def test_export_without_children_and_of_a_missing_workflow(backend: Backend) -> None:
    ctx = _source(backend)
    [only] = dbos.export_workflow(ctx, "export-parent")
    assert only["workflow_status"]["name"] == "parent"
    assert only["operation_outputs"][0]["function_name"] == "add-one"
    with pytest.raises(dbos.NonExistentWorkflowError):
        dbos.export_workflow(ctx, "missing")
    with pytest.raises(dbos.InvalidOptionError, match="children"):
        dbos.export_workflow(ctx, "export-parent", children="yes")  # type: ignore[arg-type]


def _broken(exported: list[dict[str, object]], how: str) -> object:
    workflow = exported[0]
    status = workflow["workflow_status"]
    assert isinstance(status, dict)
    if how == "not-a-list":
        return {"workflow_status": status}
    if how == "missing-table":
        del workflow["streams"]
    elif how == "unknown-column":
        status["colour"] = "red"
    elif how == "missing-column":
        del status["name"]
    elif how == "nested-value":
        status["name"] = {"x": 1}
    elif how == "foreign-row":
        streams = workflow["streams"]
        assert isinstance(streams, list)
        streams[0]["workflow_uuid"] = "someone-else"
    elif how == "twice":
        exported.append(workflow)
    return exported


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("not-a-list", "non-empty list"),
        ("missing-table", "missing table 'streams'"),
        ("unknown-column", "unknown column 'colour'"),
        ("missing-column", "missing column 'name'"),
        ("nested-value", "column 'name' must be a JSON scalar"),
        ("foreign-row", r"'streams' row 0: 'workflow_uuid' is not the workflow's ID"),
        ("twice", "appears twice"),
    ],
)
def test_a_malformed_document_is_refused_and_nothing_is_written(
    backend: Backend, how: str, message: str, tmp_path: Path
) -> None:
    ctx = _source(backend)
    exported = dbos.export_workflow(ctx, "export-parent")
    target_url = f"sqlite:///{tmp_path / 'target.sqlite'}"
    target = _target(backend, target_url)
    with pytest.raises(dbos.InvalidOptionError, match=message) as caught:
        dbos.import_workflow(target, _broken(exported, how))  # type: ignore[arg-type]
    assert caught.value.argument == "exported"
    assert dbos.list_workflows(target) == []
    with pytest.raises(dbos.InvalidOptionError, match="not JSON"):
        dbos.import_workflow(target, "{oops")


def test_a_client_exports_and_imports(backend: Backend, tmp_path: Path) -> None:
    source = _source(backend)
    with dbos.new_client(backend.config()) as client:
        exported = dbos.export_workflow(client, "export-parent", children=True)
    assert exported == dbos.export_workflow(source, "export-parent", children=True)
    target_url = f"sqlite:///{tmp_path / 'target.sqlite'}"
    _target(backend, target_url).launch()  # creates the schema a client needs
    with dbos.new_client(target_url) as client:
        dbos.import_workflow(client, exported)
        assert dbos.retrieve_workflow(client, "export-child").get_result(timeout=WAIT) == 40


def test_refused_in_a_workflow_body(backend: Backend) -> None:
    def exporter(ctx: dbos.WorkflowContext) -> str:
        try:
            dbos.export_workflow(ctx, "x")
        except dbos.InvalidOptionError as exc:
            return exc.message
        return "allowed"

    ctx = backend.context_with(exporter)
    ctx.launch()
    assert "call it from a step" in dbos.run_workflow(ctx, exporter).get_result(timeout=WAIT)
