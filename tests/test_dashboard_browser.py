"""The dashboard in a real headless Chromium: what a person sees and can do on its pages.

The browser is Debian's `chromium` (Playwright drives it; Playwright's own browser
downloads are never used). Without it these tests fail, saying how to install it, unless
`DBOS_TYPED_SKIP_BROWSER_TESTS=1` opts out explicitly. `DBOS_TYPED_CHROMIUM` names
another binary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

import dbos_typed as dbos
from dbos_typed._app.dashboard.server import DashboardServer
from tests.conftest import Backend, Gate, wait_for

SKIP_VARIABLE = "DBOS_TYPED_SKIP_BROWSER_TESTS"
CHROMIUM_VARIABLE = "DBOS_TYPED_CHROMIUM"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"browser tests skipped: {SKIP_VARIABLE}=1")
    chromium = Path(os.environ.get(CHROMIUM_VARIABLE, "/usr/bin/chromium"))
    if not os.access(chromium, os.X_OK):
        pytest.fail(
            f"no Chromium at {chromium}: install Debian's package (apt-get install -y "
            f"chromium; `make test` does it when run as root), point {CHROMIUM_VARIABLE} at "
            f"another binary, or set {SKIP_VARIABLE}=1 to skip the browser tests"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], "the page raised script errors"


def leaf(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n * 10, name="leaf_step")


def order(ctx: dbos.WorkflowContext, n: int) -> dict[str, int]:
    first = dbos.run_as_step(ctx, lambda: n + 1, name="reserve")
    dbos.set_event(ctx, "stage", "reserved")
    child = dbos.run_workflow(ctx, leaf, n, workflow_id=f"leaf-{n}").get_result()
    return {"order": n, "total": first + child}


def declined(ctx: dbos.WorkflowContext, n: int) -> int:
    def charge() -> int:
        raise RuntimeError(f"card declined for {n}")

    return dbos.run_as_step(ctx, charge, name="charge")


def nightly(ctx: dbos.WorkflowContext, tick: datetime) -> str:
    return "ran"


Serve = Callable[..., DashboardServer]


@pytest.fixture
def serve(backend: Backend) -> Iterator[Serve]:
    """Start dashboards on contexts of the test; they stop before the contexts shut down."""
    servers: list[DashboardServer] = []

    def start(ctx: dbos.DBOSContext, *, allow_actions: bool = False) -> DashboardServer:
        server = DashboardServer(ctx, port=0, allow_actions=allow_actions)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


def _seeded(backend: Backend) -> dbos.DBOSContext:
    ctx = backend.new_context()
    for workflow in (leaf, order, declined, nightly):
        dbos.register_workflow(ctx, workflow)
    dbos.register_queue(ctx, "billing", concurrency=3)
    ctx.launch()
    for n in (1, 2):
        dbos.run_workflow(ctx, order, n, workflow_id=f"alpha-{n}", queue="billing").get_result()
    with pytest.raises(dbos.DBOSError):
        dbos.run_workflow(ctx, declined, 3, workflow_id="beta-3").get_result()
    return ctx


def test_the_list_shows_seeded_workflows_and_filters_narrow_it(
    backend: Backend, page: Page, serve: Serve
) -> None:
    server = serve(_seeded(backend))
    page.goto(server.url + "/dashboard/#/workflows")
    rows = page.locator("tbody tr[data-id]")
    expect(rows).to_have_count(5)
    for workflow_id in ("alpha-1", "alpha-2", "beta-3", "leaf-1", "leaf-2"):
        expect(page.get_by_role("link", name=workflow_id, exact=True)).to_be_visible()
    counts = page.get_by_label("counts by status")
    expect(counts.locator("[data-status=SUCCESS]")).to_contain_text("4")
    expect(counts.locator("[data-status=ERROR]")).to_contain_text("1")

    page.get_by_label("ID prefix").fill("alpha")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(2)
    expect(page.get_by_role("link", name="beta-3")).to_have_count(0)
    expect(page.get_by_role("link", name="alpha-1", exact=True)).to_be_visible()

    page.get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(5)
    page.get_by_label("status", exact=True).select_option("ERROR")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("beta-3")
    expect(rows.first).to_contain_text("declined")

    # Oldest first, one row a page: the first page holds the oldest workflow.
    page.goto(server.url + "/dashboard/#/workflows?sort=asc&size=25&name=order")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("alpha-1")


def test_one_workflow_shows_its_steps_children_and_events(
    backend: Backend, page: Page, serve: Serve
) -> None:
    server = serve(_seeded(backend))
    page.goto(server.url + "/dashboard/#/workflow/alpha-1")
    timeline = page.get_by_label("step timeline")
    steps = timeline.locator(".step")
    expect(steps.locator(".name")).to_have_text(
        ["reserve", "DBOS.setEvent", "leaf", "DBOS.getResult"]
    )
    expect(steps.nth(2)).to_contain_text("child leaf-1")
    expect(steps.first.locator(".bar")).to_be_visible()
    expect(page.locator("pre").nth(1)).to_contain_text('"total": 12')  # the output, indented
    expect(page.get_by_role("cell", name="stage", exact=True)).to_be_visible()

    page.get_by_role("table").get_by_role("link", name="leaf-1").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("leaf-1")
    expect(page.get_by_label("step timeline").locator(".name")).to_have_text(["leaf_step"])
    page.get_by_role("link", name="alpha-1").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("alpha-1")

    page.goto(server.url + "/dashboard/#/workflow/beta-3")
    expect(page.get_by_label("step timeline").locator(".err")).to_contain_text("card declined")
    expect(page.get_by_role("heading", name="Error", exact=True)).to_be_visible()
    page.goto(server.url + "/dashboard/#/workflow/no-such-workflow")
    expect(page.get_by_role("heading", level=1)).to_have_text("Could not load this page")
    expect(page.locator("main")).to_contain_text("404")


def test_cancel_is_refused_without_the_token_and_done_with_it(
    backend: Backend, page: Page, serve: Serve
) -> None:
    gate = Gate()

    def held(ctx: dbos.WorkflowContext) -> str:
        return dbos.run_as_step(ctx, lambda: "done" if gate() else "late", name="gate")

    ctx = backend.new_context()
    dbos.register_workflow(ctx, held)
    ctx.launch()
    handle = dbos.run_workflow(ctx, held, workflow_id="held-1")
    gate.wait_entered()
    server = serve(ctx, allow_actions=True)

    def status() -> str:
        return dbos.retrieve_workflow[str](ctx, "held-1").get_status().status

    page.goto(server.url + "/dashboard/#/workflow/held-1")  # no token in the URL
    expect(page.locator("#mode")).to_contain_text("no token")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#confirm")).to_contain_text("Cancel held-1?")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#notice")).to_contain_text("401")
    assert status() == "PENDING"

    # Backing out of the confirmation changes nothing either.
    page.goto(server.page_url)
    expect(page.locator("#mode")).to_contain_text("token set")
    page.goto(server.url + "/dashboard/#/workflow/held-1")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Back").click()
    expect(page.locator("#confirm")).not_to_be_visible()
    assert status() == "PENDING"

    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#notice")).to_contain_text("done")
    wait_for(lambda: status() == "CANCELLED")
    expect(page.locator("h1 .badge")).to_have_text("CANCELLED")
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result()


def test_fork_from_a_chosen_step(backend: Backend, page: Page, serve: Serve) -> None:
    ctx = _seeded(backend)
    server = serve(ctx, allow_actions=True)
    page.goto(server.page_url)
    page.goto(server.url + "/dashboard/#/workflow/alpha-2")
    page.get_by_role("button", name="Fork…").click()
    page.get_by_label("first step to run again").select_option("2")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#notice")).to_contain_text("Forked as")
    heading = page.get_by_role("heading", level=1)
    expect(heading).not_to_contain_text("alpha-2")
    forked = heading.locator(".mono").inner_text()
    result = dbos.retrieve_workflow[dict[str, int]](ctx, forked).get_result()
    assert result == {"order": 2, "total": 23}
    forked_from = dbos.list_workflows(ctx, workflow_ids=[forked])[0].forked_from
    assert forked_from == "alpha-2"


def test_a_read_only_dashboard_offers_no_actions(
    backend: Backend, page: Page, serve: Serve
) -> None:
    server = serve(_seeded(backend))
    page.goto(server.url + "/dashboard/#/workflow/alpha-1")
    expect(page.locator("main")).to_contain_text("Read-only: actions are off")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.locator("#mode")).to_have_text("read-only")


def test_queues_schedules_and_overview_pages(backend: Backend, page: Page, serve: Serve) -> None:
    ctx = _seeded(backend)
    server = serve(ctx)
    dbos.create_schedule(ctx, "nightly", nightly, "0 0 2 * * *")
    dbos.create_schedule(ctx, "weekly", nightly, "0 0 3 * * 1")
    dbos.pause_schedule(ctx, "weekly")
    dbos.trigger_schedule(ctx, "nightly").get_result(timeout=timedelta(seconds=20))
    base = server.url + "/dashboard/#/"

    page.goto(base + "queues")
    billing = page.locator("tr[data-queue=billing]")
    expect(billing).to_contain_text("3 global")
    expect(billing.locator("canvas")).to_have_count(1)  # the throughput chart
    expect(page.locator("tr[data-queue=_dbos_internal_queue]")).to_be_visible()

    page.goto(base + "schedules")
    expect(page.locator("tr[data-schedule=nightly]")).to_contain_text("ACTIVE")
    expect(page.locator("tr[data-schedule=nightly]")).to_contain_text("(in ")
    expect(page.locator("tr[data-schedule=weekly]")).to_contain_text("PAUSED")
    page.locator("tr[data-schedule=nightly]").get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("sched-nightly")

    page.goto(base + "overview")
    expect(page.locator("#overview-chart canvas")).to_have_count(1)
    expect(page.get_by_role("heading", name="last hour")).to_contain_text("6 created")


def test_the_admin_server_serves_the_same_pages(backend: Backend, page: Page) -> None:
    ctx = backend.new_context(admin_server=True, admin_port=0)
    dbos.register_workflow(ctx, leaf)
    ctx.launch()
    assert ctx.admin_url is not None
    dbos.run_workflow(ctx, leaf, 4, workflow_id="admin-leaf").get_result()
    page.goto(ctx.admin_url + "/dashboard/#/workflows")
    expect(page.get_by_role("link", name="admin-leaf")).to_be_visible()
    expect(page.locator("#mode")).to_have_text("read-only")
