"""PDF through pypdf: chapters from the outline, else from chapter headings on the pages,
else fixed page groups; page labels kept for display.

A chapter runs from its outline entry's page to the next entry's; when the next chapter
starts part-way down a page (its title found there after other text), the cut is made at
that line, so each chapter's text starts with its own first words.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PdfReadError
from pypdf.generic import ArrayObject, Destination, IndirectObject

from engine.errors import BookError

from .limits import (
    FRONT_MATTER_MIN_CHARS,
    MAX_BOOK_CHARS,
    MAX_OUTLINE_DEPTH,
    MAX_OUTLINE_ENTRIES,
    MAX_PDF_CONTENT_BYTES,
    MAX_PDF_CONTENT_RATIO,
    MAX_PDF_PAGES,
    MIB,
    PDF_CONTENT_RATIO_MIN_BYTES,
    PDF_PAGES_PER_PART,
)
from .model import Book, Chapter
from .structure import _KEYWORD_HEADING, Heading, _drop_printed_contents, clean_title, non_space_len

# pypdf reports recoverable damage through logging; without a handler Python's last-resort
# handler would print it on stderr next to our one-sentence error.
logging.getLogger("pypdf").addHandler(logging.NullHandler())

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffe\uffff]")
_PAGE_NUMBER = re.compile(r"^\s*(?:\d{1,5}|[ivxlcdm]{1,8})\s*$", re.I)


@dataclass
class _Node:
    title: str
    page: int | None
    children: list[_Node] = field(default_factory=list)


class _LogCapture(logging.Handler):
    """pypdf reports an outline cycle only as a log warning; catch it to refuse the file."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(str(record.msg))


def _damaged(name: str, why: str = "its structure is broken or truncated") -> BookError:
    return BookError(f"'{name}' is a damaged PDF ({why}); try another copy of the book.")


