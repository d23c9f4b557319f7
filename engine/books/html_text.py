"""(X)HTML to plain text that keeps paragraph breaks, drops script/style, and remembers where
each element id starts so a file can be split at TOC `#fragment` anchors.

XML is parsed only after `check_xml_safety` has refused external entities, parameter
entities and entities that expand other entities (billion laughs); the parser itself never
touches the network or loads DTDs.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree, html

from engine.errors import BookError

from .limits import MAX_XML_ENTITIES, MAX_XML_ENTITY_VALUE

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)
_ENTITY_FORM = re.compile(
    rb"<!ENTITY\s+(%\s*)?[^\s%\"'>]+\s+(?:(SYSTEM|PUBLIC)\b|\"([^\"]*)\"|'([^']*)')",
    re.I,
)


# Byte patterns of "<?" or "<" in UTF-32/UTF-16, with or without a byte-order mark (XML 1.0
# appendix F): a parser reads such files as text, so the safety check must too.
_WIDE_ENCODINGS = (
    (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16"), (b"\xff\xfe", "utf-16"), (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"),
)
_CHARACTER_REFERENCE = re.compile(rb"&#(?:x[0-9a-f]+|[0-9]+);", re.I)


def _scannable(data: bytes) -> bytes:
    """The document as UTF-8, so that an entity declaration cannot hide in a wide encoding."""
    for prefix, encoding in _WIDE_ENCODINGS:
        if data.startswith(prefix):
            return data.decode(encoding, errors="replace").encode("utf-8")
    return data


def check_xml_safety(data: bytes, name: str) -> None:
    """Refuse XML that could read local files or the network, or expand exponentially."""
    data = _scannable(data)
    if not _ENTITY_DECL.search(data):
        return
    count = 0
    for decl in _ENTITY_DECL.finditer(data):
        count += 1
        m = _ENTITY_FORM.match(data, decl.start())
        if m is None or m.group(1) or m.group(2):
            raise BookError(
                f"The book contains XML ('{name}') that tries to load outside files or web "
                "addresses (external entities), which is unsafe; Infinibook will not open it."
            )
        value = m.group(3) if m.group(3) is not None else m.group(4)
        # A character reference (<!ENTITY nbsp "&#160;">, common in EPUBs) expands nothing.
        expands = b"&" in _CHARACTER_REFERENCE.sub(b"", value) or b"%" in value
        if expands or len(value) > MAX_XML_ENTITY_VALUE or count > MAX_XML_ENTITIES:
            raise BookError(
                f"The book contains XML ('{name}') built to expand into huge amounts of data "
                "(an 'XML bomb'), which is unsafe; Infinibook will not open it."
            )


def _xml_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities="internal",  # never external ones, even if one got past check_xml_safety
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


_DECLARED_CHARSET = re.compile(rb"""<\?xml[^>]{0,200}?encoding=["']([\w.:-]{1,40})["']|"""
                               rb"""<meta[^>]{0,300}?charset=["']?([\w.:-]{1,40})""", re.I)


def _declared_encoding(data: bytes) -> str:
    """The charset a page that is not UTF-8 names (XML declaration or <meta>), else the web's
    default, windows-1252, which is also what pages labelled Latin-1 really use."""
    for prefix, encoding in _WIDE_ENCODINGS:
        if data.startswith(prefix):
            return encoding
    m = _DECLARED_CHARSET.search(data[:4096])
    name = (m.group(1) or m.group(2)).decode("ascii").lower() if m else ""
    try:
        name = codecs.lookup(name).name if name else "cp1252"
    except LookupError:
        name = "cp1252"
    return "cp1252" if name in ("latin-1", "iso8859-1", "ascii", "utf-8") else name


def _html_parser(data: bytes) -> html.HTMLParser:
    """libxml2's HTML parser assumes UTF-8 or Latin-1 and ignores an XML declaration's encoding:
    tell it the charset, or every accent and curly quote comes out garbled."""
    try:
        data.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = _declared_encoding(data)
    options = {"no_network": True, "remove_comments": True, "remove_pis": True}
    try:
        return html.HTMLParser(encoding=encoding, **options)
    except LookupError:  # a charset Python knows and libxml2 does not
        return html.HTMLParser(encoding="cp1252", **options)


def parse_markup(data: bytes, name: str) -> etree._Element | None:
    """XML first (XHTML), HTML parser as the fallback for tag soup; None if nothing parses."""
    check_xml_safety(data, name)
    try:
        return etree.fromstring(data, _xml_parser())
    except (etree.XMLSyntaxError, ValueError):
        pass
    try:
        return html.document_fromstring(data, parser=_html_parser(data))
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None


_BLOCK = {
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details",
    "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1",
    "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "li", "main", "nav", "ol", "p",
    "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul", "html",
}
_CELL = {"td", "th"}
_SKIP = {"script", "style", "head", "noscript", "template", "title", "object", "embed", "iframe"}
_SPACE = re.compile(r"[ \t\r\n\f\v\u00a0\u200b]+")
_EPUB_TYPE = "{http://www.idpf.org/2007/ops}type"
# What a footnote reference shows: "1", "[12]", "(iv)", "*", "†", "a". Glued to the word it follows
# ("sea12"), it would reach the memory as a different word.
_NOTE_MARKER = re.compile(r"[\[(]?(?:\d{1,4}|[*\u2020\u2021\u00a7\u00b6]{1,3}|[a-z]|[ivxlc]{1,6})[\])]?", re.I)
_NOTE_CLASSES = {"fnanchor", "noteref", "footnote-ref", "footnoteref", "footnote-reference", "fn-ref", "note-ref"}


