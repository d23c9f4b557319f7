"""EPUB 2 and 3 through ebooklib: spine order, chapter titles from the nav document or the
NCX, files split at the TOC's `#fragment` anchors.

Before ebooklib sees the file, the container is checked for zip bombs, path traversal, DRM
and hostile XML, so ebooklib only ever reads a bounded, trusted-shape archive.
"""

from __future__ import annotations

import posixpath
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from ebooklib import epub
from lxml import etree

from engine.errors import BookError

from .html_text import check_xml_safety, html_to_text
from .limits import FRONT_MATTER_MIN_CHARS, MAX_BOOK_CHARS, MAX_CHAPTERS, MIB
from .model import Book, Chapter
from .safezip import check_zip
from .structure import clean_title, non_space_len

_XMLISH = (".xml", ".opf", ".ncx", ".xhtml", ".html", ".htm", ".xht", ".svg", ".smil")
_DOC_TYPES = {"application/xhtml+xml", "text/html", "application/xml", "text/xml"}
_FONT_EXT = (".ttf", ".otf", ".woff", ".woff2", ".eot", ".pfb", ".pfm")
_XMLENC = "{http://www.w3.org/2001/04/xmlenc#}"
_MAX_TOC_DEPTH = 64


def _damaged(name: str, why: str) -> BookError:
    return BookError(f"'{name}' is a damaged EPUB ({why}); try another copy of the book.")


def _drm(name: str) -> BookError:
    return BookError(
        f"'{name}' is protected by DRM (its text is encrypted); Infinibook can only read "
        "DRM-free books, so use a DRM-free copy."
    )


def _check_drm(zf: zipfile.ZipFile, name: str) -> None:
    """encryption.xml that only obfuscates fonts is harmless; anything else encrypted is DRM."""
    names = set(zf.namelist())
    if "META-INF/encryption.xml" not in names:
        return
    data = zf.read("META-INF/encryption.xml")
    check_xml_safety(data, "META-INF/encryption.xml")
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    except etree.XMLSyntaxError as e:
        raise _drm(name) from e
    for ref in root.iter(f"{_XMLENC}CipherReference"):
        target = unquote(ref.get("URI", "")).lower()
        if not target.endswith(_FONT_EXT):
            raise _drm(name)


def precheck(zf: zipfile.ZipFile, name: str) -> None:
    """Everything that must hold before ebooklib decompresses a byte."""
    check_zip(zf, name)
    names = set(zf.namelist())
    if "META-INF/container.xml" not in names:
        raise _damaged(name, "it has no META-INF/container.xml")
    _check_drm(zf, name)
    for info in zf.infolist():
        if info.filename.lower().endswith(_XMLISH):
            check_xml_safety(zf.read(info), info.filename)


class _Reader(epub.EpubReader):
    """ebooklib's reader, tolerant of a broken nav or NCX so the other one can be used, and
    recording which one the TOC came from (their hrefs are relative to different folders)."""

    def __init__(self, path: str, ignore_ncx: bool) -> None:
        super().__init__(path, {"ignore_ncx": ignore_ncx})
        self.toc_source: str | None = None
        self.missing: set[str] = set()

    def read_file(self, name):  # noqa: ANN001
        # A missing image, font or NCX should not lose the book; a missing text document is
        # reported by the caller. The container and the package file stay mandatory.
        try:
            return super().read_file(name)
        except KeyError:
            normal = posixpath.normpath(name)
            if normal in ("META-INF/container.xml", posixpath.normpath(self.opf_file or "")):
                raise
            self.missing.add(normal)
            return b""

    def _parse_ncx(self, data):  # noqa: ANN001
        try:
            super()._parse_ncx(data)
            self.toc_source = "ncx" if self.book.toc else None
        except Exception:
            self.book.toc = []

    def _parse_nav(self, data, base_path, navtype="toc"):  # noqa: ANN001
        try:
            super()._parse_nav(data, base_path, navtype)
            if navtype == "toc":
                self.toc_source = "nav" if self.book.toc else None
        except Exception:
            if navtype == "toc":
                self.book.toc = []

    def _load_spine(self):
        try:
            super()._load_spine()  # the spine is set before the NCX is looked for
        except epub.EpubException:
            self.book.toc = []  # "Can not find ncx file": fall back to the nav or the spine
        except AttributeError:
            if not self.book.spine:
                raise
            self.book.toc = []


