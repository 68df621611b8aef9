"""Change notifications: who waits for what, the Postgres LISTEN thread, and the notifier.

A wait is a waker (a `threading.Event`, or an event loop's equivalent) registered under a
key `(channel, payload)`, where the payload is `"<workflow id>::<topic or key>"` exactly as
DBOS sends it. Waking a key sets its wakers;
the waiters then re-check the database themselves, so a spurious wake-up costs one query and
a lost one only delays a waiter until its next periodic re-check. Thousands of waits cost
thousands of events, and one connection per context.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import psycopg
from psycopg import sql

logger = logging.getLogger("dbos_typed")

NOTIFICATIONS_CHANNEL = "dbos_notifications_channel"
EVENTS_CHANNEL = "dbos_workflow_events_channel"
STREAMS_CHANNEL = "dbos_streams_channel"
#: New queued work: the payload is the queue's name. Only dbos_typed listens on it.
QUEUES_CHANNEL = "dbos_typed_queues_channel"
#: A queue was declared, changed or deleted: the payload is its name. Only dbos_typed listens.
QUEUE_SETTINGS_CHANNEL = "dbos_typed_queue_settings_channel"
CHANNELS = (
    NOTIFICATIONS_CHANNEL,
    EVENTS_CHANNEL,
    STREAMS_CHANNEL,
    QUEUES_CHANNEL,
    QUEUE_SETTINGS_CHANNEL,
)

Key = tuple[str, str]


class Waker(Protocol):
    """What a waiter sleeps on: a `threading.Event`, or a coroutine's event on its loop."""

    def set(self) -> None:
        """Wake the waiter; safe to call from any thread, more than once."""


def payload_of(workflow_id: str, name: str) -> str:
    """The notification payload DBOS uses for a workflow's topic, event key or stream key."""
    return f"{workflow_id}::{name}"


class Waiters:
    """Events waiting for a key to change, woken by local writes and by the listener."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # channel -> payload -> events; per channel so waking a workflow's keys scans little.
        self._events: dict[str, dict[str, list[Waker]]] = {}

    def add(self, key: Key, event: Waker, *, exclusive: bool = False) -> bool:
        """Register `event` under `key`; with `exclusive`, refuse (False) if one is there."""
        channel, payload = key
        with self._lock:
            events = self._events.setdefault(channel, {}).setdefault(payload, [])
            if exclusive and events:
                return False
            events.append(event)
            return True

    def remove(self, key: Key, event: Waker) -> None:
        """Forget an event registered with `add`."""
        channel, payload = key
        with self._lock:
            by_payload = self._events.get(channel, {})
            events = by_payload.get(payload)
            if events is not None and event in events:
                events.remove(event)
                if not events:
                    del by_payload[payload]

    def count(self, key: Key) -> int:
        """How many events wait for `key`."""
        channel, payload = key
        with self._lock:
            return len(self._events.get(channel, {}).get(payload, ()))

    def wake(self, key: Key) -> None:
        """Set every event waiting for `key`."""
        channel, payload = key
        with self._lock:
            events = list(self._events.get(channel, {}).get(payload, ()))
        for event in events:
            event.set()

    def wake_workflow(self, channel: str, workflow_id: str) -> None:
        """Set the events waiting on any key of one workflow on `channel`."""
        if not self._events.get(channel):
            # Nobody waits on the channel (the common case when a workflow ends). A waiter
            # registers before it reads what it waits for, which was written before this.
            return
        prefix = payload_of(workflow_id, "")
        with self._lock:
            events = [
                e
                for payload, group in self._events.get(channel, {}).items()
                if payload.startswith(prefix)
                for e in group
            ]
        for event in events:
            event.set()

    def wake_all(self) -> None:
        """Set every event: after missed notifications, everyone re-checks."""
        with self._lock:
            events = [e for c in self._events.values() for g in c.values() for e in g]
        for event in events:
            event.set()


class Listener:
    """One daemon thread holding a dedicated autocommit connection that LISTENs.

    Notifications are dispatched to `Waiters`. When the connection is lost, the thread
    reconnects with backoff; after reconnecting it wakes every waiter, because whatever
    was notified in between was missed.
    """

    _POLL = 0.25  # how often the thread looks at the stop flag while idle

    def __init__(
        self,
        conninfo: str,
        waiters: Waiters,
        on_queued_work: Callable[[], None] | None = None,
        on_queue_settings: Callable[[], None] | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._waiters = waiters
        self._on_queued_work = on_queued_work
        self._on_queue_settings = on_queue_settings
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        """Whether notifications are flowing right now."""
        return self._connected.is_set()

    def start(self) -> None:
        """Start listening; returns once the first connection listens (or failed once)."""
        self._thread = threading.Thread(target=self._run, name="dbos-listener", daemon=True)
        self._thread.start()
        self._connected.wait(5)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread (it exits within a fraction of a second)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(min(timeout, 2 * self._POLL))

    def _run(self) -> None:
        delay = 0.1
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    for channel in CHANNELS:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._connected.set()
                    delay = 0.1
                    if not first:
                        self._waiters.wake_all()
                    first = False
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=self._POLL):
                            if notify.channel == QUEUES_CHANNEL:
                                if self._on_queued_work is not None:
                                    self._on_queued_work()
                            elif notify.channel == QUEUE_SETTINGS_CHANNEL:
                                if self._on_queue_settings is not None:
                                    self._on_queue_settings()
                            else:
                                self._waiters.wake((notify.channel, notify.payload))
            except Exception as exc:
                self._connected.clear()
                if self._stop.is_set():
                    return
                logger.warning("notification listener lost its connection (%s); reconnecting", exc)
                # Waiters fall back to polling while disconnected; wake them to switch now.
                self._waiters.wake_all()
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 5.0)
        self._connected.clear()


class Notifier:
    """Coalesces NOTIFY payloads and sends them in batches from a daemon thread.

    The first payload after a quiet period goes out at once; payloads that arrive while a
    batch is in flight, or within `interval` of it, wait for the next batch. Duplicates in
    a batch are sent once.
    """

    def __init__(self, send: Callable[[str, Sequence[str]], None], interval: float = 0.01):
        self._send = send
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, None]] = {}
        self._signal = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def signal(self, channel: str, payload: str) -> None:
        """Queue `payload` for `channel`."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._pending.setdefault(channel, {})[payload] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dbos-notifier", daemon=True)
                self._thread.start()
        self._signal.set()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for channel, payloads in pending.items():
            try:
                self._send(channel, list(payloads))
            except Exception:
                # Receivers re-check periodically, so a lost batch only delays them.
                logger.warning("could not send notifications on %s", channel, exc_info=True)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._signal.wait()
            self._signal.clear()
            self._flush()
            self._stopped.wait(self._interval)
        self._flush()  # what was queued during the last interval

    def stop(self, timeout: float = 1.0) -> None:
        """Send what is queued and stop.

        The last batch is sent by the notifier's own thread, so a database outage at
        shutdown delays only that thread (until the store closes), never the caller.
        """
        with self._lock:
            self._stopped.set()
            thread = self._thread
        self._signal.set()
        if thread is not None:
            thread.join(timeout)
