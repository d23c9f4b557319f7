"""What reading reports: progress events and a book's reading status (plain data, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import FingerprintMismatch


@dataclass(frozen=True)
class IngestEvent:
    """One step of reading a book into memory.

    `chapter_index` is 0-based; `tokens_done`/`tokens_total` count the whole book. One event
    follows every segment streamed and one (`finished_chapter=True`) every chapter saved.
    """

    chapter_index: int
    chapters_total: int
    chapter_title: str
    tokens_done: int
    tokens_total: int
    tokens_per_s: float
    eta_s: float | None
    finished_chapter: bool


@dataclass(frozen=True)
class ReadStatus:
    """How far a book has been read into memory under the current engine."""

    chapters_done: int
    chapters_total: int
    tokens_done: int
    stale: bool
    message: str

    @property
    def complete(self) -> bool:
        return not self.stale and self.chapters_total > 0 and self.chapters_done >= self.chapters_total


class StaleMemory(FingerprintMismatch):
    """The book was read with another model, adapter, segment length or update rule."""
