"""Finding chapters in running text: headings such as `Chapter 12`, `CHAPTER XII.`, `BOOK II`,
Markdown `#`, and cutting heading-less text into parts. Shared by text and PDF parsing.

Every pattern is anchored at a line start and bounded in length, so a 60 MB single line is
scanned in linear time.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from .limits import FRONT_MATTER_MIN_CHARS, MAX_CHAPTERS, TEXT_PART_CHARS
from .model import Chapter

_WORD_NUMBERS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|"
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last"
)
_KINDS = "chapter|chap|book|part|volume|vol|section|canto|letter|act|stave|prologue|epilogue"
# `Chapter 12`, `CHAPTER XII.`, `BOOK II: The Return`, `Part One — Arrival`, `Chapter Twenty-One`.
# The words after the number must look like a title (capitalised or after punctuation), so
# prose lines such as "Book I read yesterday" are not headings.
_KEYWORD_HEADING = re.compile(
    r"^[ \t]{0,40}"
    r"(?P<kind>(?i:" + _KINDS + r"))\.?[ \t]+"
    r"(?P<num>\d{1,4}|(?i:[ivxlcdm]{1,9})|(?i:(?:" + _WORD_NUMBERS + r")(?:[- ](?:" + _WORD_NUMBERS + r"))?))"
    r"\b(?P<rest>[ \t]*(?:[.:\-–—)][^\n]{0,100}|[ \t][\"“'‘(A-Z0-9À-Ý][^\n]{0,100})?)[ \t]*\r?$",
    re.MULTILINE,
)
# `PROLOGUE`, `Preface.`: counted only beside numbered headings, where a short prologue would
# otherwise be untitled text before `Chapter 1`, too short to be kept as front matter.
_BARE_HEADING = re.compile(
    r"^[ \t]{0,40}(?P<kind>PROLOGUE|PREFACE|FOREWORD|INTRODUCTION|PREAMBLE|EPILOGUE|AFTERWORD|"
    r"Prologue|Preface|Foreword|Introduction|Preamble|Epilogue|Afterword)\.?[ \t]*\r?$",
    re.MULTILINE,
)
_MD_HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>[^\n]{1,200}?)[ \t#]*\r?$", re.MULTILINE)
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)[^\n]*$", re.MULTILINE)


@dataclass(frozen=True)
class Heading:
    start: int  # offset of the heading line in the text
    title: str
    key: str  # normalised kind + number, to spot a printed table of contents


def clean_title(title: str, limit: int = 200) -> str:
    title = " ".join(title.split())
    return title[:limit].rstrip() or "Untitled"


def non_space_len(text: str) -> int:
    return len(text) - sum(text.count(c) for c in " \t\r\n\f\v\u00a0")


def _line_after(text: str, pos: int) -> tuple[str, int]:
    """The line starting at `pos` (without its newline) and the offset after it."""
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    return text[pos:end].strip(), end + 1


def _subtitle(text: str, after: int) -> str | None:
    """A short standalone line right after a bare `CHAPTER XII.` heading is its title."""
    pos = after
    for _ in range(3):  # allow up to two blank lines
        line, nxt = _line_after(text, pos)
        if line:
            break
        pos = nxt
        if pos >= len(text):
            return None
    else:
        return None
    following, _ = _line_after(text, nxt)
    if (
        len(line) <= 60
        and not following
        and line[0].isupper()
        and line[-1] not in ".,;:"
        and len(line.split()) <= 10
        and not _KEYWORD_HEADING.match(line)
    ):
        return line
    return None


def _starts_paragraph(text: str, start: int) -> bool:
    before = text[max(0, start - 200) : start]
    return start == 0 or bool(re.search(r"\n[ \t\r]*\n[ \t]*$|\A[ \t\r\n]*$|\f[ \t]*$", before))


def keyword_headings(text: str) -> list[Heading]:
    """`Chapter 12`-style headings that start a paragraph (blank line or start before them),
    and beside them unnumbered ones such as `PROLOGUE`."""
    found: list[Heading] = []
    for m in _KEYWORD_HEADING.finditer(text):
        start = m.start()
        if not _starts_paragraph(text, start):
            continue
        title = m.group(0).strip()
        rest = m.group("rest").strip(" \t.:-–—")
        if not rest:
            sub = _subtitle(text, m.end() + 1)
            if sub:
                title = f"{title.rstrip()} {sub}" if title.endswith((".", ":")) else f"{title}: {sub}"
        key = f"{m.group('kind').lower()} {m.group('num').lower()}"
        found.append(Heading(start, clean_title(title), key))
        if len(found) > MAX_CHAPTERS * 4:
            break
    if found:
        bare = [Heading(m.start(), clean_title(m.group(0)), m.group("kind").lower())
                for m in _BARE_HEADING.finditer(text) if _starts_paragraph(text, m.start())]
        found = sorted(found + bare[: MAX_CHAPTERS], key=lambda h: h.start)
    return _drop_printed_contents(text, found)


def _drop_printed_contents(text: str, heads: list[Heading]) -> list[Heading]:
    """A printed table of contents looks like a run of headings with nothing between them;
    drop it, and a heading whose twin immediately follows, so only real chapters remain."""
    if len(heads) < 2:
        return heads
    bodies = []
    for i, h in enumerate(heads):
        end = heads[i + 1].start if i + 1 < len(heads) else len(text)
        _, body_start = _line_after(text, h.start)
        bodies.append(non_space_len(text[body_start:end]))
    keep = [True] * len(heads)
    i = 0
    while i < len(heads):
        j = i
        while j < len(heads) and bodies[j] < 60:
            j += 1
        if j - i >= 3:
            for k in range(i, j):
                keep[k] = False
            # the entry closing the run (its body is a preface) is a contents line too
            # when the same heading reappears later
            if j < len(heads) and any(h.key == heads[j].key for h in heads[j + 1 :]):
                keep[j] = False
        i = max(j, i + 1)
    for i in range(len(heads) - 1):
        if heads[i].key == heads[i + 1].key:
            keep[i] = False
    result = []
    pending_prefix: str | None = None
    for i, h in enumerate(heads):
        if not keep[i]:
            pending_prefix = None
            continue
        # `BOOK ONE` directly followed by `CHAPTER I`: fold the book into the chapter titles.
        if bodies[i] < 60 and i + 1 < len(heads) and heads[i + 1].key.split()[0] != h.key.split()[0]:
            pending_prefix = h.title
            continue
        if pending_prefix:
            h = Heading(h.start, clean_title(f"{pending_prefix} — {h.title}"), h.key)
            pending_prefix = None
        result.append(h)
    return result


def markdown_headings(text: str) -> tuple[list[Heading], str | None]:
    """Chapter-level Markdown `#` headings outside code fences, and the book title when a single
    top heading sits above the chapters."""
    fenced: list[tuple[int, int]] = []
    opened: int | None = None
    for m in _FENCE.finditer(text):
        if opened is None:
            opened = m.start()
        else:
            fenced.append((opened, m.end()))
            opened = None
    if opened is not None:
        fenced.append((opened, len(text)))

    starts = [a for a, _ in fenced]  # sorted and disjoint: one binary search per heading

    def in_fence(pos: int) -> bool:
        i = bisect.bisect_right(starts, pos) - 1
        return i >= 0 and pos < fenced[i][1]

    heads: list[tuple[int, int, str]] = []
    for m in _MD_HEADING.finditer(text):
        if fenced and in_fence(m.start()):
            continue
        heads.append((len(m.group("hashes")), m.start(), m.group("title")))
        if len(heads) > MAX_CHAPTERS * 4:
            break
    if not heads:
        return [], None
    levels = sorted({level for level, _, _ in heads})
    book_title = None
    level = levels[0]
    top = [h for h in heads if h[0] == level]
    if len(top) == 1 and len(levels) > 1:
        book_title = clean_title(top[0][2])
        level = levels[1]
    chosen = [Heading(start, clean_title(title), f"md {i}") for i, (lv, start, title) in enumerate(heads) if lv == level]
    return chosen, book_title


def chapters_from_headings(text: str, heads: list[Heading]) -> list[Chapter]:
    """Cut `text` at heading offsets; untitled text before the first heading is kept only when
    it is long enough to be more than a title page."""
    chapters: list[Chapter] = []
    if heads and heads[0].start > 0:
        front = text[: heads[0].start].strip()
        if non_space_len(front) >= FRONT_MATTER_MIN_CHARS:
            chapters.append(Chapter("Front matter", front))
    for i, h in enumerate(heads):
        end = heads[i + 1].start if i + 1 < len(heads) else len(text)
        body = text[h.start : end].strip()
        if body:
            chapters.append(Chapter(h.title, body))
    return chapters


def split_parts(text: str, target: int = TEXT_PART_CHARS) -> list[Chapter]:
    """Cut heading-less text into parts of about `target` characters at paragraph, line or
    word boundaries, named by position ("Part 3 of 12")."""
    text = text.strip()
    if not text:
        return []
    pieces: list[str] = []
    pos = 0
    n = len(text)
    while pos < n:
        if n - pos <= target * 1.5:
            pieces.append(text[pos:])
            break
        lo, hi = pos + target // 2, pos + target
        cut = -1
        for sep in ("\n\n", "\n", ". ", " "):
            cut = text.rfind(sep, lo, hi)
            if cut >= 0:
                cut += len(sep)
                break
        if cut < 0:
            cut = hi
        pieces.append(text[pos:cut])
        pos = cut
    pieces = [p.strip() for p in pieces if p.strip()]
    total = len(pieces)
    return [Chapter(f"Part {i} of {total}", p) for i, p in enumerate(pieces, 1)]
