"""The awaitable `run_as_transaction`: a transaction body that awaits an asyncio connection.

Everything but the I/O is the blocking form's (`TransactionRun`): the same checks, the
same replay, the same completion row or in-transaction checkpoint, the same outcomes.
The transaction runs on a `psycopg.AsyncConnection` opened for it on the workflow's loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, Unpack, overload

import psycopg
from pydantic import TypeAdapter

from dbos_typed._core.context import WorkflowContext
from dbos_typed._core.telemetry import step_scope
from dbos_typed._sysdb._app_database import AsyncAppTransaction
from dbos_typed._sysdb._retry import StoreClosedError
from dbos_typed._workflows.step import (
    BACKOFF_FACTOR,
    BASE_INTERVAL,
    MAX_INTERVAL,
    RetryOptions,
    StepPlan,
    TryAgain,
)
from dbos_typed._workflows.transaction import (
    DataSource,
    IsolationLevel,
    Outcome,
    TransactionCheckpointRefused,
    TransactionRun,
    checked_transaction,
)
from dbos_typed.aio._loop import LoopWaker, prepared
from dbos_typed.aio._step import wait_before_retry
from dbos_typed.errors import InvalidOptionError

R = TypeVar("R")


class _NotAwaitable(InvalidOptionError):
    """A transaction body that returned no awaitable: a mistake of the call, not of `fn`."""


@overload
def run_as_transaction(
    ctx: WorkflowContext,
    ds: DataSource,
    fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[R]],
    /,
    *,
    isolation: IsolationLevel = "read_committed",
    result_type: None = None,
    **options: Unpack[RetryOptions],
) -> Coroutine[None, None, R]: ...


@overload
def run_as_transaction(
    ctx: WorkflowContext,
    ds: DataSource,
    fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[R]],
    /,
    *,
    isolation: IsolationLevel = "read_committed",
    result_type: type[R] | TypeAdapter[R],
    **options: Unpack[RetryOptions],
) -> Coroutine[None, None, R]: ...


def run_as_transaction(
    ctx: WorkflowContext,
    ds: DataSource,
    fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[Any]],
    /,
    *,
    isolation: IsolationLevel = "read_committed",
    result_type: Any = None,
    **options: Unpack[RetryOptions],
) -> Coroutine[None, None, Any]:
    """Run `fn` in one transaction on the data source, once per workflow; await its result.

    The awaitable form of `dbos_typed.run_as_transaction`, with the same data sources,
    options and errors. `fn` is a coroutine function (or returns an awaitable) taking the
    `psycopg.AsyncConnection` the transaction is open on; it awaits its reads and writes
    through it and must not commit or roll back. Each attempt has a connection of its own,
    opened on the workflow's loop with the settings of the data source's pool and closed
    when the attempt ends. The result type is `result_type`, else `fn`'s return annotation
    (for an `async def`, what it returns).

    Durability: exactly once, as for `dbos_typed.run_as_transaction`: the writes and the
    record of their outcome (a `transaction_completion` row, or on the system database the
    checkpoint itself) commit together; a run that crashed after the commit takes the
    outcome from that row without running `fn` again; a replay returns the checkpointed
    value or raises the checkpointed error. The step ID is taken when the call is made,
    before anything is awaited, so transactions gathered together are numbered in call
    order. Serialization failures, deadlocks and lost connections run the transaction
    again on a fresh one without counting as attempts; an exception from `fn` goes through
    the retry policy, whose delays are awaited (a cancellation ends them).

    Args:
        ctx: The running workflow's context.
        ds: The data source, from `dbos_typed.new_data_source`.
        fn: The transaction body, taking the asyncio connection.
        isolation: The transaction's isolation level.
        result_type: The type to store and restore the result as.
        **options: `name`, `max_retries`, `base_interval`, `backoff_factor`,
            `max_interval` and `retry_if`, as for `dbos_typed.run_as_transaction`.

    Returns:
        What `fn` returned (on replay, the recorded value), when awaited.

    Raises:
        StepFailedError: `fn` raised (on replay too).
        MaxStepRetriesExceededError: `fn` failed on every allowed attempt.
        InvalidOptionError: a bad argument; `fn` returned something that is not an
            awaitable; or the call was made inside a step or a transaction.
        NonDeterminismError: a different step is recorded at this point of the workflow.
        SystemDatabaseError: the `transaction_completion` table could not be read or
            written.
        WorkflowCancelledError: the workflow was cancelled.
    """

    def start() -> Coroutine[None, None, Any]:
        plan = checked_transaction(
            ctx,
            ds,
            fn,
            options.get("name"),
            options.get("max_retries", 0),
            options.get("base_interval", BASE_INTERVAL),
            options.get("backoff_factor", BACKOFF_FACTOR),
            options.get("max_interval", MAX_INTERVAL),
            options.get("retry_if"),
            isolation,
            result_type,
        )
        run = _AsyncTransactionRun(ctx, ds, fn, plan)
        recorded = run.begin()
        if recorded is not None:
            return _replayed(plan, recorded)
        return run.run(isolation)

    return prepared(start)


async def _replayed(plan: StepPlan, recorded: Any) -> Any:
    return plan.replay(recorded)


class _AsyncTransactionRun(TransactionRun):
    """One awaitable `run_as_transaction` call, past its replay check."""

    def __init__(
        self,
        ctx: WorkflowContext,
        ds: DataSource,
        fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[Any]],
        plan: StepPlan,
    ) -> None:
        super().__init__(ctx, ds, plan)
        self.fn = fn

    async def run(self, isolation: str) -> Any:
        self.start()
        shared = self.shares_system_database()
        try:
            number = 0
            while True:
                number += 1
                try:
                    outcome = await self._attempt(isolation, number, shared)
                    break
                except TryAgain:
                    await wait_before_retry(self.ctx, self.plan.policy.delay(number))
        except StoreClosedError as exc:
            raise self.interrupted(exc) from exc
        self.committed(outcome, checkpointed=shared)
        return self.result(outcome)

    async def _attempt(self, isolation: str, number: int, shared: bool) -> Outcome:
        database = self.ds._database
        if not shared:
            return await database.async_transaction(
                isolation, lambda tx: self._with_completion(tx, number), self._pause
            )

        store = self.store()

        async def body(tx: AsyncAppTransaction) -> Outcome:
            if tx.retried and await tx.fetch_one(
                *store.step_lookup(self.ctx.workflow_id, self.step_id)
            ):
                raise TransactionCheckpointRefused  # committed before the connection was lost
            outcome = await self._call(tx, number)
            self.before_commit()
            self.reach_crash_point()  # the commit is the checkpoint: a crash rolls both back
            admitted = None
            for statement in store.checkpoint_statements(
                self.checkpoint(outcome), lock_row=self.lock_row(isolation)
            ):
                admitted = await tx.fetch_one(*statement)
            if admitted is None:
                raise TransactionCheckpointRefused
            return outcome

        try:
            return await database.async_transaction(isolation, body, self._pause)
        except TransactionCheckpointRefused:
            return self.after_refusal()

    async def _with_completion(self, tx: AsyncAppTransaction, number: int) -> Outcome:
        """One attempt on another database: the outcome is recorded in its own table."""
        workflow_id = self.ctx.workflow_id
        stored = self.to_complete(await tx.completion(workflow_id, self.step_id))
        if stored is not None:
            return stored
        outcome = await self._call(tx, number)
        self.before_commit()
        await tx.complete(workflow_id, self.step_id, outcome.output, outcome.error)
        return outcome

    async def _call(self, tx: AsyncAppTransaction, number: int) -> Outcome:
        """Await `fn` in the transaction; an error it raises is judged by the retry policy.

        Raises:
            TryAgain: `fn` failed and may be retried; the transaction is to be rolled back.
        """
        state = self.ctx._state
        try:
            # Set in this task's context only, as for an awaited step.
            with (
                state.running_step(self.step_id, blocking=False),
                step_scope(state, self.step_name, number, "transaction"),
            ):
                value = await tx.run_isolated(self._awaited)
        except _NotAwaitable:
            raise
        except Exception as exc:
            return self.failed(number, exc)
        return self.succeeded(value)

    async def _awaited(self, conn: psycopg.AsyncConnection[Any]) -> Any:
        result = self.fn(conn)
        if not inspect.isawaitable(result):
            raise _NotAwaitable(
                "fn",
                f"transaction {self.step_name!r} returned a {type(result).__name__}, not an "
                "awaitable: pass a coroutine function, or use dbos_typed.run_as_transaction",
            )
        return await result

    async def _pause(self, seconds: float) -> None:
        """Wait (real time) before a conflicting transaction runs again; a cancellation ends it."""
        execution = self.ctx._state.execution
        waker = LoopWaker()
        execution.add_waker(waker)
        try:
            await waker.wait(seconds)
        finally:
            execution.remove_waker(waker)
        self.ctx._state.check_cancelled()
