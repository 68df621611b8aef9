"""The loop that takes queued workflows, on every queue this process serves, and runs them.

One thread serves all queues. Each pass starts with one cheap query that says which
queues (and partitions) have ENQUEUED work and when the next DELAYED workflow is due; an
idle process therefore costs one query per polling interval, and never an empty dequeue
transaction. Then, for each queue with work and room, one claim that respects the queue's
limits:

- worker concurrency: this process's running workflows of the queue (or partition),
  counted in memory, so other processes' work never counts against it;
- global concurrency and rate limits: counted in the database by the claim itself, under
  the lock the store takes for that queue, so they hold across processes;
- order: priority, then enqueue time.

It wakes at once on `Runtime.queue_wakeup` (a local enqueue, a queued workflow finishing
here, recovery, a moved delay, or another process's enqueue notified on Postgres) and
otherwise polls at the shortest polling interval of the queues it serves, or until the
next delayed workflow is due. Since the due time is read again at every pass, a delay
shortened meanwhile is never waited out to its old end.

Queue settings are read again at most once a second while there is work, and at the next
pass after `Runtime.queue_settings_stale` is set (a queue declared, changed or deleted
here, or in another process that notified it): a deleted queue is then no longer served,
and its remaining workflows wait for a queue of that name to be declared again.
"""

from __future__ import annotations

import threading
import time

from dbos_typed._core.execution import execute_claimed
from dbos_typed._core.runtime import Execution, Runtime
from dbos_typed._sysdb._rows import INTERNAL_QUEUE, ClaimedWorkflow, ClaimRequest, QueueRow

_BATCH = 100
_DEFAULT_POLL_SECONDS = 1.0
_MAX_BACKOFF_SECONDS = 30.0
# Queue settings and the latest application version are re-read at most this often.
_REFRESH_SECONDS = 1.0

# How often a queue whose work this process cannot claim is looked at for unknown names,
# and how long such work waits before it is reported.
_UNCLAIMABLE_SECONDS = 60.0

_Slot = tuple[str, str | None]  # (queue, partition key or None)


