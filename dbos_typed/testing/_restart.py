"""`restart`: what a process restart does to a context, inside one test."""

from __future__ import annotations

from datetime import timedelta

from dbos_typed._app.lifecycle import new_context
from dbos_typed._core.context import DBOSContext
from dbos_typed.errors import InvalidOptionError


def restart(ctx: DBOSContext, *, timeout: timedelta = timedelta(seconds=5)) -> DBOSContext:
    """Shut `ctx` down and return a new, launched context that recovers what it left.

    The new context has the same `Config` (so the same database, executor ID and
    application version), the workflows registered on `ctx` (with their schedules), and
    the queue declarations `ctx` had not yet written; queues stored in the database are
    served as before. Its `launch()` recovers this executor's PENDING workflows, as a
    process started again after a crash would: a run that `crash_at` stopped, and runs
    the shutdown interrupted, resume from their last recorded step. Wait for one with
    `dbos.retrieve_workflow[R](new_ctx, workflow_id).get_result()`.

    Durability: the shutdown changes no workflow. Runs still going stop at their next
    durable operation without recording it, and stay PENDING for the new context.

    Data sources made with `new_data_source` on `ctx` stay open and pass to the new
    context, as a process started again opens the same databases: a recovered workflow's
    transactions use the `DataSource` objects the test already holds.

    Args:
        ctx: The context to restart; it may already be shut down.
        timeout: How long the shutdown waits for runs to reach a stopping point.

    Returns:
        The new context, launched. The caller shuts it down.

    Raises:
        InvalidOptionError: `ctx` is not a `DBOSContext`.
        InitializationError: the database cannot be reached.
    """
    if not isinstance(ctx, DBOSContext):
        raise InvalidOptionError("ctx", "expected a DBOSContext from new_context()")
    old = ctx._runtime
    with old.lifecycle_lock:
        sources, old.data_sources = old.data_sources, []
    try:
        ctx.shutdown(timeout=timeout)
        again = new_context(old.config)
    except BaseException:
        for source in sources:
            source.close()
        raise
    runtime = again._runtime
    runtime.registry.adopt(old.registry)
    runtime.deferred_queues.update(old.deferred_queues)
    runtime.listened = old.listened
    runtime.data_sources.extend(sources)
    try:
        again.launch()
    except BaseException:
        again.shutdown()
        raise
    return again
