"""The public surface is deliberate: the exported names, their docs, and picklable errors."""

from __future__ import annotations

import inspect
import pickle
from datetime import timedelta

import pytest

import dbos_typed as dbos
from dbos_typed import aio, errors, testing

EXPECTED_EXPORTS = [
    "AppContext",
    "ApplicationRowCounts",
    "ApplicationVersionNotFoundError",
    "AwaitedWorkflowCancelledError",
    "Client",
    "Config",
    "ConflictingWorkflowError",
    "DBOSContext",
    "DBOSError",
    "DataSource",
    "DeadLetterError",
    "Debouncer",
    "ErrorRecord",
    "Identity",
    "InitializationError",
    "InvalidOptionError",
    "JsonValue",
    "MaxStepRetriesExceededError",
    "NonDeterminismError",
    "NonExistentWorkflowError",
    "PatchingNotEnabledError",
    "QueueDeduplicatedError",
    "QueueNotFoundError",
    "RateLimit",
    "RegisteredWorkflow",
    "RegistrationError",
    "ScheduleNotFoundError",
    "ScheduleSpec",
    "ScheduleStatus",
    "ScheduledInput",
    "SerializationError",
    "StatusName",
    "StepAggregate",
    "StepFailedError",
    "StepInfo",
    "StepTimeoutError",
    "SystemDatabaseError",
    "VersionInfo",
    "WaitTimeoutError",
    "WorkflowAggregate",
    "WorkflowCancelledError",
    "WorkflowContext",
    "WorkflowDeadlineExceededError",
    "WorkflowError",
    "WorkflowExistsError",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowInterruptedError",
    "WorkflowQueue",
    "WorkflowSchedule",
    "WorkflowStatus",
    "aio",
    "apply_schedules",
    "backfill_schedule",
    "cancel_workflow",
    "cancel_workflows",
    "close_stream",
    "create_schedule",
    "debounce",
    "delete_queue",
    "delete_schedule",
    "delete_workflows",
    "deprecate_patch",
    "enqueue",
    "errors",
    "export_workflow",
    "fork_workflow",
    "fork_workflows",
    "garbage_collect",
    "get_all_events",
    "get_event",
    "get_identity",
    "get_latest_application_version",
    "get_schedule",
    "get_step_aggregates",
    "get_step_id",
    "get_workflow_aggregates",
    "get_workflow_id",
    "get_workflow_steps",
    "global_timeout",
    "import_workflow",
    "list_application_versions",
    "list_queued_workflows",
    "list_queues",
    "list_registered_workflows",
    "list_schedules",
    "list_workflows",
    "listen_queues",
    "new_client",
    "new_context",
    "new_data_source",
    "new_debouncer",
    "new_workflow_queue",
    "patch",
    "pause_schedule",
    "read_stream",
    "recover_pending_workflows",
    "recv",
    "register_queue",
    "register_workflow",
    "rename_application",
    "resume_schedule",
    "resume_workflow",
    "resume_workflows",
    "retrieve_queue",
    "retrieve_workflow",
    "run_as_step",
    "run_as_transaction",
    "run_workflow",
    "send",
    "send_bulk",
    "set_event",
    "set_latest_application_version",
    "set_workflow_attributes",
    "set_workflow_delay",
    "sleep",
    "trigger_schedule",
    "update_queue",
    "write_stream",
]

EXPECTED_AIO_EXPORTS = [
    "AsyncDebouncer",
    "AsyncWorkflowHandle",
    "apply_schedules",
    "backfill_schedule",
    "cancel_workflow",
    "cancel_workflows",
    "close_stream",
    "create_schedule",
    "debounce",
    "delete_schedule",
    "delete_workflows",
    "enqueue",
    "fork_workflow",
    "fork_workflows",
    "garbage_collect",
    "get_all_events",
    "get_event",
    "get_schedule",
    "get_workflow_steps",
    "list_queued_workflows",
    "list_schedules",
    "list_workflows",
    "new_debouncer",
    "pause_schedule",
    "read_stream",
    "recv",
    "resume_schedule",
    "resume_workflow",
    "resume_workflows",
    "retrieve_workflow",
    "run_as_step",
    "run_as_transaction",
    "run_workflow",
    "send",
    "send_bulk",
    "set_event",
    "set_workflow_attributes",
    "sleep",
    "trigger_schedule",
    "write_stream",
]

EXPECTED_TESTING_EXPORTS = [
    "CrashPoint",
    "SimulatedCrash",
    "VirtualClock",
    "check_replay",
    "crash_at",
    "restart",
]

