"""EPUB 2 and 3: spine order, nav/NCX titles and fallbacks, fragments, non-linear items."""

from __future__ import annotations

from pathlib import Path

from engine.books import load_book

from .makebooks import Doc, Toc, chapter_body, epub_files, simple_epub, write_zip, xhtml


def _docs(n: int) -> list[Doc]:
    return [Doc(f"c{i}", f"text/ch{i}.xhtml", chapter_body(i, f"Heading {i}")) for i in range(1, n + 1)]


def _titles(book) -> list[str]:  # noqa: ANN001
    return [c.title for c in book.chapters]


def test_epub3_nav_gives_titles_metadata_and_text(tmp_path: Path) -> None:
    book = load_book(simple_epub(tmp_path / "b.epub", n=3, title="Moby Test", author="Herman T.", language="en-GB"))
    assert (book.title, book.author, book.language, book.format) == ("Moby Test", "Herman T.", "en-GB", "epub")
    assert _titles(book) == ["Chapter 1: Title 1", "Chapter 2: Title 2", "Chapter 3: Title 3"]
    for i, ch in enumerate(book.chapters, 1):
        assert ch.text.startswith(f"Chapter {i}: Title {i}\n\nFirst words of chapter {i}.")
        assert f"Chapter {i} paragraph 3" in ch.text
    assert len(book.source_sha256) == 64


def test_nav_preferred_over_ncx_when_both_exist(tmp_path: Path) -> None:
    files = epub_files(_docs(2), [Toc("Nav One", "text/ch1.xhtml"), Toc("Nav Two", "text/ch2.xhtml")])
    ncx_only = epub_files(_docs(2), [Toc("Ncx One", "text/ch1.xhtml"), Toc("Ncx Two", "text/ch2.xhtml")])
    files["OEBPS/toc.ncx"] = ncx_only["OEBPS/toc.ncx"]
    assert _titles(load_book(write_zip(tmp_path / "b.epub", files))) == ["Nav One", "Nav Two"]


def test_epub2_ncx(tmp_path: Path) -> None:
    toc = [Toc("The First", "text/ch1.xhtml"), Toc("The Second", "text/ch2.xhtml")]
    book = load_book(write_zip(tmp_path / "b.epub", epub_files(_docs(2), toc, version=2, nav=False)))
    assert _titles(book) == ["The First", "The Second"]
    assert book.chapters[1].text.startswith("Heading 2\n\nFirst words of chapter 2.")


def test_ncx_in_subfolder_resolves_hrefs_relative_to_itself(tmp_path: Path) -> None:
    toc = [Toc("A", "text/ch1.xhtml"), Toc("B", "text/ch2.xhtml")]
    files = epub_files(_docs(2), toc, version=2, nav=False, ncx_dir="nav/deep")
    assert _titles(load_book(write_zip(tmp_path / "b.epub", files))) == ["A", "B"]


def test_broken_nav_falls_back_to_ncx(tmp_path: Path) -> None:
    toc = [Toc("From NCX 1", "text/ch1.xhtml"), Toc("From NCX 2", "text/ch2.xhtml")]
    files = epub_files(_docs(2), toc)
    files["OEBPS/nav.xhtml"] = xhtml("<p>no nav element here</p>")
    assert _titles(load_book(write_zip(tmp_path / "b.epub", files))) == ["From NCX 1", "From NCX 2"]


def test_missing_ncx_file_falls_back_to_nav(tmp_path: Path) -> None:
    files = epub_files(_docs(2), [Toc("N1", "text/ch1.xhtml"), Toc("N2", "text/ch2.xhtml")])
    del files["OEBPS/toc.ncx"]
    assert _titles(load_book(write_zip(tmp_path / "b.epub", files))) == ["N1", "N2"]


def test_no_toc_at_all_uses_spine_and_headings(tmp_path: Path) -> None:
    files = epub_files(_docs(3), [], version=2, nav=False, ncx=False)
    assert _titles(load_book(write_zip(tmp_path / "b.epub", files))) == ["Heading 1", "Heading 2", "Heading 3"]


def test_spine_order_not_manifest_order(tmp_path: Path) -> None:
    docs = _docs(3)
    toc = [Toc(f"T{i}", f"text/ch{i}.xhtml") for i in (3, 1, 2)]
    files = epub_files(docs, toc, spine_order=["c3", "c1", "c2"])
    book = load_book(write_zip(tmp_path / "b.epub", files))
    assert _titles(book) == ["T3", "T1", "T2"]
    assert book.chapters[0].text.startswith("Heading 3")


