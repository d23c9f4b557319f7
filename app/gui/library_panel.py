"""Library panel: the books with title, author and how much of each has been read."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


@dataclass
class BookRow:
    id: object
    title: str
    author: str
    chapters_done: int
    chapters_total: int
    stale: bool = False


class BookItemWidget(QWidget):
    def __init__(self, row: BookRow, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold; color: #1d1d1d;")
        self.title.setWordWrap(True)
        self.author = QLabel()
        self.author.setStyleSheet("color: #555;")
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(5)
        self.state = QLabel()
        self.state.setStyleSheet("color: #555; font-size: 11px;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 5, 6, 5)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.author)
        layout.addWidget(self.bar)
        layout.addWidget(self.state)
        self.set_row(row)

    def set_row(self, row: BookRow) -> None:
        self.row = row
        self.title.setText(row.title or "Untitled")
        self.author.setText(row.author or "Unknown author")
        self.bar.setRange(0, max(row.chapters_total, 1))
        self.bar.setValue(min(row.chapters_done, row.chapters_total))
        if row.stale:
            state = "memory from other settings: re-read"
        elif row.chapters_total and row.chapters_done >= row.chapters_total:
            state = f"read · {row.chapters_total} chapters in memory"
        elif row.chapters_done:
            state = f"read {row.chapters_done} of {row.chapters_total} chapters"
        else:
            state = f"not read yet · {row.chapters_total} chapters"
        self.state.setText(state)
        self.setToolTip(f"{row.title}\n{row.author}\n{state}")


class LibraryPanel(QWidget):
    book_selected = Signal(object)  # book id
    add_requested = Signal()
    remove_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setStyleSheet(
            "QListWidget::item { border-bottom: 1px solid #e4e4e4; }"
            "QListWidget::item:selected { background: #d7e7fb; }")
        self.list.currentItemChanged.connect(self._selected)
        add = QPushButton("Add book…")
        add.setToolTip("Add an EPUB, PDF, text or Markdown file (or drop files on the window).")
        add.clicked.connect(self.add_requested)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove)
        header = QLabel("<b>Library</b>")
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(header)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.widgets: dict[str, BookItemWidget] = {}

    def set_books(self, rows: list[BookRow], current=None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        self.widgets.clear()
        for row in rows:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, row.id)
            widget = BookItemWidget(row)
            hint = widget.sizeHint()
            item.setSizeHint(QSize(hint.width(), hint.height() + 2))
            self.list.addItem(item)
            self.list.setItemWidget(item, widget)
            self.widgets[str(row.id)] = widget
            if current is not None and str(row.id) == str(current):
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.remove_button.setEnabled(bool(rows))

    def update_progress(self, book_id, chapters_done: int, chapters_total: int | None = None,
                        stale: bool | None = None) -> None:
        widget = self.widgets.get(str(book_id))
        if widget is None:
            return
        row = widget.row
        row.chapters_done = chapters_done
        if chapters_total is not None:
            row.chapters_total = chapters_total
        if stale is not None:
            row.stale = stale
        widget.set_row(row)

    def select(self, book_id) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if str(item.data(Qt.ItemDataRole.UserRole)) == str(book_id):
                self.list.setCurrentItem(item)
                return

    def current_id(self):
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _selected(self, current, _previous) -> None:
        if current is not None:
            self.book_selected.emit(current.data(Qt.ItemDataRole.UserRole))

    def _remove(self) -> None:
        book_id = self.current_id()
        if book_id is not None:
            self.remove_requested.emit(book_id)
