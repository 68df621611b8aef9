"""Argument checks shared by the public calls, each naming the argument it refuses."""

from __future__ import annotations

from datetime import datetime

from dbos_typed.errors import InvalidOptionError


def checked_name(value: object, argument: str) -> str:
    """A non-empty string without NUL characters (IDs, names, topics, keys).

    Such values are stored as text, which Postgres cannot hold with a NUL in it; every other
    character, quotes and SQL included, is plain data.
    """
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(argument, "expected a non-empty string")
    if "\x00" in value:
        raise InvalidOptionError(argument, "must not contain NUL characters")
    return value


def optional_name(value: object, argument: str) -> str | None:
    """`checked_name`, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(argument, "expected a non-empty string or None")
    return checked_name(value, argument)


def epoch_ms(value: datetime | None, argument: str) -> int | None:
    """Epoch milliseconds of an aware datetime argument."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidOptionError(argument, "expected a timezone-aware datetime")
    return int(value.timestamp() * 1000)