def test_fragments_split_one_file_into_chapters(tmp_path: Path) -> None:
    body = "".join(chapter_body(i, f"Part {i}", anchor=f"sec{i}") for i in range(1, 4))
    docs = [Doc("front", "text/front.xhtml", "<h1>Welcome</h1><p>Opening words.</p>"), Doc("all", "text/all.xhtml", body)]
    toc = [Toc("Welcome", "text/front.xhtml")] + [Toc(f"Part {i}", f"text/all.xhtml#sec{i}") for i in range(1, 4)]
    book = load_book(write_zip(tmp_path / "b.epub", epub_files(docs, toc)))
    assert _titles(book) == ["Welcome", "Part 1", "Part 2", "Part 3"]
    for i in range(1, 4):
        text = book.chapters[i].text
        assert text.startswith(f"Part {i}\n\nFirst words of chapter {i}.")
        assert f"chapter {i + 1}." not in text  # no bleed into the next chapter


def test_fragment_chapter_runs_across_following_files(tmp_path: Path) -> None:
    docs = [
        Doc("a", "text/a.xhtml", chapter_body(1, "One", anchor="one") + chapter_body(2, "Two", anchor="two")),
        Doc("b", "text/b.xhtml", "<p>Continuation of two.</p>"),
        Doc("c", "text/c.xhtml", chapter_body(3, "Three")),
    ]
    toc = [Toc("One", "text/a.xhtml#one"), Toc("Two", "text/a.xhtml#two"), Toc("Three", "text/c.xhtml")]
    book = load_book(write_zip(tmp_path / "b.epub", epub_files(docs, toc)))
    assert _titles(book) == ["One", "Two", "Three"]
    assert "Continuation of two." in book.chapters[1].text
    assert "Continuation" not in book.chapters[2].text


def test_nonlinear_items_and_nav_in_spine_are_skipped(tmp_path: Path) -> None:
    docs = _docs(2) + [Doc("notes", "text/notes.xhtml", "<h1>Footnotes</h1><p>Secret footnote text.</p>", linear=False)]
    toc = [Toc("A", "text/ch1.xhtml"), Toc("B", "text/ch2.xhtml"), Toc("Notes", "text/notes.xhtml")]
    book = load_book(write_zip(tmp_path / "b.epub", epub_files(docs, toc, nav_in_spine=True)))
    assert _titles(book) == ["A", "B"]
    assert all("Secret footnote" not in c.text and "Contents" not in c.text[:20] for c in book.chapters)


def test_nested_toc_uses_top_level_and_single_root_is_unwrapped(tmp_path: Path) -> None:
    docs = _docs(4)
    parts = [
        Toc("Part I", "text/ch1.xhtml", [Toc("Sub 1", "text/ch1.xhtml"), Toc("Sub 2", "text/ch2.xhtml")]),
        Toc("Part II", "text/ch3.xhtml", [Toc("Sub 3", "text/ch3.xhtml"), Toc("Sub 4", "text/ch4.xhtml")]),
    ]
    book = load_book(write_zip(tmp_path / "a.epub", epub_files(docs, parts)))
    assert _titles(book) == ["Part I", "Part II"]
    assert "First words of chapter 2." in book.chapters[0].text
    single = [Toc("The Book", "text/ch1.xhtml", [Toc(f"Ch {i}", f"text/ch{i}.xhtml") for i in range(1, 5)])]
    book = load_book(write_zip(tmp_path / "b.epub", epub_files(docs, single, version=2, nav=False)))
    assert _titles(book) == ["Ch 1", "Ch 2", "Ch 3", "Ch 4"]


def test_html_to_text_keeps_paragraphs_drops_script_style(tmp_path: Path) -> None:
    body = (
        "<h1>Only</h1><p>One  line\n wrapped.</p><script>alert('x')</script><p>Two<br/>lines</p>"
        "<div><p>Nested <em>emphasis</em> here.</p></div><pre>  code\n    block</pre>"
    )
    docs = [Doc("c1", "text/ch1.xhtml", body), Doc("c2", "text/ch2.xhtml", chapter_body(2, "Next"))]
    book = load_book(write_zip(tmp_path / "b.epub", epub_files(docs, [Toc("Only", "text/ch1.xhtml"), Toc("Next", "text/ch2.xhtml")])))
    text = book.chapters[0].text
    assert text == "Only\n\nOne line wrapped.\n\nTwo\nlines\n\nNested emphasis here.\n\n  code\n    block"
    assert "alert" not in text and "margin" not in text


