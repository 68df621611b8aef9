"""Managing queues and delayed workflows at run time: reads, changes, and runners following."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import dbos_typed as dbos
from dbos_typed._queues import runner as _queue_runner
from dbos_typed._sysdb._rows import Backlog, QueueRow
from tests.conftest import Backend, Gate, wait_for

WAIT = timedelta(seconds=20)
HOUR = timedelta(hours=1)


def double(ctx: dbos.WorkflowContext, n: int) -> int:
    return dbos.run_as_step(ctx, lambda: n * 2, name="double")


def _probes(ctx: dbos.DBOSContext, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The times (epoch ms) at which the context's runner started a pass, from now on."""
    store = ctx._runtime.store
    original = store.queue_backlog
    started: list[int] = []

    def probe(application_name: str) -> Backlog:
        started.append(time.time_ns() // 1_000_000)
        return original(application_name)

    monkeypatch.setattr(store, "queue_backlog", probe)
    return started


def _reads(ctx: dbos.DBOSContext, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per time the context's runner reads the queue settings, from now on."""
    store = ctx._runtime.store
    original = store.list_queues
    reads: list[int] = []

    def read(application_name: str | None) -> list[QueueRow]:
        reads.append(1)
        return original(application_name)

    monkeypatch.setattr(store, "list_queues", read)
    return reads


def _passes_over(probes: list[int]) -> None:
    """Wait until the runner has made a whole pass that began after this call."""
    seen = len(probes)
    wait_for(lambda: len(probes) >= seen + 2)


def _status(backend: Backend, workflow_id: str) -> tuple[str, str | None, int | None]:
    rows = backend.query(
        "SELECT status, queue_name, delay_until_epoch_ms FROM {s}.workflow_status "
        "WHERE workflow_uuid = %s",
        workflow_id,
    )
    status, queue_name, delay_until = rows[0]
    return str(status), None if queue_name is None else str(queue_name), _int(delay_until)


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


# -- reading -------------------------------------------------------------------------------


def test_retrieve_queue_returns_the_stored_settings(backend: Backend) -> None:
    ctx = backend.new_context()
    declared = dbos.register_queue(
        ctx,
        "orders",
        worker_concurrency=2,
        concurrency=4,
        limiter=dbos.RateLimit(10, timedelta(seconds=1.5)),
        priority_enabled=True,
        polling_interval=timedelta(milliseconds=250),
    )
    assert declared.application_name == "test-app"
    assert dbos.retrieve_queue(ctx, "orders") == declared
    with dbos.new_client(backend.config("another-app")) as client:
        assert dbos.retrieve_queue(client, "orders") == declared  # any owner, by name

    with pytest.raises(dbos.QueueNotFoundError) as info:
        dbos.retrieve_queue(ctx, "missing")
    assert info.value.queue_name == "missing" and info.value.code == "QueueNotFound"
    with pytest.raises(dbos.QueueNotFoundError):
        dbos.retrieve_queue(ctx, "_dbos_internal_queue")
    with pytest.raises(dbos.InvalidOptionError) as bad:
        dbos.retrieve_queue(ctx, "")
    assert bad.value.argument == "name"


def test_list_queues_by_owner(backend: Backend) -> None:
    mine = backend.new_context()
    theirs = backend.new_context("other-app")
    dbos.register_queue(mine, "b-mine")
    dbos.register_queue(mine, "a-mine")
    dbos.register_queue(theirs, "theirs")
    dbos.register_queue(mine, "shared")
    backend.query("UPDATE {s}.queues SET application_name = NULL WHERE name = 'shared'")
    # Even a row written under the internal queue's name (by some other tool) is not listed.
    backend.query("INSERT INTO {s}.queues (name) VALUES ('_dbos_internal_queue')")

    def names(queues: list[dbos.WorkflowQueue]) -> list[str]:
        return [q.name for q in queues]

    assert names(dbos.list_queues(mine)) == ["a-mine", "b-mine", "shared"]
    assert names(dbos.list_queues(theirs)) == ["shared", "theirs"]
    assert names(dbos.list_queues(mine, application_names=["other-app"])) == ["shared", "theirs"]
    everything = ["a-mine", "b-mine", "shared", "theirs"]
    assert names(dbos.list_queues(mine, application_names=["test-app", "other-app"])) == everything
    assert names(dbos.list_queues(mine, all_applications=True)) == everything
    assert names(dbos.list_queues(mine, application_names=[])) == ["shared"]
    owners = {q.name: q.application_name for q in dbos.list_queues(mine, all_applications=True)}
    assert owners == {
        "a-mine": "test-app",
        "b-mine": "test-app",
        "shared": None,
        "theirs": "other-app",
    }
    with dbos.new_client(backend.config("other-app")) as client:
        assert names(dbos.list_queues(client)) == ["shared", "theirs"]

    with pytest.raises(dbos.InvalidOptionError) as one_string:
        dbos.list_queues(mine, application_names="other-app")
    assert one_string.value.argument == "application_names"
    with pytest.raises(dbos.InvalidOptionError):
        dbos.list_queues(mine, application_names=["other-app"], all_applications=True)


# -- deleting ------------------------------------------------------------------------------


def test_deleted_queue_is_not_served_until_declared_again(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settings are otherwise re-read every second; here only a change can make the runner
    # read them again, so the test shows it does at its next pass.
    monkeypatch.setattr(_queue_runner, "_REFRESH_SECONDS", 3600.0)
    ctx = backend.context_with(double)
    queue = dbos.register_queue(ctx, "doomed")
    probes = _probes(ctx, monkeypatch)
    ctx.launch()
    assert dbos.run_workflow(ctx, double, 1, queue=queue).get_result(timeout=WAIT) == 2

    dbos.delete_queue(ctx, "doomed")
    assert backend.query("SELECT count(*) FROM {s}.queues") == [(0,)]
    with pytest.raises(dbos.QueueNotFoundError):
        dbos.retrieve_queue(ctx, "doomed")
    with pytest.raises(dbos.InvalidOptionError) as by_name:
        dbos.run_workflow(ctx, double, 2, queue="doomed")
    assert by_name.value.argument == "queue"
    # A workflow still put on the queue's name (here through the old queue object) waits.
    _passes_over(probes)  # the runner has read the deletion
    reads = _reads(ctx, monkeypatch)
    waiting = dbos.run_workflow(ctx, double, 3, queue=queue, workflow_id="waiting")
    _passes_over(probes)
    _passes_over(probes)
    assert _status(backend, "waiting")[:2] == ("ENQUEUED", "doomed")
    assert len(reads) <= 1  # its work does not make every pass read the settings again

    dbos.delete_queue(ctx, "doomed")  # already gone: nothing to do
    dbos.delete_queue(ctx, "never-declared")
    dbos.register_queue(ctx, "doomed")
    assert waiting.get_result(timeout=WAIT) == 6


def test_the_internal_queue_cannot_be_deleted_or_changed(backend: Backend) -> None:
    ctx = backend.new_context()
    for call in (
        lambda: dbos.delete_queue(ctx, "_dbos_internal_queue"),
        lambda: dbos.update_queue(ctx, "_dbos_internal_queue", worker_concurrency=1),
    ):
        with pytest.raises(dbos.InvalidOptionError) as info:
            call()
        assert info.value.argument == "name"


# -- updating ------------------------------------------------------------------------------


def test_update_changes_only_the_given_settings(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_queue(
        ctx,
        "tuned",
        worker_concurrency=2,
        concurrency=4,
        limiter=dbos.RateLimit(10, timedelta(seconds=2)),
        priority_enabled=True,
        polling_interval=timedelta(milliseconds=250),
    )
    updated = dbos.update_queue(ctx, "tuned", concurrency=None, partitioned=True)
    assert updated == dbos.WorkflowQueue(
        "tuned",
        worker_concurrency=2,
        concurrency=None,
        limiter=dbos.RateLimit(10, timedelta(seconds=2)),
        priority_enabled=True,
        partitioned=True,
        polling_interval=timedelta(milliseconds=250),
        application_name="test-app",
    )
    assert dbos.retrieve_queue(ctx, "tuned") == updated
    again = dbos.update_queue(
        ctx,
        "tuned",
        worker_concurrency=None,
        limiter=None,
        priority_enabled=False,
        partitioned=False,
        polling_interval=timedelta(seconds=2),
    )
    assert again == dbos.WorkflowQueue(
        "tuned", polling_interval=timedelta(seconds=2), application_name="test-app"
    )
    assert dbos.update_queue(ctx, "tuned") == again  # nothing given: nothing changes
    rows = backend.query(
        "SELECT concurrency, worker_concurrency, rate_limit_max, rate_limit_period_sec, "
        "polling_interval_sec, application_name FROM {s}.queues"
    )
    assert rows == [(None, None, None, None, 2.0, "test-app")]

    # Another application may change it (by name, like any management call); the owner stays.
    other = backend.new_context("other-app")
    dbos.update_queue(other, "tuned", concurrency=3)
    assert dbos.retrieve_queue(ctx, "tuned").application_name == "test-app"
    with pytest.raises(dbos.QueueNotFoundError) as info:
        dbos.update_queue(ctx, "missing", concurrency=1)
    assert info.value.queue_name == "missing"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"worker_concurrency": 0}, "worker_concurrency"),
        ({"concurrency": -1}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"worker_concurrency": 5, "concurrency": 2}, "worker_concurrency"),
        ({"polling_interval": timedelta(0)}, "polling_interval"),
        ({"limiter": (1, 2)}, "limiter"),
        ({"priority_enabled": "yes"}, "priority_enabled"),
    ],
)
def test_update_is_validated_as_a_declaration_is(
    backend: Backend, kwargs: dict[str, Any], argument: str
) -> None:
    ctx = backend.new_context()
    with pytest.raises(dbos.InvalidOptionError) as declared:
        dbos.register_queue(ctx, "declared", **kwargs)
    dbos.register_queue(ctx, "q", worker_concurrency=1, concurrency=3)
    before = backend.query("SELECT * FROM {s}.queues")
    with pytest.raises(dbos.InvalidOptionError) as updated:
        dbos.update_queue(ctx, "q", **kwargs)
    assert updated.value.argument == declared.value.argument == argument
    assert str(updated.value) == str(declared.value)
    assert backend.query("SELECT * FROM {s}.queues") == before  # nothing written