def _read(path: Path, ignore_ncx: bool) -> tuple[epub.EpubBook, str | None, _Reader]:
    reader = _Reader(str(path), ignore_ncx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = reader.load()
    return book, reader.toc_source, reader


@dataclass
class _Doc:
    file_name: str
    text: str
    anchors: dict[str, int]
    heading: str | None


@dataclass
class _Node:
    title: str
    href: str
    children: list[_Node] = field(default_factory=list)


def _nodes(toc: object, depth: int = 0) -> list[_Node]:
    """ebooklib's TOC (Links, Sections, (Section, children) pairs, nested lists) as a tree."""
    out: list[_Node] = []
    if depth > _MAX_TOC_DEPTH or not isinstance(toc, list | tuple):
        return out
    for entry in toc:
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], list | tuple):
            head, kids = entry
            out.append(_Node(str(getattr(head, "title", "") or ""), str(getattr(head, "href", "") or ""), _nodes(kids, depth + 1)))
        elif isinstance(entry, epub.Link | epub.Section):
            out.append(_Node(str(entry.title or ""), str(entry.href or "")))
        elif isinstance(entry, list):
            out.extend(_nodes(entry, depth + 1))
    return out


def _meta(ebook: epub.EpubBook, name: str) -> list[tuple[str, dict]]:
    try:
        return [(str(v).strip(), o or {}) for v, o in ebook.get_metadata("DC", name) if v and str(v).strip()]
    except Exception:
        return []


def _authors(ebook: epub.EpubBook) -> str:
    creators = _meta(ebook, "creator")
    authors = [v for v, o in creators if not any(k.endswith("role") and val != "aut" for k, val in o.items())]
    chosen = authors or [v for v, _ in creators]
    if not chosen:
        return "Unknown author"
    return ", ".join(dict.fromkeys(chosen[:4]))


def _spine_docs(ebook: epub.EpubBook, name: str, reader: _Reader) -> list[_Doc]:
    docs: list[_Doc] = []
    seen: set[str] = set()
    total = 0
    for entry in ebook.spine:
        idref, linear = (entry if isinstance(entry, tuple) else (entry, "yes"))[:2]
        item = ebook.get_item_with_id(idref)
        if item is None or str(linear).strip().lower() == "no":
            continue
        if isinstance(item, epub.EpubNav | epub.EpubCoverHtml) or "nav" in (getattr(item, "properties", None) or []):
            continue
        media = (item.media_type or "").lower()
        fname = posixpath.normpath(item.file_name or "")
        if media not in _DOC_TYPES and not fname.lower().endswith((".xhtml", ".html", ".htm", ".xht")):
            continue
        if fname in seen:
            continue
        seen.add(fname)
        full = posixpath.normpath(posixpath.join(reader.opf_dir or "", fname))
        if full in reader.missing:
            raise _damaged(name, f"the text file '{full[:80]}' it lists is missing")
        text, anchors, heading = html_to_text(item.content or b"", fname)
        total += len(text)
        if total > MAX_BOOK_CHARS:
            raise BookError(
                f"'{name}' holds more than {MAX_BOOK_CHARS // MIB} million characters of text, more "
                "than Infinibook reads from one book; split it into volumes."
            )
        docs.append(_Doc(fname, text, anchors, heading))
    return docs


def _resolve(href: str, base: str, index: dict[str, int], docs: list[_Doc], title: str) -> tuple[int, int] | None:
    """(doc index, text offset) an href points at, or None if not in the linear spine."""
    if not href:
        return None
    file_part, _, frag = href.partition("#")
    file_part = unquote(file_part)
    target = posixpath.normpath(posixpath.join(base, file_part)) if file_part else None
    if target is None or target not in index:
        if target is not None:
            # some tools write hrefs relative to the OPF even in a nested NCX
            alt = posixpath.normpath(file_part)
            if alt not in index:
                return None
            target = alt
        else:
            return None
    d = index[target]
    frag = unquote(frag)
    if not frag:
        return d, 0
    if frag in docs[d].anchors:
        return d, docs[d].anchors[frag]
    words = title.split()[:8]
    if words:
        m = re.search(r"\s+".join(re.escape(w) for w in words), docs[d].text, re.I)
        if m:
            return d, m.start()
    return d, 0


def _position(node: _Node, base: str, index: dict[str, int], docs: list[_Doc], depth: int = 0) -> tuple[int, int] | None:
    pos = _resolve(node.href, base, index, docs, node.title)
    if pos is None and depth < _MAX_TOC_DEPTH:
        for child in node.children:
            pos = _position(child, base, index, docs, depth + 1)
            if pos is not None:
                break
    return pos