def test_quoted_hrefs_and_unknown_fragment(tmp_path: Path) -> None:
    docs = [Doc("c1", "text/chapter%20one.xhtml", chapter_body(1, "One")), Doc("c2", "text/ch2.xhtml", chapter_body(2, "Two"))]
    # the manifest href is URL-encoded; the file in the zip is "chapter one.xhtml"
    files = epub_files(docs, [Toc("One", "text/chapter%20one.xhtml"), Toc("Two", "text/ch2.xhtml#missing")])
    files["OEBPS/text/chapter one.xhtml"] = files.pop("OEBPS/text/chapter%20one.xhtml")
    book = load_book(write_zip(tmp_path / "b.epub", files))
    assert _titles(book) == ["One", "Two"]


def test_html_entities_and_tag_soup(tmp_path: Path) -> None:
    soup = "<html><body><h1>Soup</h1><p>Caf&eacute; &amp; more&nbsp;text<p>unclosed para</body></html>"
    ent = (
        '<?xml version="1.0"?><!DOCTYPE html [<!ENTITY author "Jane Q">]>'
        '<html xmlns="http://www.w3.org/1999/xhtml"><body><h1>Ent</h1><p>By &author;.</p></body></html>'
    )
    docs = [Doc("c1", "text/ch1.xhtml", ""), Doc("c2", "text/ch2.xhtml", "")]
    files = epub_files(docs, [Toc("Soup", "text/ch1.xhtml"), Toc("Ent", "text/ch2.xhtml")])
    files["OEBPS/text/ch1.xhtml"] = soup
    files["OEBPS/text/ch2.xhtml"] = ent
    book = load_book(write_zip(tmp_path / "b.epub", files))
    assert "Café & more text" in book.chapters[0].text
    assert "unclosed para" in book.chapters[0].text
    assert "By Jane Q." in book.chapters[1].text


def test_font_obfuscation_is_not_drm(tmp_path: Path) -> None:
    enc = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">'
        '<enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/>'
        '<enc:CipherData><enc:CipherReference URI="OEBPS/fonts/a.otf"/></enc:CipherData></enc:EncryptedData></encryption>'
    )
    files = epub_files(_docs(2), [Toc("A", "text/ch1.xhtml"), Toc("B", "text/ch2.xhtml")], extra={"META-INF/encryption.xml": enc, "OEBPS/fonts/a.otf": b"\x00font"})
    assert _titles(load_book(write_zip(tmp_path / "b.epub", files))) == ["A", "B"]


def test_ebooklib_written_epub(tmp_path: Path) -> None:
    """A book written by another tool (ebooklib's own writer)."""
    from ebooklib import epub

    b = epub.EpubBook()
    b.set_identifier("id1")
    b.set_title("Written Elsewhere")
    b.set_language("fr")
    b.add_author("Émile Writer")
    chapters = []
    for i in range(1, 4):
        c = epub.EpubHtml(title=f"Chapitre {i}", file_name=f"chap_{i}.xhtml", lang="fr")
        c.content = f"<h1>Chapitre {i}</h1><p>Début du chapitre {i}.</p>"
        b.add_item(c)
        chapters.append(c)
    b.toc = chapters
    b.add_item(epub.EpubNcx())
    b.add_item(epub.EpubNav())
    b.spine = ["nav", *chapters]
    path = tmp_path / "w.epub"
    epub.write_epub(str(path), b)
    book = load_book(path)
    assert (book.title, book.author, book.language) == ("Written Elsewhere", "Émile Writer", "fr")
    assert _titles(book) == ["Chapitre 1", "Chapitre 2", "Chapitre 3"]
    assert book.chapters[2].text.startswith("Chapitre 3\n\nDébut du chapitre 3.")


def test_soft_hyphens_do_not_reach_the_text(tmp_path: Path) -> None:
    docs = [Doc("c1", "text/ch1.xhtml", "<h1>One</h1><p>A won&#173;der&shy;ful day.</p>" + chapter_body(1, "")),
            Doc("c2", "text/ch2.xhtml", chapter_body(2, "Two"))]
    toc = [Toc("One", "text/ch1.xhtml"), Toc("Two", "text/ch2.xhtml")]
    book = load_book(write_zip(tmp_path / "b.epub", epub_files(docs, toc)))
    assert "A wonderful day." in book.chapters[0].text and "\u00ad" not in book.chapters[0].text
