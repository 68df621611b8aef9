"""Seed a SQLite system database, serve the dashboard over it, and save a PNG of each page.

    .venv/bin/python -m scripts.screenshots [--out docs/img] [--keep-serving]

The pictures in docs/img/ (shown by README.md and docs/dashboard.md) come from this
script. It needs the dev extra (Playwright for Python) and Debian's `chromium`.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

import dbos_typed as dbos
from dbos_typed._app.dashboard.server import DashboardServer

CHROMIUM = "/usr/bin/chromium"
release = threading.Event()


def reserve_stock(order: int) -> dict[str, int]:
    return {"order": order, "items": order % 4 + 1}


def charge_card(order: int) -> str:
    if order % 7 == 3:
        raise RuntimeError(f"card declined for order {order}")
    return f"ch_{order:05d}"


def send_receipt(ctx: dbos.WorkflowContext, order: int) -> str:
    return dbos.run_as_step(ctx, lambda: f"receipt sent for {order}", name="email_receipt")


def process_order(ctx: dbos.WorkflowContext, order: int) -> dict[str, object]:
    stock = dbos.run_as_step(ctx, lambda: reserve_stock(order), name="reserve_stock")
    dbos.write_stream(ctx, "progress", {"stage": "reserved", "items": stock["items"]})
    charge = dbos.run_as_step(
        ctx,
        lambda: charge_card(order),
        name="charge_card",
        max_retries=2,
        base_interval=timedelta(milliseconds=20),
    )
    dbos.set_event(ctx, "payment", {"charge": charge})
    dbos.write_stream(ctx, "progress", {"stage": "charged"})
    receipt = dbos.run_workflow(ctx, send_receipt, order, workflow_id=f"receipt-{order:04d}")
    receipt.get_result()
    dbos.run_as_step(ctx, lambda: f"parcel-{order}", name="ship")
    dbos.close_stream(ctx, "progress")
    return {"order": order, "charge": charge, "status": "shipped"}


def send_email(ctx: dbos.WorkflowContext, to: str) -> str:
    dbos.run_as_step(ctx, lambda: release.wait(60), name="wait_for_smtp")
    return f"sent to {to}"


def await_approval(ctx: dbos.WorkflowContext, request: str) -> str:
    decision = dbos.recv[str](ctx, "approval", timeout=timedelta(seconds=2))
    return f"{request}: {decision}"


def nightly_report(ctx: dbos.WorkflowContext, tick: datetime) -> str:
    return dbos.run_as_step(ctx, lambda: "report ready", name="build_report")


def seed(url: str) -> dbos.DBOSContext:
    """A launched context over a database holding a bit of everything the pages show."""
    ctx = dbos.new_context(
        dbos.Config(app_name="shop", database_url=url, application_version="2024.06.1")
    )
    for workflow in (process_order, send_receipt, send_email, await_approval, nightly_report):
        dbos.register_workflow(ctx, workflow)
    emails = dbos.register_queue(
        ctx, "emails", concurrency=2, limiter=dbos.RateLimit(50, timedelta(seconds=60))
    )
    dbos.register_queue(ctx, "orders", worker_concurrency=4, priority_enabled=True)
    ctx.launch()
    dbos.create_schedule(ctx, "nightly-report", nightly_report, "0 0 2 * * *")
    dbos.create_schedule(ctx, "weekly-cleanup", nightly_report, "0 30 3 * * 1")
    dbos.pause_schedule(ctx, "weekly-cleanup")
    handles = [
        dbos.run_workflow(ctx, process_order, n, workflow_id=f"order-{n:04d}", queue="orders")
        for n in range(1, 41)
    ]
    for handle in handles:
        try:
            handle.get_result(timeout=timedelta(seconds=60))
        except dbos.DBOSError:
            pass  # the declined cards: ERROR rows are part of the picture
    approval = dbos.run_workflow(ctx, await_approval, "refund 1042", workflow_id="approval-1042")
    dbos.send(ctx, "approval-1042", "approved", "approval")
    approval.get_result(timeout=timedelta(seconds=30))
    for n in range(1, 13):
        dbos.run_workflow(ctx, send_email, f"user{n}@example.com", queue=emails)
    dbos.run_workflow(ctx, send_email, "later@example.com", queue=emails, delay=timedelta(hours=2))
    dbos.trigger_schedule(ctx, "nightly-report").get_result(timeout=timedelta(seconds=30))
    _spread_over_the_last_hour(url.removeprefix("sqlite:///"))
    return ctx


def _spread_over_the_last_hour(path: str) -> None:
    # Finished workflows ran within seconds; moving each back by a few minutes (its steps
    # with it) gives the per-minute charts something to draw.
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT workflow_uuid FROM workflow_status WHERE status IN ('SUCCESS', 'ERROR') "
            "AND workflow_uuid LIKE 'order-%' ORDER BY workflow_uuid"
        ).fetchall()
        for i, (workflow_id,) in enumerate(rows):
            shift = (len(rows) - i) * 80_000
            for child in (workflow_id, "receipt-" + workflow_id.removeprefix("order-")):
                conn.execute(
                    "UPDATE workflow_status SET created_at = created_at - ?, "
                    "updated_at = updated_at - ?, started_at_epoch_ms = started_at_epoch_ms - ?, "
                    "completed_at = completed_at - ? WHERE workflow_uuid = ?",
                    (shift, shift, shift, shift, child),
                )
                conn.execute(
                    "UPDATE operation_outputs SET started_at_epoch_ms = started_at_epoch_ms - ?, "
                    "completed_at_epoch_ms = completed_at_epoch_ms - ? WHERE workflow_uuid = ?",
                    (shift, shift, child),
                )


def shoot(page: Page, url: str, ready: str, path: Path) -> None:
    page.goto(url)
    expect(page.locator(ready).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=True)
    print(f"saved {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/img", type=Path)
    parser.add_argument("--keep-serving", action="store_true", help="serve until Ctrl-C")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        ctx = seed(f"sqlite:///{folder}/shop.sqlite")
        server = DashboardServer(ctx, port=0, allow_actions=True)
        server.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(server.page_url)
                base = server.url + "/dashboard/#/"
                pages = [
                    ("overview", ".u-over", "overview"),
                    ("workflows?size=25", "tr[data-id]", "workflows"),
                    ("workflow/order-0011", ".gantt .step", "workflow"),
                    ("queues", ".spark .u-over", "queues"),
                    ("schedules", "tr[data-schedule]", "schedules"),
                ]
                for path, ready, name in pages:
                    shoot(page, base + path, ready, args.out / f"dashboard-{name}.png")
                browser.close()
            if args.keep_serving:
                print(f"serving {server.page_url}; Ctrl-C stops")
                threading.Event().wait()
        finally:
            release.set()
            server.shutdown()
            ctx.shutdown()


if __name__ == "__main__":
    main()