def _slice(docs: list[_Doc], start: tuple[int, int], end: tuple[int, int] | None) -> str:
    d1, o1 = start
    d2, o2 = end if end is not None else (len(docs) - 1, len(docs[-1].text))
    if d1 == d2:
        return docs[d1].text[o1:o2].strip()
    parts = [docs[d1].text[o1:]]
    parts.extend(d.text for d in docs[d1 + 1 : d2])
    parts.append(docs[d2].text[:o2])
    return "\n\n".join(p.strip() for p in parts if p.strip())


def _toc_chapters(nodes: list[_Node], base: str, docs: list[_Doc]) -> list[Chapter]:
    # A single top-level entry (the book's own title) is not a chapter: use what it contains.
    while len(nodes) == 1 and nodes[0].children:
        nodes = nodes[0].children
    index = {d.file_name: i for i, d in enumerate(docs)}
    entries: list[tuple[tuple[int, int], str]] = []
    for node in nodes[: MAX_CHAPTERS]:
        pos = _position(node, base, index, docs)
        if pos is not None:
            entries.append((pos, clean_title(node.title or docs[pos[0]].heading or "Untitled")))
    entries.sort(key=lambda e: e[0])
    unique: list[tuple[tuple[int, int], str]] = []
    for pos, title in entries:
        if unique and unique[-1][0] == pos:
            continue
        unique.append((pos, title))
    chapters: list[Chapter] = []
    if unique and unique[0][0] != (0, 0):
        front = _slice(docs, (0, 0), unique[0][0])
        if non_space_len(front) >= FRONT_MATTER_MIN_CHARS:
            chapters.append(Chapter("Front matter", front))
    for i, (pos, title) in enumerate(unique):
        end = unique[i + 1][0] if i + 1 < len(unique) else None
        text = _slice(docs, pos, end)
        if text:
            chapters.append(Chapter(title, text))
    return chapters


def parse_epub(path: Path, sha256: str) -> Book:
    name = path.name
    try:
        with zipfile.ZipFile(path) as zf:
            precheck(zf, name)
    except zipfile.BadZipFile as e:
        raise _damaged(name, "the ZIP container is broken or truncated") from e
    except (NotImplementedError, zipfile.LargeZipFile) as e:
        raise _damaged(name, "it uses a ZIP compression method Infinibook cannot unpack") from e

    try:
        ebook, source, reader = _read(path, ignore_ncx=True)  # EPUB 3: the nav document
        if source is None:
            fallback = _read(path, ignore_ncx=False)  # EPUB 2 (or a broken nav): the NCX
            if fallback[1] is not None:
                ebook, source, reader = fallback
    except KeyError as e:
        raise _damaged(name, "a file its package lists is missing") from e
    except epub.EpubException as e:
        raise _damaged(name, "its package file (OPF) is missing") from e
    except (AttributeError, TypeError, IndexError, ValueError, etree.LxmlError) as e:
        raise _damaged(name, "its package file (OPF) is unreadable") from e

    docs = _spine_docs(ebook, name, reader)
    if not any(d.text.strip() for d in docs):
        raise BookError(
            f"'{name}' contains no readable text (its reading order lists no text documents); "
            "it may be damaged, image-only or not really an EPUB."
        )
    chapters: list[Chapter] = []
    if source is not None:
        base = ""
        if source == "ncx":
            ncx = next((i for i in ebook.get_items() if isinstance(i, epub.EpubNcx)), None)
            base = posixpath.dirname(posixpath.normpath(ncx.file_name)) if ncx is not None else ""
            base = "" if base == "." else base
        chapters = _toc_chapters(_nodes(ebook.toc), base, docs)
    with_text = [d for d in docs if d.text.strip()]
    if len(chapters) < 2 and len(with_text) >= 2:
        # No usable table of contents: one chapter per document in the reading order.
        chapters = [
            Chapter(clean_title(d.heading or f"Section {i}"), d.text.strip())
            for i, d in enumerate(with_text[:MAX_CHAPTERS], 1)
        ]
    if not chapters:
        chapters = [Chapter(clean_title(with_text[0].heading or "Text"), "\n\n".join(d.text.strip() for d in with_text))]

    titles = _meta(ebook, "title")
    language = _meta(ebook, "language")
    return Book(
        title=clean_title(titles[0][0] if titles else path.stem.replace("_", " ")),
        author=clean_title(_authors(ebook)),
        language=language[0][0] if language else None,
        source_sha256=sha256,
        format="epub",
        chapters=tuple(chapters),
    )