def test_update_is_checked_against_the_stored_settings(backend: Backend) -> None:
    ctx = backend.new_context()
    dbos.register_queue(ctx, "q", concurrency=3)
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.update_queue(ctx, "q", worker_concurrency=4)
    assert info.value.argument == "worker_concurrency"
    assert dbos.update_queue(ctx, "q", worker_concurrency=3).worker_concurrency == 3


def _gated(gates: dict[int, Gate]) -> Any:
    def held(ctx: dbos.WorkflowContext, n: int) -> int:
        dbos.run_as_step(ctx, gates[n], name="gate")
        return n

    return held


def test_running_runner_applies_an_update_at_its_next_pass(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_queue_runner, "_REFRESH_SECONDS", 3600.0)
    gates = {1: Gate(), 2: Gate()}
    held = _gated(gates)
    ctx = backend.context_with(held)
    queue = dbos.register_queue(ctx, "serial", worker_concurrency=1)
    probes = _probes(ctx, monkeypatch)
    ctx.launch()
    first = dbos.run_workflow(ctx, held, 1, queue=queue)
    gates[1].wait_entered()
    second = dbos.run_workflow(ctx, held, 2, queue=queue)
    _passes_over(probes)
    assert second.get_status().status is dbos.StatusName.ENQUEUED  # no room yet

    assert dbos.update_queue(ctx, "serial", worker_concurrency=2).worker_concurrency == 2
    gates[2].wait_entered()  # started while the first one still holds its slot
    assert first.get_status().status is dbos.StatusName.PENDING
    gates[1].open()
    gates[2].open()
    assert (first.get_result(timeout=WAIT), second.get_result(timeout=WAIT)) == (1, 2)


