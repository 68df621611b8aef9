"""Connections kept out of the pool between statements, each with its cursor.

Checking a connection out of `psycopg_pool` and back costs more Python than the statement
it serves (its condition variable, checks and bookkeeping), and a fresh cursor per
statement builds a fresh adapter map. A lane keeps the connections its statements have
used, each with one cursor, in a last-in-first-out list: taking one is a `list.pop`,
which the interpreter makes atomic, so threads share it without a lock. The pool still
makes every connection; a connection leaves the lane back to the pool when a statement
left it unusable, after an outage, and at close.

Since every statement of the store goes through the lane, the lane is where callers wait
when all connections are busy: it takes at most the pool's size from the pool, and a
caller finding none idle waits for one to come back (a wait on the pool itself would
never see connections returned to the lane).

A pool the caller supplied may serve the caller's own code too, so a lane over it keeps
nothing: each connection goes back to that pool after its statement.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from dbos_typed._sysdb._pg_direct import Direct

Row = tuple[Any, ...]
# A connection, its cursor, and the statements prepared on it for the direct path.
Lease = tuple[psycopg.Connection[Row], psycopg.Cursor[Row], Direct]


class Lane:
    """The idle connections of one store, most recently used last."""

    __slots__ = ("_changed", "_idle", "_keep", "_owned", "_pool", "_size", "_timeout", "_waiters")

    def __init__(
        self, pool: ConnectionPool[psycopg.Connection[Row]], *, keep: bool, timeout: float
    ) -> None:
        self._pool = pool
        self._keep = keep
        self._size = max(pool.max_size, 1)
        self._timeout = timeout
        self._idle: list[Lease] = []
        self._owned = 0  # connections taken from the pool and not handed back
        self._waiters = 0
        self._changed = threading.Condition(threading.Lock())

    def take(self) -> Lease:
        """An idle connection and its cursor, waiting for one if all are busy.

        Raises:
            PoolTimeout: none came free within the pool's timeout (an outage, to retry).
        """
        try:
            return self._idle.pop()
        except IndexError:
            pass
        if not self._keep:
            return _lease(self._pool.getconn())
        with self._changed:
            # Counted before looking again, so a connection given back after this look
            # always finds this waiter to wake.
            self._waiters += 1
            try:
                while True:
                    try:
                        return self._idle.pop()
                    except IndexError:
                        pass
                    if self._owned < self._size:
                        self._owned += 1
                        break
                    if not self._changed.wait(self._timeout):
                        raise PoolTimeout(
                            f"no system database connection came free in {self._timeout:g}s"
                        )
            finally:
                self._waiters -= 1
        try:
            conn = self._pool.getconn()
        except BaseException:
            self._release_slot()
            raise
        return _lease(conn)

    def give_back(self, lease: Lease) -> None:
        """Keep `lease` for the next statement, or hand it to the pool if it is not clean.

        A connection left inside a transaction, broken or closed goes to the pool, which
        rolls it back or replaces it.
        """
        conn = lease[0]
        if (
            not self._keep
            or conn.closed
            or conn.pgconn.transaction_status != TransactionStatus.IDLE
        ):
            self._hand_to_pool(lease)
            return
        self._idle.append(lease)
        if self._waiters:
            with self._changed:
                self._changed.notify()

    def drain(self) -> None:
        """Hand every idle connection back to the pool (after an outage, or to close)."""
        while True:
            try:
                lease = self._idle.pop()
            except IndexError:
                return
            self._hand_to_pool(lease)

    def _hand_to_pool(self, lease: Lease) -> None:
        lease[1].close()
        self._pool.putconn(lease[0])
        if self._keep:
            self._release_slot()

    def _release_slot(self) -> None:
        with self._changed:
            self._owned -= 1
            self._changed.notify()


def _lease(conn: psycopg.Connection[Row]) -> Lease:
    return conn, conn.cursor(), Direct(conn)
