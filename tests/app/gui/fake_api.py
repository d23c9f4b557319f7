"""A fake engine facade for window tests: the real Library, model work that waits for the test.

The model loads when `model_may_load` is set; reading, answers and summaries take one step
each time `proceed` allows (or raise Cancelled when the task is cancelled while waiting), so a
test decides exactly when each piece of work happens.
"""

from __future__ import annotations

import threading
import time
import types
from pathlib import Path

from engine.assistant.ask import NO_ANSWER
from engine.errors import Cancelled
from engine.library import Library
from engine.reading.events import IngestEvent
from engine.reading.ingest import read_status, require_fresh

FINGERPRINT = "fake-fp"
WAIT_LIMIT_S = 10.0


class FakeEngine:
    def __init__(self, fingerprint: str = FINGERPRINT) -> None:
        self.fingerprint = fingerprint


class FakeApi:
    NO_ANSWER = NO_ANSWER

    def __init__(self, fingerprint: str = FINGERPRINT) -> None:
        """`fingerprint`: the loaded model's; another than FINGERPRINT makes the books read up front stale."""
        self.fingerprint = fingerprint
        self.model_may_load = threading.Event()
        self.proceed = threading.Event()
        self.calls: list[tuple] = []

    # --- what the window passes as engine_factory ----------------------------------------
    def load(self, _config) -> FakeEngine:
        self.model_may_load.wait(WAIT_LIMIT_S)
        return FakeEngine(self.fingerprint)

    def _step(self, should_cancel) -> None:
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not self.proceed.wait(0.005):
            if (should_cancel and should_cancel()) or time.monotonic() > deadline:
                raise Cancelled("Cancelled.")

    # --- the facade ------------------------------------------------------------------------
    def open_library(self, data_dir=None):
        return Library.open(data_dir)

    def engine_info(self, engine):
        return types.SimpleNamespace(model_name="fake", fingerprint=engine.fingerprint, segment=64, rule="delta",
                                     device="cpu", memory_bytes=1000, kv_cache_bytes_per_token=10,
                                     trained_adapter=False)

    def read_status(self, library, book_id, engine=None):
        return read_status(library, book_id, engine)

    def ingest(self, library, book_id, engine, *, on_event=None, should_cancel=None, restart=False):
        """Like the engine's: a book read under another fingerprint needs `restart`."""
        self.calls.append(("ingest", book_id))
        if restart:
            library.reset_ingest(book_id)
        else:
            require_fresh(library, book_id, engine)
        chapters = library.chapters(book_id)
        n = len(chapters)
        for i in range(library.ingest_progress(book_id).chapters_done, n):
            on_event(IngestEvent(i, n, chapters[i].title, i * 10, n * 10, 1.0, 1.0, False))
            self._step(should_cancel)
            library.save_snapshot(book_id, i, (i + 1) * 10, engine.fingerprint, b"x", "f32", "1")
            on_event(IngestEvent(i, n, chapters[i].title, (i + 1) * 10, n * 10, 1.0, 1.0, True))
        return self.read_status(library, book_id, engine)

    def ask(self, library, book_id, engine, question, *, as_of=None, should_cancel=None):
        self.calls.append(("ask", book_id, question))
        library.add_message(book_id, "user", question, as_of)

        def answer():
            pieces: list[str] = []
            try:
                for piece in (f"About book {book_id}: ", question):
                    self._step(should_cancel)
                    pieces.append(piece)
                    yield piece
            finally:  # like the engine: the (partial) answer is stored
                library.add_message(book_id, "assistant", "".join(pieces), as_of)

        return answer()

    def summarize_chapter(self, library, book_id, engine, idx, *, should_cancel=None):
        self.calls.append(("summary", book_id, idx))

        def summary():
            self._step(should_cancel)
            text = f"Summary of chapter {idx + 1}."
            yield text
            library.save_summary(book_id, idx, text, engine.fingerprint)

        return summary()

    def summarize_book(self, library, book_id, engine, *, should_cancel=None, on_chapter=None):
        """Stores every chapter summary at once, then waits before writing the book's own."""
        self.calls.append(("summary", book_id, None))

        def summary():
            sizes = library.chapter_sizes(book_id)
            for c in sizes:
                on_chapter(c.idx, len(sizes))
                library.save_summary(book_id, c.idx, f"Summary of chapter {c.idx + 1}.", engine.fingerprint)
            self._step(should_cancel)
            yield "The whole book."
            library.save_summary(book_id, None, "The whole book.", engine.fingerprint)

        return summary()

    def export_markdown(self, library, book_id):
        return ""


def make_books(data_dir: str, n: int = 2, *, read: bool = True, chapters: int = 3) -> list[int]:
    """Books already in the library, read into memory under the fake fingerprint when `read`."""
    library = Library.open(data_dir)
    ids = []
    for b in range(n):
        path = Path(data_dir) / f"book{b}.md"
        body = "".join(f"## Chapter {c} of book {b}\n\n" + "Some words here. " * 30 + "\n\n" for c in range(chapters))
        path.write_text(f"# Book {b}\n\n{body}", encoding="utf-8")
        record = library.add_path(path)
        ids.append(record.id)
        if read:
            for i in range(record.n_chapters):
                library.save_snapshot(record.id, i, (i + 1) * 10, FINGERPRINT, b"x", "f32", "1")
    library.close()
    return ids
