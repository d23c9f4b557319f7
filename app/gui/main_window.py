"""The Infinibook main window: library, reader, chat, summaries, memory, reading progress.

Everything heavy (model loading, adding a book, reading it into memory, answers, summaries)
runs through `TaskRunner` on worker threads and comes back as Qt signals; the GUI thread only
draws and does quick library reads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.paths import write_text_atomically

from .backend import Backend, attr
from .chat import ChatPanel
from .ingest_bar import IngestBar
from .library_panel import BookRow, LibraryPanel
from .memory_view import MemoryView
from .messages import for_window
from .reader import ReaderPanel
from .resources import app_icon, sample_book
from .settings import AppSettings, EngineConfig, SettingsDialog
from .summaries import BOOK, SummariesPanel
from .workers import EngineGate, Task, TaskRunner

log = logging.getLogger(__name__)

BOOK_SUFFIXES = (".epub", ".pdf", ".txt", ".md", ".markdown")
BOOK_FILTER = "Books (*.epub *.pdf *.txt *.md *.markdown);;All files (*)"


def finished_chapter_of(ev) -> int | None:
    """The chapter an ingest event says was just finished (bool flag or index), else None."""
    flag = getattr(ev, "finished_chapter", None)
    if flag is None or flag is False:
        return None
    if flag is True:
        return int(getattr(ev, "chapter_index", 0))
    try:
        return int(flag)
    except (TypeError, ValueError):
        return None


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: AppSettings | None = None,
        *,
        api: Any = None,
        engine_factory=None,
        data_dir: str | None = None,
        load_engine_on_start: bool = True,
    ):
        super().__init__()
        self.settings = settings or AppSettings()
        self.backend = Backend(api, engine_factory)
        self.runner = TaskRunner(self)
        self.gate = EngineGate()
        self.data_dir_override = data_dir
        self.engine_config: EngineConfig = self.settings.engine_config()

        self.library = None
        self.engine = None
        self.engine_info: dict = self.settings.cached_engine_info()
        self._engine_task: Task | None = None
        self._engine_waiters: list[tuple[Any, Any]] = []
        self._after_engine_reload = None
        self._unsaved_engine_config = False  # chosen in Settings, stored once a model loads with it

        self.book_id = None
        self.book_title = ""
        self.chapter_records: list[dict] = []
        self.chapters_done = 0
        self.tokens_done = 0
        self.stale = False

        self.ingest_task: Task | None = None
        self.ingest_book_id = None
        self.ingest_book_title = ""
        self.ask_task: Task | None = None
        self.ask_book_id = None
        self.summary_task: Task | None = None
        self.summary_book_id = None
        self._queued: dict[str, object] = {}  # "ingest"/"ask"/"summary" -> marker of a start waiting for the model
        self._pending_remove: set[str] = set()  # books to remove once the work on them has stopped
        self._memory_refresh_at = 0.0
        self.errors: list[str] = []
        self._rows: list[BookRow] = []
        self._boxes: list[QMessageBox] = []
        self._closing = False

        self.setWindowTitle("Infinibook")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._build_ui()
        self._build_menus()
        geometry = self.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1360, 820)

        self.open_library()
        if load_engine_on_start:
            QTimer.singleShot(0, lambda: self.ensure_engine())

    # ------------------------------------------------------------------ building the window
    def _build_ui(self) -> None:
        self.library_panel = LibraryPanel()
        self.library_panel.book_selected.connect(self.open_book)
        self.library_panel.add_requested.connect(self.add_books_dialog)
        self.library_panel.remove_requested.connect(self.remove_book)

        self.reader = ReaderPanel()
        self.reader.chapter_changed.connect(self._reader_chapter_changed)
        self.reader.position_changed.connect(self._save_position)

        toc_box = QWidget()
        toc_layout = QVBoxLayout(toc_box)
        toc_layout.setContentsMargins(4, 4, 4, 4)
        toc_layout.addWidget(QLabel("<b>Contents</b>"))
        toc_layout.addWidget(self.reader.toc, 1)

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.library_panel)
        left.addWidget(toc_box)
        left.setStretchFactor(0, 2)
        left.setStretchFactor(1, 3)

        self.welcome = self._build_welcome()
        self.center = QStackedWidget()
        self.center.addWidget(self.welcome)
        self.center.addWidget(self.reader)

        self.chat = ChatPanel()
        self.chat.ask_requested.connect(self.ask)
        self.chat.stop_requested.connect(self.stop_answer)
        self.summaries = SummariesPanel()
        self.summaries.generate_requested.connect(self.generate_summary)
        self.summaries.stop_requested.connect(self.stop_summary)
        self.summaries.export_requested.connect(self.export_summaries)
        self.memory_view = MemoryView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.chat, "Chat")
        self.tabs.addTab(self.summaries, "Summaries")
        self.tabs.addTab(self.memory_view, "Memory")

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.center)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setStretchFactor(2, 4)
        self.splitter.setSizes([260, 600, 480])
        state = self.settings.splitter_state("splitter")
        if state is not None:
            self.splitter.restoreState(state)

        self.ingest_bar = IngestBar()
        self.ingest_bar.read_requested.connect(self._read_button)
        self.ingest_bar.cancel_requested.connect(self.cancel_ingest)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 0)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.ingest_bar)
        self.setCentralWidget(central)

        self.engine_label = QLabel()
        self.statusBar().addPermanentWidget(self.engine_label)
        self._show_engine_state()

    def _build_welcome(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        title = QLabel("<h2>Infinibook</h2>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel(
            "Open a book (EPUB, PDF, text or Markdown). Infinibook reads it once into a small "
            "memory, then answers questions and writes summaries — as of any chapter, without spoilers.\n\n"
            "You can also drop files on this window.")
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text.setMaximumWidth(520)
        add = QPushButton("Add a book…")
        add.clicked.connect(self.add_books_dialog)
        self.sample_button = QPushButton("Try the sample book")
        self.sample_button.clicked.connect(self.add_sample_book)
        self.sample_button.setVisible(sample_book() is not None)
        for widget in (title, text, add, self.sample_button):
            layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        return page

    def _build_menus(self) -> None:
        def action(menu, text, slot, shortcut=None):
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            return act

        file_menu = self.menuBar().addMenu("&File")
        action(file_menu, "&Add book…", self.add_books_dialog, QKeySequence.StandardKey.Open)
        action(file_menu, "Add the &sample book", self.add_sample_book)
        action(file_menu, "&Export summaries…", self.export_summaries, "Ctrl+E")
        file_menu.addSeparator()
        action(file_menu, "Se&ttings…", self.open_settings, "Ctrl+,")
        file_menu.addSeparator()
        action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        book_menu = self.menuBar().addMenu("&Book")
        action(book_menu, "&Read / resume reading", lambda: self.start_ingest(), "Ctrl+R")
        action(book_menu, "Re-read from the &start", lambda: self.start_ingest(restart=True))
        action(book_menu, "&Cancel reading", self.cancel_ingest)
        help_menu = self.menuBar().addMenu("&Help")
        action(help_menu, "&About Infinibook", self._about)

    def _about(self) -> None:
        QMessageBox.about(self, "About Infinibook",
                          "<b>Infinibook</b><br>A reading assistant that reads a whole book into a fixed-size "
                          "Infini-attention memory (arXiv 2404.07143), then answers and summarises locally.")

    # ------------------------------------------------------------------ messages to the person
    def show_error(self, message: str) -> None:
        """One sentence from the engine, worded for the window, in a (non-blocking) dialog that
        deletes itself once closed (each error would otherwise leave one behind)."""
        message = for_window(message)
        log.warning("%s", message)
        self.errors.append(message)
        if self._closing:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Infinibook", message, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _r, b=box: self._boxes.remove(b) if b in self._boxes else None)
        self._boxes.append(box)
        box.open()

    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def status(self, text: str, ms: int = 6000) -> None:
        self.statusBar().showMessage(text, ms)

    # ------------------------------------------------------------------ library
    def open_library(self) -> None:
        self.library = self._open_library_at(self.current_data_dir())
        if self.library is not None:
            self._show_library()

    def _open_library_at(self, data_dir: str):
        """The library in `data_dir` (the default folder when empty), or None after saying why."""
        try:
            return self.backend.open_library(data_dir or None)
        except Exception as error:  # noqa: BLE001
            self.show_error(str(error) or "The library could not be opened.")
            return None

    def _show_library(self) -> None:
        """List the open library's books and reopen the last one read."""
        self.refresh_books()
        last = self.settings.last_book_in(self.current_data_dir())
        ids = [str(r.id) for r in self._rows]
        if last and last in ids:
            self.library_panel.select(self._rows[ids.index(last)].id)
            if self.book_id is None:
                self.open_book(self._rows[ids.index(last)].id)
        else:
            self.show_welcome()

    def refresh_books(self) -> None:
        rows = []
        if self.library is not None:
            for record in self.library.list_books():
                book_id = attr(record, "id")
                progress = self._progress(book_id)
                total = attr(progress, "chapters_total", attr(record, "n_chapters", 0))
                done = attr(progress, "chapters_done", 0)
                stale = bool(self.engine_info.get("fingerprint")) and bool(attr(progress, "fingerprint")) and \
                    str(attr(progress, "fingerprint")) != str(self.engine_info.get("fingerprint")) and done > 0
                rows.append(BookRow(book_id, attr(record, "title", ""), attr(record, "author", ""), done, total, stale))
        self._rows = rows
        self.library_panel.set_books(rows, current=self.book_id)

    def _progress(self, book_id):
        try:
            return self.library.ingest_progress(book_id)
        except Exception:  # noqa: BLE001
            log.exception("ingest_progress")
            return None

    def show_welcome(self) -> None:
        self._stop_book_work()
        self.book_id = None
        self.center.setCurrentWidget(self.welcome)
        self.reader.set_chapters([])
        self.chat.set_chapters([], 0)
        self.chat.clear()
        self.summaries.set_book([], {}, 0)
        self.memory_view.update_view(info=self.engine_info, chapters=[], chapters_done=0, tokens_done=0)
        self._update_ingest_bar()
        self.setWindowTitle("Infinibook")

    def open_book(self, book_id) -> None:
        if self.library is None or book_id is None:
            return
        if self.book_id is not None and str(book_id) == str(self.book_id):
            return
        if self.book_id is not None:
            self.reader.flush_position()
        self._stop_book_work()
        try:
            record = next((b for b in self.library.list_books() if str(attr(b, "id")) == str(book_id)), None)
            chapters = self.library.chapters(book_id)
            position = self.library.get_position(book_id) or (0, 0)
        except Exception as error:  # noqa: BLE001
            self.show_error(str(error))
            return
        self.book_id = attr(record, "id", book_id)
        self.book_title = attr(record, "title", "") or "Untitled"
        self.settings.remember_book(self.book_id, self.current_data_dir())
        self.chapter_records = [
            {
                "idx": attr(c, "idx", i),
                "title": attr(c, "title", "") or f"Chapter {i + 1}",
                "text": attr(c, "text", ""),
                "label": attr(c, "label"),
                "n_chars": attr(c, "n_chars", 0),
                "n_tokens": attr(c, "n_tokens", 0) or max(1, len(attr(c, "text", "") or "") // 4),
            }
            for i, c in enumerate(chapters)
        ]
        progress = self._progress(self.book_id)
        self.chapters_done = int(attr(progress, "chapters_done", 0))
        self.tokens_done = int(attr(progress, "tokens_done", 0))
        self.stale = self._stale_from(progress)
        titles = [c["title"] for c in self.chapter_records]
        usable = 0 if self.stale else self.chapters_done

        self.center.setCurrentWidget(self.reader)
        self.reader.set_chapters(self.chapter_records, usable)
        self.chat.set_chapters(titles, usable)
        self.chat.set_stale(self.stale)
        self.chat.set_messages(self._load_messages())
        texts, outdated = self._load_summaries()
        self.summaries.set_book(titles, texts, usable, outdated)
        chapter_idx, offset = (tuple(position) + (0, 0))[:2]
        chapter_idx = min(max(int(chapter_idx or 0), 0), max(len(self.chapter_records) - 1, 0))
        self.reader.show_chapter(chapter_idx, int(offset or 0))
        self.chat.follow_reader(chapter_idx)
        self._refresh_memory_view()
        self._update_ingest_bar()
        self.library_panel.select(self.book_id)
        self.setWindowTitle(f"{self.book_title} — Infinibook")
        if self.engine is not None:
            self._check_read_status()

    def _stop_book_work(self) -> None:
        """Answers and summaries belong to the open book: leaving it stops them, queued ones too."""
        self._queued.pop("ask", None)
        self._queued.pop("summary", None)
        for task in (self.ask_task, self.summary_task):
            if task is not None:
                task.cancel()

    def _stale_from(self, progress) -> bool:
        fingerprint = attr(progress, "fingerprint")
        current = self.engine_info.get("fingerprint")
        return bool(fingerprint and current and str(fingerprint) != str(current) and attr(progress, "chapters_done", 0))

    def _load_messages(self) -> list[tuple[str, str, int | None]]:
        try:
            records = self.library.messages(self.book_id)
        except Exception:  # noqa: BLE001
            log.exception("messages")
            return []
        out = []
        for m in records:
            as_of = attr(m, "as_of_chapter", attr(m, "as_of"))
            out.append((attr(m, "role", "assistant"), attr(m, "content", attr(m, "text", "")),
                        None if as_of is None else int(as_of)))
        return out

    def _load_summaries(self) -> tuple[dict[int, str], set[int]]:
        """The open book's summaries, and the keys of those made under another fingerprint than
        the current engine's (written from a memory the book no longer has: shown as outdated) or,
        for the whole book, before one of its chapter summaries was regenerated."""
        try:
            records = self.library.summaries(self.book_id)
        except Exception:  # noqa: BLE001
            log.exception("summaries")
            return {}, set()
        current = str(self.engine_info.get("fingerprint") or "")
        out: dict[int, str] = {}
        outdated: set[int] = set()
        for s in records:  # later records win: regenerated summaries replace older ones
            idx = attr(s, "chapter_idx", attr(s, "chapter"))
            key = BOOK if idx is None or int(idx) < 0 else int(idx)
            out[key] = attr(s, "text", attr(s, "content", ""))
            made_with = str(attr(s, "fingerprint") or "")
            if (current and made_with and made_with != current) or attr(s, "superseded", False):
                outdated.add(key)
            else:
                outdated.discard(key)
        return out, outdated

    def _check_read_status(self) -> None:
        """With an engine loaded: is the book's saved memory usable with it?"""
        if self.library is None or self.book_id is None or self.engine is None:
            return
        try:
            status = self.backend.api.read_status(self.library, self.book_id, self.engine)
        except Exception as error:  # noqa: BLE001
            self.show_error(str(error))
            return
        stale = bool(attr(status, "stale", False))
        done = int(attr(status, "chapters_done", self.chapters_done))
        changed = stale != self.stale or done != self.chapters_done
        self.stale, self.chapters_done = stale, done
        self.tokens_done = int(attr(status, "tokens_done", self.tokens_done))
        if changed:
            self._set_chapters_read(0 if stale else done)
        self.library_panel.update_progress(self.book_id, done, stale=stale)
        self._refresh_memory_view()
        self._update_ingest_bar()

    def _refresh_token_counts(self) -> None:
        """Reading counts each chapter's tokens exactly; use those instead of the estimates."""
        try:
            sizes = self.library.chapter_sizes(self.book_id)
        except Exception:  # noqa: BLE001
            return
        for record, size in zip(self.chapter_records, sizes, strict=False):
            n = attr(size, "n_tokens", 0)
            if n:
                record["n_tokens"] = int(n)

    def _set_chapters_read(self, n: int) -> None:
        self.chat.set_stale(self.stale)
        self.reader.set_chapters_read(n)
        self.chat.set_chapters_read(n)
        self.summaries.set_chapters_read(n)

    def _reader_chapter_changed(self, idx: int) -> None:
        self.chat.follow_reader(idx)
        if self.summaries.generating is None:
            self.summaries.select(idx)

    def _save_position(self, chapter_idx: int, offset: int) -> None:
        if self.library is None or self.book_id is None:
            return
        library, book_id = self.library, self.book_id
        self.runner.start("position", lambda _t: library.set_position(book_id, chapter_idx, offset),
                          on_failed=lambda msg: log.warning("position not saved: %s", msg))

    # adding and removing books
    def add_books_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add books", str(Path.home()), BOOK_FILTER)
        if paths:
            self.add_paths(paths)

    def add_sample_book(self) -> None:
        path = sample_book()
        if path is None:
            self.show_error("The sample book is not installed with this copy of Infinibook.")
            return
        self.add_paths([str(path)])

    def add_paths(self, paths: list[str], *, read: bool = True) -> None:
        if self.library is None:
            self.show_error("The library is not open; check the library folder in Settings.")
            return
        library = self.library
        for path in paths:
            name = Path(path).name
            self.status(f"Adding {name}…", 0)
            self.runner.start(
                "add",
                lambda _t, p=path: library.add_path(p),
                on_done=lambda record, r=read: self._book_added(record, r),
                on_failed=self._add_failed,
            )

    def _add_failed(self, message: str) -> None:
        self.statusBar().clearMessage()
        self.show_error(message)

    def _book_added(self, record, read: bool) -> None:
        title = attr(record, "title", "") or "Untitled"
        self.status(f"Added “{title}”.")
        book_id = attr(record, "id")
        self.refresh_books()
        # One step per turn of the event loop, so the window keeps drawing in between.
        QTimer.singleShot(0, lambda: self._open_added(book_id, title, read))

    def _answer_or_summary_pending(self) -> bool:
        return (self.ask_task is not None or self.summary_task is not None
                or "ask" in self._queued or "summary" in self._queued)

    def _open_added(self, book_id, title: str, read: bool) -> None:
        if self._answer_or_summary_pending() and str(book_id) != str(self.book_id):
            # Opening it would stop the answer or summary being written for the open book.
            self.status(f"Added “{title}”; it is in the library, to open once the work on “{self.book_title}” is done.")
            if read and self.ingest_book_id is None:
                self.start_ingest(book_id=book_id, title=title)
            return
        self.open_book(book_id)
        if read and self.chapters_done < len(self.chapter_records) and self.ingest_book_id is None:
            QTimer.singleShot(0, lambda: self.start_ingest(book_id=book_id) if str(book_id) == str(self.book_id) else None)

    def remove_book(self, book_id) -> None:
        record = next((r for r in self._rows if str(r.id) == str(book_id)), None)
        title = record.title if record else "this book"
        if not self.confirm("Remove book", f"Remove “{title}” with its memory, chat and summaries from the library?"):
            return
        if self.ingest_task is None and str(self.ingest_book_id) == str(book_id):
            self.cancel_ingest()  # its reading was only queued behind the model loading
        busy = self._tasks_on(book_id)
        if busy:  # they would write to a book no longer there: stop them, remove it once they ended
            self._pending_remove.add(str(book_id))
            for task in busy:
                task.cancel()
            self.status(f"Removing “{title}” once the work on it has stopped…")
            return
        self._remove_now(book_id)

    def _tasks_on(self, book_id) -> list[Task]:
        """The running tasks that read or write this book."""
        return [task for task, owner in ((self.ingest_task, self.ingest_book_id), (self.ask_task, self.ask_book_id),
                                         (self.summary_task, self.summary_book_id))
                if task is not None and str(owner) == str(book_id)]

    def _remove_if_pending(self) -> None:
        """Called as a task ends: removals waiting for the work on their books happen now."""
        if self._closing:
            return
        for book_id in sorted(self._pending_remove):
            if not self._tasks_on(book_id):
                self._pending_remove.discard(book_id)
                self._remove_now(book_id)

    def _remove_now(self, book_id) -> None:
        try:
            self.library.remove_book(book_id)
        except Exception as error:  # noqa: BLE001
            self.show_error(str(error))
            return
        if self.book_id is not None and str(self.book_id) == str(book_id):
            self.book_id = None
            self.settings.remember_book(None, self.current_data_dir())
        self.refresh_books()
        if self.book_id is None:
            if self._rows:
                self.open_book(self._rows[0].id)
            else:
                self.show_welcome()

    # drag and drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if any(u.isLocalFile() and u.toLocalFile().lower().endswith(BOOK_SUFFIXES) for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        paths = [p for p in paths if p.lower().endswith(BOOK_SUFFIXES)]
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    # ------------------------------------------------------------------ the engine
    def ensure_engine(self, on_ready=None, on_failed=None) -> None:
        if self.engine is not None:
            if on_ready:
                on_ready()
            return
        if on_ready or on_failed:
            self._engine_waiters.append((on_ready, on_failed))
        if self._engine_task is not None:
            return
        config = self.engine_config
        backend = self.backend

        def load(_task):
            engine = backend.load_engine(config)
            info = backend.engine_info(engine)
            return engine, info

        self._engine_task = self.runner.start("engine", load, on_done=self._engine_loaded,
                                              on_failed=self._engine_failed)
        self._show_engine_state()

    def _when_engine_ready(self, kind: str, start, on_failed) -> None:
        """Run `start` once the model is loaded, unless the request was dropped meanwhile (Stop,
        Cancel, another book opened): the marker ties the queued start to this one request."""
        marker = self._queued[kind] = object()

        def claimed() -> bool:
            if self._queued.get(kind) is not marker:
                return False
            del self._queued[kind]
            return True

        def ready() -> None:
            if claimed():
                start()

        def failed(message: str) -> None:
            if claimed():
                on_failed(message)

        self.ensure_engine(ready, failed)

    def _engine_loaded(self, result) -> None:
        engine, info = result
        self._engine_task = None
        if self._closing:
            return
        self.engine = engine
        self.engine_info = {
            key: attr(info, key)
            for key in ("model_name", "fingerprint", "segment", "rule", "device", "memory_bytes",
                        "kv_cache_bytes_per_token", "trained_adapter")
        }
        self.engine_info["fingerprint"] = str(self.engine_info.get("fingerprint") or "")
        self.settings.set_cached_engine_info(info)
        if self._unsaved_engine_config:
            self.settings.set_engine_config(self.engine_config)
            self._unsaved_engine_config = False
        self._show_engine_state()
        self.refresh_books()
        self._check_read_status()
        if self.book_id is not None:  # another model or settings: summaries made before are now outdated
            self.summaries.set_stored(*self._load_summaries())
        waiters, self._engine_waiters = self._engine_waiters, []
        for on_ready, _ in waiters:
            if on_ready:
                on_ready()
        after, self._after_engine_reload = self._after_engine_reload, None
        if after:
            after()

    def _engine_failed(self, message: str) -> None:
        self._engine_task = None
        self._show_engine_state(failed=True)
        waiters, self._engine_waiters = self._engine_waiters, []
        for _, on_failed in waiters:
            if on_failed:
                on_failed(message)
        self.show_error(message)

    def _show_engine_state(self, failed: bool = False) -> None:
        if self.engine is not None:
            info = self.engine_info
            parts = [str(info.get("model_name") or "model"), str(info.get("device") or "")]
            if info.get("segment"):
                parts.append(f"segment {info['segment']}")
            if info.get("rule"):
                parts.append(f"{info['rule']} rule")
            if info.get("trained_adapter") is False:
                parts.append("untrained gates")
            self.engine_label.setText("Model: " + " · ".join(p for p in parts if p))
        elif failed:
            self.engine_label.setText("Model: not loaded (see Settings)")
        elif self._engine_task is not None:
            self.engine_label.setText(f"Loading model ({self.engine_config.describe()})…")
        else:
            self.engine_label.setText("Model: not loaded")

    # ------------------------------------------------------------------ reading (ingest)
    def _read_button(self) -> None:
        self.start_ingest(restart=self.stale)

    def start_ingest(self, restart: bool = False, book_id=None, title: str | None = None) -> None:
        book_id = self.book_id if book_id is None else book_id
        if book_id is None or self.library is None:
            return
        if self.ingest_book_id is not None:  # reading, or waiting for the model to read
            if str(self.ingest_book_id) != str(book_id):
                self.show_error(f"Infinibook is still reading “{self.ingest_book_title}”; cancel that first or wait.")
            elif restart:
                self.status(f"“{self.ingest_book_title}” is being read; cancel that first to read it from the start.")
            return
        title = self.book_title if str(book_id) == str(self.book_id) else (title or str(book_id))
        self.ingest_book_id, self.ingest_book_title = book_id, title
        waiting = "preparing…" if self.engine is not None else "waiting for the model to load…"
        self.ingest_bar.running(f"Reading “{title}” — {waiting}")
        self.ingest_bar.bar.setValue(0)
        self._when_engine_ready("ingest", lambda: self._run_ingest(book_id, restart), self._ingest_not_started)

    def _ingest_not_started(self, _message: str = "") -> None:
        self.ingest_book_id = None
        self._update_ingest_bar()

    def _run_ingest(self, book_id, restart: bool) -> None:
        api, library, engine, gate = self.backend.api, self.library, self.engine, self.gate

        def job(task: Task):
            with gate.hold(task.is_cancelled):
                def on_event(ev):
                    task.progress(ev, important=bool(getattr(ev, "finished_chapter", False)))
                    gate.pause_for_others(task.is_cancelled)

                return api.ingest(library, book_id, engine, on_event=on_event,
                                  should_cancel=task.is_cancelled, restart=restart)

        if restart and str(book_id) == str(self.book_id):
            self.stale = False
            self.chapters_done = 0
            self.tokens_done = 0
            self._set_chapters_read(0)
        self.ingest_task = self.runner.start(
            "ingest", job,
            on_progress=self._ingest_event,
            on_done=self._ingest_done,
            on_failed=self._ingest_failed,
            on_cancelled=self._ingest_cancelled,
            on_ended=self._ingest_ended,
        )

    def _ingest_event(self, ev) -> None:
        self.ingest_bar.show_event(ev, f"“{self.ingest_book_title}”")
        finished = finished_chapter_of(ev)
        current = str(self.ingest_book_id) == str(self.book_id)
        if finished is not None:
            if current:
                self._refresh_token_counts()
            done = finished + 1
            self.library_panel.update_progress(self.ingest_book_id, done, getattr(ev, "chapters_total", None),
                                               stale=False)
            if current and done > self.chapters_done:
                self.chapters_done = done
                self._set_chapters_read(done)
        if current:
            self.tokens_done = int(getattr(ev, "tokens_done", self.tokens_done) or 0)
            now = time.monotonic()
            if finished is not None or now - self._memory_refresh_at > 0.5:
                self._memory_refresh_at = now
                self._refresh_memory_view()

    def _ingest_done(self, status) -> None:
        if str(self.ingest_book_id) == str(self.book_id):
            self.chapters_done = int(attr(status, "chapters_done", self.chapters_done))
            self.tokens_done = int(attr(status, "tokens_done", self.tokens_done))
            self.stale = bool(attr(status, "stale", False))
            self._set_chapters_read(self.chapters_done)
        self.status(f"Finished reading “{self.ingest_book_title}”.")

    def _ingest_failed(self, message: str) -> None:
        self.show_error(message)

    def _ingest_cancelled(self) -> None:
        self.status("Reading paused; the chapters already read are kept.")

    def _ingest_ended(self) -> None:
        book_id = self.ingest_book_id
        self.ingest_task = None
        self.ingest_book_id = None
        if self._closing:
            return
        self._remove_if_pending()
        self.refresh_books()
        if book_id is not None and str(book_id) == str(self.book_id):
            self._refresh_token_counts()
            progress = self._progress(self.book_id)
            if progress is not None:
                self.chapters_done = int(attr(progress, "chapters_done", self.chapters_done))
                self.tokens_done = int(attr(progress, "tokens_done", self.tokens_done))
                # A re-read stopped before its first chapter was saved leaves the old memory, still stale.
                self.stale = self._stale_from(progress)
                self._set_chapters_read(0 if self.stale else self.chapters_done)
        self._refresh_memory_view()
        self._update_ingest_bar()

    def cancel_ingest(self) -> None:
        if self.ingest_task is not None:
            self.ingest_task.cancel()
            self.ingest_bar.stopping("Stopping after the current segment…")
        elif self._queued.pop("ingest", None) is not None:
            self._ingest_not_started()

    def _update_ingest_bar(self) -> None:
        if self.ingest_task is not None or (self.ingest_book_id is not None):
            return  # the running ingest owns the bar
        if self.book_id is None:
            self.ingest_bar.idle("Add a book to start." if not self._rows else "Choose a book.")
            return
        total = len(self.chapter_records)
        if self.stale:
            self.ingest_bar.idle("This book's memory was made with another model or settings; it must be re-read.",
                                 button="Re-read the book")
        elif self.chapters_done >= total > 0:
            self.ingest_bar.idle(f"All {total} chapters of “{self.book_title}” are in memory.")
        elif self.chapters_done:
            self.ingest_bar.idle(f"Read {self.chapters_done} of {total} chapters.", button="Resume reading")
        else:
            self.ingest_bar.idle(f"“{self.book_title}” has not been read yet.", button="Read the book")

    def _refresh_memory_view(self) -> None:
        self.memory_view.update_view(info=self.engine_info, chapters=self.chapter_records,
                                     chapters_done=0 if self.stale else self.chapters_done,
                                     tokens_done=0 if self.stale else self.tokens_done, stale=self.stale)

    # ------------------------------------------------------------------ chat
    def ask(self, question: str, as_of: int) -> None:
        if self.book_id is None or self.chat.streaming:
            return
        if self.ask_task is not None:  # an answer for the book left a moment ago, still stopping
            self.status("The last answer is still stopping; ask again in a moment.")
            return
        readable = 0 if self.stale else self.chapters_done
        if readable <= 0:
            self.show_error("This book has not been read yet; read at least one chapter before asking.")
            return
        effective = min(as_of, readable - 1)
        self.chat.begin_answer(question, effective)
        book_id, library = self.book_id, self.library

        def start():
            api, engine, gate = self.backend.api, self.engine, self.gate

            def job(task: Task):
                with gate.hold(task.is_cancelled):
                    for piece in api.ask(library, book_id, engine, question, as_of=effective,
                                         should_cancel=task.is_cancelled):
                        task.chunk(piece)
                        if task.is_cancelled():
                            break

            self.ask_book_id = book_id
            self.ask_task = self.runner.start(
                "ask", job,
                on_chunk=self.chat.append_chunk,
                on_done=lambda _r: self.chat.end_answer(if_blank=api.NO_ANSWER),
                on_cancelled=lambda: self.chat.end_answer("Stopped."),
                on_failed=self._ask_failed,
                on_ended=self._ask_ended,
            )

        self._when_engine_ready("ask", start, lambda _msg: self.chat.end_answer("The model could not be loaded."))

    def _ask_failed(self, message: str) -> None:
        self.chat.withdraw_answer()
        self.show_error(message)

    def _ask_ended(self) -> None:
        self.ask_task = self.ask_book_id = None
        self._remove_if_pending()

    def stop_answer(self) -> None:
        if self.ask_task is not None:
            self.ask_task.cancel()
        elif self._queued.pop("ask", None) is not None:  # still waiting for the model
            self.chat.end_answer("Stopped.")

    # ------------------------------------------------------------------ summaries
    def generate_summary(self, key: int) -> None:
        if self.book_id is None or self.summaries.generating is not None:
            return
        if self.summary_task is not None:  # a summary for the book left a moment ago, still stopping
            self.status("The last summary is still stopping; generate again in a moment.")
            return
        readable = 0 if self.stale else self.chapters_done
        if key == BOOK and readable < len(self.chapter_records):
            self.show_error(f"A summary of the whole book needs the whole book in memory; "
                            f"{readable} of {len(self.chapter_records)} chapters are read so far.")
            return
        if readable <= 0 or (key != BOOK and key >= readable):
            self.show_error("That chapter has not been read yet; summaries need the chapter in memory.")
            return
        book_id, library = self.book_id, self.library
        self.summaries.begin(key)
        parts: list[str] = []

        def start():
            api, engine, gate = self.backend.api, self.engine, self.gate

            def job(task: Task):
                with gate.hold(task.is_cancelled):
                    if key == BOOK:
                        stream = api.summarize_book(library, book_id, engine, should_cancel=task.is_cancelled,
                                                    on_chapter=lambda i, n: task.progress((i, n)))
                    else:
                        stream = api.summarize_chapter(library, book_id, engine, key, should_cancel=task.is_cancelled)
                    for piece in stream:
                        task.chunk(piece)
                        if task.is_cancelled():
                            break

            def chunk(text: str) -> None:
                parts.append(text)
                self.summaries.append_chunk(text)

            def progress(step) -> None:
                i, n = step
                self.summaries.show_status(f"Summarising chapter {i + 1} of {n} first…")

            self.summary_book_id = book_id
            self.summary_task = self.runner.start(
                "summary", job,
                on_chunk=chunk,
                on_progress=progress,
                on_done=lambda _r: self._summary_done(book_id, key, "".join(parts)),
                on_cancelled=lambda: self._summary_stopped(book_id),
                on_failed=lambda message: self._summary_failed(book_id, message),
                on_ended=self._summary_ended,
            )

        self._when_engine_ready("summary", start, lambda _msg: self.summaries.end(None))

    def _summary_done(self, book_id, key: int, text: str) -> None:
        if str(book_id) != str(self.book_id):
            self.summaries.end(None)
            return
        stored, outdated = self._load_summaries()  # a book summary also stores the chapter summaries it made
        self.summaries.set_stored(stored, outdated)
        self.summaries.end(stored.get(key) or text)
        self.status("Summary saved.")

    def _summary_stopped(self, book_id) -> None:
        """Stopped or failed: a whole-book summary may have stored chapter summaries first; show them."""
        if str(book_id) == str(self.book_id):
            self.summaries.set_stored(*self._load_summaries())
        self.summaries.end(None)

    def _summary_failed(self, book_id, message: str) -> None:
        self._summary_stopped(book_id)
        self.show_error(message)

    def _summary_ended(self) -> None:
        self.summary_task = self.summary_book_id = None
        self._remove_if_pending()

    def stop_summary(self) -> None:
        if self.summary_task is not None:
            self.summary_task.cancel()
        elif self._queued.pop("summary", None) is not None:  # still waiting for the model
            self.summaries.end(None)

    def export_summaries(self, path: str | None = None) -> str | None:
        if self.book_id is None or self.library is None:
            return None
        if not path:
            suggested = str(Path.home() / f"{self.book_title or 'book'} - summaries.md")
            path, _ = QFileDialog.getSaveFileName(self, "Export summaries", suggested, "Markdown (*.md)")
            if not path:
                return None
        try:
            text = self.backend.api.export_markdown(self.library, self.book_id)
            write_text_atomically(path, text)  # a failed write leaves an existing file as it was
        except OSError as error:
            self.show_error(f"The summaries could not be written to {path}: {error.strerror or error}.")
            return None
        except Exception as error:  # noqa: BLE001
            self.show_error(str(error))
            return None
        self.status(f"Summaries exported to {path}.")
        return path

    # ------------------------------------------------------------------ settings
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.engine_config, self.current_data_dir(), self)
        if dialog.exec():
            self.apply_settings(dialog.engine_config(), dialog.chosen_data_dir())

    def current_data_dir(self) -> str:
        return self.data_dir_override or self.settings.data_dir or ""

    def apply_settings(self, config: EngineConfig, data_dir: str) -> None:
        busy = [t for t in self.runner.tasks if t.name in ("ingest", "ask", "summary", "engine", "add")
                and not t.finished.is_set()]
        engine_changed = config != self.engine_config
        dir_changed = (data_dir or "") != (self.current_data_dir() or "")
        if (engine_changed or dir_changed) and busy:
            self.show_error("Infinibook is busy reading or writing; cancel or wait for it, then change the settings.")
            return
        if dir_changed and not self._switch_library(data_dir):
            return
        if engine_changed:
            old_fingerprint = self.engine_info.get("fingerprint") if self.engine is not None else None
            self.engine_config = config
            self._unsaved_engine_config = True  # a model that fails to load is not tried again at every start
            self.engine = None
            self._show_engine_state()
            self._after_engine_reload = lambda: self._offer_reread(old_fingerprint)
            self.ensure_engine()

    def _switch_library(self, data_dir: str) -> bool:
        """Open the library in `data_dir`, then close the old one (its connection and WAL files).
        If it cannot be opened, the old library, its open book and the settings stay as they were."""
        library = self._open_library_at(data_dir)
        if library is None:
            return False
        self.reader.flush_position()
        for task in self.runner.running("position"):  # they write to the old library: let them finish
            task.finished.wait(5)
        old, self.library = self.library, library
        self.settings.data_dir = data_dir
        self.settings.sync()
        self.data_dir_override = None  # the person chose a folder: it wins over --data-dir
        self.book_id = None
        self._show_library()
        if old is not None:
            old.close()
        return True

    def _offer_reread(self, old_fingerprint) -> None:
        new = self.engine_info.get("fingerprint")
        if self.book_id is None or not self.stale:
            if old_fingerprint and new and old_fingerprint != new:
                self.status("The new settings change the memory: books read before must be re-read.")
            return
        if self.confirm("Re-read the book?",
                        f"The book's memory was made with other settings (model, segment length or update rule). "
                        f"“{self.book_title}” must be re-read to answer with the new ones. Re-read it now?"):
            self.start_ingest(restart=True)

    # ------------------------------------------------------------------ closing
    def _remove_pending_on_closing(self) -> None:
        for book_id in sorted(self._pending_remove):
            try:
                self.library.remove_book(book_id)
            except Exception:  # noqa: BLE001
                log.exception("removing a book on closing")
                continue
            if str(self.book_id) == book_id:
                self.book_id = None
        self._pending_remove.clear()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.hide()  # at once, even while the work still running takes a moment to stop
        self.reader._save_timer.stop()
        self._closing = True
        self.runner.cancel_all()
        ended = self.runner.wait(20000, skip=("engine",))  # loading a model cannot be cancelled; its result is ignored
        if self.library is not None and self.book_id is not None and self.reader.current >= 0:
            try:
                self.library.set_position(self.book_id, self.reader.current, self.reader.offset())
            except Exception:  # noqa: BLE001
                log.exception("saving the reading position")
        if ended:  # removals the person confirmed, which waited for that work to stop
            self._remove_pending_on_closing()
        self.settings.set_geometry(self.saveGeometry())
        self.settings.set_splitter_state("splitter", self.splitter.saveState())
        self.settings.remember_book(self.book_id, self.current_data_dir())
        self.settings.sync()
        super().closeEvent(event)
