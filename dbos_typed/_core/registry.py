"""Workflow registration: names, signatures, and the codecs built from type annotations.

Everything that can go wrong with a workflow's types goes wrong here, at registration,
with a message naming the function and parameter, never later at replay.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbos_typed._core.serialization import Codec, codec_for
from dbos_typed._core.validate import optional_name
from dbos_typed.errors import InvalidOptionError, RegistrationError, SerializationError

if TYPE_CHECKING:  # the registry only holds parsed schedules; parsing is the feature's
    from dbos_typed._schedules.cron import CronSchedule


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A registered workflow: its recorded name, function and codecs."""

    name: str
    fn: Callable[..., Any]
    input_codec: Codec[Any] | None  # None: the workflow takes no input
    output_codec: Codec[Any]
    max_recovery_attempts: int | None  # None: unlimited
    is_async: bool = False  # an `async def`: its body runs on an event loop of its own
    # A configured instance: a method registered for one receiver, under this config name.
    config_name: str | None = None
    class_name: str | None = None  # the receiver's class, for a configured instance

    @property
    def key(self) -> tuple[str, str]:
        """What the registry (and a claim) tells it apart by: (name, config name or "")."""
        return (self.name, self.config_name or "")


@dataclass(frozen=True, slots=True)
class RegisteredWorkflow:
    """A workflow registered with a context, as `list_registered_workflows` reports it.

    Attributes:
        name: The name its runs are recorded under.
        function: The registered function.
        max_recovery_attempts: Starts allowed without finishing; None for unlimited.
        takes_input: Whether it takes an input after its context.
        is_async: Whether it is an `async def`.
        schedule: The cron expression it was registered with, if any.
        config_name: For a configured instance, the config name it was registered with.
        class_name: For a configured instance, its receiver's class name.
    """

    name: str
    function: Callable[..., Any]
    max_recovery_attempts: int | None
    takes_input: bool
    is_async: bool
    schedule: str | None
    config_name: str | None = None
    class_name: str | None = None


#: The default of a workflow's input argument in calls that start one: no input was given.
NO_INPUT: Any = object()


def checked_input(spec: WorkflowSpec, value: Any) -> Any:
    """Validate a workflow input against its registered type (`NO_INPUT`: none given).

    Returns:
        The validated input, or None for a workflow that takes none.

    Raises:
        InvalidOptionError: the input is missing, unexpected, or of the wrong type.
    """
    if spec.input_codec is None:
        if value is not NO_INPUT:
            raise InvalidOptionError("input", f"workflow {spec.name!r} takes no input")
        return None
    if value is NO_INPUT:
        raise InvalidOptionError("input", f"workflow {spec.name!r} needs an input")
    try:
        return spec.input_codec.validate(value)
    except SerializationError as exc:
        raise InvalidOptionError("input", f"for workflow {spec.name!r}: {exc}") from exc


