"""Group commit's leader and followers: who writes, in which batch, and with what result."""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from dbos_typed._sysdb._group_commit import BatchKind, GroupCommit
from tests.conftest import wait_for

Groups = list[tuple[BatchKind[Any], list[Mapping[str, Any]]]]


class Recorder:
    """A store stand-in: writes alone or in batches, and remembers which."""

    def __init__(self, *, fail_batches: bool = False) -> None:
        self.alone: list[Mapping[str, Any]] = []
        self.batches: list[list[Mapping[str, Any]]] = []
        self.fail_batches = fail_batches
        self.hold = threading.Event()
        self.hold.set()
        self.held = threading.Event()
        self.kind = BatchKind("row", alone=self.write_alone, key=lambda p: p["key"])

    def write_alone(self, params: Mapping[str, Any]) -> str:
        if params.get("bad"):
            raise ValueError(f"bad row {params['key']}")
        if params.get("hold"):
            self.held.set()
            assert self.hold.wait(10)
        self.alone.append(params)
        return f"alone {params['key']}"

    def run(self, groups: Groups) -> list[Sequence[Any]]:
        batch = [p for _, params in groups for p in params]
        if self.fail_batches or any(p.get("bad") for p in batch):
            raise RuntimeError("the batch failed")
        self.batches.append(batch)
        return [[f"batched {p['key']}" for p in params] for _, params in groups]


def _has_waiting(group: GroupCommit, count: int) -> bool:
    return len(group._waiting) == count


def _queue_behind_a_held_leader(
    recorder: Recorder, group: GroupCommit, rows: list[dict[str, Any]]
) -> tuple[Future[str], list[Future[str]]]:
    """Start a leader that stops inside its write, then `rows` queued behind it."""
    recorder.hold.clear()
    pool = ThreadPoolExecutor(len(rows) + 1)
    leader = pool.submit(group.write, recorder.kind, {"key": "leader", "hold": True})
    assert recorder.held.wait(10)
    followers = []
    for n, row in enumerate(rows):
        followers.append(pool.submit(group.write, recorder.kind, row))
        wait_for(functools.partial(_has_waiting, group, n + 1))
    recorder.hold.set()
    pool.shutdown(wait=False)
    return leader, followers


def test_a_write_alone_takes_the_single_path() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.run, leaders=1)
    assert group.write(recorder.kind, {"key": "a"}) == "alone a"
    assert group.write(recorder.kind, {"key": "b"}) == "alone b"
    assert recorder.batches == []


def test_writes_queued_behind_a_leader_are_written_as_one_batch() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.run, leaders=1)
    rows = [{"key": f"r{n}"} for n in range(5)]
    leader, followers = _queue_behind_a_held_leader(recorder, group, rows)
    assert leader.result(10) == "alone leader"
    assert [f.result(10) for f in followers] == [f"batched r{n}" for n in range(5)]
    assert recorder.batches == [rows]
    assert group._active == 0  # the lead was handed on, then given up


def test_a_failed_batch_leaves_each_caller_to_write_its_own() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.run, leaders=1)
    rows: list[dict[str, Any]] = [{"key": "good1"}, {"key": "bad", "bad": True}, {"key": "good2"}]
    leader, followers = _queue_behind_a_held_leader(recorder, group, rows)
    assert leader.result(10) == "alone leader"
    assert followers[0].result(10) == "alone good1"
    assert followers[2].result(10) == "alone good2"
    with pytest.raises(ValueError, match="bad row bad"):
        followers[1].result(10)
    assert recorder.batches == []
    assert sorted(p["key"] for p in recorder.alone) == ["good1", "good2", "leader"]


def test_a_batch_failing_for_everyone_falls_back_to_single_writes() -> None:
    recorder = Recorder(fail_batches=True)
    group = GroupCommit(recorder.run, leaders=1)
    leader, followers = _queue_behind_a_held_leader(recorder, group, [{"key": "x"}, {"key": "y"}])
    assert [f.result(10) for f in [leader, *followers]] == ["alone leader", "alone x", "alone y"]


def test_a_second_write_of_one_row_waits_for_the_next_batch() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.run, leaders=1)
    rows: list[dict[str, Any]] = [
        {"key": "same", "n": 1},
        {"key": "other"},
        {"key": "same", "n": 2},
    ]
    leader, followers = _queue_behind_a_held_leader(recorder, group, rows)
    assert leader.result(10) == "alone leader"
    assert [f.result(10) for f in followers] == ["batched same", "batched other", "alone same"]
    assert recorder.batches == [[rows[0], rows[1]]]
    assert recorder.alone[-1] == rows[2]  # alone: nobody was left to batch it with


def test_up_to_the_leader_limit_writes_go_at_once() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.run, leaders=2)
    recorder.hold.clear()
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(group.write, recorder.kind, {"key": "1", "hold": True})
        second = pool.submit(group.write, recorder.kind, {"key": "2", "hold": True})
        wait_for(lambda: group._active == 2)
        third = pool.submit(group.write, recorder.kind, {"key": "3"})
        wait_for(lambda: len(group._waiting) == 1)
        recorder.hold.set()
        assert {first.result(10), second.result(10), third.result(10)} == {
            "alone 1",
            "alone 2",
            "alone 3",
        }
    assert group._active == 0
