"""Hypothesis strategies for values that cross the database, shared by unit and database tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from hypothesis import strategies as st
from pydantic import BaseModel


class Nested(BaseModel):
    label: str
    when: datetime
    amount: Decimal
    tags: list[str]
    ref: UUID | None = None
    extra: dict[str, int] = {}


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
)


json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


nested_models = st.builds(
    Nested,
    label=st.text(),
    when=st.datetimes(timezones=st.just(UTC)),
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=4),
    tags=st.lists(st.text(), max_size=3),
    ref=st.none() | st.uuids(),
    extra=st.dictionaries(st.text(), st.integers(), max_size=3),
)
