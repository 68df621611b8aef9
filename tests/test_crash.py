"""A real process is killed with SIGKILL in the middle of a step; a new one finishes the job."""

from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import Backend

WORKFLOWS = 5


def _worker(backend: Backend, log: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.crash_worker",
            backend.url,
            backend.schema,
            str(log),
            mode,
            str(WORKFLOWS),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_sigkill_mid_step_then_recovery_completes_every_workflow(
    backend: Backend, tmp_path: Path
) -> None:
    log = tmp_path / "steps.log"
    first = _worker(backend, log, "start")
    stdout = first.stdout
    assert stdout is not None
    try:
        # The worker reports each workflow entering its third step; kill it once all have.
        lines: queue.Queue[str] = queue.Queue()

        def read_lines() -> None:
            for line in stdout:
                lines.put(line)

        reader = threading.Thread(target=read_lines, daemon=True)
        reader.start()
        entered: set[str] = set()
        seen: list[str] = []
        while len(entered) < WORKFLOWS:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                raise AssertionError(f"the worker stalled; its output: {seen}") from None
            seen.append(line)
            if line.startswith("entered "):
                entered.add(line.split()[1])
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        reader.join(10)
        stdout.close()

    pending = backend.query("SELECT count(*) FROM {s}.workflow_status WHERE status = 'PENDING'")
    assert pending == [(WORKFLOWS,)]

    second = _worker(backend, log, "recover")
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert f"recovered {WORKFLOWS}" in out

    statuses = backend.query("SELECT status, count(*) FROM {s}.workflow_status GROUP BY status")
    assert statuses == [("SUCCESS", WORKFLOWS)]
    runs = collections.Counter(
        tuple(line.split()[:2]) for line in _lines(log) if line.endswith("start")
    )
    for i in range(WORKFLOWS):
        wid = f"crash-{i}"
        assert runs[(wid, "0")] == 1  # completed before the kill: never run again
        assert runs[(wid, "1")] == 1
        assert runs[(wid, "2")] == 2  # interrupted by the kill: run once more
        assert runs[(wid, "3")] == 1
    attempts = backend.query("SELECT DISTINCT recovery_attempts FROM {s}.workflow_status")
    assert attempts == [(2,)]
