"""The worker pool and child IDs alone: bounded threads, reuse, and IDs that stay short."""

from __future__ import annotations

import functools
import threading

from dbos_typed._core.durable import MAX_CHILD_ID_LENGTH, child_workflow_id
from dbos_typed._core.runtime import WorkerPool
from tests.conftest import wait_for


def test_the_pool_stops_growing_at_its_cap_and_queues_the_rest() -> None:
    pool = WorkerPool("capped", 2)
    release = threading.Event()
    ran: list[int] = []
    entered = threading.Semaphore(0)

    def task(n: int) -> None:
        entered.release()
        release.wait(30)
        ran.append(n)

    for n in range(3):
        pool.submit(functools.partial(task, n))
    assert entered.acquire(timeout=10) and entered.acquire(timeout=10)
    assert (pool.thread_count(), pool.spare()) == (2, -1)
    release.set()
    assert entered.acquire(timeout=10)  # the third ran once a thread came free
    wait_for(lambda: len(ran) == 3)
    assert pool.thread_count() == 2 and pool.spare() == 2
    pool.stop()


def test_child_ids_are_bounded_and_stay_distinct() -> None:
    short = child_workflow_id("parent", 3)
    assert short == "parent-3"
    common = "p" * 100
    first, second = child_workflow_id(common + "a", 1), child_workflow_id(common + "b", 1)
    assert len(first) <= MAX_CHILD_ID_LENGTH and len(second) <= MAX_CHILD_ID_LENGTH
    assert first != second
    assert first == child_workflow_id(common + "a", 1)  # replay computes the same ID
    deep = "root"
    for step in range(500):
        deep = child_workflow_id(deep, step)
    assert len(deep) <= MAX_CHILD_ID_LENGTH


def test_a_task_submitted_after_the_worker_pool_stopped_still_runs() -> None:
    # A workflow unwinding after shutdown may still hand a step body to the pool.
    pool = WorkerPool("test-pool", 4)
    first, late = threading.Event(), threading.Event()
    pool.submit(first.set)
    assert first.wait(10)
    wait_for(lambda: pool._idle == 1)  # the thread is idle again, waiting for work
    pool.stop()
    pool.submit(late.set)
    assert late.wait(10)
