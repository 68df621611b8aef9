"""Crash-and-restart soak: a worker is SIGKILLed at random moments, over and over.

Short by default (it runs in CI); set DBOS_TYPED_CHAOS_LONG=1 for the long run. At the end
every workflow has completed with the right result, every step that completed ran exactly
once and an interrupted one at most once more, every message was delivered exactly once
(and a refused one never written), and nothing is left PENDING, whether a life's leftovers
were recovered by its successor's heartbeats or at a later launch. The counts are printed.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos.worker import expected
from tests.conftest import Backend

LONG = os.environ.get("DBOS_TYPED_CHAOS_LONG") == "1"
WORKFLOWS = 150 if LONG else 30
KILLS = 25 if LONG else 5


def _worker(backend: Backend, log: Path, run: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.chaos.worker",
            backend.url,
            backend.schema,
            str(log),
            str(WORKFLOWS),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "DBOS_TYPED_CHAOS_RUN": str(run)},
    )


def test_random_kills_lose_nothing(backend: Backend, tmp_path: Path) -> None:
    seed = int(os.environ.get("DBOS_TYPED_CHAOS_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    log = tmp_path / "steps.log"
    killed: set[str] = set()
    for run in range(KILLS):
        worker = _worker(backend, log, run)
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready", "the worker did not start"
        # The chaos schedule itself: kill after a random while, whatever it is doing.
        time.sleep(rng.uniform(0.02, 0.4))
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            killed.add(str(run))
        worker.communicate(timeout=60)
    final = _worker(backend, log, KILLS)
    out, _ = final.communicate(timeout=300)
    assert final.returncode == 0, f"seed {seed}: {out[-3000:]}"

    rows = backend.query("SELECT workflow_uuid, status FROM {s}.workflow_status")
    statuses = collections.Counter(status for _, status in rows)
    assert set(statuses) == {"SUCCESS"}, f"seed {seed}: {statuses}"
    results = backend.query(
        "SELECT ws.workflow_uuid, wo.output FROM {s}.workflow_status ws "
        "JOIN {s}.workflow_output wo USING (workflow_uuid) WHERE ws.name = 'mixed'"
    )
    assert len(results) == WORKFLOWS
    for workflow_id, output in results:
        assert int(str(output)) == expected(int(str(workflow_id).split("-")[1]))

    executions: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for line in log.read_text().splitlines():
        workflow_id, step, life = line.split()
        executions[(workflow_id, step)].append(life)
    recorded = backend.query(
        "SELECT workflow_uuid, function_name FROM {s}.operation_outputs "
        "WHERE function_name IN ('first', 'last', 'task') AND child_workflow_id IS NULL"
    )
    # Every step that ran has exactly one checkpoint, and every checkpoint's step ran.
    assert sorted(executions) == sorted((str(w), str(n)) for w, n in recorded)
    for key, runs in executions.items():
        # At most once per life of the worker, and only a run that was killed before the
        # checkpoint made it run again: a recorded step never runs twice.
        assert len(set(runs)) == len(runs), f"seed {seed}: {key} ran twice in one run"
        assert set(runs[:-1]) <= killed, f"seed {seed}: {key} re-ran after a clean run"
    reruns = sum(len(runs) - 1 for runs in executions.values())
    messages = backend.query(
        "SELECT count(*), sum(CASE WHEN consumed THEN 1 ELSE 0 END) FROM {s}.notifications"
    )
    assert messages == [(WORKFLOWS, WORKFLOWS)], f"seed {seed}: {messages}"
    print(
        f"\nchaos ({backend.name}, seed {seed}): {WORKFLOWS} workflows, {len(rows)} rows, "
        f"{len(killed)} kills, {reruns} re-executed steps, lost 0"
    )
