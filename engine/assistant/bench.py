"""`infinibook bench ask`: reopening an ingested book and answering, timed.

A book of real prose (the public-domain KJV text shipped in resources/texts) is written to a
temporary library and read into memory once (not timed as part of the answer). Then, as the app
does when a person comes back to a book with the model already loaded: the library is opened
afresh, the chapter's memory snapshot loaded, the question prompt run and the first token
streamed. Each repeat opens the library again; the median counts.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

QUESTION = "Who is speaking in the last chapter, and what do they ask for?"


class CountingEngine:
    """The engine, with the tokens of every generate() call counted and timed."""

    def __init__(self, engine):
        from .ask import stop_ids

        self._engine = engine
        self._assistant_stop_ids = stop_ids(engine)  # looked up once per engine, as in the app
        self.tokens = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, *args, **kwargs):
        for token in self._engine.generate(*args, **kwargs):
            now = time.perf_counter()
            self.first_at = self.first_at or now
            self.last_at = now
            self.tokens += 1
            yield token


def run_bench_ask(model: str | None = None, *, adapter: str | None = "default", device: str = "auto", dtype: str = "auto",
                  tokens: int = 8192, chapters: int = 4, max_new_tokens: int = 48, repeats: int = 3,
                  question: str = QUESTION, threads: int | None = None) -> dict:
    from engine import api
    from engine.reading import load_state
    from engine.texts import write_prose_book

    if threads:
        import torch

        torch.set_num_threads(threads)

    began = time.perf_counter()
    engine = api.load_engine(model, adapter=adapter, device=device, dtype=dtype)
    model_load_s = time.perf_counter() - began
    info = api.engine_info(engine)
    with tempfile.TemporaryDirectory(prefix="infinibook-bench-") as folder:
        data_dir = Path(folder) / "library"
        book_file = write_prose_book(Path(folder) / "book.md", tokens, chapters)
        with api.open_library(data_dir) as library:
            book = library.resolve(str(book_file), add_paths=True)
            began = time.perf_counter()
            status = api.ingest(library, book.id, engine)
            ingest_s = time.perf_counter() - began
            snapshot_bytes = len(library.load_snapshot(book.id, status.chapters_done - 1).blob)
        # The model is loaded and has run (the ingest above), as in the app when a person
        # comes back to a book; what is timed is reopening the library and answering.
        loads, firsts, rates, answers = [], [], [], []
        for repeat in range(repeats):
            # Each repeat reopens its own copy of the library as the ingest left it, so every
            # question starts from the same (empty) conversation and the same prompt length.
            copy = Path(folder) / f"reopen-{repeat}"
            shutil.copytree(data_dir, copy)
            began = time.perf_counter()
            with api.open_library(copy) as library:
                load_state(library, book.id, status.chapters_done - 1, engine)
            loads.append(time.perf_counter() - began)

            counting = CountingEngine(engine)
            began = time.perf_counter()
            with api.open_library(copy) as library:
                pieces = api.ask(library, book.id, counting, question, max_new_tokens=max_new_tokens)
                first_piece = None
                text = []
                for piece in pieces:
                    first_piece = first_piece or time.perf_counter()
                    text.append(piece)
            first = counting.first_at or first_piece or time.perf_counter()
            firsts.append(first - began)
            if counting.tokens > 1 and counting.last_at > counting.first_at:
                rates.append((counting.tokens - 1) / (counting.last_at - counting.first_at))
            answers.append("".join(text).strip())
    return {
        "model": info.model_name,
        "device": info.device,
        "threads": threads or "default",
        "segment": info.segment,
        "trained_adapter": info.trained_adapter,
        "model_load_s": round(model_load_s, 3),
        "book_tokens": status.tokens_done,
        "chapters": status.chapters_total,
        "ingest_s": round(ingest_s, 3),
        "snapshot_bytes": snapshot_bytes,
        "memory_bytes": info.memory_bytes,
        "repeats": repeats,
        "load_snapshot_s": round(statistics.median(loads), 4),
        "first_token_s": round(statistics.median(firsts), 4),
        "first_token_max_s": round(max(firsts), 4),
        "tokens_per_s": round(statistics.median(rates), 2) if rates else 0.0,
        "answer_tokens": counting.tokens,
        "answer": answers[-1],
    }
