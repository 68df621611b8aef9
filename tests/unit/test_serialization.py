"""The codecs alone: what round-trips through the stored JSON, and what is refused."""

from __future__ import annotations

import json
import math
from datetime import UTC
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import dbos_typed as dbos
from dbos_typed._core.serialization import ErrorRecord, codec_for, decode_inputs, encode_inputs
from tests.strategies import Nested, json_scalars, json_values, nested_models


@given(value=json_values)
def test_any_json_value_round_trips_through_the_input_envelope(value: Any) -> None:
    codec = codec_for(Any)
    assert decode_inputs(codec, encode_inputs(codec, value)) == value


@given(model=nested_models)
def test_models_round_trip_through_their_codec(model: Nested) -> None:
    codec = codec_for(Nested)
    assert codec.decode(codec.encode(model)) == model
    assert decode_inputs(codec, encode_inputs(codec, model)) == model


def _plain_finite_json(value: Any) -> bool:
    if value is None or type(value) in (str, int, bool):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_plain_finite_json(item) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _plain_finite_json(v) for k, v in value.items())
    return False


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


anything = st.recursive(
    json_scalars | st.floats() | st.binary(max_size=3) | st.datetimes(timezones=st.just(UTC)),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.frozensets(st.integers(), max_size=3)
        | st.sets(st.text(max_size=3), max_size=3)
        | st.dictionaries(st.text(max_size=3) | st.integers(), children, max_size=3)
    ),
    max_leaves=10,
)


@given(value=anything)
def test_a_value_declared_any_is_stored_only_if_it_comes_back_as_it_was(value: Any) -> None:
    codec = codec_for(Any)
    try:
        text = encode_inputs(codec, value)
    except dbos.SerializationError:
        assert not _plain_finite_json(value)
        return
    assert _plain_finite_json(value)
    assert _same(decode_inputs(codec, text), value)


class Reading(BaseModel):
    value: float
    note: str | None = None


@given(value=st.floats(), note=st.none() | st.text(max_size=5))
def test_a_typed_float_is_stored_only_if_finite(value: float, note: str | None) -> None:
    codec = codec_for(Reading)
    reading = Reading(value=value, note=note)
    if not math.isfinite(value):
        with pytest.raises(dbos.SerializationError, match=r"at \['value'\]"):
            codec.encode(reading)
        return
    assert codec.decode(codec.encode(reading)) == reading


@given(value=st.decimals())
def test_a_typed_decimal_is_stored_only_if_finite(value: Decimal) -> None:
    codec = codec_for(Decimal)
    if not value.is_finite():  # stored as "NaN", which no Decimal field reads back
        with pytest.raises(dbos.SerializationError, match="no number for it"):
            codec.encode(value)
        return
    assert codec.decode(codec.encode(value)) == value


def test_error_data_with_non_finite_numbers_is_still_valid_json() -> None:
    class Overloaded(Exception):
        data: ClassVar[dict[str, Any]] = {"ratio": float("nan"), "limits": [float("inf"), 1.5]}

    def strict(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    text = ErrorRecord.of(Overloaded("too much")).encode()
    stored = json.loads(text, parse_constant=strict)
    assert stored["data"] == {"ratio": "NaN", "limits": ["Infinity", 1.5]}
