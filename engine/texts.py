"""Long public-domain texts shipped in resources/texts (see prepare_texts.py there for sources)."""

import functools
import gzip
from pathlib import Path

TEXTS = Path(__file__).resolve().parents[1] / "resources" / "texts"


@functools.cache
def public_domain_text(name: str = "kjv") -> str:
    with gzip.open(TEXTS / f"{name}.txt.gz", "rt", encoding="utf-8") as handle:
        return handle.read()


def write_prose_book(path: Path, tokens: int, chapters: int, name: str = "kjv") -> Path:
    """A Markdown book of about `tokens` tokens of real prose in `chapters` chapters (benchmarks).

    The text is repeated when the book is longer than it, as a very long book would be.
    """
    text = public_domain_text(name)
    needed = tokens * 4  # ~4 characters per token of English prose
    while len(text) < needed:
        text += "\n\n" + text
    per = needed // chapters
    parts = [f"# Chapter {i + 1}\n\n{text[i * per : (i + 1) * per].strip()}\n" for i in range(chapters)]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
