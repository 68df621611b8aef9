"""A worker process for the transaction crash test: it is killed after the user's commit and
before the checkpoint; a second run recovers the workflows.

Usage: python -m tests.transaction_worker <system_url> <schema> <app_url> <app_schema>
start|recover <count>

Each workflow deposits one ledger row in a transaction on the application database, then
takes a step. In `start` mode the checkpoint of every deposit blocks forever (it has
committed on the application database by then) after printing `entered <workflow id>`, so
the test can SIGKILL the process in the window between the two writes.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

import dbos_typed as dbos

SYSTEM_URL, SCHEMA, APP_URL, APP_SCHEMA, MODE, COUNT = sys.argv[1:7]


def _deposit(conn: psycopg.Connection[Any]) -> int:
    ledger = sql.SQL("{}.ledger").format(sql.Identifier(APP_SCHEMA))
    row = conn.execute(
        sql.SQL("INSERT INTO {} (note) VALUES ('deposit') RETURNING id").format(ledger)
    ).fetchone()
    assert row is not None
    return int(row[0])


def depositor(ctx: dbos.WorkflowContext) -> int:
    row_id: int = dbos.run_as_transaction(ctx, SOURCE[0], _deposit, name="deposit")
    dbos.run_as_step(ctx, lambda: None, name="after")
    return row_id


SOURCE: list[dbos.DataSource] = []


def _block_deposit_checkpoints(ctx: dbos.DBOSContext) -> None:
    store = ctx._runtime.store
    original = store.record_step

    def record_step(workflow_id: str, step: Any, *args: Any) -> Any:
        if step.name == "deposit":
            # One write call, so lines of concurrent workflows do not interleave.
            os.write(1, f"entered {workflow_id}\n".encode())
            time.sleep(3600)  # killed here
        return original(workflow_id, step, *args)

    setattr(store, "record_step", record_step)  # noqa: B010 - replaces a method


def main() -> None:
    ctx = dbos.new_context(
        dbos.Config(
            app_name="transaction-crash",
            database_url=SYSTEM_URL,
            database_schema=SCHEMA,
            application_version="transaction-crash",
        )
    )
    SOURCE.append(dbos.new_data_source(ctx, APP_URL, schema=APP_SCHEMA))
    dbos.register_workflow(ctx, depositor)
    ids = [f"deposit-{i}" for i in range(int(COUNT))]
    if MODE == "start":
        _block_deposit_checkpoints(ctx)
        ctx.launch()
        for wid in ids:
            dbos.run_workflow(ctx, depositor, workflow_id=wid)
        time.sleep(3600)  # the test kills this process
    ctx.launch()
    results = [
        dbos.retrieve_workflow[int](ctx, wid).get_result(timeout=timedelta(seconds=60))
        for wid in ids
    ]
    ctx.shutdown()
    print("recovered", len(results), sorted(results))


if __name__ == "__main__":
    main()