def describe(fn: object) -> str:
    """A readable name for a function in error messages."""
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def build_spec(
    fn: Callable[..., Any],
    *,
    name: str | None,
    max_recovery_attempts: int | None,
    config_name: str | None = None,
) -> WorkflowSpec:
    """Inspect `fn` and build its spec.

    Raises:
        RegistrationError: the signature or the types cannot be used.
    """
    if not callable(fn):
        raise RegistrationError(f"cannot register {fn!r}: it is not callable")
    label = describe(fn)
    name = optional_name(name, "name")
    class_name = None
    if config_name is not None:
        if not isinstance(config_name, str) or not config_name:
            raise InvalidOptionError("config_name", "expected a non-empty string")
        optional_name(config_name, "config_name")
        if not inspect.ismethod(fn):
            raise InvalidOptionError(
                "config_name",
                f"{label} is not a bound method; a configured instance registers a method "
                "of one object, as in `register_workflow(ctx, obj.method, config_name=...)`",
            )
        class_name = type(fn.__self__).__name__
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise RegistrationError(
            f"workflow {label} is a generator; a workflow returns one result "
            "(write values to a stream with write_stream to hand them out as they come)"
        )
    if max_recovery_attempts is not None and (
        not isinstance(max_recovery_attempts, int) or max_recovery_attempts < 1
    ):
        raise InvalidOptionError(
            "max_recovery_attempts", "expected a positive int, or None for unlimited"
        )
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise RegistrationError(f"cannot read the signature of {label}: {exc}") from exc
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(positional) not in (1, 2) or len(positional) != len(
        [p for p in params if p.default is p.empty]
    ):
        raise RegistrationError(
            f"workflow {label} must take a context and at most one input, "
            f"as in `def wf(ctx: WorkflowContext, value: T) -> R`"
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise RegistrationError(
            f"cannot resolve the type annotations of workflow {label}: {exc}. "
            "Types used in annotations must be importable at module level."
        ) from exc
    input_codec: Codec[Any] | None = None
    if len(positional) == 2:
        param = positional[1].name
        if param not in hints:
            raise RegistrationError(f"parameter {param!r} of workflow {label} has no annotation")
        input_codec = _codec(hints[param], f"parameter {param!r} of workflow {label}")
    if "return" not in hints:
        raise RegistrationError(f"workflow {label} has no return annotation")
    output_codec = _codec(hints["return"], f"the return type of workflow {label}")
    return WorkflowSpec(
        name=name or str(getattr(fn, "__qualname__", label)),
        fn=fn,
        input_codec=input_codec,
        output_codec=output_codec,
        max_recovery_attempts=max_recovery_attempts,
        is_async=inspect.iscoroutinefunction(fn),
        config_name=config_name,
        class_name=class_name,
    )


def _codec(tp: Any, what: str) -> Codec[Any]:
    try:
        return codec_for(tp)
    except SerializationError as exc:
        raise RegistrationError(f"{what} cannot be stored as JSON: {exc}") from exc
    except TypeError as exc:  # unhashable annotation objects
        raise RegistrationError(f"{what} is not a usable type: {exc}") from exc


class Registry:
    """The workflows one context knows, by function and by (recorded name, config name)."""

    def __init__(self) -> None:
        self._by_fn: dict[Callable[..., Any], WorkflowSpec] = {}
        self._by_key: dict[tuple[str, str], WorkflowSpec] = {}
        self._schedules: dict[str, CronSchedule] = {}
        self._lock = threading.Lock()

    def add(self, spec: WorkflowSpec) -> None:
        """Add a workflow.

        Raises:
            RegistrationError: the function, or the name and config name, is already
                registered.
        """
        with self._lock:
            if spec.fn in self._by_fn:
                raise RegistrationError(
                    f"workflow {describe(spec.fn)} is already registered "
                    f"as {_label(self._by_fn[spec.fn])}"
                )
            if spec.key in self._by_key:
                hint = (
                    "give each instance a config name of its own"
                    if spec.config_name is not None
                    else "pass name= to tell them apart"
                )
                raise RegistrationError(
                    f"a workflow named {_label(spec)} is already registered "
                    f"({describe(self._by_key[spec.key].fn)}); {hint}"
                )
            self._by_fn[spec.fn] = spec
            self._by_key[spec.key] = spec

    def adopt(self, other: Registry) -> None:
        """Register everything `other` holds, schedules included (for a restarted context).

        Raises:
            RegistrationError: one of them is already registered here.
        """
        with other._lock:
            specs = list(other._by_key.values())
            schedules = dict(other._schedules)
        for spec in specs:
            self.add(spec)
        with self._lock:
            self._schedules.update(schedules)

    def declare_schedule(self, workflow_name: str, cron: CronSchedule) -> None:
        """Remember that a registered workflow fires on a schedule of its own."""
        with self._lock:
            self._schedules[workflow_name] = cron

    def declared_schedules(self) -> dict[str, CronSchedule]:
        """The schedules declared at registration, by workflow name."""
        with self._lock:
            return dict(self._schedules)

    def by_fn(self, fn: Callable[..., Any]) -> WorkflowSpec | None:
        """The spec registered for a function object (a bound method: for its receiver)."""
        try:
            return self._by_fn.get(fn)
        except TypeError:  # a bound method of an unhashable receiver is never registered
            return None

    def instances_of(self, fn: Callable[..., Any]) -> list[WorkflowSpec]:
        """The configured instances registered for the function behind `fn`, by config name.

        For an error message: `fn` is a plain function (`Class.method`) or a bound method of
        a receiver that was not registered, and these are the receivers that were.
        """
        func = getattr(fn, "__func__", fn)
        with self._lock:
            specs = [
                spec
                for spec in self._by_key.values()
                if spec.config_name is not None and getattr(spec.fn, "__func__", None) is func
            ]
        return sorted(specs, key=lambda spec: spec.config_name or "")

    def entries(self) -> list[RegisteredWorkflow]:
        """Every registered workflow, sorted by name, then config name."""
        with self._lock:
            specs = sorted(self._by_key.values(), key=lambda spec: spec.key)
            schedules = dict(self._schedules)
        return [
            RegisteredWorkflow(
                name=spec.name,
                function=spec.fn,
                max_recovery_attempts=spec.max_recovery_attempts,
                takes_input=spec.input_codec is not None,
                is_async=spec.is_async,
                schedule=(
                    schedules[spec.name].expression
                    if spec.name in schedules and spec.config_name is None
                    else None
                ),
                config_name=spec.config_name,
                class_name=spec.class_name,
            )
            for spec in specs
        ]

    def names(self) -> tuple[tuple[str, str], ...]:
        """Every registered (name, config name) pair, sorted; "" for no configured instance."""
        with self._lock:
            return tuple(sorted(self._by_key))

    def by_name(self, name: str, config_name: str | None = None) -> WorkflowSpec | None:
        """The spec registered under a recorded name (and config name; None or "": none)."""
        return self._by_key.get((name, config_name or ""))

    def code_fingerprint(self) -> str:
        """A hash of every registered workflow's name and source, stable across restarts."""
        digest = hashlib.sha256()
        for key in sorted(self._by_key):
            name, config = key
            fn = self._by_key[key].fn
            digest.update(name.encode())
            if config:
                digest.update(b"/" + config.encode())
            try:
                digest.update(inspect.getsource(fn).encode())
            except (OSError, TypeError):
                code = getattr(fn, "__code__", None)
                digest.update(code.co_code if code is not None else name.encode())
        return digest.hexdigest()


def _label(spec: WorkflowSpec) -> str:
    """A spec's name for messages: the name, with its config name for a configured instance."""
    if spec.config_name is None:
        return repr(spec.name)
    return f"{spec.name!r} (config name {spec.config_name!r})"
