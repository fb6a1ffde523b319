"""Kafka's reports settled on the thread that got them, while the reactor waits in ``select``.

Proton is not thread-safe, so everything that touches it runs on the reactor thread, and a
Kafka thread with news wakes the reactor through a pipe. That wake-up is on the critical
path of every acknowledgement: the pipe write, ``select`` returning, and proton's Python
dispatch of the wake-up before the outcome is even settled. Measured with one message in
flight, Kafka's own round trip is 0.12-0.16 ms and the report reached the reactor ~0.3 ms
after ``produce``.

:class:`ReactorLock` is held by the reactor thread all the time except inside the ``select``
system call (:class:`ParkingIOHandler` is proton's IO handler with a selector that lets go
of it there). A Kafka thread that takes the lock without waiting therefore knows that the
reactor is parked and touches nothing, and may do the reactor's work itself: settle, grant
credit, write the frames out. If the reactor is busy, the thread wakes it as before, and it
does the work on its next pass. What the direct work leaves for the reactor (proton's own
events, frames a full socket did not take) is handed over by waking it afterwards.
"""

from __future__ import annotations

import errno
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from proton._handlers import IOHandler  # noqa: PLC2701 - proton's IO handler, given a selector that parks
from proton._io import IO  # noqa: PLC2701


class ReactorLock:
    """Held by the reactor thread except while it waits in ``select`` (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = False
        self.served = 0  # work other threads did while the reactor was parked (tests read it)

    def run(self, loop: Callable[[], None]) -> None:
        """Run the reactor ``loop`` on this thread, holding the lock but for its ``select`` calls."""
        with self._lock:
            self._running = True
            try:
                loop()
            finally:
                self._running = False

    def try_serve(self, work: Callable[[], None]) -> bool:
        """Do ``work`` on this thread now if the reactor is parked in ``select``; False (nothing done) if it is busy or gone."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if not self._running:
                return False
            work()
            self.served += 1
            return True
        finally:
            self._lock.release()

    def parked_select(self, readers: list[Any], writers: list[Any], timeout: float | None) -> tuple[list[Any], list[Any]]:
        """``select`` with the lock let go for the system call (reactor thread only)."""
        self._lock.release()
        try:
            if not readers and not writers:
                if timeout:
                    time.sleep(timeout)
                return [], []
            readable, writable, failed = select.select(readers, writers, writers, timeout)
        except OSError as exc:  # a signal during select: report nothing ready, as proton does
            if exc.errno != errno.EINTR:
                raise
            return [], []
        finally:
            self._lock.acquire()
        return readable, writable + failed


class ParkingSelector(IO.Selector):
    """Proton's selector, waiting in :meth:`ReactorLock.parked_select`."""

    def __init__(self, lock: ReactorLock) -> None:
        super().__init__()
        self._parking = lock

    def select(self, timeout: float | None) -> tuple[list[Any], list[Any], list[Any]]:
        deadline = self._deadline
        if deadline is not None:
            left = max(0.0, deadline - time.time())
            timeout = left if timeout is None else max(0.0, min(timeout, left))
        readable, writable = self._parking.parked_select(list(self._reading), list(self._writing), timeout)
        now = time.time()
        expired = [s for s in self._selectables if s.deadline and now > s.deadline]
        self._deadline = None
        self.update_deadline()
        return readable, writable, expired


class ParkingIOHandler(IOHandler):
    """Proton's IO handler (give it to ``Container(global_handler=...)``) with a :class:`ParkingSelector`."""

    def __init__(self, lock: ReactorLock) -> None:
        super().__init__()
        self._selector = ParkingSelector(lock)
