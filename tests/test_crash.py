"""A real process is killed with SIGKILL in the middle of a step; a new one finishes the job."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import Backend, WorkerProcess

WORKFLOWS = 5
SENDERS = 3


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
    first = WorkerProcess(_worker(backend, log, "start"))
    try:
        # The worker reports each workflow entering its third step; kill it once all have.
        first.wait_entered(WORKFLOWS)
    finally:
        first.kill()

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


def test_sigkill_right_after_a_send_commits_delivers_every_message_once(
    backend: Backend,
) -> None:
    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.crash_messaging_worker",
                backend.url,
                backend.schema,
                mode,
                str(SENDERS),
            ],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = run("start")
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    sent_before = backend.query("SELECT count(*) FROM {s}.notifications")
    # The kill came right after the fourth commit (concurrent sends may commit too).
    assert isinstance(sent_before[0][0], int) and 4 <= sent_before[0][0] < 3 * SENDERS
    # Four sends of nine: at most one sender (and its receiver) could have finished.
    [(pending,)] = backend.query(
        "SELECT count(*) FROM {s}.workflow_status WHERE status = 'PENDING'"
    )
    assert isinstance(pending, int) and pending >= 2 * SENDERS - 2

    second = run("recover")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"recovered {SENDERS}" in second.stdout
    per_destination = backend.query(
        "SELECT destination_uuid, count(*), count(DISTINCT message), "
        "sum(CASE WHEN consumed THEN 1 ELSE 0 END) "
        "FROM {s}.notifications GROUP BY destination_uuid ORDER BY destination_uuid"
    )
    assert per_destination == [(f"recv-{i}", 3, 3, 3) for i in range(SENDERS)]
    sends = backend.query(
        "SELECT workflow_uuid, count(*) FROM {s}.operation_outputs "
        "WHERE function_name = 'DBOS.send' GROUP BY workflow_uuid ORDER BY workflow_uuid"
    )
    assert sends == [(f"send-{i}", 3) for i in range(SENDERS)]
