"""XML safety and decoding of (X)HTML chapters (engine/books/html_text.py)."""

import pytest
from lxml import etree

from engine.books.html_text import _xml_parser, check_xml_safety, html_to_text
from engine.errors import BookError

_EXTERNAL = (
    '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE html [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>&x;</p></body></html>'
)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-16", "utf-32"])
def test_an_external_entity_in_a_wide_encoding_is_refused_with_or_without_a_byte_order_mark(encoding: str) -> None:
    with pytest.raises(BookError, match="outside files"):
        check_xml_safety(_EXTERNAL.encode(encoding), "c.xhtml")


def test_the_parser_leaves_external_entities_unresolved_even_past_the_check() -> None:
    try:
        root = etree.fromstring(_EXTERNAL.encode("utf-16"), _xml_parser())
    except etree.XMLSyntaxError:
        return  # refused outright: the file was not read either
    assert "root:" not in "".join(root.itertext())


def test_an_entity_that_is_only_a_character_reference_is_accepted() -> None:
    page = (
        b'<?xml version="1.0" encoding="utf-8"?><!DOCTYPE html [<!ENTITY nbsp "&#160;"><!ENTITY mdash "&#x2014;">]>'
        b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>She&nbsp;waited &mdash; and left.</p></body></html>'
    )
    text, _, _ = html_to_text(page, "c.xhtml")
    assert text == "She waited \u2014 and left."


def test_an_entity_that_expands_another_is_still_a_bomb() -> None:
    page = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><d>&b;</d>'
    with pytest.raises(BookError, match="XML bomb"):
        check_xml_safety(page, "c.xhtml")


def test_tag_soup_in_utf8_without_a_declared_charset_keeps_its_accents() -> None:
    page = "<html><body><p>\u201cDon\u2019t go,\u201d she said. Caf\u00e9 &nbsp; na\u00efve.<p>Next</body></html>"
    text, _, _ = html_to_text(page.encode("utf-8"), "c.html")
    assert "\u201cDon\u2019t go,\u201d she said. Caf\u00e9" in text and "na\u00efve" in text


def test_tag_soup_in_latin1_is_still_read() -> None:
    text, _, _ = html_to_text("<html><body><p>Caf\u00e9 &nbsp; ok<p>x</body></html>".encode("latin-1"), "c.html")
    assert "Caf\u00e9" in text


@pytest.mark.parametrize("declaration, head", [
    ('<?xml version="1.0" encoding="windows-1252"?>\n', ""),
    ('<?xml version="1.0" encoding="ISO-8859-1"?>\n', ""),  # labelled Latin-1, written in cp1252 (curly quotes)
    ("", '<head><meta charset="windows-1252"/></head>'),
    ("", ""),  # no charset named: the web's default, windows-1252
])
def test_tag_soup_in_a_legacy_charset_keeps_accents_and_curly_quotes(declaration: str, head: str) -> None:
    # `&nbsp;` without a DTD makes the XML parse fail, so the HTML parser reads it
    page = (declaration + f'<html xmlns="http://www.w3.org/1999/xhtml">{head}<body>'
            "<p>\u201cIt\u2019s a caf\u00e9,\u201d&nbsp;she said.</p></body></html>").encode("cp1252")
    text, _, _ = html_to_text(page, "c.xhtml")
    assert "\u201cIt\u2019s a caf\u00e9,\u201d she said." in text


def test_tag_soup_in_koi8_r_named_by_its_declaration() -> None:
    page = ('<?xml version="1.0" encoding="koi8-r"?>\n<html><body><p>\u041f\u0440\u0438\u0432\u0435\u0442,&nbsp;'
            "\u043c\u0438\u0440.</p></body></html>").encode("koi8-r")
    text, _, _ = html_to_text(page, "c.xhtml")
    assert "\u041f\u0440\u0438\u0432\u0435\u0442" in text and "\u043c\u0438\u0440." in text


def test_tag_soup_in_a_charset_libxml2_does_not_know_is_still_read() -> None:
    page = ('<?xml version="1.0" encoding="mac-roman"?>\n<html><body><p>Caf\u00e9&nbsp;ok.</p></body></html>'
            ).encode("mac-roman")
    text, _, _ = html_to_text(page, "c.xhtml")  # read as windows-1252: one letter off, not a refusal
    assert text.startswith("Caf") and text.endswith("ok.")


_OPS = 'xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"'


@pytest.mark.parametrize("reference", [
    '<a epub:type="noteref" href="#n1">1</a>',  # EPUB 3
    '<a role="doc-noteref" href="#n1">*</a>',  # DPUB-ARIA
    '<a id="FNanchor_1_1" href="#Footnote_1_1" class="fnanchor">[1]</a>',  # Project Gutenberg
    '<sup><a href="notes.xhtml#n12" id="r12">12</a></sup>',
    '<a href="notes.xhtml#n12"><sup>12</sup></a>',
    '<a href="#n4">[iv]</a>',
])
def test_a_footnote_mark_is_not_glued_to_the_word_before_it(reference: str) -> None:
    page = f'<html {_OPS}><body><p>The sea{reference} was calm.</p><aside epub:type="footnote" id="n1"><p>Calm indeed.</p></aside></body></html>'
    text, _, _ = html_to_text(page.encode(), "c.xhtml")
    assert text == "The sea was calm.\n\nCalm indeed."


def test_links_and_raised_text_that_are_not_footnote_marks_stay() -> None:
    page = (f'<html {_OPS}><body><p>See <a href="#ch2">chapter 2</a>, <a href="#p3">3</a>, x<sup>2</sup>, the '
            '1<sup>st</sup> and <a href="https://example.org/#a"><sup>1</sup></a>.</p></body></html>')
    text, _, _ = html_to_text(page.encode(), "c.xhtml")
    assert text == "See chapter 2, 3, x2, the 1st and 1."