def test_an_update_made_by_another_process_reaches_the_runner(backend: Backend) -> None:
    gates = {1: Gate(), 2: Gate()}
    held = _gated(gates)
    ctx = backend.context_with(held)
    queue = dbos.register_queue(ctx, "serial", worker_concurrency=1)
    ctx.launch()
    first = dbos.run_workflow(ctx, held, 1, queue=queue)
    gates[1].wait_entered()
    second = dbos.run_workflow(ctx, held, 2, queue=queue)
    with dbos.new_client(backend.config()) as client:
        dbos.update_queue(client, "serial", worker_concurrency=2)
    gates[2].wait_entered()
    assert first.get_status().status is dbos.StatusName.PENDING
    gates[1].open()
    gates[2].open()
    assert (first.get_result(timeout=WAIT), second.get_result(timeout=WAIT)) == (1, 2)


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_changes_elsewhere_are_notified_to_an_idle_runner(backend: Backend) -> None:
    # An idle runner reads no settings on its own; on Postgres it is told of a change.
    ctx = backend.new_context()
    dbos.register_queue(ctx, "elsewhere", worker_concurrency=1)
    ctx.launch()
    with dbos.new_client(backend.config()) as client:
        dbos.update_queue(client, "elsewhere", worker_concurrency=3)
        wait_for(lambda: _workers(ctx) == 3)
        dbos.delete_queue(client, "elsewhere")
        wait_for(lambda: "elsewhere" not in ctx._runtime.queues)


