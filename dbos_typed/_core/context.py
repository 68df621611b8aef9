"""The two context types: where you are decides what you may call.

`DBOSContext` registers workflows, launches and shuts down the runtime. `WorkflowContext` is
handed to a running workflow and is the only context accepted by durable in-workflow
operations such as `run_as_step`. They are siblings, not parent and child: both are an
`AppContext`, which is what calls that work in either place accept (starting workflows,
messages, events, management), so `run_as_step` outside a workflow and `ctx.launch()`
inside one are type errors, not runtime surprises.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from dbos_typed._core.runtime import Execution, Runtime
from dbos_typed._sysdb._rows import StepRecord
from dbos_typed.errors import InitializationError, InvalidOptionError, WorkflowCancelledError

if TYPE_CHECKING:
    from dbos_typed._core.durable import ReplayCheck
    from dbos_typed._core.identity import Identity
    from dbos_typed._core.registry import WorkflowSpec
    from dbos_typed._core.telemetry import WorkflowRun


class Connected:
    """Anything connected to a system database: a `DBOSContext` or a `Client`.

    Calls that only read or steer workflows through the database (`retrieve_workflow`,
    `cancel_workflow`, `resume_workflow`, ...) accept either.
    """

    __slots__ = ("_runtime",)

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime


class AppContext(Connected):
    """The context of a registered application: a `DBOSContext`, or a `WorkflowContext`.

    Annotate with it a function that starts or manages workflows and may be called both
    from application code and from inside a workflow.
    """

    __slots__ = ()

    @property
    def app_name(self) -> str:
        """The application's name."""
        return self._runtime.app_name

    @property
    def executor_id(self) -> str:
        """This process's executor ID."""
        return self._runtime.executor_id

    @property
    def application_version(self) -> str:
        """The application version (known once launched, unless pinned in the config)."""
        return self._runtime.application_version


class DBOSContext(AppContext):
    """A handle on one application's durable runtime; made by `new_context`.

    Register workflows, then `launch()`; run and manage workflows with the module's free
    functions; `shutdown()` at the end. Several contexts may live in one process.
    """

    __slots__ = ()

    @property
    def admin_url(self) -> str | None:
        """The admin server's base URL while it runs (see `Config.admin_server`)."""
        return self._runtime.admin_url

    def launch(self) -> None:
        """Start the runtime: recover this executor's pending workflows, start the queues.

        Durability: workflows this executor left PENDING (a crash, a kill) are put back on
        the internal queue and resume from their last recorded step.

        Raises:
            InitializationError: already launched, or shut down; or what launch needs is
                missing (the admin port is taken): then nothing started, and `launch()`
                may be called again.
        """
        runtime = self._runtime
        with runtime.lifecycle_lock:
            if runtime.shutting_down.is_set():
                raise InitializationError("this context was shut down; create a new one")
            if runtime.launched:
                raise InitializationError("this context is already launched")
            runtime.launched = True
        try:
            for check in runtime.launch_checks:
                check()
        except BaseException:
            with runtime.lifecycle_lock:
                runtime.launched = False
            raise
        try:
            for step in runtime.on_launch:
                step()
        except BaseException:
            self.shutdown(timeout=timedelta(seconds=1))
            raise

    def shutdown(self, timeout: timedelta = timedelta(seconds=5)) -> None:
        """Stop the runtime and release the database.

        Running workflows are not cancelled: they stop at their next durable operation,
        stay PENDING, and are recovered when an executor with this ID launches again.
        Calling it again does nothing.

        Args:
            timeout: How long to wait for running workflows to reach a stopping point.
        """
        if not isinstance(timeout, timedelta) or timeout < timedelta(0):
            raise InvalidOptionError("timeout", "expected a non-negative timedelta")
        runtime = self._runtime
        with runtime.lifecycle_lock:
            if runtime.shutting_down.is_set():
                return
            runtime.shutting_down.set()
        for stop in runtime.on_shutdown:
            try:
                stop(timeout.total_seconds())
            except Exception:
                self._runtime.logger.exception("error during shutdown")
        with runtime.lifecycle_lock:
            attached, runtime.data_sources = runtime.data_sources, []
        for database in attached:
            try:
                database.close()
            except Exception:
                self._runtime.logger.exception("error closing a data source")

    def __enter__(self) -> DBOSContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


