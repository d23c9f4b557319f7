"""Summaries side panel: per chapter and for the whole book; generate, regenerate, copy, export."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

BOOK = -1  # the whole-book summary's key in this panel (the engine uses None)
OUTDATED_NOTE = "Written with another model or settings than the current ones; press Regenerate to update it."
OUTDATED_BOOK_NOTE = ("Written with another model or settings than the current ones, or before one of the chapter "
                      "summaries it was built from was regenerated; press Regenerate to update it.")


def outdated_note(key: int) -> str:
    return OUTDATED_BOOK_NOTE if key == BOOK else OUTDATED_NOTE


class SummariesPanel(QWidget):
    generate_requested = Signal(int)  # chapter index, or BOOK
    stop_requested = Signal()
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.titles: list[str] = []
        self.chapters_read = 0
        self.texts: dict[int, str] = {}
        self.outdated: set[int] = set()  # keys of summaries made under another memory fingerprint
        self.generating: int | None = None
        self._buffer = ""

        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._show_current)
        self.view = QTextBrowser()
        self.view.setOpenExternalLinks(False)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(self._generate)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop_requested)
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self.copy_current)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save every summary of this book as one Markdown file.")
        self.export_button.clicked.connect(self.export_requested)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.list)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.title)
        bottom_layout.addWidget(self.view, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.export_button)
        bottom_layout.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)

        self._timer = QTimer(self)
        self._timer.setInterval(80)
        self._timer.timeout.connect(self._render)
        self._update_buttons()

    # --- content ------------------------------------------------------------------------
    def set_book(self, titles: list[str], texts: dict[int, str], chapters_read: int,
                 outdated: set[int] | frozenset[int] = frozenset()) -> None:
        """Another book: a summary being written for the previous one is no longer shown."""
        self._timer.stop()
        self.generating = None
        self._buffer = ""
        self.titles = list(titles)
        self.texts = dict(texts)
        self.outdated = set(outdated)
        self.chapters_read = chapters_read
        self._rebuild()

    def set_stored(self, texts: dict[int, str], outdated: set[int]) -> None:
        """The summaries the library holds now; outdated ones stay readable but are not marked current."""
        self.texts.update(texts)
        self.outdated = set(outdated)
        self._rebuild()

    def set_chapters_read(self, n: int) -> None:
        if n != self.chapters_read:
            self.chapters_read = n
            self._rebuild()

    def _key(self, row: int) -> int:
        return BOOK if row <= 0 else row - 1

    def _row(self, key: int) -> int:
        return 0 if key == BOOK else key + 1

    def _label(self, key: int) -> str:
        return "Whole book" if key == BOOK else f"{key + 1}. {self.titles[key]}"

    def _rebuild(self) -> None:
        row = max(self.list.currentRow(), 0)
        self.list.blockSignals(True)
        self.list.clear()
        if self.titles:
            for key in [BOOK, *range(len(self.titles))]:
                mark = "    " if key not in self.texts else "↻ " if key in self.outdated else "✓ "
                item = QListWidgetItem(mark + self._label(key))
                if key in self.texts and key in self.outdated:
                    item.setToolTip(outdated_note(key))
                readable = self._can_generate(key)
                if not readable and key not in self.texts:
                    item.setForeground(self.palette().mid())
                self.list.addItem(item)
            self.list.setCurrentRow(min(row, self.list.count() - 1))
        self.list.blockSignals(False)
        self._show_current()

    def select(self, key: int) -> None:
        self.list.setCurrentRow(self._row(key))

    def current_key(self) -> int:
        return self._key(self.list.currentRow())

    def _show_current(self, *_args) -> None:
        if not self.titles:
            self.title.setText("")
            self.view.setMarkdown("")
            self._update_buttons()
            return
        key = self.current_key()
        self.title.setText(self._label(key))
        if self.generating == key:
            self.view.setMarkdown(self._buffer or "*Writing…*")
        elif key in self.outdated and key in self.texts:
            self.view.setMarkdown(f"*{outdated_note(key)}*\n\n---\n\n{self.texts[key]}")
        elif key in self.texts:
            self.view.setMarkdown(self.texts[key])
        elif key == BOOK and self._can_generate(BOOK):
            self.view.setMarkdown("*No summary of the whole book yet.* Press **Generate**: chapter summaries "
                                  "still missing are written first.")
        elif key == BOOK:
            self.view.setMarkdown(f"*A summary of the whole book needs the whole book in memory* "
                                  f"({self.chapters_read} of {len(self.titles)} chapters read so far).")
        elif key < self.chapters_read:
            self.view.setMarkdown("*No summary of this chapter yet.* Press **Generate**.")
        else:
            self.view.setMarkdown("*This chapter has not been read yet.*")
        self._update_buttons()

    def _update_buttons(self) -> None:
        key = self.current_key() if self.titles else None
        busy = self.generating is not None
        can = key is not None and self._can_generate(key)
        self.generate_button.setText("Regenerate" if key in self.texts else "Generate")
        self.generate_button.setEnabled(bool(can) and not busy)
        self.stop_button.setVisible(busy)
        self.copy_button.setEnabled(key in self.texts)
        self.export_button.setEnabled(bool(self.texts))

    def _can_generate(self, key: int) -> bool:
        if key == BOOK:
            return bool(self.titles) and self.chapters_read >= len(self.titles)
        return key < self.chapters_read

    def show_status(self, text: str) -> None:
        """A line shown while a summary is being prepared (e.g. chapter summaries made first)."""
        if self.generating is not None and not self._buffer:
            self.view.setMarkdown(f"*{text}*")

    def _generate(self) -> None:
        if self.titles and self.generating is None:
            self.generate_requested.emit(self.current_key())

    def copy_current(self) -> None:
        text = self.texts.get(self.current_key())
        if text:
            QGuiApplication.clipboard().setText(text)

    # --- streaming -----------------------------------------------------------------------
    def begin(self, key: int) -> None:
        self.generating = key
        self._buffer = ""
        self.select(key)
        self._show_current()
        self._timer.start()

    def append_chunk(self, text: str) -> None:
        self._buffer += text

    def _render(self) -> None:
        if self.generating is not None and self.current_key() == self.generating and self._buffer:
            self.view.setMarkdown(self._buffer)

    def end(self, text: str | None) -> None:
        self._timer.stop()
        key = self.generating
        self.generating = None
        if key is not None and text:
            self.texts[key] = text
            self.outdated.discard(key)
        self._rebuild()
        if key is not None:
            self.select(key)
