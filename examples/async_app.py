"""An asyncio program: an async workflow runs its steps concurrently, awaited from async code.

Run it with `python -m examples.async_app` (embedded SQLite file; set `DBOS_DATABASE_URL` to a
`postgresql://...` URL to use Postgres). The workflow fetches several prices at once: each
fetch is a step whose ID is taken when it is called, so however the fetches interleave, a
restart replays them in the same places. The main coroutine starts the workflow, hears of its
progress through an event and awaits its result, all without blocking its event loop.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from datetime import timedelta

from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed import aio


class Quote(BaseModel):
    prices: dict[str, int]
    total: int


async def fetch_price(sku: str) -> int:
    """Stands in for a call to another service."""
    await asyncio.sleep(0.05)
    return 100 * len(sku)


async def quote(ctx: dbos.WorkflowContext, skus: list[str]) -> Quote:
    # All fetches run at once on the workflow's loop; each is checkpointed when it returns.
    prices = await asyncio.gather(
        *(
            aio.run_as_step(ctx, functools.partial(fetch_price, sku), name=f"price-{sku}")
            for sku in skus
        )
    )
    await aio.set_event(ctx, "priced", len(prices))
    await aio.sleep(ctx, timedelta(milliseconds=100))  # durable: a restart sleeps the rest
    return Quote(prices=dict(zip(skus, prices, strict=True)), total=sum(prices))


async def main() -> None:
    ctx = dbos.new_context(
        dbos.Config(app_name="async_app", database_url=os.environ.get("DBOS_DATABASE_URL"))
    )
    dbos.register_workflow(ctx, quote)
    ctx.launch()
    try:
        skus = ["apple", "fig", "kiwi"]
        handle = await aio.run_workflow(
            ctx, quote, skus, workflow_id=f"quote-{uuid.uuid4().hex[:8]}"
        )
        priced = await aio.get_event[int](
            ctx, handle.workflow_id, "priced", timeout=timedelta(seconds=30)
        )
        print(f"{priced} prices fetched")
        result = await handle.get_result(timeout=timedelta(seconds=30))  # a Quote
        steps = await aio.get_workflow_steps(ctx, handle.workflow_id)
        print(f"{handle.workflow_id}: {result.total} in all, {result.prices}")
        print("recorded steps: " + ", ".join(step.name for step in steps))
    finally:
        # Shutting down waits for running workflows: keep that off the event loop.
        await asyncio.to_thread(ctx.shutdown, timedelta(seconds=2))


if __name__ == "__main__":
    asyncio.run(main())
