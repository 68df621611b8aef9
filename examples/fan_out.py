"""Fan out: a workflow enqueues many tasks on a rate-limited queue and gathers their results.

Run it with `python -m examples.fan_out` (embedded SQLite file; set `DBOS_DATABASE_URL` to a
`postgresql://...` URL to use Postgres). Every enqueue and every awaited result is a step
of the parent workflow, so if the process dies mid-way, the next launch resumes the parent
without enqueueing anything twice, and the tasks already done are not done again.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

from pydantic import BaseModel

import dbos_typed as dbos


class Page(BaseModel):
    url: str
    words: int


def count_words(url: str) -> int:
    """Stands in for real work: a call to another service, a file to parse..."""
    return len(url) * 7


def fetch(ctx: dbos.WorkflowContext, url: str) -> Page:
    words = dbos.run_as_step(ctx, lambda: count_words(url), name="count_words")
    return Page(url=url, words=words)


def crawl(ctx: dbos.WorkflowContext, urls: list[str]) -> int:
    # Each enqueue is recorded as a step: on replay the same child IDs come back.
    handles = [dbos.run_workflow(ctx, fetch, url, queue="pages") for url in urls]
    pages = [handle.get_result() for handle in handles]  # typed: list[Page]
    return sum(page.words for page in pages)


def main() -> None:
    ctx = dbos.new_context(
        dbos.Config(app_name="fan_out", database_url=os.environ.get("DBOS_DATABASE_URL"))
    )
    dbos.register_workflow(ctx, fetch)
    dbos.register_workflow(ctx, crawl)
    dbos.register_queue(
        ctx,
        "pages",
        worker_concurrency=8,  # at most 8 fetches at once in this process
        limiter=dbos.RateLimit(limit=200, period=timedelta(seconds=1)),  # be polite
    )
    ctx.launch()
    try:
        urls = [f"https://example.com/page/{n}" for n in range(50)]
        handle = dbos.run_workflow(ctx, crawl, urls, workflow_id=f"crawl-{uuid.uuid4().hex[:8]}")
        total: int = handle.get_result(timeout=timedelta(seconds=60))
        print(f"{len(urls)} pages fetched by {handle.workflow_id}: {total} words in all")
    finally:
        ctx.shutdown(timeout=timedelta(seconds=2))


if __name__ == "__main__":
    main()
