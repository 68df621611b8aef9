"""The lane of kept connections: callers beyond the pool's size wait for one to come back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool, PoolTimeout

from dbos_typed._sysdb._pg_lane import Lane
from tests.conftest import wait_for


@pytest.fixture
def pool(postgres_url: str) -> Iterator[ConnectionPool[psycopg.Connection[Any]]]:
    with ConnectionPool(
        postgres_url, min_size=1, max_size=1, kwargs={"autocommit": True}, timeout=30
    ) as pool:
        yield pool


@pytest.mark.postgres_only
def test_a_caller_waits_for_a_kept_connection_rather_than_for_the_pool(
    pool: ConnectionPool[psycopg.Connection[Any]],
) -> None:
    lane = Lane(pool, keep=True, timeout=30)
    first = lane.take()
    with ThreadPoolExecutor(1) as threads:
        second = threads.submit(lane.take)
        wait_for(lambda: lane._waiters == 1)
        lane.give_back(first)  # kept in the lane, not returned to the pool
        # Well within the pool's own 30 s: the waiter is woken by the lane.
        assert second.result(10)[0] is first[0]
    lane.give_back(second.result())
    with pytest.raises(PoolTimeout):
        pool.getconn(timeout=0.05)  # still kept by the lane
    lane.drain()
    with pool.connection(timeout=10) as conn:
        assert conn is first[0]


@pytest.mark.postgres_only
def test_a_connection_left_in_a_transaction_goes_back_to_the_pool(
    pool: ConnectionPool[psycopg.Connection[Any]],
) -> None:
    lane = Lane(pool, keep=True, timeout=30)
    lease = lane.take()
    lease[1].execute("BEGIN")
    lane.give_back(lease)
    assert lane._idle == [] and lane._owned == 0
    again = lane.take()
    assert again[0].pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    lane.give_back(again)


@pytest.mark.postgres_only
def test_no_connection_coming_free_is_an_outage_after_the_timeout(
    pool: ConnectionPool[psycopg.Connection[Any]],
) -> None:
    lane = Lane(pool, keep=True, timeout=0.05)
    held = lane.take()
    with pytest.raises(PoolTimeout):
        lane.take()
    lane.give_back(held)


@pytest.mark.postgres_only
def test_many_threads_share_a_small_lane(pool: ConnectionPool[psycopg.Connection[Any]]) -> None:
    lane = Lane(pool, keep=True, timeout=30)
    counted = threading.Lock()
    results: list[int] = []

    def query(n: int) -> None:
        lease = lane.take()
        try:
            lease[1].execute("SELECT %s::int", (n,))
            row = lease[1].fetchone()
            assert row is not None
            with counted:
                results.append(row[0])
        finally:
            lane.give_back(lease)

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(query, range(200)))
    assert sorted(results) == list(range(200))
    assert lane._owned == 1
