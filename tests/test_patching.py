"""Patching: code changed under workflows in flight, and the version patching implies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Literal

import pytest

import dbos_typed as dbos
from tests.conftest import Backend, Gate

WAIT = timedelta(seconds=20)
MARKER = "DBOS.patch-pricing"

Code = Literal["old", "patched", "deprecated"]


def _opened() -> Gate:
    gate = Gate()
    gate.open()
    return gate


def _checkout(
    code: Code, early: Gate, late: Gate, ran: list[str]
) -> Callable[[dbos.WorkflowContext], str]:
    """One version of the same workflow; `ran` records every step body that executes."""

    def body(label: str) -> str:
        ran.append(label)
        return label

    def checkout(ctx: dbos.WorkflowContext) -> str:
        first = dbos.run_as_step(ctx, lambda: body("first"), name="first")
        dbos.run_as_step(ctx, early, name="early")
        if code == "old":
            branch = dbos.run_as_step(ctx, lambda: body("old"), name="old")
        elif code == "patched":
            if dbos.patch(ctx, "pricing"):
                branch = dbos.run_as_step(ctx, lambda: body("new"), name="new")
            else:
                branch = dbos.run_as_step(ctx, lambda: body("old"), name="old")
        else:
            dbos.deprecate_patch(ctx, "pricing")
            branch = dbos.run_as_step(ctx, lambda: body("new"), name="new")
        dbos.run_as_step(ctx, late, name="late")
        last = dbos.run_as_step(ctx, lambda: body("last"), name="last")
        return f"{first}-{branch}-{last}"

    return checkout


def _deploy(
    backend: Backend, code: Code, early: Gate, late: Gate, ran: list[str]
) -> tuple[dbos.DBOSContext, Callable[[dbos.WorkflowContext], str]]:
    """A launched context running this version of the code (same name, same app version)."""
    ctx = backend.new_context(enable_patching=code != "old")
    workflow = _checkout(code, early, late, ran)
    dbos.register_workflow(ctx, workflow, name="checkout")
    ctx.launch()
    return ctx, workflow


def _stop_at(ctx: dbos.DBOSContext, gate: Gate) -> None:
    """The process dies while a workflow waits at `gate`: its row stays PENDING."""
    gate.wait_entered()
    ctx.shutdown(timeout=timedelta(0))
    gate.open()  # the stopped run's step ends, but it can no longer record anything


def _step_names(ctx: dbos.DBOSContext, workflow_id: str) -> list[str]:
    return [s.name for s in dbos.get_workflow_steps(ctx, workflow_id)]


def test_a_run_started_by_old_code_keeps_the_old_branch(backend: Backend) -> None:
    late = Gate()
    ran: list[str] = []
    old, workflow = _deploy(backend, "old", _opened(), late, ran)
    dbos.run_workflow(old, workflow, workflow_id="before-deploy")
    _stop_at(old, late)
    assert ran == ["first", "old"]

    new, workflow = _deploy(backend, "patched", _opened(), late, ran)
    # Recovered by the patched code: no non-determinism, the old branch, replayed.
    recovered = dbos.retrieve_workflow[str](new, "before-deploy")
    assert recovered.get_result(timeout=WAIT) == "first-old-last"
    assert ran == ["first", "old", "last"]
    assert _step_names(new, "before-deploy") == ["first", "early", "old", "late", "last"]

    fresh = dbos.run_workflow(new, workflow, workflow_id="after-deploy")
    assert fresh.get_result(timeout=WAIT) == "first-new-last"
    assert _step_names(new, "after-deploy") == ["first", "early", MARKER, "new", "late", "last"]


def test_a_run_whose_history_ends_before_the_patch_takes_the_new_branch(
    backend: Backend,
) -> None:
    early = Gate()
    ran: list[str] = []
    old, workflow = _deploy(backend, "old", early, _opened(), ran)
    dbos.run_workflow(old, workflow, workflow_id="early-stop")
    _stop_at(old, early)

    new, _ = _deploy(backend, "patched", early, _opened(), ran)
    recovered = dbos.retrieve_workflow[str](new, "early-stop")
    assert recovered.get_result(timeout=WAIT) == "first-new-last"
    assert _step_names(new, "early-stop") == ["first", "early", MARKER, "new", "late", "last"]
    assert ran == ["first", "new", "last"]


def test_a_patched_run_replays_its_marker(backend: Backend) -> None:
    late = Gate()
    ran: list[str] = []
    first, workflow = _deploy(backend, "patched", _opened(), late, ran)
    dbos.run_workflow(first, workflow, workflow_id="patched-run")
    _stop_at(first, late)

    again, _ = _deploy(backend, "patched", _opened(), late, ran)
    recovered = dbos.retrieve_workflow[str](again, "patched-run")
    assert recovered.get_result(timeout=WAIT) == "first-new-last"
    assert ran == ["first", "new", "last"]  # the marker answered True; "new" was replayed
    assert _step_names(again, "patched-run").count(MARKER) == 1


def test_deprecated_code_replays_histories_with_and_without_the_marker(
    backend: Backend,
) -> None:
    late = Gate()
    ran: list[str] = []
    patched, workflow = _deploy(backend, "patched", _opened(), late, ran)
    dbos.run_workflow(patched, workflow, workflow_id="marked")
    _stop_at(patched, late)
    ran.clear()

    current, workflow = _deploy(backend, "deprecated", _opened(), late, ran)
    # A history with the marker, recovered by the deprecated code: the marker is skipped.
    marked = dbos.retrieve_workflow[str](current, "marked")
    assert marked.get_result(timeout=WAIT) == "first-new-last"
    assert ran == ["last"]
    assert _step_names(current, "marked") == ["first", "early", MARKER, "new", "late", "last"]

    # A history the deprecated code wrote itself: no marker, and nothing to skip.
    unmarked = dbos.run_workflow(current, workflow, workflow_id="unmarked")
    assert unmarked.get_result(timeout=WAIT) == "first-new-last"
    assert _step_names(current, "unmarked") == ["first", "early", "new", "late", "last"]

    # Both replay under the deprecated code: everything before the fork point is replayed.
    ran.clear()
    copy = dbos.fork_workflow(current, "unmarked", 3, new_workflow_id="unmarked-copy")
    assert copy.get_result(timeout=WAIT) == "first-new-last"
    copy = dbos.fork_workflow(current, "marked", 4, new_workflow_id="marked-copy")
    assert copy.get_result(timeout=WAIT) == "first-new-last"
    assert ran == ["last", "last"]


def test_patching_must_be_enabled(backend: Backend) -> None:
    def uses_patches(ctx: dbos.WorkflowContext) -> list[str]:
        refused: list[str] = []
        try:
            dbos.patch(ctx, "pricing")
        except dbos.PatchingNotEnabledError as exc:
            refused.append(exc.operation)
        try:
            dbos.deprecate_patch(ctx, "pricing")
        except dbos.PatchingNotEnabledError as exc:
            refused.append(exc.operation)
        return refused

    ctx = backend.context_with(uses_patches)
    ctx.launch()
    handle = dbos.run_workflow(ctx, uses_patches, workflow_id="not-enabled")
    assert handle.get_result(timeout=WAIT) == ["patch", "deprecate_patch"]
    assert _step_names(ctx, "not-enabled") == []


def test_patch_is_refused_inside_a_step_and_outside_a_workflow(backend: Backend) -> None:
    def in_a_step(ctx: dbos.WorkflowContext) -> list[str]:
        refused: list[str] = []
        for call in (lambda: dbos.patch(ctx, "p"), lambda: dbos.deprecate_patch(ctx, "p")):
            try:
                dbos.run_as_step(ctx, call, name="inner")
            except dbos.StepFailedError as exc:
                refused.append(exc.error_name)
        try:
            dbos.patch(ctx, "")
        except dbos.InvalidOptionError as exc:
            refused.append(exc.argument)
        return refused

    ctx = backend.context_with(in_a_step, enable_patching=True)
    ctx.launch()
    handle = dbos.run_workflow(ctx, in_a_step, workflow_id="in-step")
    assert handle.get_result(timeout=WAIT) == ["InvalidOptionError", "InvalidOptionError", "name"]
    assert _step_names(ctx, "in-step") == ["inner", "inner"]
    with pytest.raises(dbos.InvalidOptionError):
        dbos.patch(ctx, "p")  # type: ignore[arg-type]
    with pytest.raises(dbos.InvalidOptionError):
        dbos.deprecate_patch(ctx, "p")  # type: ignore[arg-type]


def test_patching_fixes_the_default_application_version(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBOS__APPVERSION", raising=False)

    def wf(ctx: dbos.WorkflowContext) -> int:
        return 1

    patched = backend.context_with(wf, application_version=None, enable_patching=True)
    assert patched.application_version == "PATCHING_ENABLED"  # known before launch
    patched.launch()
    assert [v.name for v in dbos.list_application_versions(patched)] == ["PATCHING_ENABLED"]
    patched.shutdown()

    hashed = backend.context_with(wf, application_version=None)
    hashed.launch()
    assert hashed.application_version not in ("", "PATCHING_ENABLED")

    pinned = backend.config(application_version="v7", enable_patching=True)
    assert pinned.pinned_application_version() == "v7"
    monkeypatch.setenv("DBOS__APPVERSION", "from-env")
    assert backend.config(enable_patching=True).pinned_application_version() == "from-env"
    with pytest.raises(dbos.InvalidOptionError, match="enable_patching"):
        dbos.Config(app_name="a", enable_patching="yes")  # type: ignore[arg-type]
