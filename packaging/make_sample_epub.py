"""Build resources/sample/the-lamplighters-almanac.epub from the Markdown original (needs ebooklib).

    .venv/bin/python packaging/make_sample_epub.py
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from ebooklib import epub

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "resources" / "sample" / "the-lamplighters-almanac.md"
TARGET = SOURCE.with_suffix(".epub")


def inline(text: str) -> str:
    text = html.escape(text, quote=False)
    return re.sub(r"\*(.+?)\*", r"<em>\1</em>", text)


def main() -> None:
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    title = lines[0].lstrip("# ").strip()
    chapters: list[tuple[str, list[str]]] = []
    for line in lines[1:]:
        if line.startswith("## "):
            chapters.append((line[3:].strip(), []))
        elif chapters and line.strip():
            chapters[-1][1].append(line.strip())
    book = epub.EpubBook()
    book.set_identifier("infinibook-sample-lamplighters-almanac")
    book.set_title(title)
    book.set_language("en")
    book.add_author("Infinibook contributors")
    items = []
    for i, (heading, paragraphs) in enumerate(chapters, 1):
        item = epub.EpubHtml(title=heading, file_name=f"chapter{i}.xhtml", lang="en")
        body = "".join(f"<p>{inline(p)}</p>" for p in paragraphs)
        item.content = f"<html><head><title>{html.escape(heading)}</title></head><body><h1>{html.escape(heading)}</h1>{body}</body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.spine = ["nav", *items]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    epub.write_epub(str(TARGET), book)
    print(TARGET)


if __name__ == "__main__":
    main()
