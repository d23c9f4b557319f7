"""The engine facade: everything the window and the command line do with books and the model.

Importing this module never imports torch or transformers (the GUI process starts without
them); they are loaded when a model is, inside `load_engine`. Chapter indexes are 0-based
here; people see them 1-based.

`ask(..., as_of=None)` answers from the memory at the end of the last chapter read; a caller
that follows the reader's position passes that chapter as `as_of` (the window does). Nothing
after the chosen chapter can reach the answer: the prompt holds no book text and only the
conversation turns asked as of that chapter or earlier, and the memory is that chapter's
snapshot. Iterators returned by ask/summarize_* are lazy: errors about the request (unread
chapter, stale memory) are raised at the call, before the first piece.

    library = open_library()
    book = library.resolve("novel.epub", add_paths=True)
    engine = load_engine()
    ingest(library, book.id, engine, on_event=print)
    for piece in ask(library, book.id, engine, "Who is Ahab?", as_of=3):
        print(piece, end="", flush=True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.assistant import (
    NO_ANSWER,
    ask,
    choose_chapter,
    export_markdown,
    plan_question,
    summarize_book,
    summarize_chapter,
)
from engine.reading import IngestEvent, ReadStatus, StaleMemory, ingest, read_status

__all__ = [
    "NO_ANSWER", "EngineInfo", "IngestEvent", "ReadStatus", "StaleMemory", "ask", "choose_chapter", "engine_info",
    "export_markdown", "ingest", "load_engine", "open_library", "plan_question", "read_status",
    "summarize_book", "summarize_chapter",
]


def open_library(data_dir: str | os.PathLike | None = None):
    """The library in `data_dir` (default: $INFINIBOOK_DATA_DIR, then the user's data folder)."""
    from engine.library import Library

    return Library.open(data_dir)


def load_engine(model: str | None = None, *, adapter: str | None = "default", device: str = "auto",
                segment: int | None = None, rule: str | None = None, dtype: str = "auto"):
    """Load a model (None: the embedded SmolLM2-135M-Instruct) patched for Infini-attention."""
    from engine.infini import load_engine as load

    engine = load(model, adapter=adapter, device=device, segment=segment, rule=rule, dtype=dtype)
    engine.model_name = _model_name(model)
    return engine


def _model_name(model: str | None) -> str:
    if model is None:
        from engine.infini.loading import DEFAULT_MODEL_NAME

        return DEFAULT_MODEL_NAME
    return os.path.basename(os.path.normpath(str(model))) or str(model)


@dataclass(frozen=True)
class EngineInfo:
    model_name: str
    fingerprint: str
    segment: int
    rule: str
    device: str
    memory_bytes: int  # the compressive memory of one book: fixed by the model, never by the book
    kv_cache_bytes_per_token: int  # what a plain transformer would keep per token instead
    trained_adapter: bool


def engine_info(engine) -> EngineInfo:
    first = engine.attention[0]
    layers = len(engine.attention)
    d = first.head_dim
    memory_bytes = layers * first.num_kv_heads * (d * d + d) * 4  # M and z, float32
    name = getattr(engine, "model_name", None) or getattr(engine.config, "name_or_path", "") or "model"
    return EngineInfo(
        model_name=str(name),
        fingerprint=str(engine.fingerprint),
        segment=int(engine.segment),
        rule=str(engine.rule),
        device=str(engine.device),
        memory_bytes=int(memory_bytes),
        kv_cache_bytes_per_token=int(engine.kv_cache_bytes_per_token),
        trained_adapter=engine.adapter_sha != "none",
    )