def _open(f, name: str) -> PdfReader:  # noqa: ANN001
    try:
        reader = PdfReader(f, strict=False)
    except (PdfReadError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise _damaged(name) from e
    if reader.is_encrypted:
        try:
            result = reader.decrypt("")
        except DependencyError as e:
            raise BookError(
                f"'{name}' is encrypted with a method this installation cannot undo (the "
                "'cryptography' package is missing); reinstall Infinibook with its dependencies."
            ) from e
        except (PdfReadError, ValueError, KeyError, TypeError, NotImplementedError) as e:
            raise _damaged(name, "its encryption settings are unreadable") from e
        if not result:
            raise BookError(
                f"'{name}' is protected by a password; open it in a PDF viewer with the password, "
                "save an unprotected copy, and add that copy."
            )
    return reader


def _labels(reader: PdfReader, n: int) -> list[str]:
    try:
        labels = [str(x) for x in reader.page_labels]
        if len(labels) == n:
            return labels
    except Exception:  # page labels are display sugar: a broken label tree is not fatal
        pass
    return [str(i + 1) for i in range(n)]


# A word hyphenated at a line's end, `jum-` / `ped`: joined when a lowercase letter goes on.
_LINE_END_HYPHEN = re.compile(r"(?<=[^\W\d_])[-\u00ad][ \t]*\n[ \t]*(?=[^\W\d_])")


def _join_hyphenated(match: re.Match) -> str:
    following = match.string[match.end()]
    return "" if following.islower() else match.group(0)


def _clean(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = _LINE_END_HYPHEN.sub(_join_hyphenated, text).replace("\u00ad", "")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _unpacks_too_far(name: str) -> BookError:
    return BookError(f"'{name}' has page content that unpacks to an unreasonable size (possibly a "
                     "hostile file); Infinibook will not open it.")


# "/Name Do": draw the XObject of that name (PDF 32000-1, 8.8); text extraction enters a form
# XObject at every such call, so a small form drawn many times costs its size each time.
_DRAW_XOBJECT = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s+Do\b")


def _key(ref) -> tuple[int, int] | int:  # noqa: ANN001
    """The identity of a PDF object: its number when indirect (what sharing goes by), else the
    Python object's, which lives as long as the reader (pypdf keeps pages and resolved objects)."""
    return (ref.idnum, ref.generation) if isinstance(ref, IndirectObject) else id(ref)


def _resources(holder, inherited=None):  # noqa: ANN001, ANN202
    """A page's or form's /Resources as stored (a reference when shared), else `inherited`."""
    return holder.raw_get("/Resources") if "/Resources" in holder else inherited


def _drawn_bytes(data: bytes, resources, memo: dict, active: set) -> int:  # noqa: ANN001
    """Bytes text extraction goes through to draw `data`: its own and, for every form XObject
    it draws, that form's drawn bytes again (once per call; each distinct form decoded once)."""
    total = len(data)
    names = _DRAW_XOBJECT.findall(data)
    xobjects = resources.get_object().get("/XObject") if names and resources is not None else None
    if xobjects is None:
        return total
    xobjects = xobjects.get_object()
    for name in names:
        key_name = "/" + name.decode("latin-1")
        ref = xobjects.raw_get(key_name) if key_name in xobjects else None
        form = ref.get_object() if ref is not None else None
        if form is None or form.get("/Subtype") != "/Form":
            continue
        key = (_key(ref), _key(resources))  # the same form under other resources draws other things
        if key in active:  # a form that draws itself: extraction skips the cycle
            continue
        if key not in memo:
            active.add(key)
            memo[key] = _drawn_bytes(form.get_data(), _resources(form, resources), memo, active)
            active.discard(key)
        total += memo[key]
    return total


def _content_bytes(page, memo: dict) -> int:  # noqa: ANN001
    """Decoded size of a page's content streams and of the form XObjects they draw; a stream
    shared by pages is decoded once."""
    contents = page.raw_get("/Contents") if "/Contents" in page else None
    if contents is None:
        return 0
    streams = contents.get_object()
    resources = _resources(page)
    total = 0
    for ref in (list(streams) if isinstance(streams, ArrayObject) else [contents]):
        key = (_key(ref), _key(resources))
        if key not in memo:
            memo[key] = _drawn_bytes(ref.get_object().get_data(), resources, memo, set())
        total += memo[key]
    return total


def _check_content_size(reader: PdfReader, name: str, file_bytes: int) -> None:
    """Refuse, before the slow text extraction, a PDF whose pages draw far more than it holds."""
    memo: dict = {}
    total = 0
    for page in reader.pages:
        try:
            total += _content_bytes(page, memo)
        except LimitReachedError as e:
            raise _unpacks_too_far(name) from e
        except Exception:  # noqa: BLE001  an unreadable page is the extraction's to skip
            continue
        if total > MAX_PDF_CONTENT_BYTES or (
                total > PDF_CONTENT_RATIO_MIN_BYTES and total > MAX_PDF_CONTENT_RATIO * file_bytes):
            raise _unpacks_too_far(name)


def _page_texts(reader: PdfReader, name: str) -> list[str]:
    texts: list[str] = []
    total = 0
    for page in reader.pages:
        try:
            text = page.extract_text() or ""
        except LimitReachedError as e:
            raise _unpacks_too_far(name) from e
        except FileNotDecryptedError as e:
            raise _damaged(name, "its encryption could not be undone") from e
        except Exception:  # one unreadable page must not lose the whole book
            text = ""
        text = _clean(text)
        total += len(text)
        if total > MAX_BOOK_CHARS:
            raise BookError(
                f"'{name}' holds more than {MAX_BOOK_CHARS // MIB} million characters of text, "
                "more than Infinibook reads from one book; split it into volumes."
            )
        texts.append(text)
    return texts


# Case-sensitive: a page number is arabic or lower-case roman; "I" opening a line is a pronoun.
_EDGE_NUMBER = re.compile(r"^(?:(?:\d+|[ivxlc]+)[.:]?)+\s+|\s+(?:(?:\d+|[ivxlc]+)[.:]?)+$")


_HEADING_WORDS = {"chapter", "part", "book", "volume", "section", "appendix", "contents", "index"}


def _head_key(line: str) -> tuple[str, str]:
    """A running head or foot without its page number, and that number:
    "24 Chapter 8. Storms" -> ("chapter 8. storms", "24")."""
    spaced = " ".join(line.split())
    if _PAGE_NUMBER.match(spaced):
        return "", spaced
    number = " ".join(m.group(0).strip() for m in _EDGE_NUMBER.finditer(spaced))
    return _EDGE_NUMBER.sub("", spaced).strip().lower(), number


def _strip_running_heads(texts: list[str]) -> list[str]:
    """Drop page numbers and running heads/feet (lines repeated at the top or bottom of three
    pages, or of two when they carry a page number), so chapter text reads continuously and
    headings are found."""
    if len(texts) < 6:
        return texts
    edges: list[list[int]] = []
    counts: dict[str, set[int]] = {}
    numbers: dict[str, set[str]] = {}  # the page numbers the line carried: they differ page to page
    split = [t.split("\n") for t in texts]
    for page, lines in enumerate(split):
        nonempty = [i for i, line in enumerate(lines) if line.strip()]
        chosen = sorted(set(nonempty[:2] + nonempty[-2:]))
        edges.append(chosen)
        for i in chosen:
            key, number = _head_key(lines[i])
            counts.setdefault(key, set()).add(page)
            if number:
                numbers.setdefault(key, set()).add(number)
    out = []
    for page, lines in enumerate(split):
        drop = set()
        for i in edges[page]:
            line = lines[i].strip()
            key, _ = _head_key(line)
            if (_KEYWORD_HEADING.match(line) and key) or key in _HEADING_WORDS:
                continue
            repeated = len(counts.get(key, ())) >= 3 or len(numbers.get(key, ())) >= 2
            if (key == "" and len(line) <= 8) or (len(key) >= 3 and repeated):
                drop.add(i)
        out.append("\n".join(line for i, line in enumerate(lines) if i not in drop).strip() if drop else texts[page])
    return out


def _outline(reader: PdfReader, name: str) -> list[_Node]:
    cycle = BookError(
        f"'{name}' has a corrupt table of contents (its outline loops back on itself or nests "
        f"deeper than {MAX_OUTLINE_DEPTH} levels); repair the PDF (for example by re-saving it "
        "with a PDF tool) and add it again."
    )
    capture = _LogCapture()
    logger = logging.getLogger("pypdf")
    logger.addHandler(capture)
    try:
        raw = reader.outline
    except (LimitReachedError, RecursionError) as e:
        raise cycle from e
    except Exception:  # an unreadable outline is no worse than none
        return []
    finally:
        logger.removeHandler(capture)
    if any("cycle" in m.lower() for m in capture.messages):
        raise cycle
    count = 0

    def tree(items: list, depth: int) -> list[_Node]:
        nonlocal count
        if depth > MAX_OUTLINE_DEPTH:
            raise cycle
        nodes: list[_Node] = []
        for item in items:
            if isinstance(item, list):
                kids = tree(item, depth + 1)
                if nodes:
                    nodes[-1].children.extend(kids)
                else:
                    nodes.extend(kids)
                continue
            count += 1
            if count > MAX_OUTLINE_ENTRIES:
                raise cycle
            if not isinstance(item, Destination):
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:
                page = None
            nodes.append(_Node(str(item.title or "").strip(), page if page is not None and page >= 0 else None))
        return nodes

    return tree(raw, 0)


def _first_page(node: _Node) -> int | None:
    if node.page is not None:
        return node.page
    for child in node.children:
        if (page := _first_page(child)) is not None:
            return page
    return None


def _title_offset(page_text: str, title: str) -> int:
    """Where a chapter titled `title` starts on its first page: the page start, unless the
    title appears after a substantial amount of other text (the previous chapter's end).
    A line holding just the title (optionally numbered) is preferred over the same words in
    running prose."""
    words = title.split()[:12]
    if not words:
        return 0
    body = r"\s*".join(re.escape(w) for w in words)
    number = r"^[ \t]*(?:(?:\d+|[IVXLCivxlc]+)(?:\.\d+)*\.?[ \t]+)?"
    m = None
    patterns = (
        (number + body + r"[ \t]*$", re.M | re.I),  # a heading line, in any case ("THE GARDEN")
        (number + body, re.M),
        (body, re.M),
        (body, re.M | re.I),
    )
    for pattern, flags in patterns:
        m = re.search(pattern, page_text, flags)
        if m:
            break
    if not m or non_space_len(page_text[: m.start()]) < 200:
        return 0
    line_start = page_text.rfind("\n", 0, m.start()) + 1
    prev_start = page_text.rfind("\n", 0, max(line_start - 1, 0)) + 1
    prev_line = page_text[prev_start : max(line_start - 1, prev_start)].strip()
    if prev_line and _KEYWORD_HEADING.match(prev_line) and prev_start > 0:
        return prev_start
    return line_start


def _label(labels: list[str], first: int, last: int) -> str:
    return labels[first] if last <= first else f"{labels[first]}–{labels[last]}"


def _cut(texts: list[str], labels: list[str], starts: list[tuple[int, str]]) -> list[Chapter]:
    """Chapters from (global text offset, title) starts over the joined page texts."""
    offsets: list[int] = []
    pos = 0
    for t in texts:
        offsets.append(pos)
        pos += len(t) + 2
    full = "\n\n".join(texts)

    def page_of(offset: int) -> int:
        return max(0, bisect.bisect_right(offsets, offset) - 1)

    chapters: list[Chapter] = []
    if starts and starts[0][0] > 0:
        front = full[: starts[0][0]].strip()
        if non_space_len(front) >= FRONT_MATTER_MIN_CHARS:
            chapters.append(Chapter("Front matter", front, _label(labels, 0, page_of(starts[0][0] - 1))))
    for i, (start, title) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(full)
        text = full[start:end].strip()
        if text:
            chapters.append(Chapter(title, text, _label(labels, page_of(start), page_of(max(start, end - 1)))))
    return chapters


def _outline_chapters(nodes: list[_Node], texts: list[str], labels: list[str]) -> list[Chapter]:
    top = nodes
    while len(top) == 1 and top[0].children:
        top = top[0].children
    entries = []
    for node in top:
        page = _first_page(node)
        if page is not None and page < len(texts):
            entries.append((page, clean_title(node.title or f"Page {labels[page]}")))
    entries.sort(key=lambda e: e[0])
    offsets: list[int] = []
    pos = 0
    for t in texts:
        offsets.append(pos)
        pos += len(t) + 2
    starts: list[tuple[int, str]] = []
    for page, title in entries:
        start = offsets[page] + _title_offset(texts[page], title)
        if starts and start <= starts[-1][0]:
            continue
        starts.append((start, title))
    return _cut(texts, labels, starts)


def _heading_chapters(texts: list[str], labels: list[str]) -> list[Chapter]:
    """Chapter headings among the first lines of each page (running heads and page numbers
    skipped)."""
    heads: list[Heading] = []
    pos = 0
    full = "\n\n".join(texts)
    for text in texts:
        line_start = 0
        seen = 0
        for line in text.split("\n"):
            stripped = line.strip()
            if stripped and not _PAGE_NUMBER.match(stripped):
                m = _KEYWORD_HEADING.match(stripped)
                if m:
                    title = stripped
                    if not m.group("rest").strip(" \t.:-–—"):
                        nxt = text[line_start + len(line) + 1 :].lstrip("\n").split("\n", 1)[0].strip()
                        if nxt and len(nxt) <= 60 and nxt[0].isupper() and not _KEYWORD_HEADING.match(nxt):
                            title = f"{stripped}: {nxt}" if not stripped.endswith((".", ":")) else f"{stripped} {nxt}"
                    heads.append(Heading(pos + line_start, clean_title(title), f"{m.group('kind').lower()} {m.group('num').lower()}"))
                    break
                seen += 1
                if seen >= 4:
                    break
            line_start += len(line) + 1
        pos += len(text) + 2
    heads = _drop_printed_contents(full, heads)
    if len(heads) < 2:
        return []
    return _cut(texts, labels, [(h.start, h.title) for h in heads])


def _page_groups(texts: list[str], labels: list[str]) -> list[Chapter]:
    chapters = []
    for a in range(0, len(texts), PDF_PAGES_PER_PART):
        b = min(a + PDF_PAGES_PER_PART, len(texts)) - 1
        text = "\n\n".join(t for t in texts[a : b + 1] if t).strip()
        if text:
            label = _label(labels, a, b)
            chapters.append(Chapter(f"Pages {label}", text, label))
    return chapters


def _meta_text(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def parse_pdf(path: Path, sha256: str) -> Book:
    name = path.name
    with open(path, "rb") as f:
        reader = _open(f, name)
        try:
            n = len(reader.pages)
        except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise _damaged(name, "its page tree is broken") from e
        if n == 0:
            raise _damaged(name, "it has no pages")
        if n > MAX_PDF_PAGES:
            raise BookError(
                f"'{name}' has {n} pages, more than the {MAX_PDF_PAGES} Infinibook reads from one "
                "book; split it into volumes."
            )
        labels = _labels(reader, n)
        _check_content_size(reader, name, path.stat().st_size)
        texts = _strip_running_heads(_page_texts(reader, name))
        with_text = sum(1 for t in texts if non_space_len(t) >= 20)
        if with_text == 0 or (n >= 5 and with_text < n * 0.1):
            raise BookError(
                f"'{name}' has no text layer (it looks like scanned page images); scanned books "
                "need OCR first, for example with ocrmypdf, then add the OCRed PDF."
            )
        nodes = _outline(reader, name)
        chapters = _outline_chapters(nodes, texts, labels) if nodes else []
        if len(chapters) < 2:
            chapters = _heading_chapters(texts, labels) or (chapters if n <= PDF_PAGES_PER_PART else [])
        if not chapters:
            chapters = _page_groups(texts, labels)
        try:
            meta = reader.metadata
        except Exception:
            meta = None
        title = _meta_text(meta.title) if meta else None
        author = _meta_text(meta.author) if meta else None
        language = None
        try:
            lang = reader.root_object.get("/Lang")
            language = _meta_text(lang) if lang is not None else None
        except Exception:
            pass
    return Book(
        title=clean_title(title or path.stem.replace("_", " ")),
        author=clean_title(author or "Unknown author"),
        language=language,
        source_sha256=sha256,
        format="pdf",
        chapters=tuple(chapters),
    )
