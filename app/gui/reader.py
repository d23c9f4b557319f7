"""Reader: the chapter list from the book's own table of contents and the chapter text."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)


class ChapterList(QListWidget):
    pass


class ReaderPanel(QWidget):
    chapter_changed = Signal(int)
    position_changed = Signal(int, int)  # chapter index, character offset at the top of the view

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.chapters: list[dict] = []
        self.current = -1
        self.heading = QLabel()
        self.heading.setStyleSheet("font-size: 17px; font-weight: bold; padding: 4px 2px;")
        self.heading.setWordWrap(True)
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        font = QFont("DejaVu Serif")
        font.setStyleHint(QFont.StyleHint.Serif)
        font.setPointSizeF(11.5)
        self.text.setFont(font)
        self.text.document().setDocumentMargin(18)
        self.prev_button = QPushButton("◀ Previous")
        self.prev_button.clicked.connect(lambda: self.show_chapter(self.current - 1))
        self.next_button = QPushButton("Next ▶")
        self.next_button.clicked.connect(lambda: self.show_chapter(self.current + 1))
        self.where = QLabel()
        self.where.setStyleSheet("color: #666;")
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addStretch(1)
        nav.addWidget(self.where)
        nav.addStretch(1)
        nav.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.heading)
        layout.addWidget(self.text, 1)
        layout.addLayout(nav)

        self.toc = ChapterList()
        self.toc.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.toc.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.toc.setWordWrap(False)
        self.toc.currentRowChanged.connect(self.show_chapter)

        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(600)
        self._save_timer.timeout.connect(self._emit_position)
        self.text.verticalScrollBar().valueChanged.connect(lambda _v: self._save_timer.start())

    def set_chapters(self, chapters: list[dict], chapters_read: int = 0) -> None:
        self.chapters = chapters
        self.current = -1
        self.toc.blockSignals(True)
        self.toc.clear()
        for i, chapter in enumerate(chapters):
            label = chapter.get("label")
            text = f"{i + 1}. {chapter.get('title') or 'Chapter'}" + (f"   ({label})" if label else "")
            item = QListWidgetItem(text)
            item.setToolTip(text)
            self.toc.addItem(item)
        self.toc.blockSignals(False)
        self.set_chapters_read(chapters_read)
        if not chapters:
            self.heading.setText("")
            self.text.clear()
            self.where.setText("")

    def set_chapters_read(self, n: int) -> None:
        for i in range(self.toc.count()):
            item = self.toc.item(i)
            font = item.font()
            font.setItalic(i >= n)
            item.setFont(font)
            item.setForeground(self.palette().text() if i < n else self.palette().mid())

    def show_chapter(self, idx: int, offset: int = 0) -> None:
        if not (0 <= idx < len(self.chapters)):
            return
        changed = idx != self.current
        if changed:
            self.current = idx
            chapter = self.chapters[idx]
            title = chapter.get("title") or f"Chapter {idx + 1}"
            text = chapter.get("text") or ""
            self.heading.setText(title)
            # Most books repeat the chapter title at the top of its text: show it once.
            self.heading.setVisible(not text.lstrip().startswith(title.strip()))
            self.text.setPlainText(text)
            self.toc.blockSignals(True)
            self.toc.setCurrentRow(idx)
            self.toc.blockSignals(False)
            self.prev_button.setEnabled(idx > 0)
            self.next_button.setEnabled(idx < len(self.chapters) - 1)
            self.where.setText(f"Chapter {idx + 1} of {len(self.chapters)}")
        self.scroll_to_offset(offset)
        if changed:
            self.chapter_changed.emit(idx)
            self._save_timer.start()

    def scroll_to_offset(self, offset: int) -> None:
        def apply() -> None:
            bar = self.text.verticalScrollBar()
            if offset <= 0:
                bar.setValue(0)
                return
            cursor = QTextCursor(self.text.document())
            cursor.setPosition(min(offset, self.text.document().characterCount() - 1))
            rect = self.text.cursorRect(cursor)
            bar.setValue(bar.value() + rect.top() - 4)

        apply()
        QTimer.singleShot(0, apply)  # again once the document is laid out

    def offset(self) -> int:
        cursor = self.text.cursorForPosition(QPoint(4, 4))
        return cursor.position() if self.text.verticalScrollBar().value() > 0 else 0

    def _emit_position(self) -> None:
        if self.current >= 0:
            self.position_changed.emit(self.current, self.offset())

    def flush_position(self) -> None:
        self._save_timer.stop()
        self._emit_position()

