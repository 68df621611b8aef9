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
    """

    name: str
    function: Callable[..., Any]
    max_recovery_attempts: int | None
    takes_input: bool
    is_async: bool
    schedule: str | None


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
    fn: Callable[..., Any], *, name: str | None, max_recovery_attempts: int | None
) -> WorkflowSpec:
    """Inspect `fn` and build its spec.

    Raises:
        RegistrationError: the signature or the types cannot be used.
    """
    if not callable(fn):
        raise RegistrationError(f"cannot register {fn!r}: it is not callable")
    label = describe(fn)
    name = optional_name(name, "name")
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
    )


def _codec(tp: Any, what: str) -> Codec[Any]:
    try:
        return codec_for(tp)
    except SerializationError as exc:
        raise RegistrationError(f"{what} cannot be stored as JSON: {exc}") from exc
    except TypeError as exc:  # unhashable annotation objects
        raise RegistrationError(f"{what} is not a usable type: {exc}") from exc


class Registry:
    """The workflows one context knows, by function and by recorded name."""

    def __init__(self) -> None:
        self._by_fn: dict[Callable[..., Any], WorkflowSpec] = {}
        self._by_name: dict[str, WorkflowSpec] = {}
        self._schedules: dict[str, CronSchedule] = {}
        self._lock = threading.Lock()

    def add(self, spec: WorkflowSpec) -> None:
        """Add a workflow.

        Raises:
            RegistrationError: the function or the name is already registered.
        """
        with self._lock:
            if spec.fn in self._by_fn:
                raise RegistrationError(
                    f"workflow {describe(spec.fn)} is already registered "
                    f"as {self._by_fn[spec.fn].name!r}"
                )
            if spec.name in self._by_name:
                raise RegistrationError(
                    f"a workflow named {spec.name!r} is already registered "
                    f"({describe(self._by_name[spec.name].fn)}); pass name= to tell them apart"
                )
            self._by_fn[spec.fn] = spec
            self._by_name[spec.name] = spec

    def adopt(self, other: Registry) -> None:
        """Register everything `other` holds, schedules included (for a restarted context).

        Raises:
            RegistrationError: one of them is already registered here.
        """
        with other._lock:
            specs = list(other._by_name.values())
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
        """The spec registered for a function object."""
        return self._by_fn.get(fn)

    def entries(self) -> list[RegisteredWorkflow]:
        """Every registered workflow, sorted by name."""
        with self._lock:
            specs = sorted(self._by_name.values(), key=lambda spec: spec.name)
            schedules = dict(self._schedules)
        return [
            RegisteredWorkflow(
                name=spec.name,
                function=spec.fn,
                max_recovery_attempts=spec.max_recovery_attempts,
                takes_input=spec.input_codec is not None,
                is_async=spec.is_async,
                schedule=schedules[spec.name].expression if spec.name in schedules else None,
            )
            for spec in specs
        ]

    def names(self) -> tuple[str, ...]:
        """Every registered name, sorted."""
        return tuple(sorted(self._by_name))

    def by_name(self, name: str) -> WorkflowSpec | None:
        """The spec registered under a recorded name."""
        return self._by_name.get(name)

    def code_fingerprint(self) -> str:
        """A hash of every registered workflow's name and source, stable across restarts."""
        digest = hashlib.sha256()
        for name in sorted(self._by_name):
            fn = self._by_name[name].fn
            digest.update(name.encode())
            try:
                digest.update(inspect.getsource(fn).encode())
            except (OSError, TypeError):
                code = getattr(fn, "__code__", None)
                digest.update(code.co_code if code is not None else name.encode())
        return digest.hexdigest()
