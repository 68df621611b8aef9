"""The examples run as documented (`python -m examples.<name>` on the embedded SQLite)."""

from __future__ import annotations

import os
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
