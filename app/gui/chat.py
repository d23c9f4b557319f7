"""Chat side panel: Markdown answers streaming in, an "as of chapter" selector, the stored conversation."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

RENDER_INTERVAL_MS = 60


class MessageBubble(QFrame):
    def __init__(self, role: str, text: str, header: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.setObjectName("bubble_user" if role == "user" else "bubble_assistant")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        color = "#e8f0fb" if role == "user" else "#f6f6f4"
        self.setStyleSheet(f"QFrame#{self.objectName()} {{ background: {color}; border: 1px solid #d9d9d9; border-radius: 8px; }}")
        self.header = QLabel(header)
        self.header.setStyleSheet("color: #666; font-size: 11px; border: none; background: transparent;")
        self.body = QLabel()
        self.body.setTextFormat(Qt.TextFormat.MarkdownText)
        self.body.setWordWrap(True)
        self.body.setOpenExternalLinks(False)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.setStyleSheet("border: none; background: transparent; color: #1d1d1d;")
        self.body.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 8)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(self.body)
        self.markdown = ""
        self.set_markdown(text)

    def set_markdown(self, text: str) -> None:
        self.markdown = text
        self.body.setText(text if text.strip() else "…")


class ChatPanel(QWidget):
    ask_requested = Signal(str, int)  # question, as-of chapter index
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.titles: list[str] = []
        self.chapters_read = 0
        self.stale = False
        self.bubbles: list[MessageBubble] = []
        self._streaming: MessageBubble | None = None
        self._buffer = ""
        self._dirty = False

        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.inner = QWidget()
        self.messages_layout = QVBoxLayout(self.inner)
        self.messages_layout.setContentsMargins(6, 6, 6, 6)
        self.messages_layout.setSpacing(8)
        self.empty_hint = QLabel(
            "Ask anything about the book. Answers only use the chapters up to the one chosen "
            "below, so nothing is spoiled.")
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setStyleSheet("color: #777; padding: 12px;")
        self.messages_layout.addWidget(self.empty_hint)
        self.messages_layout.addStretch(1)
        self.scroll.setWidget(self.inner)
        self.scroll.verticalScrollBar().rangeChanged.connect(self._stick_to_bottom)

        self.as_of = QComboBox()
        self.as_of.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.as_of.setMinimumContentsLength(18)
        self.as_of.setToolTip("Answers use the book's memory as of the end of this chapter: no spoilers beyond it.")
        self.input = QLineEdit()
        self.input.setPlaceholderText("Ask about the book…")
        self.input.returnPressed.connect(self._ask)
        self.ask_button = QPushButton("Ask")
        self.ask_button.setDefault(True)
        self.ask_button.clicked.connect(self._ask)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop_requested)
        self.stop_button.setVisible(False)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #8a6d00;")
        self.note.setVisible(False)

        as_of_row = QHBoxLayout()
        as_of_row.addWidget(QLabel("As of"))
        as_of_row.addWidget(self.as_of, 1)
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addWidget(self.ask_button)
        input_row.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.note)
        layout.addLayout(as_of_row)
        layout.addLayout(input_row)

        self._timer = QTimer(self)
        self._timer.setInterval(RENDER_INTERVAL_MS)
        self._timer.timeout.connect(self._render)
        self.as_of.currentIndexChanged.connect(self._update_note)

    # --- chapters and the as-of selector --------------------------------------------------
    def set_chapters(self, titles: list[str], chapters_read: int) -> None:
        self.titles = list(titles)
        current = self.as_of.currentIndex()
        self.as_of.blockSignals(True)
        self.as_of.clear()
        for i, title in enumerate(self.titles):
            self.as_of.addItem(f"{i + 1}. {title}", i)
        self.as_of.setCurrentIndex(min(max(current, 0), len(self.titles) - 1) if self.titles else -1)
        self.as_of.blockSignals(False)
        self.set_chapters_read(chapters_read)

    def set_chapters_read(self, n: int) -> None:
        self.chapters_read = n
        model = self.as_of.model()
        if isinstance(model, QStandardItemModel):
            for i in range(model.rowCount()):
                item = model.item(i)
                suffix = "" if i < n else "  (not read yet)"
                item.setText(f"{i + 1}. {self.titles[i]}{suffix}")
        self._update_note()

    def set_stale(self, stale: bool) -> None:
        self.stale = stale
        self._update_note()

    def follow_reader(self, chapter_idx: int) -> None:
        """The selector defaults to the chapter being read."""
        if 0 <= chapter_idx < self.as_of.count():
            self.as_of.setCurrentIndex(chapter_idx)

    def as_of_chapter(self) -> int:
        return self.as_of.currentIndex()

    def effective_as_of(self) -> int:
        """The chapter the memory can answer as of: the chosen one, or the last one read."""
        return min(self.as_of_chapter(), self.chapters_read - 1)

    def _update_note(self) -> None:
        chosen = self.as_of_chapter()
        if not self.titles:
            self.note.setVisible(False)
        elif self.stale:
            self.note.setText("The book's memory was made with other settings: re-read it to ask questions.")
            self.note.setVisible(True)
        elif self.chapters_read <= 0:
            self.note.setText("The book has not been read yet: start reading it to ask questions.")
            self.note.setVisible(True)
        elif chosen >= self.chapters_read:
            self.note.setText(f"Chapter {chosen + 1} is not read yet; answers use chapters 1–{self.chapters_read}.")
            self.note.setVisible(True)
        else:
            self.note.setVisible(False)
        self._update_buttons()

    # --- conversation --------------------------------------------------------------------
    def clear(self) -> None:
        """Also drops an answer being written: another book's conversation replaces this one."""
        self._timer.stop()
        self._drop(len(self.bubbles))
        self._streaming = None
        self._buffer = ""
        self._dirty = False
        self.empty_hint.setVisible(True)
        self._update_buttons()

    def _header(self, role: str, as_of: int | None) -> str:
        who = "You" if role == "user" else "Infinibook"
        if as_of is not None and as_of >= 0:
            return f"{who} · as of chapter {as_of + 1}"
        return who

    def add_message(self, role: str, text: str, as_of: int | None = None) -> MessageBubble:
        bubble = MessageBubble(role, text, self._header(role, as_of))
        self.messages_layout.insertWidget(self.messages_layout.count() - 1, bubble)
        self.bubbles.append(bubble)
        self.empty_hint.setVisible(False)
        return bubble

    def set_messages(self, messages: list[tuple[str, str, int | None]]) -> None:
        self.clear()
        for role, text, as_of in messages:
            self.add_message(role, text, as_of)

    def _ask(self) -> None:
        question = self.input.text().strip()
        if not question or self._streaming is not None or not self.titles:
            return
        self.ask_requested.emit(question, self.as_of_chapter())

    def begin_answer(self, question: str, as_of: int) -> None:
        self.input.clear()
        self.add_message("user", question, as_of)
        self._streaming = self.add_message("assistant", "", as_of)
        self._buffer = ""
        self._timer.start()
        self._update_buttons()

    def append_chunk(self, text: str) -> None:
        self._buffer += text
        self._dirty = True

    def _render(self) -> None:
        if self._dirty and self._streaming is not None:
            self._streaming.set_markdown(self._buffer)
            self._dirty = False

    def end_answer(self, note: str | None = None, *, if_blank: str | None = None) -> None:
        """Show the answer as it ended, with `note` under it (or `if_blank` when it said nothing)."""
        self._timer.stop()
        if self._streaming is not None:
            text = self._buffer
            note = note or (if_blank if not text.strip() else None)
            if note:
                text = (text + "\n\n" if text.strip() else "") + f"*{note}*"
            self._streaming.set_markdown(text)
        self._streaming = None
        self._dirty = False
        self._update_buttons()

    def withdraw_answer(self) -> None:
        """End an answer that failed; one that failed before its first piece (a question too
        long, say) stored nothing, so it leaves the conversation with its question, and the
        question goes back into the empty input field to be shortened or asked again."""
        if self._streaming is None or self._buffer.strip() or self.bubbles[-1] is not self._streaming:
            self.end_answer()
            return
        question = self.bubbles[-2].markdown  # begin_answer added the question, then the answer
        self._timer.stop()
        self._drop(2)
        self._streaming = None
        self._dirty = False
        self.empty_hint.setVisible(not self.bubbles)
        if not self.input.text().strip():
            self.input.setText(question)
        self._update_buttons()

    def _drop(self, count: int) -> None:
        """Remove the last `count` bubbles."""
        for bubble in self.bubbles[len(self.bubbles) - count:]:
            bubble.setParent(None)
            bubble.deleteLater()
        del self.bubbles[len(self.bubbles) - count:]

    @property
    def streaming(self) -> bool:
        return self._streaming is not None

    def _update_buttons(self) -> None:
        busy = self._streaming is not None
        self.stop_button.setVisible(busy)
        self.ask_button.setEnabled(not busy and self.chapters_read > 0)
        self.input.setEnabled(bool(self.titles))

    def _stick_to_bottom(self, _min: int, maximum: int) -> None:
        self.scroll.verticalScrollBar().setValue(maximum)

    def transcript(self) -> list[tuple[str, str]]:
        return [(b.role, b.markdown) for b in self.bubbles]
