"""Awaitable calls for asyncio applications, and async workflows and steps.

From async code (a FastAPI or aiohttp handler), start, await and steer workflows without
blocking the event loop; waits hold no thread, and cancelling the awaiting task ends them:

```python
from dbos_typed import aio

handle = await aio.run_workflow(ctx, checkout, order)   # AsyncWorkflowHandle[Receipt]
receipt = await handle.get_result(timeout=timedelta(seconds=30))
```

Workflows and steps may be coroutines. An `async def` workflow runs on an event loop of
its own, on one of the context's worker threads; inside it, durable calls are awaited,
and each takes its step ID when it is called, so concurrent steps replay identically:

```python
async def quote(ctx: dbos.WorkflowContext, skus: list[str]) -> int:
    prices = await asyncio.gather(
        *(aio.run_as_step(ctx, functools.partial(price_of, sku)) for sku in skus)
    )
    await aio.sleep(ctx, timedelta(seconds=1))
    return sum(prices)
```

The blocking calls of `dbos_typed` still work inside an async workflow; they block that
workflow's own loop (and no other) while they run.
"""

from __future__ import annotations

from dbos_typed.aio._debounce import AsyncDebouncer, new_debouncer
from dbos_typed.aio._events import get_all_events, get_event, set_event
from dbos_typed.aio._handle import AsyncWorkflowHandle, retrieve_workflow
from dbos_typed.aio._management import (
    cancel_workflow,
    cancel_workflows,
    delete_workflows,
    fork_workflow,
    fork_workflows,
    garbage_collect,
    get_workflow_steps,
    list_queued_workflows,
    list_workflows,
    resume_workflow,
    resume_workflows,
    set_workflow_attributes,
)
from dbos_typed.aio._messaging import recv, send, send_bulk, sleep
from dbos_typed.aio._schedules import (
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
from dbos_typed.aio._step import run_as_step
from dbos_typed.aio._streams import close_stream, read_stream, write_stream
from dbos_typed.aio._transaction import run_as_transaction
from dbos_typed.aio._workflow import debounce, enqueue, run_workflow

__all__ = [
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

AsyncWorkflowHandle.__module__ = __name__
AsyncDebouncer.__module__ = __name__
