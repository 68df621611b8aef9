"""The `portable_json` format: every value that crosses the database, through pydantic.

Values are compact JSON produced and validated by cached `TypeAdapter`s. Workflow inputs are
wrapped as `{"positionalArgs": [...], "namedArgs": {...}}` and errors as
`{"name", "message", "code", "data"}`, the layout every DBOS SDK reads. Nothing is pickled and
no class is ever looked up by a name read from the database. This module knows nothing of the
database itself.

A value is stored only if it comes back as what was passed: a non-finite float or Decimal
(which JSON has no number for; pydantic would write a float one as `null`) and, where the
declared type is `Any`, a value that is not plain JSON (a set, a tuple, bytes, a model...) are
refused with a `SerializationError` before anything is written. `docs/serialization.md` lists
what round-trips.
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Generic, NotRequired, TypeVar

import pydantic
from pydantic import BaseModel, TypeAdapter
from pydantic_core import PydanticSerializationError, to_jsonable_python
from typing_extensions import TypeAliasType, TypedDict, is_typeddict

from dbos_typed.errors import SerializationError

T = TypeVar("T")

JsonValue = TypeAliasType(
    "JsonValue",
    "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None",
)
"""A value as JSON gives it back: None, a bool, int, float or str, or a list or string-keyed
dict of such values.

