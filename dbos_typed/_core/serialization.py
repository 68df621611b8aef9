"""The `portable_json` format: every value that crosses the database, through pydantic.

Values are compact JSON produced and validated by cached `TypeAdapter`s. Workflow inputs are
wrapped as `{"positionalArgs": [...], "namedArgs": {...}}` and errors as
`{"name", "message", "code", "data"}`, the layout every DBOS SDK reads. Nothing is pickled and
no class is ever looked up by a name read from the database. This module knows nothing of the
database itself.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Generic, NotRequired, TypeVar

import pydantic
from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError, to_jsonable_python
from typing_extensions import TypedDict

from dbos_typed.errors import SerializationError

T = TypeVar("T")

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


class Codec(Generic[T]):
    """Encodes values of one type to portable JSON text and back."""

    __slots__ = ("_adapter", "tp")

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self._adapter: TypeAdapter[T] = tp if isinstance(tp, TypeAdapter) else adapter_for(tp)

    def encode(self, value: T) -> str:
        """Encode `value` as compact JSON text.

        Raises:
            SerializationError: pydantic cannot serialize the value.
        """
        try:
            return self._adapter.dump_json(value).decode()
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise SerializationError(
                f"cannot serialize {type(value).__name__} value as {_type_name(self.tp)}: {exc}"
            ) from exc

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
    """Wrap a workflow's single input (or none, when `codec` is None) in the input envelope."""
    if codec is None:
        return '{"positionalArgs":[],"namedArgs":{}}'
    return '{"positionalArgs":[' + codec.encode(value) + '],"namedArgs":{}}'


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


_ANY = Codec[Any](Any)


def encode_any(value: object) -> str:
    """Encode a value whose static type is unknown (pydantic infers it)."""
    return _ANY.encode(value)


def decode_any(text: str | bytes) -> Any:
    """Decode JSON text to plain Python values (dicts, lists, strings, numbers)."""
    return json.loads(text)


def is_json_native(value: object) -> bool:
    """Whether `value` comes back from JSON as an equal value of the same types.

    Steps whose return type is unknown (lambdas) may only return such values, or replay
    would hand the workflow a dict where it once had a model.
    """
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
        """The stored JSON text."""
        return json.dumps(
            {"name": self.name, "message": self.message, "code": self.code, "data": self.data},
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )

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


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)