DURABLE_CALLS: list[object] = [
    dbos.run_workflow,
    dbos.run_as_step,
    dbos.run_as_transaction,
    dbos.cancel_workflow,
    dbos.resume_workflow,
    dbos.cancel_workflows,
    dbos.resume_workflows,
    dbos.WorkflowHandle.get_result,
    dbos.DBOSContext.launch,
    dbos.fork_workflow,
    dbos.fork_workflows,
    dbos.delete_workflows,
    dbos.set_workflow_attributes,
    dbos.get_identity,
    dbos.list_workflows,
    dbos.list_queued_workflows,
    dbos.get_workflow_steps,
    dbos.get_workflow_aggregates,
    dbos.get_step_aggregates,
    dbos.global_timeout,
    dbos.recover_pending_workflows,
    dbos.sleep,
    dbos.send,
    dbos.recv,
    dbos.set_event,
    dbos.get_event,
    dbos.write_stream,
    dbos.close_stream,
    dbos.register_queue,
    dbos.enqueue,
    dbos.create_schedule,
    dbos.apply_schedules,
    dbos.pause_schedule,
    dbos.resume_schedule,
    dbos.delete_schedule,
    dbos.backfill_schedule,
    dbos.trigger_schedule,
    dbos.Debouncer.debounce,
    dbos.debounce,
    dbos.patch,
    dbos.deprecate_patch,
    dbos.set_latest_application_version,
    dbos.delete_queue,
    dbos.update_queue,
    dbos.set_workflow_delay,
    dbos.rename_application,
    aio.run_workflow,
    aio.run_as_step,
    aio.run_as_transaction,
    aio.AsyncDebouncer.debounce,
    aio.create_schedule,
    aio.apply_schedules,
    aio.pause_schedule,
    aio.resume_schedule,
    aio.delete_schedule,
    aio.backfill_schedule,
    aio.trigger_schedule,
    aio.AsyncWorkflowHandle.get_result,
    aio.enqueue,
    aio.debounce,
    aio.cancel_workflow,
    aio.resume_workflow,
    aio.cancel_workflows,
    aio.resume_workflows,
    aio.delete_workflows,
    aio.set_workflow_attributes,
    aio.fork_workflow,
    aio.fork_workflows,
    aio.list_workflows,
    aio.list_queued_workflows,
    aio.get_workflow_steps,
    aio.sleep,
    aio.send,
    aio.recv,
    aio.set_event,
    aio.get_event,
    aio.write_stream,
    aio.close_stream,
    testing.restart,
]


def test_exports_are_pinned() -> None:
    assert sorted(dbos.__all__) == EXPECTED_EXPORTS
    for name in dbos.__all__:
        assert hasattr(dbos, name), name


def test_every_public_name_has_a_docstring() -> None:
    for name in dbos.__all__:
        obj = getattr(dbos, name)
        doc = inspect.getdoc(obj)
        assert doc and len(doc) > 20, f"{name} needs a docstring"


def test_aio_exports_are_pinned_and_documented() -> None:
    assert sorted(aio.__all__) == EXPECTED_AIO_EXPORTS
    for name in aio.__all__:
        doc = inspect.getdoc(getattr(aio, name))
        assert doc and len(doc) > 20, f"aio.{name} needs a docstring"
    assert aio.AsyncWorkflowHandle.__module__ == "dbos_typed.aio"


def test_testing_exports_are_pinned_and_documented() -> None:
    assert sorted(testing.__all__) == EXPECTED_TESTING_EXPORTS
    for name in testing.__all__:
        doc = inspect.getdoc(getattr(testing, name))
        assert doc and len(doc) > 20, f"testing.{name} needs a docstring"
    for cls in (testing.CrashPoint, testing.SimulatedCrash):
        assert cls.__module__ == "dbos_typed.testing"
    crash = testing.SimulatedCrash("w", "charge", "after")
    copy = pickle.loads(pickle.dumps(crash))
    assert (copy.workflow_id, copy.step_name, copy.when) == ("w", "charge", "after")
    assert not isinstance(crash, Exception)


def test_durable_calls_document_their_durability() -> None:
    for fn in DURABLE_CALLS:
        assert "Durability:" in (inspect.getdoc(fn) or ""), getattr(fn, "__qualname__", repr(fn))


SAMPLES: list[BaseException] = [
    errors.DBOSError("plain"),
    errors.ApplicationVersionNotFoundError("v1"),
    errors.ApplicationVersionNotFoundError(),
    errors.PatchingNotEnabledError("patch"),
    errors.InitializationError("init"),
    errors.InvalidOptionError("timeout", "expected a positive timedelta"),
    errors.QueueNotFoundError("orders"),
    errors.RegistrationError("dup"),
    errors.ScheduleNotFoundError("nightly"),
    errors.SerializationError("ser"),
    errors.SystemDatabaseError("db"),
    errors.WaitTimeoutError("a result", timedelta(seconds=2)),
    errors.WorkflowError("w", "msg"),
    errors.NonExistentWorkflowError("w"),
    errors.WorkflowExistsError("w"),
    errors.ConflictingWorkflowError("w", existing_name="a", requested_name="b"),
    errors.NonDeterminismError("w", step_id=3, expected="x", recorded="y"),
    errors.AwaitedWorkflowCancelledError("w"),
    errors.WorkflowDeadlineExceededError("w"),
    errors.DeadLetterError("w", 5),
    errors.QueueDeduplicatedError("w", queue_name="q", deduplication_id="d"),
    errors.WorkflowInterruptedError("w", "SystemExit(3)"),
    errors.WorkflowFailedError("w", error_name="E", error_message="m", error_code=4, data=[1]),
    errors.StepFailedError("s", error_name="E", error_message="m", data={"k": 1}),
    errors.MaxStepRetriesExceededError("s", attempts=3, error_name="E", error_message="m"),
    errors.StepTimeoutError("s", timeout=timedelta(seconds=2)),
    errors.WorkflowCancelledError("w", "cancelled"),
]


def test_every_error_class_is_sampled() -> None:
    sampled = {type(e) for e in SAMPLES}
    public = {getattr(errors, n) for n in errors.__all__}
    assert public == sampled


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_errors_pickle_with_their_fields(error: BaseException) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_error_tree() -> None:
    assert issubclass(errors.WaitTimeoutError, TimeoutError)
    assert issubclass(errors.InvalidOptionError, ValueError)
    assert not issubclass(errors.WorkflowCancelledError, Exception)
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls is not errors.WorkflowCancelledError:
            assert issubclass(cls, errors.DBOSError), name
    assert errors.NonDeterminismError("w", step_id=1, expected="a", recorded="b").code == (
        "UnexpectedStep"
    )