def _local(tag: object) -> str | None:
    if not isinstance(tag, str):
        return None
    return tag.rsplit("}", 1)[-1].lower()


def _is_note_reference(el: etree._Element, tag: str) -> bool:
    """A footnote's mark in the running text (the link to the note, not the note itself).

    Marked so by EPUB 3 (epub:type="noteref"), DPUB-ARIA (role="doc-noteref") or a usual class
    (Project Gutenberg's "fnanchor"); else an in-book link showing only a marker that is raised
    (in or around <sup>) or bracketed: "[12]", "<sup>3</sup>". The note's own text is kept.
    """
    if tag != "a" and tag != "sup":
        return False
    if "noteref" in el.get(_EPUB_TYPE, "").split() or "doc-noteref" in el.get("role", "").split():
        return True
    if tag == "sup":  # <sup><a href="#n3">3</a></sup>: the raised mark around a link
        links = [child for child in el if _local(child.tag) == "a"]
        return len(links) == 1 and not (el.text or "").strip() and _is_note_reference(links[0], "a")
    href = el.get("href", "")
    if "#" not in href or "://" in href:
        return False
    if _NOTE_CLASSES & set(el.get("class", "").lower().split()):
        return True
    marker = "".join(el.itertext()).strip()
    if not _NOTE_MARKER.fullmatch(marker):
        return False
    raised = _local(getattr(el.getparent(), "tag", None)) == "sup" or any(_local(c.tag) == "sup" for c in el)
    return raised or marker[0] in "[("


class _Writer:
    """Collects text with at most one blank line between blocks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.pending = ""  # "", " ", "\n" or "\n\n" owed before the next text
        self.pending_ids: list[str] = []
        self.anchors: dict[str, int] = {}
        self.at_line_start = True

    def brk(self, kind: str) -> None:
        if self.length == 0:
            return
        if len(kind) > len(self.pending) or self.pending == " ":
            self.pending = kind

    def anchor(self, ident: str) -> None:
        if ident not in self.anchors:
            self.pending_ids.append(ident)

    def text(self, s: str, pre: bool = False) -> None:
        s = s.replace("\u00ad", "")  # soft hyphens (`&shy;`): invisible, but they cut words into odd tokens
        if not s:
            return
        if not pre:
            s = _SPACE.sub(" ", s)
            if s.startswith(" "):
                if not self.at_line_start and self.length:
                    self.brk(" ")
                s = s.lstrip(" ")
            trailing = s.endswith(" ")
            s = s.rstrip(" ")
            if not s:
                return
        else:
            trailing = False
        if self.pending and self.length:
            self._emit(self.pending)
        self.pending = ""
        for ident in self.pending_ids:
            self.anchors.setdefault(ident, self.length)
        self.pending_ids.clear()
        self._emit(s)
        if trailing:
            self.pending = " "

    def _emit(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)
        self.at_line_start = s.endswith("\n")

    def result(self) -> tuple[str, dict[str, int]]:
        for ident in self.pending_ids:
            self.anchors.setdefault(ident, self.length)
        return "".join(self.parts), self.anchors


def element_text(root: etree._Element) -> tuple[str, dict[str, int]]:
    """Plain text of a document and the text offset at which each id'd element begins."""
    w = _Writer()
    skip_until: etree._Element | None = None
    pre_depth = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        if skip_until is not None:
            if event == "end" and el is skip_until:
                skip_until = None
                w.text(el.tail or "", pre_depth > 0)
            continue
        tag = _local(el.tag)
        if event == "start":
            if tag is None:
                continue
            if tag in _SKIP or el.get(_EPUB_TYPE, "").find("pagebreak") >= 0 or _is_note_reference(el, tag):
                skip_until = el
                if ident := el.get("id"):
                    w.anchor(ident)
                continue
            if ident := el.get("id"):
                w.anchor(ident)
            if tag == "a" and (nm := el.get("name")):
                w.anchor(nm)
            if tag in _BLOCK:
                w.brk("\n\n")
            elif tag == "br":
                w.brk("\n")
            elif tag in _CELL:
                w.brk(" ")
            if tag == "pre":
                pre_depth += 1
            w.text(el.text or "", pre_depth > 0)
        else:
            if tag is not None:
                if tag == "pre":
                    pre_depth = max(0, pre_depth - 1)
                if tag in _BLOCK:
                    w.brk("\n\n")
            w.text(el.tail or "", pre_depth > 0)
    return w.result()


def first_heading(root: etree._Element) -> str | None:
    """Text of the first h1-h3, for files no table of contents names."""
    for el in root.iter():
        if _local(el.tag) in ("h1", "h2", "h3"):
            text = " ".join("".join(el.itertext()).split())
            if text:
                return text
    return None


def html_to_text(data: bytes, name: str) -> tuple[str, dict[str, int], str | None]:
    """Plain text, id -> offset anchors, and the first heading of one (X)HTML document."""
    root = parse_markup(data, name)
    if root is None:
        return "", {}, None
    text, anchors = element_text(root)
    return text, anchors, first_heading(root)
