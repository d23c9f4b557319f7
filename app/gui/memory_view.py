"""Memory view: the book's fixed-size memory next to the KV cache it replaces."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QFormLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

MEMORY_COLOR = QColor("#2f7dd1")
KV_COLOR = QColor("#d1482f")


def human_bytes(n: float) -> str:
    """Decimal (SI) units, so the plot's powers of ten read 1 MB, 10 MB, 100 MB."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            if unit == "B":
                return f"{n:.0f} B"
            return f"{n:.0f} {unit}" if abs(n) >= 100 or n == int(n) else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_tokens(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    if n >= 1000:
        return f"{n / 1e3:.1f}".rstrip("0").rstrip(".") + "k"
    return f"{int(n)}"


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 5 x 10^k) up to `maximum`."""
    if maximum <= 0:
        return [0.0]
    raw = maximum / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks, t = [], 0.0
    while t <= maximum * 1.0001:
        ticks.append(t)
        t += step
    return ticks


class MemoryPlot(QWidget):
    """Bytes (log scale) against tokens read: a flat line for the Infini memory, a rising one
    for the KV cache a plain transformer would need; chapter ends as ticks, the reading point
    as a vertical line. Drawn with QPainter (no QtCharts in PySide6-Essentials)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.memory_bytes = 0
        self.kv_per_token = 0
        self.tokens_total = 0
        self.tokens_done = 0
        self.chapter_ends: list[int] = []
        self.setMinimumHeight(220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_data(self, *, memory_bytes: int, kv_per_token: int, tokens_total: int, tokens_done: int,
                 chapter_ends: list[int]) -> None:
        self.memory_bytes = int(memory_bytes or 0)
        self.kv_per_token = int(kv_per_token or 0)
        self.tokens_total = int(tokens_total or 0)
        self.tokens_done = int(tokens_done or 0)
        self.chapter_ends = list(chapter_ends)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.base())
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        p.setFont(font)
        fm = p.fontMetrics()
        left, right, top, bottom = fm.horizontalAdvance("100 MB") + 14, 12, 26, fm.height() * 2 + 8
        plot = QRectF(left, top, max(10, self.width() - left - right), max(10, self.height() - top - bottom))
        text_pen = QPen(pal.text().color())
        grid_pen = QPen(pal.mid().color(), 1, Qt.PenStyle.DotLine)

        if not (self.memory_bytes and self.kv_per_token):
            p.setPen(text_pen)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Sizes appear once the model has loaded.")
            return

        x_max = max(self.tokens_total, self.tokens_done, 1000)
        y_lo_v = max(1.0, min(self.memory_bytes, self.kv_per_token * 100) / 4)
        y_hi_v = max(self.memory_bytes, self.kv_per_token * x_max) * 2
        y_lo, y_hi = math.floor(math.log10(y_lo_v)), math.ceil(math.log10(y_hi_v))
        if y_hi <= y_lo:
            y_hi = y_lo + 1

        def sx(tokens: float) -> float:
            return plot.left() + plot.width() * tokens / x_max

        def sy(nbytes: float) -> float:
            v = math.log10(max(nbytes, 10**y_lo))
            return plot.bottom() - plot.height() * (v - y_lo) / (y_hi - y_lo)

        # grid + y labels (powers of ten)
        for e in range(y_lo, y_hi + 1):
            y = sy(10**e)
            p.setPen(grid_pen)
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            p.setPen(text_pen)
            p.drawText(QRectF(0, y - fm.height() / 2, left - 6, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, human_bytes(10**e))
        # x labels at round numbers of tokens
        for t in nice_ticks(x_max):
            x = sx(t)
            p.setPen(text_pen)
            p.drawText(QRectF(x - 40, plot.bottom() + 3, 80, fm.height()), Qt.AlignmentFlag.AlignHCenter,
                       human_tokens(t))
        p.drawText(QRectF(plot.left(), plot.bottom() + fm.height() + 4, plot.width(), fm.height()),
                   Qt.AlignmentFlag.AlignHCenter, "tokens read")
        # chapter ticks
        p.setPen(QPen(pal.mid().color(), 1))
        for end in self.chapter_ends:
            x = sx(end)
            p.drawLine(QPointF(x, plot.bottom()), QPointF(x, plot.bottom() - 5))
        # tokens already read: shaded
        if self.tokens_done:
            shade = QColor(MEMORY_COLOR)
            shade.setAlpha(28)
            p.fillRect(QRectF(plot.left(), plot.top(), sx(self.tokens_done) - plot.left(), plot.height()), shade)
        # KV cache: bytes = per-token * tokens (a straight line on linear x, a curve on log y)
        path = QPainterPath()
        steps = 120
        for i in range(steps + 1):
            t = max(1.0, x_max * i / steps)
            pt = QPointF(sx(t), sy(self.kv_per_token * t))
            path.moveTo(pt) if i == 0 else path.lineTo(pt)
        p.setPen(QPen(KV_COLOR, 2.2))
        p.drawPath(path)
        # memory: flat
        p.setPen(QPen(MEMORY_COLOR, 2.6))
        y = sy(self.memory_bytes)
        p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        # reading point
        if self.tokens_done:
            x = sx(self.tokens_done)
            p.setPen(QPen(pal.text().color(), 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            for value, color in ((self.memory_bytes, MEMORY_COLOR), (self.kv_per_token * self.tokens_done, KV_COLOR)):
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(color)
                p.drawEllipse(QPointF(x, sy(value)), 4, 4)
        # frame + legend
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(pal.mid().color(), 1))
        p.drawRect(plot)
        lx = plot.left()
        for label, color in (("Infini memory (fixed)", MEMORY_COLOR), ("KV cache it replaces", KV_COLOR)):
            p.setPen(QPen(color, 3))
            p.drawLine(QPointF(lx, 12), QPointF(lx + 18, 12))
            p.setPen(text_pen)
            p.drawText(QPointF(lx + 24, 12 + fm.ascent() / 2 - 1), label)
            lx += 24 + fm.horizontalAdvance(label) + 18
        p.end()


class MemoryView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.memory_label = QLabel("–")
        self.kv_label = QLabel("–")
        self.ratio_label = QLabel("–")
        self.model_label = QLabel("–")
        self.model_label.setWordWrap(True)
        for label in (self.memory_label, self.kv_label, self.ratio_label):
            label.setTextFormat(Qt.TextFormat.RichText)
        form = QFormLayout()
        form.addRow("Book memory", self.memory_label)
        form.addRow("KV cache it replaces", self.kv_label)
        form.addRow("Saving", self.ratio_label)
        form.addRow("Model", self.model_label)
        self.plot = MemoryPlot()
        self.chapters = QListWidget()
        self.chapters.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.chapters_title = QLabel("<b>Chapters in memory</b>")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.chapters_title)
        layout.addWidget(self.chapters, 2)

    def update_view(self, *, info: dict, chapters: list, chapters_done: int, tokens_done: int,
                    stale: bool = False) -> None:
        memory = int(info.get("memory_bytes") or 0)
        kv_tok = int(info.get("kv_cache_bytes_per_token") or 0)
        token_counts = [int(c.get("n_tokens") or 0) for c in chapters]
        tokens_total = sum(token_counts)
        ends, acc = [], 0
        for n in token_counts:
            acc += n
            ends.append(acc)
        if not tokens_done and chapters_done:
            tokens_done = ends[min(chapters_done, len(ends)) - 1] if ends else 0
        kv = kv_tok * tokens_done
        self.memory_label.setText(f"<b style='color:{MEMORY_COLOR.name()}'>{human_bytes(memory)}</b>"
                                  " — the same for any length of book" if memory else "–")
        self.kv_label.setText(
            f"<b style='color:{KV_COLOR.name()}'>{human_bytes(kv)}</b> at {human_tokens(tokens_done)} tokens read"
            + (f"; {human_bytes(kv_tok * tokens_total)} for the whole book" if tokens_total else "")
            if kv_tok else "–")
        if memory and kv:
            self.ratio_label.setText(f"<b>{kv / memory:,.0f}×</b> smaller than the KV cache")
        else:
            self.ratio_label.setText("–")
        self.model_label.setText(info.get("model_name") or "not loaded yet")
        self.plot.set_data(memory_bytes=memory, kv_per_token=kv_tok, tokens_total=tokens_total,
                           tokens_done=tokens_done, chapter_ends=ends)
        self.chapters.clear()
        for i, chapter in enumerate(chapters):
            read = i < chapters_done
            mark = "✓" if read else "·"
            item = QListWidgetItem(f"{mark}  {i + 1}. {chapter.get('title') or 'Chapter'}")
            if not read:
                item.setForeground(self.palette().mid())
            self.chapters.addItem(item)
        done_text = f"{chapters_done} of {len(chapters)}"
        if stale:
            done_text += " — made by another model or settings: re-read to use it"
        self.chapters_title.setText(f"<b>Chapters in memory</b> ({done_text})")
