"""The parsed book every other part of Infinibook works from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chapter:
    """One chapter as the book's own table of contents names it; `label` is for display
    (e.g. the PDF page-label range "iii–xii")."""

    title: str
    text: str
    label: str | None = None


@dataclass(frozen=True)
class Book:
    """A whole book in reading order; `source_sha256` identifies the file in the library."""

    title: str
    author: str
    language: str | None
    source_sha256: str
    format: str  # "epub" | "pdf" | "txt" | "md"
    chapters: tuple[Chapter, ...] = field(default_factory=tuple)

    @property
    def n_chars(self) -> int:
        return sum(len(c.text) for c in self.chapters)
