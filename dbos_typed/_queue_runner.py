"""The loop that takes queued workflows (for now, the internal queue) and runs them."""

from __future__ import annotations

import logging
import threading

from dbos_typed._runtime import Runtime, now_ms
from dbos_typed._sysdb._rows import INTERNAL_QUEUE
from dbos_typed._workflow import execute_claimed

logger = logging.getLogger("dbos_typed")

_BATCH = 100
_POLL_SECONDS = 1.0
_MAX_BACKOFF_SECONDS = 30.0


class QueueRunner:
    """Claims ENQUEUED workflows for this executor and starts them.

    It wakes at once when this process enqueues work (`Runtime.queue_wakeup`) and otherwise
    polls, so work enqueued by other processes and tools is found too.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dbos-queue-runner", daemon=True)

    def start(self) -> None:
        """Start the loop."""
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop the loop and wait for it."""
        self._stop.set()
        self._runtime.queue_wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _accepts_unversioned(self) -> bool:
        # Rows with no version (enqueued by clients and tools) go to the newest version only.
        runtime = self._runtime
        latest = runtime.store.latest_version(runtime.app_name)
        return latest is None or latest == runtime.application_version

    def _loop(self) -> None:
        runtime = self._runtime
        backoff = _POLL_SECONDS
        while not self._stop.is_set():
            runtime.queue_wakeup.clear()
            try:
                claimed = runtime.store.claim_queued(
                    INTERNAL_QUEUE,
                    limit=_BATCH,
                    executor_id=runtime.executor_id,
                    application_version=runtime.application_version,
                    application_name=runtime.app_name,
                    accept_unversioned=self._accepts_unversioned(),
                    now_ms=now_ms(),
                )
                for workflow in claimed:
                    execute_claimed(runtime, workflow)
                backoff = _POLL_SECONDS
            except Exception:
                if self._stop.is_set():
                    return
                logger.exception("the queue runner failed; retrying in %.0fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            if len(claimed) == _BATCH:
                continue
            runtime.queue_wakeup.wait(_POLL_SECONDS)
