"""The examples run as documented (`python -m examples.<name>` on the embedded SQLite)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, module: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DBOS_DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=tmp_path,  # the SQLite file is created in the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("flag", "outcome"),
    [("", "approved by grace"), ("--reject", "rejected by grace")],
)
def test_approval_example(tmp_path: Path, flag: str, outcome: str) -> None:
    out = _run(tmp_path, "examples.approval", *([flag] if flag else []))
    assert "awaiting review" in out
    assert outcome in out
    assert (tmp_path / "approval.sqlite").exists()


def test_async_app_example(tmp_path: Path) -> None:
    out = _run(tmp_path, "examples.async_app")
    assert "3 prices fetched" in out
    assert "1200 in all, {'apple': 500, 'fig': 300, 'kiwi': 400}" in out
    # Fetched concurrently, recorded in the order the workflow made the calls.
    assert "recorded steps: price-apple, price-fig, price-kiwi, DBOS.setEvent, DBOS.sleep" in out
    assert (tmp_path / "async_app.sqlite").exists()


def test_quickstart_leaves_workflows_the_cli_lists(tmp_path: Path) -> None:
    out = _run(tmp_path, "examples.quickstart")
    assert "Workflow result: Step 2 completed" in out
    # As the README shows: the command line reads the demo's SQLite file.
    listing = _run(
        tmp_path, "dbos_typed", "--db-url", "sqlite:///quickstart.sqlite", "workflow", "list"
    )
    assert "SUCCESS" in listing and "workflow" in listing


def _readme_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_snippets_run_or_say_they_are_fragments(tmp_path: Path) -> None:
    snippets = _readme_snippets()
    assert len(snippets) > 1
    complete = [s for s in snippets if not s.startswith("# fragment")]
    assert complete, "the README has no complete example"
    for snippet in snippets:
        compile(snippet, "README.md", "exec")  # every fragment is at least valid Python
    for number, snippet in enumerate(complete):
        program = tmp_path / f"snippet_{number}.py"
        program.write_text(snippet)
        _run(tmp_path, program.stem)


def test_fan_out_example(tmp_path: Path) -> None:
    out = _run(tmp_path, "examples.fan_out")
    assert re.search(r"^50 pages fetched by crawl-\S+: 9380 words in all$", out, re.MULTILINE)


def test_scheduled_job_example(tmp_path: Path) -> None:
    out = _run(tmp_path, "examples.scheduled_job")
    assert len(re.findall(r"^tick \S+ started \d+ ms after its scheduled time$", out, re.M)) >= 3
    assert "schedule 'every_second' (* * * * * *) last fired at" in out


def test_tracing_example_prints_the_span_tree(tmp_path: Path) -> None:
    out = _run(tmp_path, "examples.tracing")
    tree = [line for line in out.splitlines() if "[" in line]
    names = [line.split(" [")[0] for line in tree]
    assert names[:3] == ["POST /checkout", "  start checkout", "    checkout"]
    assert "      reserve" in names and "      start notify" in names
    assert "        notify" in names and "          print" in names


def test_fastapi_app_example(tmp_path: Path) -> None:
    out = _run(tmp_path, "examples.fastapi_app")
    # The retried POST gets the workflow the first one started, and the card is charged once.
    assert out.count("202 {'workflow_id': 'k-a1'}") == 2
    assert "GET /orders/k-a1: SUCCESS, receipt {'order_id': 'a1', 'charged': 500}" in out
    assert "GET /orders/k-b2: SUCCESS, receipt {'order_id': 'b2', 'charged': 300}" in out
    assert "charges: {'a1': 1, 'b2': 1}" in out
    assert (tmp_path / "shop-api.sqlite").exists()


@pytest.mark.parametrize("server", ["sqlite", "postgres"])
def test_the_checkout_example_tests_pass_with_the_plugin_fixtures(
    tmp_path: Path, request: pytest.FixtureRequest, server: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DBOS_TYPED_TEST_DATABASE_URL"}
    if server == "postgres":
        env["DBOS_TYPED_TEST_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "t"),
            str(ROOT / "examples" / "test_checkout.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout
