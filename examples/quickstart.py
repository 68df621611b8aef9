"""A two-step durable workflow on the embedded default (a local SQLite file).

Run it with `python -m examples.quickstart`. Set `DBOS_DATABASE_URL` to a
`postgresql://...` URL to use Postgres instead.
"""

from __future__ import annotations

import os
from datetime import timedelta

import dbos_typed as dbos


def step_one() -> str:
    print("Step one completed!")
    return "Step 1 completed"


def step_two() -> str:
    print("Step two completed!")
    return "Step 2 completed - Workflow finished successfully"


def workflow(ctx: dbos.WorkflowContext, name: str) -> str:
    dbos.run_as_step(ctx, step_one)
    return dbos.run_as_step(ctx, step_two)


def main() -> None:
    ctx = dbos.new_context(
        dbos.Config(app_name="quickstart", database_url=os.environ.get("DBOS_DATABASE_URL"))
    )
    dbos.register_workflow(ctx, workflow)
    ctx.launch()
    try:
        handle = dbos.run_workflow(ctx, workflow, "world")
        result: str = handle.get_result()
        print("Workflow result:", result)
        steps = handle.get_status()
        print(f"Workflow {steps.workflow_id} is {steps.status.value}")
    finally:
        ctx.shutdown(timeout=timedelta(seconds=2))


if __name__ == "__main__":
    main()
