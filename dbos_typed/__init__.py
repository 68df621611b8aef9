"""Typed durable workflows on Postgres or SQLite, in the DBOS system database format.

Register workflows with a context, launch it, and run them: every step is checkpointed,
and after a crash each workflow resumes from its last completed step.

```python
import dbos_typed as dbos

def greet(ctx: dbos.WorkflowContext, name: str) -> str:
    return dbos.run_as_step(ctx, lambda: f"hello {name}", name="greet")

ctx = dbos.new_context(dbos.Config(app_name="hello"))
dbos.register_workflow(ctx, greet)
ctx.launch()
print(dbos.run_workflow(ctx, greet, "world").get_result())
ctx.shutdown()
```
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from dbos_typed import aio, errors
from dbos_typed._app.client import Client, debounce, enqueue, new_client
from dbos_typed._app.lifecycle import new_context
from dbos_typed._core.config import Config
from dbos_typed._core.context import AppContext, DBOSContext, WorkflowContext
from dbos_typed._core.handle import WorkflowHandle, retrieve_workflow
from dbos_typed._core.identity import Identity, get_identity
from dbos_typed._core.registry import RegisteredWorkflow
from dbos_typed._core.serialization import ErrorRecord, JsonValue
from dbos_typed._core.status import StatusName, WorkflowStatus
from dbos_typed._core.version import __version__ as __version__
from dbos_typed._management.aggregates import (
    StepAggregate,
    WorkflowAggregate,
    get_step_aggregates,
    get_workflow_aggregates,
)
from dbos_typed._management.export import export_workflow, import_workflow
from dbos_typed._management.listing import (
    StepInfo,
    get_workflow_steps,
    list_queued_workflows,
    list_workflows,
)
from dbos_typed._management.rename import ApplicationRowCounts, rename_application
from dbos_typed._management.steering import (
    cancel_workflow,
    cancel_workflows,
    delete_workflows,
    fork_workflow,
    fork_workflows,
    garbage_collect,
    global_timeout,
    recover_pending_workflows,
    resume_workflow,
    resume_workflows,
    set_workflow_attributes,
)
from dbos_typed._management.versions import (
    VersionInfo,
    get_latest_application_version,
    list_application_versions,
    set_latest_application_version,
)
from dbos_typed._messaging.events import get_all_events, get_event, set_event
from dbos_typed._messaging.messages import recv, send, send_bulk
from dbos_typed._messaging.sleep import sleep
from dbos_typed._messaging.streams import close_stream, read_stream, write_stream
from dbos_typed._queues.management import (
    delete_queue,
    list_queues,
    retrieve_queue,
    set_workflow_delay,
    update_queue,
)
from dbos_typed._queues.queues import (
    RateLimit,
    WorkflowQueue,
    listen_queues,
    new_workflow_queue,
    register_queue,
)
from dbos_typed._schedules.scheduled_input import ScheduledInput
from dbos_typed._schedules.schedules import (
    ScheduleSpec,
    ScheduleStatus,
    WorkflowSchedule,
    apply_schedules,
    backfill_schedule,
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    pause_schedule,
    resume_schedule,
    trigger_schedule,
)
from dbos_typed._workflows.debounce import Debouncer, new_debouncer
from dbos_typed._workflows.patch import deprecate_patch, patch
from dbos_typed._workflows.start import (
    get_step_id,
    get_workflow_id,
    list_registered_workflows,
    register_workflow,
    run_workflow,
)
from dbos_typed._workflows.step import run_as_step
from dbos_typed._workflows.transaction import DataSource, new_data_source, run_as_transaction
from dbos_typed.errors import (
    ApplicationVersionNotFoundError,
    AwaitedWorkflowCancelledError,
    ConflictingWorkflowError,
    DBOSError,
    DeadLetterError,
    InitializationError,
    InvalidOptionError,
    MaxStepRetriesExceededError,
    NonDeterminismError,
    NonExistentWorkflowError,
    PatchingNotEnabledError,
    QueueDeduplicatedError,
    QueueNotFoundError,
    RegistrationError,
    ScheduleNotFoundError,
    SerializationError,
    StepFailedError,
    StepTimeoutError,
    SystemDatabaseError,
    WaitTimeoutError,
    WorkflowCancelledError,
    WorkflowDeadlineExceededError,
    WorkflowError,
    WorkflowExistsError,
    WorkflowFailedError,
    WorkflowInterruptedError,
)

__all__ = [
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

for _name in (
    "AppContext",
    "ApplicationRowCounts",
    "Client",
    "Config",
    "DBOSContext",
    "DataSource",
    "Debouncer",
    "RateLimit",
    "RegisteredWorkflow",
    "ScheduleSpec",
    "ScheduleStatus",
    "StepAggregate",
    "StepInfo",
    "WorkflowAggregate",
    "WorkflowContext",
    "WorkflowHandle",
    "WorkflowQueue",
    "WorkflowSchedule",
    "WorkflowStatus",
):
    globals()[_name].__module__ = __name__
del _name

if TYPE_CHECKING:
    from dbos_typed.errors import WorkflowCancelled as WorkflowCancelled
else:

    def __getattr__(name: str) -> object:
        # The one thing defined here: old names, kept working, that warn when used.
        if name == "WorkflowCancelled":
            warnings.warn(
                "dbos_typed.WorkflowCancelled is deprecated; use dbos_typed.WorkflowCancelledError",
                DeprecationWarning,
                stacklevel=2,
            )
            return WorkflowCancelledError
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
