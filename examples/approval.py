"""A workflow that waits for a human's approval, publishing its progress as an event.

Run it with `python -m examples.approval` (add `--reject` or `--silent` to see the other
outcomes). Set `DBOS_DATABASE_URL` to a `postgresql://...` URL to use Postgres instead
of the embedded SQLite file.

The workflow submits an expense, then waits up to a few seconds for a decision sent to
its "decision" topic. The script plays the approver: it waits for the workflow's
"progress" event to say the expense awaits review, then sends the decision. If the
process stopped while the workflow waited, a restart would resume the wait where it was:
the deadline is checkpointed.
"""

from __future__ import annotations

import argparse
import os
import uuid
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel

import dbos_typed as dbos


class Expense(BaseModel):
    employee: str
    cents: int


class Decision(BaseModel):
    approved: bool
    reviewer: str


class Progress(BaseModel):
    stage: Literal["awaiting review", "approved", "rejected", "expired"]
    detail: str = ""


def submit(expense: Expense) -> str:
    return f"EXP-{expense.employee[:3].upper()}-{expense.cents}"


def expense_approval(ctx: dbos.WorkflowContext, expense: Expense) -> str:
    reference = dbos.run_as_step(ctx, lambda: submit(expense), name="submit")
    dbos.set_event(ctx, "progress", Progress(stage="awaiting review", detail=reference))
    try:
        decision = dbos.recv[Decision](ctx, "decision", timeout=timedelta(seconds=5))
    except dbos.WaitTimeoutError:
        dbos.set_event(ctx, "progress", Progress(stage="expired"))
        return f"{reference}: no decision in time"
    stage: Literal["approved", "rejected"] = "approved" if decision.approved else "rejected"
    dbos.set_event(ctx, "progress", Progress(stage=stage, detail=decision.reviewer))
    return f"{reference}: {stage} by {decision.reviewer}"


def main() -> None:
    parser = argparse.ArgumentParser(description="durable approval with recv and events")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--reject", action="store_true", help="send a rejection")
    choice.add_argument("--silent", action="store_true", help="send nothing; let it expire")
    args = parser.parse_args()

    ctx = dbos.new_context(
        dbos.Config(app_name="approval", database_url=os.environ.get("DBOS_DATABASE_URL"))
    )
    dbos.register_workflow(ctx, expense_approval)
    ctx.launch()
    try:
        workflow_id = f"expense-{uuid.uuid4().hex[:8]}"
        handle = dbos.run_workflow(
            ctx, expense_approval, Expense(employee="ada", cents=4200), workflow_id=workflow_id
        )
        # Waits until the workflow publishes its first progress: it is ready for review.
        progress = dbos.get_event[Progress](ctx, workflow_id, "progress")
        print(f"{workflow_id}: {progress.stage} ({progress.detail})")
        if not args.silent:
            decision = Decision(approved=not args.reject, reviewer="grace")
            dbos.send(ctx, workflow_id, decision, "decision")
        result: str = handle.get_result()
        print("result:", result)
        final = dbos.get_event[Progress](ctx, workflow_id, "progress")
        print("final progress event:", final.stage, final.detail)
    finally:
        ctx.shutdown(timeout=timedelta(seconds=2))


if __name__ == "__main__":
    main()
