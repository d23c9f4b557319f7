"""Plain text and Markdown: encoding detection, then chapters from headings or by position."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import charset_normalizer

from engine.errors import BookError

from .limits import MAX_CHAPTERS, MAX_TEXT_BYTES, MIB
from .model import Book, Chapter
from .structure import (
    chapters_from_headings,
    clean_title,
    keyword_headings,
    markdown_headings,
    split_parts,
)

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG[^\n]*$", re.M | re.I)
_GUTENBERG_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG[^\n]*$", re.M | re.I)


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text without a BOM shows NUL bytes at every other position."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0) / (len(sample) / 2)
    odd = sample[1::2].count(0) / (len(sample) / 2)
    for ratio_ascii_side, enc in ((odd, "utf-16-le"), (even, "utf-16-be")):
        other = even if enc == "utf-16-le" else odd
        if ratio_ascii_side > 0.3 and other < 0.05:
            text, few_bad = _despite_a_few_bad_bytes(data, enc)  # a file cut short ends in half a character
            return text if few_bad else None
    return None


_WESTERN = ("cp1252", "latin_1", "iso8859_15")


def _legacy_encoding(sample: bytes) -> str | None:
    """charset-normalizer's best guess; among equally good guesses, Western European wins
    (a few accented letters fit many code pages equally well)."""
    results = charset_normalizer.from_bytes(sample)
    best = results.best()
    if best is None or best.encoding is None:
        return None
    tied = {m.encoding for m in results if m.chaos == best.chaos and m.coherence == best.coherence}
    return next((enc for enc in _WESTERN if enc in tied), best.encoding)


def _despite_a_few_bad_bytes(data: bytes, encoding: str = "utf-8") -> tuple[str, bool]:
    """The text with each invalid sequence replaced, and whether there are few enough of them
    (at most one character in a thousand) to call it damaged text in `encoding` rather than text
    in another: a novel should not be refused over one stray byte."""
    text = data.decode(encoding, errors="replace")
    return text, text.count("\ufffd") <= max(1, len(text) // 1000)


def decode_text(data: bytes, name: str) -> str:
    """UTF-8, UTF-8 with BOM, UTF-16/32 (BOM or NUL pattern), then the best legacy guess;
    refuses binary data rather than producing garbage."""
    text: str | None = None
    for bom, enc in _BOMS:
        if data.startswith(bom):
            text, few_bad = _despite_a_few_bad_bytes(data[len(bom) :], enc)
            if not few_bad:
                raise BookError(f"'{name}' claims to be {enc.upper()} text but is not valid {enc.upper()}; re-save it as UTF-8 and add it again.")
            break
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _utf16_without_bom(data)
    if text is None:
        damaged, few_bad = _despite_a_few_bad_bytes(data)
        # Valid multi-byte characters outnumbering the bad bytes: UTF-8, not a legacy code page.
        if few_bad and len(data) - len(damaged) >= damaged.count("\ufffd"):
            text = damaged
    if text is None:
        if data.count(0) > len(data) // 1000:
            raise _not_text(name)
        encoding = _legacy_encoding(data[: 4 * MIB])
        if encoding is None and not few_bad:
            raise _not_text(name)
        try:
            text = damaged if encoding is None else data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            text = data.decode("cp1252", errors="replace")
    sample = text[:200_000]
    if sample and len(_CONTROL.findall(sample)) > max(2, len(sample) // 200):
        raise _not_text(name)
    return text


def _not_text(name: str) -> BookError:
    return BookError(
        f"'{name}' is not a book Infinibook can read (it is neither text nor an EPUB or PDF); "
        "check that you picked the right file."
    )


def _gutenberg(text: str) -> tuple[str, str | None, str | None]:
    """Strip Project Gutenberg's licence header/footer; take Title/Author from its header."""
    title = author = None
    start = _GUTENBERG_START.search(text, 0, 100_000)
    if start:
        header = text[: start.start()]
        if m := re.search(r"^Title:[ \t]*(.+)$", header, re.M):
            title = m.group(1).strip()
        if m := re.search(r"^Author:[ \t]*(.+)$", header, re.M):
            author = m.group(1).strip()
        text = text[start.end() :]
        end = _GUTENBERG_END.search(text)
        if end:
            text = text[: end.start()]
    return text, title, author


def _front_matter(text: str) -> tuple[str, str | None, str | None]:
    """YAML front matter (`---` ... `---`) in Markdown: title and author, removed from the text."""
    m = re.match(r"\A---[ \t]*\r?\n(.{0,10000}?)\r?\n(?:---|\.\.\.)[ \t]*\r?\n", text, re.S)
    if not m:
        return text, None, None
    block = m.group(1)
    title = author = None
    if t := re.search(r"^title:[ \t]*[\"']?(.+?)[\"']?[ \t]*$", block, re.M):
        title = t.group(1)
    if a := re.search(r"^author:[ \t]*[\"']?(.+?)[\"']?[ \t]*$", block, re.M):
        author = a.group(1)
    return text[m.end() :], title, author


def parse_text(path: Path, data: bytes, sha256: str, fmt: str) -> Book:
    name = path.name
    if len(data) > MAX_TEXT_BYTES:
        raise BookError(
            f"'{name}' is {len(data) // MIB} MB of text, more than the {MAX_TEXT_BYTES // MIB} MB "
            "Infinibook reads from one text file; split it into smaller files."
        )
    text = decode_text(data, name)
    # Soft hyphens are invisible line-break hints: left in, they cut words into odd tokens.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u00ad", "")
    text, title, author = _gutenberg(text)
    if fmt == "md":
        text, fm_title, fm_author = _front_matter(text)
        title, author = title or fm_title, author or fm_author
    if not text.strip():
        raise BookError(f"'{name}' contains no readable text; check that you picked the right file.")

    chapters: list[Chapter] = []
    md_heads, md_title = markdown_headings(text) if fmt == "md" else ([], None)
    kw_heads = keyword_headings(text)
    for heads in (md_heads, kw_heads) if fmt == "md" else (kw_heads,):
        if 2 <= len(heads) <= MAX_CHAPTERS:
            chapters = chapters_from_headings(text, heads)
            break
    if len(chapters) < 2:
        chapters = split_parts(text)
    if fmt == "md" and md_title and not title:
        title = md_title
    return Book(
        title=clean_title(title or path.stem.replace("_", " ")),
        author=clean_title(author or "Unknown author"),
        language=None,
        source_sha256=sha256,
        format=fmt,
        chapters=tuple(chapters),
    )
