"""Retrying through database outages with capped, jittered exponential backoff."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger("dbos_typed")

_FIRST_DELAY = 0.1
_MAX_DELAY = 30.0


class StoreClosedError(Exception):
    """Raised instead of retrying once the store is closed (the context is shutting down)."""


class OutageBackoff:
    """The delays between retries through an outage: 100 ms doubling to 30 s, jittered.

    `retry_outages` waits them out on a thread; an awaitable loop may await them instead.
    `database` and `what` name the database and the operation in logs.
    """

    __slots__ = ("_delay", "attempts", "database", "what")

    def __init__(self, what: str, database: str = "system database") -> None:
        self.what = what
        self.database = database
        self.attempts = 0
        self._delay = _FIRST_DELAY

    def next_delay(self, exc: BaseException) -> float:
        """Log the outage `exc`; the seconds to wait before the next try."""
        self.attempts += 1
        attempt, delay = self.attempts, self._delay
        level = logging.WARNING if attempt in (1, 5) or attempt % 20 == 0 else logging.DEBUG
        logger.log(
            level,
            "%s unavailable during %s (attempt %d, retrying in %.1fs): %s",
            self.database,
            self.what,
            attempt,
            delay,
            exc,
        )
        self._delay = min(delay * 2, _MAX_DELAY)
        return delay * random.uniform(0.95, 1.05)

    def closed_error(self) -> StoreClosedError:
        """The error that ends the retries once the database is closed."""
        return StoreClosedError(f"{self.database} closed during {self.what}")


def retry_outages(
    action: Callable[[], T],
    *,
    is_outage: Callable[[BaseException], bool],
    closed: threading.Event,
    what: str,
    on_outage: Callable[[], None] | None = None,
    database: str = "system database",
    failed: BaseException | None = None,
) -> T:
    """Run `action`, retrying for as long as it fails with an outage.

    An outage (lost connection, server restarting) is never turned into a failed workflow:
    the caller waits for the database to come back. Other errors propagate at once. Once
    `closed` is set, the wait stops with `StoreClosedError`. `on_outage` runs before each
    retry (to drop dead pooled connections, say). `database` names the database in logs.
    `failed` is the outage of a first attempt the caller already made itself (a hot path
    that skips building `action` until it is needed): the retries start after it.
    """
    backoff = OutageBackoff(what, database)
    while True:
        try:
            if failed is not None:
                first, failed = failed, None
                raise first
            return action()
        except Exception as exc:
            if not is_outage(exc):
                raise
            if closed.is_set():
                raise backoff.closed_error() from exc
            if closed.wait(backoff.next_delay(exc)):
                raise backoff.closed_error() from exc
            if on_outage is not None:
                try:
                    on_outage()
                except Exception:
                    logger.debug("outage hook failed", exc_info=True)
