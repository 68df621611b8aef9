"""Argument checks shared by the public calls, each naming the argument it refuses."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from dbos_typed.errors import InvalidOptionError

#: The longest wait honoured: a longer timeout or sleep is shortened to it. A century outlasts
#: any process, and a deadline that far ahead is still a valid datetime and epoch-ms value.
LONGEST_WAIT = timedelta(days=36525)


def checked_name(value: object, argument: str) -> str:
    """A non-empty string a database can store as text (IDs, names, topics, keys).

    Every character, quotes and SQL included, is plain data; only NUL (which Postgres text
    cannot hold) and lone surrogates (which are not UTF-8) are refused.
    """
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(argument, "expected a non-empty string")
    return storable_text(value, argument)


def optional_name(value: object, argument: str) -> str | None:
    """`checked_name`, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(argument, "expected a non-empty string or None")
    return checked_name(value, argument)


def storable_text(value: str, argument: str) -> str:
    """`value`, if it holds no NUL and encodes as UTF-8 (text columns and libpq need both).

    A lone surrogate (such as `os.fsdecode` makes of undecodable bytes) is a valid
    Python string but not Unicode text, and would fail deep inside the driver.
    """
    if "\x00" in value:
        raise InvalidOptionError(argument, "must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidOptionError(
                argument,
                f"is not valid Unicode text: the lone surrogate {value[exc.start]!r} at "
                f"position {exc.start} cannot be encoded as UTF-8",
            ) from None
    return value


def epoch_ms(value: datetime | None, argument: str) -> int | None:
    """Epoch milliseconds of an aware datetime argument."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidOptionError(argument, "expected a timezone-aware datetime")
    return int(value.timestamp() * 1000)


def checked_duration(value: object, argument: str) -> timedelta:
    """A non-negative timedelta argument (a timeout, a sleep), at most `LONGEST_WAIT`.

    Zero is allowed: a wait then looks once, a sleep returns at once.
    """
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise InvalidOptionError(argument, "expected a non-negative timedelta")
    return min(value, LONGEST_WAIT)


def optional_duration(value: object, argument: str) -> timedelta | None:
    """`checked_duration`, or None (which waits as long as it takes)."""
    if value is None:
        return None
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise InvalidOptionError(argument, "expected a non-negative timedelta or None")
    return checked_duration(value, argument)


def optional_positive_duration(value: object, argument: str) -> timedelta | None:
    """A positive timedelta argument (at most `LONGEST_WAIT`), or None for no limit."""
    if value is None:
        return None
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidOptionError(argument, "expected a positive timedelta or None")
    return min(value, LONGEST_WAIT)


def wait_seconds(duration: timedelta) -> float:
    """`duration` in seconds, shortened to `LONGEST_WAIT`: every timeout goes through here."""
    return min(duration, LONGEST_WAIT).total_seconds()


def single_wait(seconds: float) -> float:
    """`seconds`, capped to what one `threading` wait accepts (less than 50 days on Windows).

    A caller waiting longer wakes at the cap and waits again for the rest.
    """
    return min(seconds, threading.TIMEOUT_MAX)