def _workers(ctx: dbos.DBOSContext) -> int | None:
    row: QueueRow | None = ctx._runtime.queues.get("elsewhere")
    return None if row is None else row.worker_concurrency


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_concurrent_updates_of_different_settings_both_take_effect(backend: Backend) -> None:
    ctx = backend.new_context()
    other = backend.new_context("other-app")
    dbos.register_queue(ctx, "contended")
    inside = threading.Event()
    release = threading.Event()

    def slow_change(row: QueueRow) -> QueueRow:
        inside.set()
        assert release.wait(20)
        return replace(row, worker_concurrency=2)

    holder = threading.Thread(
        target=ctx._runtime.store.update_queue, args=("contended", slow_change, 0)
    )
    holder.start()
    assert inside.wait(10)
    contender = threading.Thread(
        target=lambda: dbos.update_queue(other, "contended", concurrency=5)
    )
    contender.start()

    def blocked() -> bool:
        with psycopg.connect(backend.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'other-app' AND wait_event_type = 'Lock'"
            ).fetchall()
        return bool(rows[0][0])

    wait_for(blocked)  # the second update waits for the first one's row lock
    release.set()
    holder.join(10)
    contender.join(10)
    queue = dbos.retrieve_queue(ctx, "contended")
    assert (queue.worker_concurrency, queue.concurrency) == (2, 5)


# -- delays --------------------------------------------------------------------------------


def stamp(ctx: dbos.WorkflowContext) -> int:
    return time.time_ns() // 1_000_000


def test_set_workflow_delay_moves_a_delayed_start_both_ways(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runner polls hourly here, so only being woken by the change lets it notice it.
    monkeypatch.setattr(_queue_runner, "_DEFAULT_POLL_SECONDS", 3600.0)
    ctx = backend.context_with(stamp)
    queue = dbos.register_queue(ctx, "later", polling_interval=HOUR)
    ctx.launch()

    slow = dbos.run_workflow(ctx, stamp, queue=queue, delay=timedelta(seconds=1))
    first_due = _status(backend, slow.workflow_id)[2]
    assert first_due is not None
    dbos.set_workflow_delay(ctx, slow.workflow_id, delay=HOUR)  # lengthened
    fast = dbos.run_workflow(ctx, stamp, queue=queue, delay=HOUR)
    # Shortened to a time after the slow one's first due time: once it has run, the
    # runner has made a pass past that time, and left the slow one alone.
    until = datetime.fromtimestamp((first_due + 500) / 1000, tz=UTC)
    dbos.set_workflow_delay(ctx, fast.workflow_id, until=until)
    started = fast.get_result(timeout=WAIT)
    assert started >= first_due + 500
    status, queue_name, slow_due = _status(backend, slow.workflow_id)
    assert (status, queue_name) == ("DELAYED", "later")
    assert slow_due is not None and slow_due > started + 3_000_000

    dbos.set_workflow_delay(ctx, slow.workflow_id, delay=timedelta(0))
    assert slow.get_result(timeout=WAIT) >= started

    # Only DELAYED workflows move; a finished one is left as it is.
    before = _status(backend, fast.workflow_id)
    dbos.set_workflow_delay(ctx, fast.workflow_id, delay=HOUR)
    assert _status(backend, fast.workflow_id) == before
    with pytest.raises(dbos.NonExistentWorkflowError):
        dbos.set_workflow_delay(ctx, "missing", delay=HOUR)


def test_set_workflow_delay_from_a_client(backend: Backend) -> None:
    ctx = backend.context_with(stamp)
    queue = dbos.register_queue(ctx, "later")
    ctx.launch()
    handle = dbos.run_workflow(ctx, stamp, queue=queue, delay=HOUR)
    with dbos.new_client(backend.config()) as client:
        dbos.set_workflow_delay(client, handle.workflow_id, until=datetime.now(UTC))
    assert handle.get_result(timeout=WAIT) > 0


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({}, "delay"),
        ({"delay": HOUR, "until": datetime.now(UTC)}, "delay"),
        ({"delay": timedelta(seconds=-1)}, "delay"),
        ({"delay": 5}, "delay"),
        ({"until": datetime(2030, 1, 1)}, "until"),
    ],
)
def test_set_workflow_delay_validation(
    backend: Backend, kwargs: dict[str, Any], argument: str
) -> None:
    ctx = backend.new_context()
    with pytest.raises(dbos.InvalidOptionError) as info:
        dbos.set_workflow_delay(ctx, "any", **kwargs)
    assert info.value.argument == argument


# -- inside workflows ----------------------------------------------------------------------

GATES: dict[str, Gate] = {}


