"""Connections kept out of the pool between statements, each with its cursor.

Checking a connection out of `psycopg_pool` and back costs more Python than the statement
it serves (its condition variable, checks and bookkeeping), and a fresh cursor per
statement builds a fresh adapter map. A lane keeps the connections its statements have
used, each with one cursor, in a last-in-first-out list: taking one is a `list.pop`,
which the interpreter makes atomic, so threads share it without a lock. The pool still
makes every connection and caps how many there are; a connection leaves the lane back to
the pool when a statement left it unusable, after an outage, and at close.

A pool the caller supplied may serve the caller's own code too, so a lane over it keeps
nothing: each connection goes back to that pool after its statement.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

Row = tuple[Any, ...]
Lease = tuple[psycopg.Connection[Row], psycopg.Cursor[Row]]


class Lane:
    """The idle connections of one store, most recently used last."""

    __slots__ = ("_idle", "_keep", "_pool")

    def __init__(self, pool: ConnectionPool[psycopg.Connection[Row]], *, keep: bool) -> None:
        self._pool = pool
        self._keep = keep
        self._idle: list[Lease] = []

    def take(self) -> Lease:
        """An idle connection and its cursor, from the pool if the lane has none."""
        try:
            return self._idle.pop()
        except IndexError:
            conn = self._pool.getconn()
            return conn, conn.cursor()

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
            lease[1].close()
            self._pool.putconn(conn)
        else:
            self._idle.append(lease)

    def drain(self) -> None:
        """Hand every idle connection back to the pool (after an outage, or to close)."""
        while True:
            try:
                conn, cursor = self._idle.pop()
            except IndexError:
                return
            cursor.close()
            self._pool.putconn(conn)
