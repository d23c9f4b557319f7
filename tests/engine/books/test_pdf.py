"""PDF: outline chapters (nested entries folded), page labels, heading detection, page
groups, encryption."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.books import load_book
from engine.errors import BookError

from .makebooks import build_pdf, form_pdf, lorem, set_page_labels


def _titles(book) -> list[str]:  # noqa: ANN001
    return [c.title for c in book.chapters]


def test_nested_outline_folds_sections_into_chapters_with_page_labels(tmp_path: Path) -> None:
    spec = [
        ("Preface", 0, lorem(3, "pre ")),
        ("Chapter 1 Beginnings", 0, lorem(25, "one ")),
        ("1.1 A section", 1, lorem(6, "onesec ")),
        ("1.2 Another section", 1, lorem(6, "onesec2 ")),
        ("Chapter 2 Middles", 0, lorem(12, "two ")),
        ("Chapter 3 Endings", 0, lorem(4, "three ")),
    ]
    path = build_pdf(tmp_path / "b.pdf", spec, title="Outlined", author="Olga Outline")
    set_page_labels(path, roman_pages=1)
    book = load_book(path)
    assert (book.title, book.author, book.format) == ("Outlined", "Olga Outline", "pdf")
    assert _titles(book) == ["Preface", "Chapter 1 Beginnings", "Chapter 2 Middles", "Chapter 3 Endings"]
    assert book.chapters[0].label == "i"
    assert book.chapters[1].label.startswith("1–")
    one = book.chapters[1].text
    assert one.startswith("Chapter 1 Beginnings") and "onesec2 paragraph 5" in one and "two paragraph" not in one
    assert book.chapters[2].text.startswith("Chapter 2 Middles")


def test_single_top_level_entry_uses_its_children(tmp_path: Path) -> None:
    spec = [("The Whole Book", 0, [])] + [(f"Chapter {i}", 1, lorem(8, f"c{i} ")) for i in range(1, 4)]
    book = load_book(build_pdf(tmp_path / "b.pdf", spec))
    assert _titles(book) == ["Chapter 1", "Chapter 2", "Chapter 3"]


def test_chapters_starting_mid_page_are_cut_at_their_title(tmp_path: Path) -> None:
    spec = [(f"Chapter {i} Topic {i}", 0, lorem(3, f"c{i} ")) for i in range(1, 5)]
    book = load_book(build_pdf(tmp_path / "b.pdf", spec, new_page_per_chapter=False))
    assert _titles(book) == [f"Chapter {i} Topic {i}" for i in range(1, 5)]
    for i, ch in enumerate(book.chapters, 1):
        assert ch.text.startswith(f"Chapter {i} Topic {i}")
        assert f"c{i + 1} paragraph" not in ch.text


def test_no_outline_detects_chapter_headings(tmp_path: Path) -> None:
    spec = [("CHAPTER I.", 0, lorem(10, "first ")), ("CHAPTER II.", 0, lorem(10, "second ")), ("CHAPTER III.", 0, lorem(3, "third "))]
    book = load_book(build_pdf(tmp_path / "b.pdf", spec, outline=False))
    assert [t.split()[:2] for t in _titles(book)] == [["CHAPTER", "I."], ["CHAPTER", "II."], ["CHAPTER", "III."]]
    assert book.chapters[1].text.startswith("CHAPTER II.")


def test_no_outline_no_headings_gives_page_groups_named_by_labels(tmp_path: Path) -> None:
    path = build_pdf(tmp_path / "b.pdf", [("Introduction to things", 0, lorem(260))], outline=False)
    set_page_labels(path, roman_pages=2)
    book = load_book(path)
    assert len(book.chapters) >= 2
    assert book.chapters[0].title == "Pages i–18" and book.chapters[0].label == "i–18"
    assert book.chapters[1].title.startswith("Pages 19–")


@pytest.mark.parametrize("method", ["RC4", "AES_128"])
def test_empty_password_pdf_is_decrypted(tmp_path: Path, method: str) -> None:
    from fpdf import FPDF
    from fpdf.enums import EncryptionMethod

    pdf = FPDF()
    for i in (1, 2):
        pdf.add_page()
        pdf.start_section(f"Part {i}")
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 6, f"Part {i}\n" + " ".join(lorem(3, f"p{i} ")))
    pdf.set_encryption(owner_password="owner", user_password="", encryption_method=getattr(EncryptionMethod, method))
    path = tmp_path / "enc.pdf"
    pdf.output(str(path))
    book = load_book(path)
    assert _titles(book) == ["Part 1", "Part 2"]
    assert book.chapters[1].text.startswith("Part 2")


def test_password_protected_pdf_is_refused(tmp_path: Path) -> None:
    path = build_pdf(tmp_path / "p.pdf", [("One", 0, lorem(3))], encrypt=("owner", "secret"))
    with pytest.raises(BookError, match="protected by a password"):
        load_book(path)


def test_hundred_page_pdf_is_fast(tmp_path: Path) -> None:
    import time

    spec = [(f"Chapter {i}", 0, lorem(14, f"c{i} ")) for i in range(1, 26)]
    path = build_pdf(tmp_path / "long.pdf", spec)
    start = time.perf_counter()
    book = load_book(path)
    assert len(book.chapters) == 25
    assert time.perf_counter() - start < 10


def test_running_heads_and_page_numbers_are_dropped(tmp_path: Path) -> None:
    from fpdf import FPDF

    class Running(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", size=8)
            self.cell(0, 8, "The Running Head Of This Book", new_x="LMARGIN", new_y="NEXT")

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", size=8)
            self.cell(0, 8, str(self.page_no()))

    pdf = Running()
    for i in (1, 2, 3):
        pdf.add_page()
        pdf.start_section(f"Chapter {i}")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, f"Chapter {i}\n" + "\n".join(lorem(12, f"c{i} ")), new_x="LMARGIN", new_y="NEXT")
    path = tmp_path / "running.pdf"
    pdf.output(str(path))
    book = load_book(path)
    assert _titles(book) == ["Chapter 1", "Chapter 2", "Chapter 3"]
    assert all("Running Head" not in c.text for c in book.chapters)
    assert all(c.text.startswith(f"Chapter {i}") for i, c in enumerate(book.chapters, 1))


def test_a_sentence_opening_with_i_at_a_page_edge_is_prose_not_a_numbered_running_head(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    for page in range(8):
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        lines = [f"{page + 24} The Long Road Home"]  # a running head with its page number
        lines.append("I don't know what you mean." if page in (2, 5) else f"Page {page} begins its own way.")
        lines += lorem(6, f"p{page} ")
        if page in (3, 6):
            lines.append("So did I")
        for line in lines:
            pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    path = tmp_path / "dialogue.pdf"
    pdf.output(str(path))
    text = "\n".join(c.text for c in load_book(path).chapters)
    assert text.count("I don't know what you mean.") == 2
    assert text.count("So did I") == 2
    assert "The Long Road Home" not in text


def test_words_hyphenated_at_line_ends_are_joined(tmp_path: Path) -> None:
    para = "The fox was an extra-\nordinarily clever animal that jum-\nped over the well-\nKnown dog, 1990-\n2000."
    path = build_pdf(tmp_path / "h.pdf", [("One", 0, [para] + lorem(3)), ("Two", 0, lorem(4))])
    text = load_book(path).chapters[0].text
    assert "extraordinarily clever" in text and "jumped over" in text
    assert "well-\nKnown" in text and "1990-\n2000" in text  # a capital or a digit after: kept as printed


def test_text_drawn_through_a_form_xobject_is_read(tmp_path) -> None:
    """The drawing counted for the size check: a form drawn once per page is a normal book."""
    book = load_book(form_pdf(tmp_path / "forms.pdf", pages=3, calls=1, form_kib=4))
    assert "".join(c.text for c in book.chapters).count("drawn through a form, line 29.") == 3