def queue_admin(ctx: dbos.WorkflowContext, target: str) -> list[str]:
    updated = dbos.update_queue(ctx, "managed", worker_concurrency=3)
    dbos.set_workflow_delay(ctx, target, delay=timedelta(hours=2))
    try:
        dbos.update_queue(ctx, "missing", concurrency=1)
        missing = "found"
    except dbos.QueueNotFoundError as exc:
        missing = exc.queue_name
    try:
        dbos.update_queue(ctx, "managed", worker_concurrency=0)
        refused = "accepted"
    except dbos.InvalidOptionError as exc:
        refused = exc.argument
    try:
        dbos.set_workflow_delay(ctx, "no-such-workflow", delay=HOUR)
        absent = "found"
    except dbos.NonExistentWorkflowError as exc:
        absent = exc.workflow_id
    dbos.delete_queue(ctx, "managed")
    listed = [q.name for q in dbos.list_queues(ctx)]  # a plain read, not a step
    dbos.run_as_step(ctx, GATES[target], name="wait")
    return [str(updated.worker_concurrency), missing, refused, absent, *listed]


def test_queue_changes_in_a_workflow_are_checkpointed_and_replayed(backend: Backend) -> None:
    ctx = backend.context_with(queue_admin, stamp)
    later = dbos.register_queue(ctx, "later")
    dbos.register_queue(ctx, "managed")
    ctx.launch()
    target = dbos.run_workflow(ctx, stamp, queue=later, delay=HOUR).workflow_id
    GATES[target] = gate = Gate()
    handle = dbos.run_workflow(ctx, queue_admin, target, workflow_id="admin-wf")
    gate.wait_entered()
    steps = backend.query(
        "SELECT function_name FROM {s}.operation_outputs WHERE workflow_uuid = %s "
        "ORDER BY function_id",
        "admin-wf",
    )
    assert [r[0] for r in steps] == [
        "DBOS.updateQueue",
        "DBOS.setWorkflowDelay",
        "DBOS.updateQueue",
        "DBOS.updateQueue",
        "DBOS.setWorkflowDelay",
        "DBOS.deleteQueue",
    ]
    assert backend.query("SELECT name FROM {s}.queues") == [("later",)]
    delayed_to = _status(backend, target)[2]
    assert delayed_to is not None and delayed_to > time.time() * 1000 + 1.5 * 3_600_000

    # Stop the workflow in its step, undo its changes behind its back, and resume it: the
    # recorded calls replay (nothing is changed again) and answer as the first time.
    dbos.cancel_workflow(ctx, "admin-wf")
    gate.open()
    with pytest.raises(dbos.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=WAIT)
    dbos.register_queue(ctx, "managed", worker_concurrency=1)
    far = 4_102_444_800_000  # 2100-01-01
    backend.query(
        "UPDATE {s}.workflow_status SET delay_until_epoch_ms = %s WHERE workflow_uuid = %s",
        far,
        target,
    )
    resumed = dbos.resume_workflow(ctx, "admin-wf")
    assert resumed.get_result(timeout=WAIT) == [
        "3",
        "missing",
        "worker_concurrency",
        "no-such-workflow",
        "later",  # the read is not a step: it sees the queues as they are now
        "managed",
    ]
    assert dbos.retrieve_queue(ctx, "managed").worker_concurrency == 1
    assert _status(backend, target)[2] == far


def changes_in_steps(ctx: dbos.WorkflowContext) -> list[str]:
    refusals = []
    for change in (
        lambda: dbos.delete_queue(ctx, "q"),
        lambda: dbos.update_queue(ctx, "q", concurrency=1),
        lambda: dbos.set_workflow_delay(ctx, "x", delay=HOUR),
    ):
        try:
            dbos.run_as_step(ctx, change, name="change", max_retries=0)
            refusals.append("allowed")
        except dbos.StepFailedError as exc:
            refusals.append(f"{exc.error_name}: {exc.error_message}")
    # Reads are allowed in steps.
    names = dbos.run_as_step(ctx, lambda: [q.name for q in dbos.list_queues(ctx)], name="list")
    queue = dbos.run_as_step(
        ctx, lambda: dbos.retrieve_queue(ctx, "q"), name="get", result_type=dbos.WorkflowQueue
    )
    return [*refusals, *names, queue.name]


def test_queue_changes_are_refused_inside_a_step(backend: Backend) -> None:
    ctx = backend.context_with(changes_in_steps)
    dbos.register_queue(ctx, "q")
    ctx.launch()
    *refusals, listed, got = dbos.run_workflow(ctx, changes_in_steps).get_result(timeout=WAIT)
    assert [r.split(":")[0] for r in refusals] == ["InvalidOptionError"] * 3
    assert all("inside a step" in r for r in refusals)
    assert (listed, got) == ("q", "q")
    assert dbos.retrieve_queue(ctx, "q").concurrency is None