class QueueRunner:
    """Claims ENQUEUED workflows for this executor, within each queue's limits, and runs them."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dbos-queue-runner", daemon=True)
        self._active: dict[_Slot, set[str]] = {}
        self._active_lock = threading.Lock()
        # When the earliest delayed workflow falls due (epoch seconds, the context's clock).
        self._delay_deadline: float | None = None
        self._configs: dict[str, QueueRow] = {}
        # Queues with work but no settings row at the last read (deleted, or never declared):
        # they wait for the next read rather than forcing one at every pass.
        self._undeclared: frozenset[str] = frozenset()
        self._accept_unversioned = False
        self._refreshed_at = float("-inf")
        self._unclaimable_checked: dict[str, float] = {}
        self._unclaimable_reported: set[tuple[str, str]] = set()

    def start(self) -> None:
        """Start the loop."""
        # Nothing has been read yet, so nothing read is stale: the first pass with work
        # reads the settings anyway.
        self._runtime.queue_settings_stale.clear()
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop the loop and wait for it."""
        self._stop.set()
        self._runtime.queue_wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        wakeup = self._runtime.queue_wakeup
        backoff = _DEFAULT_POLL_SECONDS
        while not self._stop.is_set():
            wakeup.clear()
            try:
                wait = self._pass()
                backoff = _DEFAULT_POLL_SECONDS
            except Exception:
                if self._stop.is_set():
                    return
                self._runtime.logger.exception(
                    "the queue runner failed; retrying in %.0fs", backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            if wait > 0:
                # A delay's end is on the context's clock; the rest of `wait` is polling.
                self._runtime.clock.wait(wakeup, self._delay_deadline, wait, service=True)

    def _pass(self) -> float:
        """Claim what each served queue has room for; returns how long to sleep after."""
        runtime = self._runtime
        store = runtime.store
        backlog = store.queue_backlog(runtime.app_name)
        now = runtime.clock.now_ms()
        if backlog.next_delay_ms is not None and backlog.next_delay_ms <= now:
            store.promote_delayed(runtime.app_name, now)
            backlog = store.queue_backlog(runtime.app_name)
        slots = self._served_slots(backlog.ready)
        more = False
        for queue_name, partition_key in slots:
            config = self._configs.get(queue_name)
            # What is claimed starts at once: never more than there are threads for.
            room = min(_BATCH, runtime.workers.spare())
            if config is not None and config.worker_concurrency is not None:
                room = min(
                    room, config.worker_concurrency - self._running((queue_name, partition_key))
                )
            if room <= 0:
                continue  # a finishing workflow wakes the loop
            claimed = store.claim_queued(self._request(queue_name, partition_key, room, config))
            if not claimed:
                self._report_unclaimable(queue_name)
            for workflow in claimed:
                self._dispatch(workflow, partition_key)
            more = more or len(claimed) == _BATCH
        if more:
            return 0.0
        wait = self._poll_seconds()
        self._delay_deadline = None
        if backlog.next_delay_ms is not None:
            self._delay_deadline = backlog.next_delay_ms / 1000
        return wait

    def _served_slots(self, ready: frozenset[tuple[str, str | None]]) -> list[_Slot]:
        """The (queue, partition) pairs with work that this process serves, in a stable order."""
        stale = self._runtime.queue_settings_stale.is_set()
        if not ready:
            if stale:
                self._refresh(force=True)  # keeps what enqueues check and polling current
            return []
        queues = {q for q, _ in ready if q != INTERNAL_QUEUE}
        # A queue never seen may just have been declared by another process.
        self._refresh(force=stale or bool(queues - self._configs.keys() - self._undeclared))
        self._undeclared = frozenset(queues - self._configs.keys())
        listened = self._runtime.listened
        slots: set[_Slot] = set()
        for queue_name, partition_key in ready:
            if listened is not None and queue_name not in listened:
                continue
            if queue_name == INTERNAL_QUEUE:
                slots.add((queue_name, None))
                continue
            config = self._configs.get(queue_name)
            if config is None:
                continue  # not a declared queue of this application
            if config.partition_queue:
                if partition_key is not None:
                    slots.add((queue_name, partition_key))
            else:
                slots.add((queue_name, None))
        return sorted(slots, key=lambda s: (s[0], s[1] or ""))

    def _refresh(self, *, force: bool) -> None:
        if not force and time.monotonic() - self._refreshed_at < _REFRESH_SECONDS:
            return
        runtime = self._runtime
        # Cleared before reading, so a change made during the read is read again next pass.
        runtime.queue_settings_stale.clear()
        self._configs = {row.name: row for row in runtime.store.list_queues(runtime.app_name)}
        # Replaced, not merged: a queue deleted elsewhere must not linger here. Other
        # applications' queues, cached by enqueues, are simply read again when needed.
        runtime.queues = dict(self._configs)
        # Rows with no version (enqueued by clients and tools) go to the newest version only.
        latest = runtime.store.latest_version(runtime.app_name)
        self._accept_unversioned = latest is None or latest == runtime.application_version
        self._refreshed_at = time.monotonic()

    def _poll_seconds(self) -> float:
        listened = self._runtime.listened
        intervals = [
            row.polling_interval_sec
            for row in self._runtime.queues.values()
            if listened is None or row.name in listened
        ]
        return min([_DEFAULT_POLL_SECONDS, *intervals])

    def _request(
        self, queue_name: str, partition_key: str | None, room: int, config: QueueRow | None
    ) -> ClaimRequest:
        runtime = self._runtime
        period = None if config is None else config.rate_limit_period_sec
        return ClaimRequest(
            queue_name=queue_name,
            partition_key=partition_key,
            limit=room,
            concurrency=None if config is None else config.concurrency,
            rate_limit_max=None if config is None else config.rate_limit_max,
            rate_limit_period_ms=None if period is None else int(period * 1000),
            executor_id=runtime.executor_id,
            application_version=runtime.application_version,
            application_name=runtime.app_name,
            accept_unversioned=self._accept_unversioned,
            now_ms=runtime.clock.now_ms(),
            workflow_names=runtime.registry.names(),
        )

    def _report_unclaimable(self, queue_name: str) -> None:
        """Warn, once per name, of old work on a queue that nothing here can take.

        The queue had ENQUEUED work and the claim took none. Work named for a function this
        process does not register is normal in a fleet whose executors run different
        workflows, and another executor takes it soon; work that has waited a minute
        suggests that no executor registers the name (a client can enqueue any name), and
        would otherwise wait without a word. Looked at once a minute per queue at most.
        """
        now = time.monotonic()
        if now - self._unclaimable_checked.get(queue_name, float("-inf")) < _UNCLAIMABLE_SECONDS:
            return
        self._unclaimable_checked[queue_name] = now
        runtime = self._runtime
        names = runtime.registry.names()
        since = runtime.clock.now_ms() - int(_UNCLAIMABLE_SECONDS * 1000)
        for name, config, count in runtime.store.unclaimable_names(
            queue_name, runtime.app_name, names, since
        ):
            label = f"{name!r} (config name {config!r})" if config else repr(name)
            if (queue_name, label) in self._unclaimable_reported:
                continue
            self._unclaimable_reported.add((queue_name, label))
            self._runtime.logger.warning(
                "queue %r has held %d workflow(s) named %s for over a minute; this process "
                "has not registered that name, and no executor that has took them",
                queue_name,
                count,
                label,
            )

    def _running(self, slot: _Slot) -> int:
        with self._active_lock:
            return len(self._active.get(slot, ()))

    def _dispatch(self, workflow: ClaimedWorkflow, partition_key: str | None) -> None:
        slot = (workflow.queue_name or INTERNAL_QUEUE, partition_key)
        workflow_id = workflow.workflow_id
        with self._active_lock:
            self._active.setdefault(slot, set()).add(workflow_id)
        execution: Execution | None = None
        try:
            execution = execute_claimed(self._runtime, workflow)
        except Exception:
            # Never leave a claimed workflow PENDING with nobody running it.
            self._runtime.logger.exception(
                "could not start queued workflow %r; it goes back on its queue", workflow_id
            )
            self._runtime.store.requeue_claimed(workflow_id, self._runtime.clock.now_ms())
        if execution is None:
            self._finished(slot, workflow_id)
            return
        execution.future.add_done_callback(lambda _: self._finished(slot, workflow_id))

    def _finished(self, slot: _Slot, workflow_id: str) -> None:
        with self._active_lock:
            running = self._active.get(slot)
            if running is not None:
                running.discard(workflow_id)
                if not running:
                    del self._active[slot]
        # Room was freed: look for more work now rather than at the next poll.
        self._runtime.queue_wakeup.set()
