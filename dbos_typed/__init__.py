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

from dbos_typed import errors
from dbos_typed._config import Config
from dbos_typed._context import DBOSContext, WorkflowContext
from dbos_typed._events import get_event, set_event
from dbos_typed._handle import WorkflowHandle, retrieve_workflow
from dbos_typed._lifecycle import new_context
from dbos_typed._management import cancel_workflow, resume_workflow
from dbos_typed._messaging import recv, send
from dbos_typed._serialization import ErrorRecord
from dbos_typed._sleep import sleep
from dbos_typed._status import StatusName, WorkflowStatus
from dbos_typed._step import run_as_step
from dbos_typed._streams import close_stream, read_stream, write_stream
from dbos_typed._version import __version__ as __version__
from dbos_typed._workflow import get_workflow_id, register_workflow, run_workflow
from dbos_typed.errors import (
    AwaitedWorkflowCancelledError,
    ConflictingWorkflowError,
    DBOSError,
    DeadLetterError,
    InitializationError,
    InvalidOptionError,
    MaxStepRetriesExceededError,
    NonDeterminismError,
    NonExistentWorkflowError,
    RegistrationError,
    SerializationError,
    StepFailedError,
    SystemDatabaseError,
    WaitTimeoutError,
    WorkflowCancelled,
    WorkflowDeadlineExceededError,
    WorkflowError,
    WorkflowFailedError,
)

__all__ = [
    "AwaitedWorkflowCancelledError",
    "Config",
    "ConflictingWorkflowError",
    "DBOSContext",
    "DBOSError",
    "DeadLetterError",
    "ErrorRecord",
    "InitializationError",
    "InvalidOptionError",
    "MaxStepRetriesExceededError",
    "NonDeterminismError",
    "NonExistentWorkflowError",
    "RegistrationError",
    "SerializationError",
    "StatusName",
    "StepFailedError",
    "SystemDatabaseError",
    "WaitTimeoutError",
    "WorkflowCancelled",
    "WorkflowContext",
    "WorkflowDeadlineExceededError",
    "WorkflowError",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowStatus",
    "cancel_workflow",
    "close_stream",
    "errors",
    "get_event",
    "get_workflow_id",
    "new_context",
    "read_stream",
    "recv",
    "register_workflow",
    "resume_workflow",
    "retrieve_workflow",
    "run_as_step",
    "run_workflow",
    "send",
    "set_event",
    "sleep",
    "write_stream",
]

for _name in ("Config", "DBOSContext", "WorkflowContext", "WorkflowHandle", "WorkflowStatus"):
    globals()[_name].__module__ = __name__
del _name
