"""The reading bar: progress of an ingest with tokens/s, ETA and Cancel."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class IngestBar(QWidget):
    read_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFormat("%p%")
        self.bar.setMinimumWidth(220)
        self.read_button = QPushButton("Read the book")
        self.read_button.clicked.connect(self.read_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.read_button)
        layout.addWidget(self.cancel_button)
        self._stopping = False
        self.idle("")

    def idle(self, text: str, *, button: str | None = None) -> None:
        self._stopping = False
        self.label.setText(text)
        self.bar.setVisible(False)
        self.cancel_button.setVisible(False)
        self.read_button.setVisible(bool(button))
        if button:
            self.read_button.setText(button)

    def running(self, text: str) -> None:
        self._stopping = False
        self.label.setText(text)
        self.bar.setVisible(True)
        self.cancel_button.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.read_button.setVisible(False)

    def stopping(self, text: str) -> None:
        """After Cancel: progress still arriving moves the bar but keeps this text, Cancel disabled."""
        self._stopping = True
        self.label.setText(text)
        self.cancel_button.setEnabled(False)

    def show_event(self, ev, book_title: str = "") -> None:
        total = max(int(getattr(ev, "tokens_total", 0) or 0), 1)
        done = int(getattr(ev, "tokens_done", 0) or 0)
        self.bar.setValue(int(1000 * min(done, total) / total))
        if self._stopping:
            return
        chapter = int(getattr(ev, "chapter_index", 0) or 0)
        chapters = int(getattr(ev, "chapters_total", 0) or 0)
        title = getattr(ev, "chapter_title", "") or ""
        rate = float(getattr(ev, "tokens_per_s", 0) or 0)
        eta = getattr(ev, "eta_s", None)
        prefix = f"Reading {book_title!s} — " if book_title else "Reading — "
        self.running(
            f"{prefix}chapter {chapter + 1} of {chapters}: {title}  ·  {done:,} / {total:,} tokens"
            f"  ·  {rate:,.0f} tokens/s  ·  ETA {format_eta(eta)}"
        )