What the untyped forms of the reading calls return (`recv(ctx)`, `get_event`,
`read_stream`, `enqueue` and `debounce` from a client, a status's `input` and `output`),
so strictly typed code narrows it (`isinstance`) or asks for a type (`recv[Order]`).
pydantic validates it too: `recv[TypeAdapter(JsonValue)](ctx)` checks that the message is
plain JSON.
"""

#: The value of the `serialization` column on every row this library writes.
PORTABLE_JSON = "portable_json"


class _InputEnvelope(TypedDict, Generic[T]):
    positionalArgs: NotRequired[list[T]]
    namedArgs: NotRequired[dict[str, T]]


@functools.cache
def adapter_for(tp: Any) -> TypeAdapter[Any]:
    """A cached adapter for `tp`, so a type's validator is built once per process."""
    try:
        return TypeAdapter(tp)
    except pydantic.PydanticSchemaGenerationError as exc:
        raise SerializationError(f"type {tp!r} cannot be converted to JSON: {exc}") from exc


@functools.cache
def _envelope_adapter(tp: Any) -> TypeAdapter[_InputEnvelope[Any]]:
    return TypeAdapter(_InputEnvelope[tp])


# What comes back as it was passed.
#
# A check takes a value and the path to it ("", "[0]", "['tags'][1]") and describes the first
# part that would not come back as it was, or returns None.

_Check = Callable[[Any, str], str | None]

_UNIONS: tuple[Any, ...] = (typing.Union, types.UnionType)
_SEQUENCES: tuple[Any, ...] = (
    list,
    set,
    frozenset,
    collections.deque,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Set,
    collections.abc.MutableSet,
    collections.abc.Collection,
    collections.abc.Iterable,
)
_MAPPINGS: tuple[Any, ...] = (
    dict,
    collections.OrderedDict,
    collections.defaultdict,
    collections.abc.Mapping,
    collections.abc.MutableMapping,
)
_CONTAINERS = (list, tuple, set, frozenset, collections.deque)


def non_finite_problem(value: object, path: str) -> str | None:
    """Where a pydantic Python dump holds a NaN or an infinity, described; None if nowhere.

    A float one would be written as null, a Decimal one as a string no Decimal field
    accepts back: neither returns.
    """
    if isinstance(value, float | Decimal):
        # is_finite, not math.isfinite: a signalling NaN Decimal cannot become a float.
        if value.is_finite() if isinstance(value, Decimal) else math.isfinite(value):
            return None
        return (
            f"{_where(path)} is {value!r}, and JSON has no number for it; store None or a "
            "string instead"
        )
    items: collections.abc.Iterable[tuple[str, Any]]
    if isinstance(value, dict):
        items = ((f"{path}[{key!r}]", item) for key, item in value.items())
    elif isinstance(value, _CONTAINERS):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for item_path, item in items:
        found = non_finite_problem(item, item_path)
        if found is not None:
            return found
    return None


@functools.cache
def any_position_check(tp: Any) -> _Check | None:
    """A check of the parts of a `tp` value declared `Any`; None if `tp` declares none.

    Such a part comes back from JSON as plain JSON (dict, list, str, int, float, bool,
    None), so anything else there (a set, a tuple, bytes, a model) would come back as
    another type. Unions of several types are not looked into.
    """
    return _check_for(tp, frozenset())


def _check_for(tp: Any, building: frozenset[Any]) -> _Check | None:
    if tp is Any or tp is object:
        return _plain_json_problem
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        return _check_for(args[0], building)
    if origin in _UNIONS:
        members = [arg for arg in args if arg is not type(None)]
        return _check_for(members[0], building) if len(members) == 1 else None
    if origin is tuple:
        return _tuple_check(args, building)
    if origin in _SEQUENCES:
        return _items_check(_check_for(args[0], building) if args else _plain_json_problem)
    if origin in _MAPPINGS:
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        return _mapping_check(key_type, value_type, building)
    if isinstance(tp, type):
        return _class_check(tp, building)
    return None


def _tuple_check(args: tuple[Any, ...], building: frozenset[Any]) -> _Check | None:
    if len(args) == 2 and args[1] is Ellipsis:
        return _items_check(_check_for(args[0], building))
    checks = [_check_for(arg, building) for arg in args]
    if all(check is None for check in checks):
        return None

    def check(value: Any, path: str) -> str | None:
        if not isinstance(value, _CONTAINERS):
            return None
        for index, (item, item_check) in enumerate(zip(value, checks, strict=False)):
            found = item_check(item, f"{path}[{index}]") if item_check is not None else None
            if found is not None:
                return found
        return None

    return check


def _items_check(item_check: _Check | None) -> _Check | None:
    if item_check is None:
        return None

    def check(value: Any, path: str) -> str | None:
        if not isinstance(value, _CONTAINERS):
            return None
        for index, item in enumerate(value):
            found = item_check(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None

    return check


def _mapping_check(key_type: Any, value_type: Any, building: frozenset[Any]) -> _Check | None:
    # A typed key is rebuilt from its string (dict[int, str]); an `Any` key stays a string.
    keys_any = key_type is Any or key_type is object
    value_check = _check_for(value_type, building)
    if not keys_any and value_check is None:
        return None

    def check(value: Any, path: str) -> str | None:
        if not isinstance(value, collections.abc.Mapping):
            return None
        for key, item in value.items():
            if keys_any and type(key) is not str:
                return _key_problem(key, path)
            found = value_check(item, f"{path}[{key!r}]") if value_check is not None else None
            if found is not None:
                return found
        return None

    return check


def _class_check(tp: type, building: frozenset[Any]) -> _Check | None:
    if tp in (list, set, frozenset, tuple, collections.deque):
        return _items_check(_plain_json_problem)  # bare `list`: its items are `Any`
    if tp is dict:
        return _mapping_check(Any, Any, building)
    if tp in building:
        # A recursive type: look its check up when a value is checked, once it is built.
        return lambda value, path: (any_position_check(tp) or _no_problem)(value, path)
    building = building | {tp}
    fields = _declared_fields(tp)
    if fields is None:
        return None
    checks = {
        name: check
        for name, hint in fields.items()
        if (check := _check_for(hint, building)) is not None
    }
    # A model that allows extra fields keeps them untyped: they are `Any`.
    allows_extra = issubclass(tp, BaseModel) and tp.model_config.get("extra") == "allow"
    extras = _mapping_check(Any, Any, building) if allows_extra else None
    if not checks and extras is None:
        return None
    return _fields_check(tp, checks, extras)


def _declared_fields(tp: type) -> dict[str, Any] | None:
    """A model's, dataclass's or TypedDict's field types by name; None for other classes."""
    if issubclass(tp, BaseModel):
        return {name: info.annotation for name, info in tp.model_fields.items()}
    if not (dataclasses.is_dataclass(tp) or is_typeddict(tp)):
        return None
    try:
        hints = typing.get_type_hints(tp, include_extras=True)
    except Exception:  # unresolvable annotations: pydantic has its own account of them
        return None
    if dataclasses.is_dataclass(tp):
        return {field.name: hints.get(field.name, Any) for field in dataclasses.fields(tp)}
    return hints


def _fields_check(tp: type, checks: dict[str, _Check], extras: _Check | None) -> _Check:
    typed_dict = is_typeddict(tp)

    def check(value: Any, path: str) -> str | None:
        if typed_dict:
            if not isinstance(value, dict):
                return None
            present = [(name, value[name]) for name in checks if name in value]
        elif isinstance(value, tp):
            present = [(name, getattr(value, name, None)) for name in checks]
        else:
            return None
        for name, item in present:
            found = checks[name](item, f"{path}[{name!r}]")
            if found is not None:
                return found
        if extras is not None and isinstance(value, BaseModel) and value.model_extra:
            return extras(value.model_extra, path)
        return None

    return check


def _no_problem(value: Any, path: str) -> str | None:
    return None


def _plain_json_problem(value: Any, path: str) -> str | None:
    """Where a value declared `Any` is not plain JSON, described (non-finite floats aside)."""
    if value is None or type(value) in (str, int, bool, float):
        return None
    if type(value) is list:
        for index, item in enumerate(value):
            found = _plain_json_problem(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                return _key_problem(key, path)
            found = _plain_json_problem(item, f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    return (
        f"{_where(path)} is of type {type(value).__name__}, declared Any, which would come back as "
        f"{_json_kind(value)}; declare its type (such as set[int], or the model) to store it"
    )


def _key_problem(key: object, path: str) -> str:
    return (
        f"{_where(path)} has the {type(key).__name__} key {key!r}, declared Any, which would "
        "come back as a str; declare the key type (such as dict[int, str]) to store it"
    )


def _json_kind(value: object) -> str:
    if isinstance(value, set | frozenset | tuple | collections.deque):
        return "a list"
    try:
        form = to_jsonable_python(value)
    except (PydanticSerializationError, ValueError, TypeError):
        return "nothing JSON can hold"
    kinds = {dict: "a dict", list: "a list", str: "a str", bool: "a bool", type(None): "null"}
    return kinds.get(type(form), "a number")


def _where(path: str) -> str:
    return f"the value at {path}" if path else "the value"


class Codec(Generic[T]):
    """Encodes values of one type to portable JSON text and back."""

    __slots__ = ("_adapter", "_any_check", "tp")

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self._adapter: TypeAdapter[T] = tp if isinstance(tp, TypeAdapter) else adapter_for(tp)
        # An adapter handed in as is hides its type, so its Any positions go unchecked.
        self._any_check = None if isinstance(tp, TypeAdapter) else any_position_check(tp)

    def encode(self, value: T, what: str = "the value") -> str:
        """Encode `value` as compact JSON text, refusing what would not come back as passed.

        Args:
            value: The value to encode.
            what: What the value is, for the error message ("the workflow input").

        Raises:
            SerializationError: pydantic cannot serialize the value, it holds a non-finite
                float, or a part declared `Any` is not plain JSON.
        """
        if self._any_check is not None:
            problem = self._any_check(value, "")
            if problem is not None:
                raise self._refusal(what, problem)
        return self.encode_as_json(value, what)

    def encode_as_json(self, value: T, what: str = "the value") -> str:
        """`encode` without the check of `Any` positions, for values a reader will type.

        Raises:
            SerializationError: pydantic cannot serialize the value, or it holds a
                non-finite float.
        """
        try:
            raw = self._adapter.dump_json(value)
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise SerializationError(
                f"{what} cannot be stored: cannot serialize {type(value).__name__} as "
                f"{_type_name(self.tp)}: {exc}"
            ) from exc
        # pydantic writes NaN and infinities as null (or, configured so, as NaN or "NaN").
        # Only output holding one of those words can hide one, so the walk is rare (and
        # None, written as null, holds none).
        if value is not None and (b"null" in raw or b"NaN" in raw or b"Infinity" in raw):
            problem = non_finite_problem(self._adapter.dump_python(value), "")
            if problem is not None:
                raise self._refusal(what, problem)
        return raw.decode()

    def _refusal(self, what: str, problem: str) -> SerializationError:
        return SerializationError(f"{what} ({_type_name(self.tp)}) cannot be stored: {problem}")

    def decode(self, text: str | bytes) -> T:
        """Validate stored JSON text as this codec's type.

        Raises:
            SerializationError: the stored value does not match the type.
        """
        try:
            return self._adapter.validate_json(text)
        except pydantic.ValidationError as exc:
            raise SerializationError(
                f"stored value does not match {_type_name(self.tp)}: {exc}"
            ) from exc

    def validate(self, value: object) -> T:
        """Check an in-memory value against this codec's type (used for inputs).

        Raises:
            SerializationError: the value does not match.
        """
        try:
            return self._adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise SerializationError(f"value is not a valid {_type_name(self.tp)}: {exc}") from exc


@functools.cache
def codec_for(tp: Any) -> Codec[Any]:
    """A cached codec for `tp`."""
    return Codec(tp)


def encode_inputs(codec: Codec[Any] | None, value: object) -> str:
    """Wrap a workflow's single input (or none, when `codec` is None) in the input envelope.

    Raises:
        SerializationError: the input cannot be stored (`Codec.encode`).
    """
    if codec is None:
        return '{"positionalArgs":[],"namedArgs":{}}'
    return '{"positionalArgs":[' + codec.encode(value, "the workflow input") + '],"namedArgs":{}}'


def decode_inputs(codec: Codec[Any] | None, text: str | None) -> Any:
    """Read a workflow's single input back from the envelope written by any DBOS SDK.

    The input may be the only positional argument or the only named argument.

    Raises:
        SerializationError: the envelope is malformed or the input does not match the type.
    """
    if codec is None:
        return None
    if text is None:
        raise SerializationError("the workflow has no recorded input")
    if getattr(codec.tp, READS_ALL_ARGUMENTS, False):
        return _decode_all_arguments(codec, text)
    try:
        envelope = _envelope_adapter(codec.tp).validate_json(text)
    except pydantic.ValidationError as exc:
        raise SerializationError(
            f"recorded input does not match {_type_name(codec.tp)}: {exc}"
        ) from exc
    values = list(envelope.get("positionalArgs", [])) + list(envelope.get("namedArgs", {}).values())
    if len(values) != 1:
        raise SerializationError(f"expected exactly one recorded input argument, got {len(values)}")
    return values[0]


#: A type with this class attribute set reads a call of several arguments (as another SDK
#: records one) as one value: a sole argument as itself, several as the list of them.
READS_ALL_ARGUMENTS = "__dbos_reads_all_arguments__"


def _decode_all_arguments(codec: Codec[Any], text: str) -> Any:
    try:
        envelope = _envelope_adapter(Any).validate_json(text)
    except pydantic.ValidationError as exc:
        raise SerializationError(f"the recorded input is not an input envelope: {exc}") from exc
    values = list(envelope.get("positionalArgs", [])) + list(envelope.get("namedArgs", {}).values())
    return codec.decode(json.dumps(values[0] if len(values) == 1 else values))


_ANY = Codec[Any](Any)


def encode_any(value: object, what: str = "the value") -> str:
    """Encode a value whose type the reader chooses (a message, an event, a stream value).

    pydantic infers how to write it; a model is written as an object, a set as an array,
    and the reader's type (`recv[Order]`) rebuilds it. Only non-finite floats are refused,
    as no type could read them back.

    Raises:
        SerializationError: pydantic cannot serialize the value, or it holds a non-finite
            float.
    """
    return _ANY.encode_as_json(value, what)


def decode_any(text: str | bytes) -> Any:
    """Decode JSON text to plain Python values (dicts, lists, strings, numbers)."""
    return json.loads(text)


def is_json_native(value: object) -> bool:
    """Whether `value` comes back from JSON as an equal value of the same types.

    Steps whose return type is unknown (lambdas) may only return such values, or replay
    would hand the workflow a dict where it once had a model.
    """
    # A non-finite float counts: the codec refuses it, with a message that says why.
    if value is None or type(value) in (str, int, float, bool):
        return True
    if type(value) is list:
        return all(is_json_native(item) for item in value)
    if type(value) is dict:
        return all(type(k) is str and is_json_native(v) for k, v in value.items())
    return False


_CODE_ATTRIBUTES = ("code", "error_code", "errno", "status", "status_code")
_DATA_ATTRIBUTES = ("data", "details", "payload", "extra", "meta", "metadata")


def safe_str(value: object) -> str:
    """`str(value)`, or a placeholder when the value cannot describe itself."""
    try:
        return str(value)
    except Exception as failure:
        return f"<{type(value).__name__} whose str() raised {type(failure).__name__}>"


def _attribute(exc: BaseException, name: str) -> object:
    try:
        return getattr(exc, name, None)
    except Exception:  # a property that raises describes nothing
        return None


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """What is stored of an exception: its class name, message, code and data."""

    name: str
    message: str
    code: int | str | None = None
    data: Any = None

    @classmethod
    def of(cls, exc: BaseException) -> ErrorRecord:
        """Describe an exception, keeping a code and JSON data when it carries them.

        It never raises: an exception that cannot describe itself (a `__str__` or an
        attribute that raises) is recorded with a placeholder in place of what failed.
        """
        record = getattr(exc, "__dbos_error_record__", None)
        if isinstance(record, ErrorRecord):
            return record
        code: int | str | None = None
        for attr in _CODE_ATTRIBUTES:
            candidate = _attribute(exc, attr)
            if isinstance(candidate, int | str) and not isinstance(candidate, bool):
                code = candidate
                break
        data: Any = None
        for attr in _DATA_ATTRIBUTES:
            candidate = _attribute(exc, attr)
            if candidate is not None and not callable(candidate):
                try:
                    data = to_jsonable_python(candidate, fallback=safe_str)
                except Exception:
                    data = None
                break
        return cls(name=type(exc).__name__, message=safe_str(exc), code=code, data=data)

    def encode(self) -> str:
        """The stored JSON text (always valid JSON: a non-finite float in `data` is a string)."""
        fields = {"name": self.name, "message": self.message, "code": self.code}
        try:
            return _error_json({**fields, "data": self.data})
        except ValueError:  # NaN or an infinity in data, which strict JSON cannot hold
            return _error_json({**fields, "data": _finite(self.data)})

    @classmethod
    def decode(cls, text: str) -> ErrorRecord:
        """Read an error written by any DBOS SDK; unreadable text becomes the message."""
        try:
            raw = json.loads(text)
        except ValueError:
            return cls(name="Error", message=text)
        if not isinstance(raw, dict):
            return cls(name="Error", message=str(raw))
        code = raw.get("code")
        return cls(
            name=str(raw.get("name") or "Error"),
            message=str(raw.get("message") or ""),
            code=code if isinstance(code, int | str) else None,
            data=raw.get("data"),
        )


def _error_json(record: dict[str, Any]) -> str:
    return json.dumps(
        record, separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False
    )


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _finite(data: Any) -> Any:
    """`data` with each NaN or infinity replaced by its name, so strict JSON can hold it."""
    if isinstance(data, float) and not math.isfinite(data):
        return "NaN" if math.isnan(data) else ("Infinity" if data > 0 else "-Infinity")
    if isinstance(data, dict):
        return {key: _finite(item) for key, item in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(item) for item in data]
    return data


class TypedCall:
    """What `recv[T]`, `get_event[T]`, `read_stream[T]` and the like have in common.

    `name[T](...)` makes the call with a codec for `T`. A subclass adds, for the type
    checker, `__getitem__` overloads returning a Protocol generic in `T` (the call's
    signature, typed) that delegate to `typed`, and a `__call__` for the untyped form:
    Python's types cannot say "this signature, returning T" once for all of them.
    """

    def __init__(self, bind: Callable[[Codec[Any]], Callable[..., Any]], name: str) -> None:
        """`bind(codec)` returns the call made with that codec; `name` is the public name."""
        self._bind = bind
        self.__name__ = self.__qualname__ = name

    def typed(self, tp: object) -> Callable[..., Any]:
        """The call whose values are validated as (and typed) `tp`."""
        call = self._bind(codec_for(tp))
        call.__doc__ = type(self).__doc__
        return call
