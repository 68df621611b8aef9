"""Reading the fields of an admin request's JSON body, refusing what is mistyped.

JSON null counts as absent, as in DBOS's Go server; every other value must have the
field's type, so a mistyped request is refused (a 400 naming the field), never coerced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dbos_typed.errors import InvalidOptionError

# Counts and step numbers: within a Postgres integer, so the database never overflows.
_MAX_COUNT = 2**31 - 1
# Epoch milliseconds of the last instant a datetime holds (9999-12-31T23:59:59.999Z).
_MAX_EPOCH_MS = 253_402_300_799_999


def json_object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidOptionError("body", "expected a JSON object")
    return body


def text(value: object, key: str) -> str:
    r"""A string the database can store.

    No NUL (Postgres text cannot hold one), and no lone surrogate (a JSON escape such as
    `\udcff` decodes to one, and it has no UTF-8 encoding).
    """
    if not isinstance(value, str):
        raise InvalidOptionError(key, "expected a string")
    if "\x00" in value:
        raise InvalidOptionError(key, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidOptionError(key, "must be valid Unicode (no lone surrogates)") from None
    return value


def text_field(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return None if value is None else text(value, key)


def text_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidOptionError(key, "expected an array of strings")
    return [text(item, key) for item in value]


def texts(body: dict[str, Any], key: str) -> str | list[str] | None:
    """A filter given as one string or as an array of them (DBOS tools send both)."""
    value = body.get(key)
    if isinstance(value, list):
        return text_list(body, key)
    return text_field(body, key)


def integer(body: dict[str, Any], key: str, *, low: int, high: int) -> int | None:
    # JSON numbers arrive as bool (a subclass of int), float (1e400 is inf) or unbounded int:
    # only a real int in range reaches the database, which would overflow on the rest.
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidOptionError(key, f"expected an integer from {low} to {high}")
    return value


def count(body: dict[str, Any], key: str, *, low: int = 0) -> int | None:
    return integer(body, key, low=low, high=_MAX_COUNT)


def count_to(body: dict[str, Any], key: str, high: int) -> int | None:
    """A count of at most `high` (a page size a server caps)."""
    return integer(body, key, low=0, high=high)


def instant(body: dict[str, Any], key: str) -> datetime | None:
    """A time given in epoch milliseconds."""
    value = integer(body, key, low=0, high=_MAX_EPOCH_MS)
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=UTC)


def flag(body: dict[str, Any], key: str, *, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidOptionError(key, "expected true or false")
    return value


def time_filter(body: dict[str, Any], key: str) -> datetime | None:
    value = text_field(body, key)
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidOptionError(key, "expected an RFC 3339 timestamp") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
