"""Window tests: a real library in a temporary folder, the tiny random model, Qt offscreen."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.gui.settings import AppSettings

SAMPLE = Path(__file__).resolve().parents[3] / "resources" / "sample" / "the-lamplighters-almanac.md"


_TINY: list = []

# The first window of a session converts the default tokenizer (from the GGUF) into the session's
# own cache folder: tens of seconds on a shared 2-core machine, before any test's timing starts.
ENGINE_LOAD_MS = 180_000


def tiny_engine():
    """One tiny random Llama (the default tokenizer) for the whole session: loading costs seconds.
    Made on first use, in the window's worker thread, as the app loads its model."""
    if not _TINY:
        from engine.infini.tiny import tiny_engine as make

        _TINY.append(make(segment=128))  # room for a question beside the instructions
    return _TINY[0]


@pytest.fixture
def engine_factory():
    calls = []

    def factory(config):
        calls.append(config)
        return tiny_engine()

    factory.calls = calls
    return factory


@pytest.fixture
def settings_path(tmp_path) -> str:
    return str(tmp_path / "settings.ini")


@pytest.fixture
def data_dir(tmp_path) -> str:
    path = tmp_path / "library"
    path.mkdir()
    return str(path)


@pytest.fixture
def make_window(qtbot, engine_factory, settings_path, data_dir):
    from app.gui.main_window import MainWindow

    windows = []

    def make(**kwargs):
        kwargs.setdefault("engine_factory", engine_factory)
        kwargs.setdefault("data_dir", data_dir)
        window = MainWindow(AppSettings(settings_path), **kwargs)
        window.confirm = lambda *_a: True
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        if not window._closing:
            window.close()


@pytest.fixture
def fake_window(make_window, qtbot, data_dir):
    """(window, fake api, book ids) for books made up front; the model waits for `model_may_load`.
    A `fingerprint` other than the one the books were read under makes them stale."""
    from .fake_api import FINGERPRINT, FakeApi, make_books

    fakes: list[tuple] = []

    def make(n: int = 2, *, read: bool = True, loaded: bool = False, fingerprint: str = FINGERPRINT):
        fake = FakeApi(fingerprint)
        ids = make_books(data_dir, n, read=read)
        if loaded:
            fake.model_may_load.set()
        window = make_window(api=fake, engine_factory=fake.load)
        if loaded:
            qtbot.waitUntil(lambda: window.engine is not None, timeout=5000)
        fakes.append((window, fake))
        return window, fake, ids

    yield make
    for window, fake in fakes:  # let every worker end before the window goes
        fake.model_may_load.set()
        fake.proceed.set()
        qtbot.waitUntil(lambda w=window: not w.runner.tasks, timeout=5000)


def wait_idle(qtbot, window, timeout: int = 60000) -> None:
    """Until no engine work is running (ingest, answer, summary, model loading, adding)."""
    def idle() -> bool:
        busy = [t for t in window.runner.tasks if t.name != "position" and not t.finished.is_set()]
        assert not busy
        assert window.ingest_task is None and window.ask_task is None and window.summary_task is None
        assert not window.chat.streaming and window.summaries.generating is None
    qtbot.waitUntil(idle, timeout=timeout)


class StallMeter:
    """Measures the longest gap between ticks of a 10 ms GUI timer: how long the loop stalled."""

    def __init__(self):
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.worst = 0.0
        self.ticks = 0

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last)
        self.last = now
        self.ticks += 1

    def start(self):
        self.last = None
        self.worst = 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.worst
