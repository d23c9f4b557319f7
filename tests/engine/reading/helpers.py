"""Generated books and a tiny random engine for fast end-to-end tests of reading and asking."""

from __future__ import annotations

import functools
from pathlib import Path

WORDS = ("river", "lantern", "harbour", "meadow", "orchard", "tower", "bridge", "candle", "forest", "window",
         "mountain", "letter", "garden", "market", "violin", "compass")


def chapter_body(index: int, sentences: int = 12, fact: str | None = None) -> str:
    lines = []
    for j in range(sentences):
        a, b = WORDS[(index * 7 + j) % len(WORDS)], WORDS[(index * 3 + j * 5) % len(WORDS)]
        lines.append(f"In the {a} of chapter {index + 1}, the traveller passed the {b} number {j} and wrote it down.")
        if fact and j == sentences // 2:
            lines.append(fact)
    return " ".join(lines)


def write_book(path: Path, chapters: int = 4, sentences: int = 12, facts: dict[int, str] | None = None,
               title: str = "The Long Road") -> Path:
    """A Markdown book whose chapters are `# Chapter N: ...` headings; facts[i] goes into chapter i (0-based)."""
    facts = facts or {}
    parts = [f"# Chapter {i + 1}: Stage {i + 1}\n\n{chapter_body(i, sentences, facts.get(i))}\n" for i in range(chapters)]
    path.write_text(f"{title}\n\n" + "\n".join(parts), encoding="utf-8")
    return path


@functools.cache
def tiny(segment: int = 32):
    """A tiny random Llama (fixed seed: the same weights in every process) with the real tokenizer."""
    from engine.infini.tiny import tiny_engine

    engine = tiny_engine(segment=segment, gate_init=0.0)
    engine.model_name = "tiny-random-llama"
    return engine


def writes(engine, monkeypatch, text: str, *, whole_book: str | None = None) -> None:
    """Make `engine` write `text` for every prompt (`whole_book` for a whole-book summary's, when
    given). The tiny random model mostly writes blank lines, which a summary refuses to store."""

    def generate(prompt_ids, state, **options):
        final = whole_book is not None and "summary of the whole book" in engine.tokenizer.decode(prompt_ids)
        yield from engine.tokenizer.encode(whole_book if final else text, add_special_tokens=False)

    monkeypatch.setattr(engine, "generate", generate)