# The awaited step running where this is read, with its workflow's state. A context
# variable, not a field of the state: an async workflow runs several steps at once, each in
# a task of its own, and a step's blocking body runs on a worker thread that inherits it.
_awaited_step: ContextVar[tuple[WorkflowState, int] | None] = ContextVar(
    "dbos_typed_awaited_step", default=None
)


class InStep:
    """The `with` of `WorkflowState.running_step`: a plain class, as it runs once per step."""

    __slots__ = ("_blocking", "_outer", "_state", "_step_id", "_token")

    def __init__(self, state: WorkflowState, step_id: int, blocking: bool) -> None:
        self._state = state
        self._step_id = step_id
        self._blocking = blocking
        self._outer: int | None = None
        self._token: Token[tuple[WorkflowState, int] | None] | None = None

    def __enter__(self) -> None:
        if self._blocking:
            self._outer = self._state.blocking_step
            self._state.blocking_step = self._step_id
        else:
            self._token = _awaited_step.set((self._state, self._step_id))

    def __exit__(self, *exc_info: object) -> None:
        if self._token is None:
            self._state.blocking_step = self._outer
        else:
            _awaited_step.reset(self._token)


@dataclass(eq=False)
class WorkflowState:
    """The private, mutable part of a running workflow."""

    workflow_id: str
    spec: WorkflowSpec
    execution: Execution
    deadline_ms: int | None
    recorded: dict[int, StepRecord] = field(default_factory=dict)
    next_step: int = 0
    owner_xid: str | None = None  # the token this run's start or claim set on the row
    identity: Identity | None = None  # read from the row when first asked for
    blocking_step: int | None = None  # the step a blocking `run_as_step` is running
    telemetry: WorkflowRun | None = None  # None: this run is neither traced nor measured
    replay_check: ReplayCheck | None = None  # set only by testing.check_replay

    @property
    def in_step(self) -> bool:
        """Whether the calling code runs inside one of this workflow's steps."""
        awaited = _awaited_step.get()
        return (awaited is not None and awaited[0] is self) or self.blocking_step is not None

    @property
    def running_step_id(self) -> int:
        """The ID of the step the calling code runs in (see `in_step`)."""
        awaited = _awaited_step.get()
        if awaited is not None and awaited[0] is self:
            return awaited[1]
        assert self.blocking_step is not None
        return self.blocking_step

    def running_step(self, step_id: int, *, blocking: bool) -> InStep:
        """Mark what the calling code runs as running inside step `step_id` (a `with`).

        A blocking step marks the whole workflow: while it runs, nothing else of the
        workflow does, but its body may start threads of its own. An awaited step marks
        only its task (and what inherits the task's context), as other steps run beside it.
        """
        return InStep(self, step_id, blocking)

    def check_cancelled(self) -> None:
        """Raise `WorkflowCancelledError` if this workflow was asked to stop."""
        reason = self.execution.cancel_reason
        if reason is not None:
            raise WorkflowCancelledError(self.workflow_id, reason)


class WorkflowContext(AppContext):
    """The context a running workflow receives as its first argument.

    It starts child workflows, sends and receives, and is the only context accepted by
    `run_as_step` and the other in-workflow operations. It cannot launch or shut down the
    runtime, nor register workflows.
    """

    __slots__ = ("_state",)

    def __init__(self, runtime: Runtime, state: WorkflowState) -> None:
        super().__init__(runtime)
        self._state = state

    @property
    def workflow_id(self) -> str:
        """The ID of the running workflow."""
        return self._state.workflow_id
