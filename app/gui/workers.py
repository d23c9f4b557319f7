"""Worker threads for long engine work, reporting through Qt signals, cancellable.

A task is a plain function `fn(task)` run on a QThreadPool thread. It reports with
`task.progress(obj)` and `task.chunk(text)`, polls `task.is_cancelled()`, and returns a result.
Callbacks given to `TaskRunner.start` always run on the GUI thread (queued connections to a
QObject that lives there), in this order: any progress/chunk, then exactly one of
done/failed/cancelled, then ended.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from engine.errors import Cancelled, InfinibookError

log = logging.getLogger(__name__)


WORKER_NICENESS = 5
COALESCE_S = 0.05
GIL_SWITCH_INTERVAL_S = 0.001


def keep_gui_responsive() -> None:
    """A worker holding the GIL hands it to the GUI thread after 1 ms instead of 5 ms."""
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def lower_this_thread_priority() -> None:
    """Background work yields the CPU to the GUI thread (Linux: per-thread nice value; the
    compute threads it starts inherit it). Elsewhere this is a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < WORKER_NICENESS:
            os.setpriority(os.PRIO_PROCESS, tid, WORKER_NICENESS)
    except (AttributeError, OSError):
        pass


class _Relay(QObject):
    """Lives on the GUI thread; signals emitted from a worker are queued to it."""

    progress = Signal(object)
    chunk = Signal(str)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    ended = Signal()


class Task:
    """One piece of work; the pool runs `run`. Not a QRunnable: PySide's pool would keep every
    QRunnable it was given alive for good."""

    def __init__(self, name: str, fn: Callable[[Task], Any]):
        self.name = name
        self.fn = fn
        self.relay = _Relay()
        self._cancel = threading.Event()
        self.finished = threading.Event()
        self.started_at = time.monotonic()
        self._last_progress = 0.0
        self._last_chunk = 0.0
        self._pieces: list[str] = []

    # --- called from the worker thread -------------------------------------------------
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, obj: Any, *, important: bool = True) -> None:
        """Report progress; unimportant reports closer than COALESCE_S to the last are dropped."""
        now = time.monotonic()
        if important or now - self._last_progress >= COALESCE_S:
            self._last_progress = now
            self.relay.progress.emit(obj)

    def chunk(self, text: str) -> None:
        """Stream text; pieces are batched so the GUI redraws at most every COALESCE_S."""
        self._pieces.append(text)
        now = time.monotonic()
        if now - self._last_chunk >= COALESCE_S:
            self._flush_chunks(now)

    def _flush_chunks(self, now: float | None = None) -> None:
        if self._pieces:
            text, self._pieces = "".join(self._pieces), []
            self._last_chunk = time.monotonic() if now is None else now
            self.relay.chunk.emit(text)

    def run(self) -> None:
        lower_this_thread_priority()
        try:
            result = self.fn(self)
            self._flush_chunks()
        except Cancelled:
            self._flush_chunks()
            self.relay.cancelled.emit()
        except InfinibookError as error:
            self._flush_chunks()
            self.relay.failed.emit(str(error))
        except Exception as error:  # noqa: BLE001 - every failure must reach the person
            log.exception("task %s failed", self.name)
            self._flush_chunks()  # the text streamed before the failure is shown, then the message
            self.relay.failed.emit(f"Something unexpected went wrong ({type(error).__name__}: {error}).")
        else:
            if self.is_cancelled():
                self.relay.cancelled.emit()
            else:
                self.relay.done.emit(result)
        finally:
            self.finished.set()
            self.relay.ended.emit()

    # --- called from the GUI thread ----------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()


class TaskRunner(QObject):
    """Starts tasks on its own thread pool and keeps them alive until they end."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        keep_gui_responsive()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.tasks: set[Task] = set()

    def start(
        self,
        name: str,
        fn: Callable[[Task], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_chunk: Callable[[str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_ended: Callable[[], None] | None = None,
    ) -> Task:
        task = Task(name, fn)
        relay = task.relay
        for signal, slot in (
            (relay.progress, on_progress),
            (relay.chunk, on_chunk),
            (relay.done, on_done),
            (relay.failed, on_failed),
            (relay.cancelled, on_cancelled),
            (relay.ended, on_ended),
        ):
            if slot is not None:
                signal.connect(slot)
        relay.ended.connect(lambda: self._release(task))
        self.tasks.add(task)
        self.pool.start(task.run)
        return task

    def _release(self, task: Task) -> None:
        """Free an ended task: its relay's connections hold callbacks that hold the task (a cycle
        Python cannot see), so without this every job, and the engine it captured, stays alive."""
        self.tasks.discard(task)
        task.fn = None
        task.relay.deleteLater()

    def running(self, name: str) -> list[Task]:
        return [t for t in self.tasks if t.name == name and not t.finished.is_set()]

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    def wait(self, msecs: int = 30000, *, skip: tuple[str, ...] = ()) -> bool:
        """Wait until the tasks end, except those named in `skip` (work that cannot be cancelled)."""
        if not skip:
            return self.pool.waitForDone(msecs)
        deadline = time.monotonic() + msecs / 1000
        return all(task.finished.wait(max(deadline - time.monotonic(), 0.0))
                   for task in list(self.tasks) if task.name not in skip)


class EngineGate:
    """One model, used by one task at a time.

    Ingest holds the gate for the whole book but calls `pause_for_others` at every progress
    event: a waiting question or summary then runs at once, and reading resumes after it. So
    a person can chat about the chapters already read while later ones are still being read.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._waiting = 0

    def acquire(self, should_cancel: Callable[[], bool] = lambda: False) -> None:
        with self._cond:
            self._waiting += 1
            try:
                while self._busy:
                    if should_cancel():
                        raise Cancelled("Cancelled before it started.")
                    self._cond.wait(0.05)
                self._busy = True
            finally:
                self._waiting -= 1

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    @contextmanager
    def hold(self, should_cancel: Callable[[], bool] = lambda: False):
        self.acquire(should_cancel)
        try:
            yield self
        finally:
            self.release()

    @property
    def others_waiting(self) -> bool:
        with self._cond:
            return self._waiting > 0

    def pause_for_others(self, should_cancel: Callable[[], bool] = lambda: False) -> None:
        """Called by the holder: let every waiting task run, then take the gate back."""
        with self._cond:
            if not self._waiting:
                return
            self._busy = False
            self._cond.notify_all()
            # Waiters take the gate before the holder can: wait until nobody waits or holds it.
            while self._busy or self._waiting:
                if should_cancel():
                    self._busy = True  # hold() releases on the way out
                    raise Cancelled("Reading was cancelled; finished chapters are kept.")
                self._cond.wait(0.05)
            self._busy = True
