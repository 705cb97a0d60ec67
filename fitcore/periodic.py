"""Background work a service runs beside its server: a task every N seconds on a daemon thread
(billing's purge of expired idempotency keys, the monolith's closing of abandoned workout
sessions). A failure is logged and the next round runs as planned; `stop()` waits for a round
in progress. Written here rather than taken from a scheduler library: it is one loop, and the
services already own their lifecycles (start with the server, stop on its graceful drain)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Background(Protocol):
    """Work a process runs beside its server."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Periodic:
    """Runs `task` every `seconds` on a daemon thread until stopped."""

    def __init__(self, name: str, seconds: float, task: Callable[[], object]) -> None:
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self.name = name
        self._seconds = seconds
        self._task = task
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._seconds):
            self.run_once()

    def run_once(self) -> None:
        try:
            self._task()
        except Exception:
            log.warning("periodic task failed", extra={"task": self.name}, exc_info=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
