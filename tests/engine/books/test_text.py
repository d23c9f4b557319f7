"""Plain text and Markdown: encodings, headings, parts, and format decided by content."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.books import detect_format, load_book

from .makebooks import build_pdf, lorem, simple_epub

NOVEL = (
    "The Tale of Two Tests\n\n"
    "Chapter 1\n\nIt was the best of times, señor, it was the worst of times.\n\n"
    + "More words of the first chapter. " * 20
    + "\n\nChapter 2\n\nSecond chapter opens here.\n\n"
    + "Words of the second chapter. " * 20
    + "\n\nChapter 12\n\nTwelfth opens, naïvely.\n"
)


def _titles(book) -> list[str]:  # noqa: ANN001
    return [c.title for c in book.chapters]


@pytest.mark.parametrize(
    "encoding, prefix",
    [("utf-8", b""), ("utf-8-sig", b""), ("utf-16", b""), ("utf-16-le", b""), ("utf-16-be", b""), ("cp1252", b"")],
)
def test_encodings(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    path = tmp_path / "novel.txt"
    path.write_bytes(prefix + NOVEL.encode(encoding))
    book = load_book(path)
    assert book.format == "txt"
    assert _titles(book) == ["Chapter 1", "Chapter 2", "Chapter 12"]
    assert book.chapters[0].text.startswith("Chapter 1\n\nIt was the best of times, señor")
    assert "naïvely" in book.chapters[2].text
    assert not book.chapters[0].text.startswith("\ufeff")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_cut_short_by_a_byte_is_read(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "novel.txt"
    path.write_bytes((NOVEL + "\nThe end.").encode(encoding)[:-1])
    book = load_book(path)
    assert _titles(book) == ["Chapter 1", "Chapter 2", "Chapter 12"]
    assert "naïvely.\n\nThe end" in book.chapters[2].text


def test_legacy_cyrillic_encoding(tmp_path: Path) -> None:
    text = "Глава 1\n\n" + "Это был лучший из времён, это был худший из времён. " * 40
    text = "CHAPTER I.\n\n" + text + "\n\nCHAPTER II.\n\n" + text
    path = tmp_path / "ru.txt"
    path.write_bytes(text.encode("cp1251"))
    book = load_book(path)
    assert "лучший из времён" in book.chapters[0].text
    assert [t[:11] for t in _titles(book)] == ["CHAPTER I. ", "CHAPTER II."]


def test_heading_styles_roman_books_and_subtitles(tmp_path: Path) -> None:
    body = "Plain prose line one.\nBook I read yesterday was fine.\n\n" * 5
    text = (
        "BOOK I\n\nCHAPTER I.\nThe Arrival\n\n" + body
        + "CHAPTER II. The Storm\n\n" + body
        + "BOOK II\n\nCHAPTER I.\n\nThe Return\n\n" + body
    )
    path = tmp_path / "b.txt"
    path.write_text(text)
    titles = _titles(load_book(path))
    assert titles == ["BOOK I — CHAPTER I. The Arrival", "CHAPTER II. The Storm", "BOOK II — CHAPTER I. The Return"]


def test_a_short_unnumbered_prologue_and_epilogue_are_chapters(tmp_path: Path) -> None:
    prologue = "The lighthouse keeper saw a ship with no lights. " * 20  # far below front-matter size
    body = "Ordinary chapter prose continues here. " * 30
    contents = "CONTENTS\n\nPrologue\n\nCHAPTER 1\n\nCHAPTER 2\n\nEpilogue\n\n"
    text = (f"A Title Page\n\n{contents}PROLOGUE\n\n{prologue}\n\nCHAPTER 1\n\n{body}\n\nCHAPTER 2\n\n{body}"
            f"\n\nEpilogue.\n\nAnd so it ended.\n")
    path = tmp_path / "b.txt"
    path.write_text(text)
    book = load_book(path)
    assert _titles(book) == ["PROLOGUE", "CHAPTER 1", "CHAPTER 2", "Epilogue."]
    assert "lighthouse keeper" in book.chapters[0].text and "And so it ended." in book.chapters[3].text
    # without numbered chapters, a lone word is no reason to cut the text
    path.write_text(f"PROLOGUE\n\n{prologue}\n\n{body}")
    assert len(load_book(path).chapters) == 1


def test_soft_hyphens_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "b.txt"
    path.write_text(NOVEL.replace("best of times", "best of ti\u00admes"), encoding="utf-8")
    text = load_book(path).chapters[0].text
    assert "best of times" in text and "\u00ad" not in text


def test_printed_contents_and_gutenberg_header_are_not_chapters(tmp_path: Path) -> None:
    contents = "CONTENTS\n\n" + "".join(f"CHAPTER {r}. A Title\n\n" for r in ("I", "II", "III"))
    body = "Some prose of reasonable length for a chapter body here. " * 10
    text = (
        "The Project Gutenberg eBook of Test\n\nTitle: Gutenberg Test\nAuthor: Jane Doe\n\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK TEST ***\n\n" + contents
        + "".join(f"CHAPTER {r}. A Title\n\nOpening of {r}. {body}\n\n" for r in ("I", "II", "III"))
        + "*** END OF THE PROJECT GUTENBERG EBOOK TEST ***\n\nLicence text " * 3
    )
    path = tmp_path / "pg.txt"
    path.write_text(text)
    book = load_book(path)
    assert (book.title, book.author) == ("Gutenberg Test", "Jane Doe")
    assert _titles(book) == ["CHAPTER I. A Title", "CHAPTER II. A Title", "CHAPTER III. A Title"]
    assert book.chapters[0].text.startswith("CHAPTER I. A Title\n\nOpening of I.")
    assert "Licence" not in book.chapters[-1].text


def test_markdown_headings_and_front_matter(tmp_path: Path) -> None:
    md = (
        "---\ntitle: \"Markdown Book\"\nauthor: Mark Down\n---\n"
        "# Markdown Book\n\nIntro line.\n\n## First Steps\n\nStep text.\n\n```\n## not a heading\n```\n\n"
        "## Second Steps\n\nMore text.\n"
    )
    path = tmp_path / "book.md"
    path.write_text(md)
    book = load_book(path)
    assert (book.format, book.title, book.author) == ("md", "Markdown Book", "Mark Down")
    assert _titles(book) == ["First Steps", "Second Steps"]
    assert "## not a heading" in book.chapters[0].text
    assert book.chapters[1].text.startswith("## Second Steps")


def test_text_without_headings_is_cut_into_parts_by_position(tmp_path: Path) -> None:
    para = "A sentence without any structure at all, repeated for length. " * 30
    path = tmp_path / "flat.txt"
    path.write_text("\n\n".join([para] * 100))
    book = load_book(path)
    n = len(book.chapters)
    assert n >= 3
    assert _titles(book)[0] == f"Part 1 of {n}" and _titles(book)[-1] == f"Part {n} of {n}"
    assert sum(len(c.text) for c in book.chapters) >= len(para) * 100 - 200


def test_long_single_line_text_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "one-line.txt"
    path.write_text("word " * 2_000_000)  # 10 MB, no newline
    start = time.perf_counter()
    book = load_book(path)
    assert time.perf_counter() - start < 10
    assert len(book.chapters) > 100


def test_format_is_decided_by_content_not_extension(tmp_path: Path) -> None:
    pdf = build_pdf(tmp_path / "real.pdf", [("Only Chapter", 0, lorem(3))])
    epub = simple_epub(tmp_path / "real.epub")
    (tmp_path / "pdf.txt").write_bytes(pdf.read_bytes())
    (tmp_path / "epub.pdf").write_bytes(epub.read_bytes())
    (tmp_path / "text.epub").write_text(NOVEL)
    assert detect_format(tmp_path / "pdf.txt") == "pdf"
    assert detect_format(tmp_path / "epub.pdf") == "epub"
    assert detect_format(tmp_path / "text.epub") == "txt"
    assert load_book(tmp_path / "epub.pdf").format == "epub"
    assert load_book(tmp_path / "pdf.txt").format == "pdf"
    assert _titles(load_book(tmp_path / "text.epub")) == ["Chapter 1", "Chapter 2", "Chapter 12"]


def test_text_that_mentions_pdf_or_starts_with_pk_is_text(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# Notes\n\nEvery PDF starts with %PDF-1.7, says the manual.\n")
    (tmp_path / "story.txt").write_text("PKD wrote it in 1968.\n\n" + NOVEL)
    (tmp_path / "junk.pdf").write_bytes(b"\x00\x01MacBinary\x00" + build_pdf(tmp_path / "real.pdf", [("Only", 0, lorem(2))]).read_bytes())
    assert detect_format(tmp_path / "notes.md") == "md"
    assert detect_format(tmp_path / "story.txt") == "txt"
    assert detect_format(tmp_path / "junk.pdf") == "pdf"


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_utf8_with_one_stray_byte_is_read_not_refused(tmp_path: Path, bom: bytes) -> None:
    data = NOVEL.encode("utf-8") * 40
    cut = len(data) // 2
    path = tmp_path / "novel.txt"
    path.write_bytes(bom + data[:cut] + b"\xff" + data[cut:])
    book = load_book(path)
    text = "".join(c.text for c in book.chapters)
    assert "señor" in text and "naïvely" in text and text.count("\ufffd") == 1


def test_legacy_text_with_many_accents_is_not_taken_for_damaged_utf8(tmp_path: Path) -> None:
    path = tmp_path / "fr.txt"
    path.write_bytes(("Chapitre 1\n\n" + "Il était une fois, à l'été, un café très animé. " * 60).encode("cp1252"))
    assert "Il était une fois, à l'été" in load_book(path).chapters[0].text


def test_markdown_with_many_code_fences_and_headings_is_fast_and_skips_fenced_headings(tmp_path: Path) -> None:
    path = tmp_path / "fences.md"
    chapters = "".join(f"## Heading {i}\n\nSome text {i}.\n\n" for i in range(4000))
    path.write_text("```\n```\n" * 40_000 + "```\n## Not a chapter\n```\n\n" + chapters)
    start = time.perf_counter()
    book = load_book(path)
    assert time.perf_counter() - start < 3  # fences x headings took 6.8 s here; now ~0.1 s
    assert "Not a chapter" not in _titles(book)
    assert _titles(book)[-1] == "Heading 3999"
