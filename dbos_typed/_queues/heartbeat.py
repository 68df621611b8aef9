"""Heartbeats: a process that dies without coming back gives its workflows up in time.

Off unless `Config.executor_heartbeat_timeout` is set. Then every process touches the rows
of the workflows it runs, a third of the timeout apart, and takes back to their queue the
PENDING workflows of its application version that nobody has touched for longer than the
timeout: those of a process that died (SIGKILL, a lost machine) and will not restart under
its executor ID to recover them. Their queue slots come free, and they run again wherever
an executor claims them; the claim sets a new owner, so a run that was only slow, not dead,
is refused at its next checkpoint. Every executor sharing the application must set the same
timeout, or one without heartbeats would see its long-running workflows taken over.
"""

from __future__ import annotations

import threading
from collections import Counter

from dbos_typed._core.runtime import Runtime


class Heartbeat:
    """The thread that touches this process's running workflows and takes over silent ones."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dbos-heartbeat", daemon=True)

    def start(self) -> None:
        """Start beating, if the configuration asks for it."""
        if self._runtime.config.executor_heartbeat_timeout is not None:
            self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop beating and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        timeout = self._runtime.config.executor_heartbeat_timeout
        assert timeout is not None
        interval = timeout.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception:
                if self._stop.is_set():
                    return
                self._runtime.logger.exception("a heartbeat failed; the next one retries")

    def beat(self) -> list[str]:
        """Touch what runs here and take over what has gone silent; returns those taken."""
        runtime = self._runtime
        timeout = runtime.config.executor_heartbeat_timeout
        assert timeout is not None
        with runtime.running_lock:
            running = list(runtime.running)
        now = runtime.clock.now_ms()
        if running:
            runtime.store.touch_running(running, now)
        taken = runtime.store.take_over_silent(
            runtime.app_name,
            runtime.application_version,
            now - int(timeout.total_seconds() * 1000),
            running,
            now,
        )
        if taken:
            for executor, count in sorted(Counter(e or "?" for _, e in taken).items()):
                self._runtime.logger.warning(
                    "took over %d workflow(s) of executor %r, silent for over %s",
                    count,
                    executor,
                    timeout,
                )
            runtime.queue_wakeup.set()
        return [workflow_id for workflow_id, _ in taken]
