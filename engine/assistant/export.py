"""A book's notes (summaries and conversation) as one Markdown document."""

from __future__ import annotations

import re

SUPERSEDED_NOTE = ("Possibly out of date: written before one of the chapter summaries it was built from "
                   "was regenerated.")
OTHER_MEMORY_NOTE = ("Possibly out of date: written from a memory made with other settings (model, segment "
                     "length or update rule) than the book's memory now.")


def _quote_heading(text: str) -> str:
    return " ".join(text.split()) or "Untitled"


# A line that would be a heading even inside a quote: `# ...`, or a setext underline (`===`, `---`).
_HEADING_LINE = re.compile(r"^( {0,3})(#|=+\s*$|-+\s*$)")


def _blockquote(text: str, empty: str) -> str:
    """`text` as a Markdown blockquote, every line behind `> ` (blank ones as `>`) with heading
    marks escaped: a summary or message holding `# ...`, `---` or indentation reads as written
    and cannot add sections or headings to the document."""
    lines = (text.strip("\n").rstrip() or empty).splitlines()
    escaped = (_HEADING_LINE.sub(r"\1\\\2", line) for line in lines)
    return "\n".join(f"> {line}" if line.strip() else ">" for line in escaped)


def chapter_name(idx: int, title: str | None) -> str:
    """A chapter's display name, e.g. Chapter 3: The Storm (a title that already says so stays as is)."""
    title = _quote_heading(title or "")
    number = idx + 1
    if title == "Untitled":
        return f"Chapter {number}"
    if re.match(rf"(chapter|ch\.|part|book|section)\b|{number}\b", title, re.I):
        return title
    return f"Chapter {number}: {title}"


def export_markdown(library, book_id: int) -> str:
    book = library.get_book(book_id)
    chapters = {c.idx: c for c in library.chapter_sizes(book_id)}
    summaries = library.summaries(book_id)
    by_chapter = {s.chapter_idx: s for s in summaries}
    lines = [f"# {_quote_heading(book.title)}", ""]
    author = (book.author or "").strip()
    if author:
        lines += [f"*{author}*", ""]
    lines += ["Notes exported from Infinibook.", ""]

    memory = library.ingest_progress(book_id).fingerprint  # the book was re-read with other settings since?

    def notes_on(summary) -> list[str]:
        if memory and summary.fingerprint and summary.fingerprint != memory:
            return [f"*{OTHER_MEMORY_NOTE}*", ""]
        if summary.superseded:  # a whole-book summary built from chapter summaries replaced since
            return [f"*{SUPERSEDED_NOTE}*", ""]
        return []

    whole = by_chapter.get(None)
    if whole is not None:
        lines += ["## Summary of the whole book", "", *notes_on(whole), _blockquote(whole.text, "(empty)"), ""]

    chapter_summaries = sorted((s for s in summaries if s.chapter_idx is not None), key=lambda s: s.chapter_idx)
    if chapter_summaries:
        lines += ["## Chapter summaries", ""]
        for summary in chapter_summaries:
            chapter = chapters.get(summary.chapter_idx)
            lines += [f"### {chapter_name(summary.chapter_idx, chapter.title if chapter else None)}", "",
                      *notes_on(summary), _blockquote(summary.text, "(empty)"), ""]

    messages = library.messages(book_id)
    if messages:
        lines += ["## Conversation", ""]
        for message in messages:
            if message.role == "user":
                chapter = chapters.get(message.as_of_chapter)
                as_of = ""
                if message.as_of_chapter is not None:
                    as_of = f" (as of {chapter_name(message.as_of_chapter, chapter.title if chapter else None)})"
                lines += [f"**You**{as_of}:", "", _blockquote(message.content, "(empty)"), ""]
            else:
                lines += ["**Infinibook**:", "", _blockquote(message.content, "(no answer)"), ""]
    if whole is None and not chapter_summaries and not messages:
        lines += ["No summaries or conversation yet.", ""]
    return "\n".join(lines).rstrip() + "\n"
