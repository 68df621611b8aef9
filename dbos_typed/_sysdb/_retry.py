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


def retry_outages(
    action: Callable[[], T],
    *,
    is_outage: Callable[[BaseException], bool],
    closed: threading.Event,
    what: str,
    on_outage: Callable[[], None] | None = None,
    database: str = "system database",
) -> T:
    """Run `action`, retrying for as long as it fails with an outage.

    An outage (lost connection, server restarting) is never turned into a failed workflow:
    the caller waits for the database to come back. Other errors propagate at once. Once
    `closed` is set, the wait stops with `StoreClosedError`. `on_outage` runs before each
    retry (to drop dead pooled connections, say). `database` names the database in logs.
    """
    delay = _FIRST_DELAY
    attempt = 0
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_outage(exc):
                raise
            attempt += 1
            if closed.is_set():
                raise StoreClosedError(f"{database} closed during {what}") from exc
            level = logging.WARNING if attempt in (1, 5) or attempt % 20 == 0 else logging.DEBUG
            logger.log(
                level,
                "%s unavailable during %s (attempt %d, retrying in %.1fs): %s",
                database,
                what,
                attempt,
                delay,
                exc,
            )
            if closed.wait(delay * random.uniform(0.95, 1.05)):
                raise StoreClosedError(f"{database} closed during {what}") from exc
            if on_outage is not None:
                try:
                    on_outage()
                except Exception:
                    logger.debug("outage hook failed", exc_info=True)
            delay = min(delay * 2, _MAX_DELAY)
