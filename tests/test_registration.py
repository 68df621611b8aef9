"""Registration settles types up front and refuses what could not be stored or replayed."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest

import dbos_typed as dbos
from tests.conftest import Backend


class NotSerializable:
    def __init__(self, fd: int) -> None:
        self.fd = fd


def takes_unknown(ctx: dbos.WorkflowContext, value: UndefinedName) -> int:  # type: ignore[name-defined]  # noqa: F821
    return 1


def takes_opaque(ctx: dbos.WorkflowContext, value: NotSerializable) -> int:
    return 1


def no_return(ctx: dbos.WorkflowContext, value: int):  # type: ignore[no-untyped-def]
    return value


def too_many(ctx: dbos.WorkflowContext, a: int, b: int) -> int:
    return a + b


def fine(ctx: dbos.WorkflowContext, value: int) -> int:
    return value


def test_unresolvable_annotation_names_the_function(backend: Backend) -> None:
    ctx = backend.new_context()
    with pytest.raises(dbos.RegistrationError, match=r"takes_unknown.*UndefinedName"):
        dbos.register_workflow(ctx, takes_unknown)


def test_unserializable_type_names_the_parameter(backend: Backend) -> None:
    ctx = backend.new_context()
    with pytest.raises(
        dbos.RegistrationError, match=r"parameter .value. of workflow .*takes_opaque"
    ):
        dbos.register_workflow(ctx, takes_opaque)


@pytest.mark.parametrize(
    ("fn", "message"),
    [(no_return, "no return annotation"), (too_many, "at most one input")],
)
def test_bad_signatures_are_refused(backend: Backend, fn: Any, message: str) -> None:
    ctx = backend.new_context()
    with pytest.raises(dbos.RegistrationError, match=message):
        dbos.register_workflow(ctx, fn)


def test_non_callable_and_bad_options_are_refused(backend: Backend) -> None:
    ctx = backend.new_context()
    with pytest.raises(dbos.RegistrationError, match="not callable"):
        dbos.register_workflow(ctx, 42)  # type: ignore[call-overload]
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.register_workflow(ctx, fine, max_recovery_attempts=0)
    assert info.value.argument == "max_recovery_attempts"
    with pytest.raises(dbos.InvalidOptionError):
        dbos.register_workflow(ctx, fine, name="")


def test_contexts_created_concurrently_migrate_once(backend: Backend) -> None:
    errors: list[BaseException] = []
    contexts: list[dbos.DBOSContext] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def create() -> None:
        start.wait()
        try:
            ctx = dbos.new_context(backend.config())
        except BaseException as exc:
            errors.append(exc)
            return
        with lock:
            contexts.append(ctx)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    backend.contexts.extend(contexts)
    assert errors == []
    assert len(contexts) == 4
    assert backend.query("SELECT version FROM {s}.dbos_migrations") == [(125,)]


def test_a_first_run_checkpoint_is_one_statement(backend: Backend) -> None:
    def ten_steps(ctx: dbos.WorkflowContext) -> int:
        return sum(dbos.run_as_step(ctx, lambda i=i: i, name=f"s{i}") for i in range(10))  # type: ignore[misc]

    ctx = backend.new_context()
    dbos.register_workflow(ctx, ten_steps)
    ctx.launch()
    store: Any = ctx._runtime.store
    statements: list[str] = []
    original = store._query

    def counting(query: str, params: Any) -> Any:
        if threading.current_thread().name.startswith("dbos-test-app"):
            statements.append(" ".join(query.split())[:40])
        return original(query, params)

    store._query = counting
    assert dbos.run_workflow(ctx, ten_steps).get_result() == 45
    # start + 10 checkpoints + outcome: no reads before steps on a first run.
    step_writes = [s for s in statements if "operation_outputs" in s]
    assert len(step_writes) == 10
    assert all(s.startswith("INSERT") for s in step_writes)
    assert not [s for s in statements if s.startswith("SELECT")]


def test_list_registered_workflows_reports_what_was_registered(backend: Backend) -> None:
    async def later(ctx: dbos.WorkflowContext) -> None:
        return None

    def ticking(ctx: dbos.WorkflowContext, scheduled_time: datetime) -> None:
        return None

    ctx = backend.new_context()
    dbos.register_workflow(ctx, fine, name="fine", max_recovery_attempts=None)
    dbos.register_workflow(ctx, later, name="later", max_recovery_attempts=3)
    dbos.register_workflow(ctx, ticking, name="ticking", schedule="*/5 * * * *")
    entries = dbos.list_registered_workflows(ctx)
    assert [(e.name, e.function, e.max_recovery_attempts) for e in entries] == [
        ("fine", fine, None),
        ("later", later, 3),
        ("ticking", ticking, 100),
    ]
    assert [(e.takes_input, e.is_async, e.schedule) for e in entries] == [
        (True, False, None),
        (False, True, None),
        (True, False, "*/5 * * * *"),
    ]
    assert dbos.list_registered_workflows(backend.new_context()) == []
    with pytest.raises(dbos.InvalidOptionError, match="ctx"):
        dbos.list_registered_workflows("not a context")  # type: ignore[arg-type]
