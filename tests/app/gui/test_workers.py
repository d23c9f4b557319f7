"""Worker threads: callbacks on the GUI thread, cancellation, errors as one sentence, the engine gate."""

from __future__ import annotations

import gc
import threading
import time
import weakref

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from app.gui.workers import EngineGate, TaskRunner
from engine.errors import BookError, Cancelled


def test_callbacks_run_on_the_gui_thread_in_order(qtbot):
    runner = TaskRunner()
    seen = []
    gui = QApplication.instance().thread()

    def job(task):
        assert QThread.currentThread() is not gui
        task.progress(1)
        for piece in ("a", "b", "c"):
            task.chunk(piece)
        return 42

    def note(kind):
        def slot(*args):
            assert QThread.currentThread() is gui
            seen.append((kind, *args))
        return slot

    runner.start("t", job, on_progress=note("progress"), on_chunk=note("chunk"), on_done=note("done"),
                 on_ended=note("ended"))
    qtbot.waitUntil(lambda: bool(seen) and seen[-1] == ("ended",), timeout=5000)
    assert seen[0] == ("progress", 1)
    assert "".join(s[1] for s in seen if s[0] == "chunk") == "abc"
    assert seen[-2:] == [("done", 42), ("ended",)]


def test_cancel_and_errors(qtbot):
    runner = TaskRunner()
    results = []

    def slow(task):
        while not task.is_cancelled():
            time.sleep(0.01)
        raise Cancelled("stopped")

    task = runner.start("slow", slow, on_cancelled=lambda: results.append("cancelled"))
    task.cancel()
    runner.start("bad", lambda _t: (_ for _ in ()).throw(BookError("This file is not a book.")),
                 on_failed=results.append)
    runner.start("bug", lambda _t: 1 / 0, on_failed=results.append)
    qtbot.waitUntil(lambda: len(results) == 3, timeout=5000)
    assert "cancelled" in results and "This file is not a book." in results
    assert any("ZeroDivisionError" in r for r in results if r not in ("cancelled", "This file is not a book."))


def test_gate_lets_a_waiting_question_in_between_segments():
    gate = EngineGate()
    order = []
    ingest_has_gate = threading.Event()

    def ingest():
        with gate.hold():
            ingest_has_gate.set()
            for segment in range(40):
                order.append(f"segment {segment}")
                time.sleep(0.005)
                gate.pause_for_others()

    def question():
        ingest_has_gate.wait()
        time.sleep(0.03)
        with gate.hold():
            order.append("answer")

    threads = [threading.Thread(target=ingest), threading.Thread(target=question)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert "answer" in order
    assert 0 < order.index("answer") < len(order) - 1, "the answer should come while reading goes on"


def test_an_ended_task_frees_its_job_and_what_the_job_holds(qtbot):
    """A job holds the engine (a whole model): it must go when the task ends, e.g. after a model change."""
    runner = TaskRunner()

    class Model:
        pass

    model = Model()
    held = weakref.ref(model)
    task = weakref.ref(runner.start("ask", lambda _t, m=model: None, on_done=lambda _r: None))
    del model
    qtbot.waitUntil(lambda: not runner.tasks, timeout=5000)
    qtbot.wait(10)  # the event loop deletes the relay (deleteLater)
    gc.collect()
    assert held() is None and task() is None


def test_text_streamed_before_an_unexpected_error_comes_before_the_message(qtbot, monkeypatch):
    monkeypatch.setattr("app.gui.workers.COALESCE_S", 3600.0)  # every chunk after the first stays buffered
    runner = TaskRunner()
    seen = []

    def job(task):
        for piece in ("a", "b", "c"):
            task.chunk(piece)
        raise RuntimeError("a bug")

    runner.start("bug", job, on_chunk=lambda text: seen.append(("chunk", text)),
                 on_failed=lambda message: seen.append(("failed", message)), on_ended=lambda: seen.append(("ended",)))
    qtbot.waitUntil(lambda: bool(seen) and seen[-1] == ("ended",), timeout=5000)
    assert "".join(s[1] for s in seen if s[0] == "chunk") == "abc"
    assert seen[-2][0] == "failed" and "RuntimeError" in seen[-2][1]
