"""The parsed book every other part of Infinibook works from."""

from __future__ import annotations

from dataclasses import dataclass, field


def storable(text: str | None) -> str | None:
    """Text SQLite can store as UTF-8: Python keeps a file name's undecodable bytes, and a broken
    PDF its half surrogate pairs, as lone surrogates, which no UTF-8 encoder accepts; each
    becomes U+FFFD (a complete pair becomes its character)."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


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
