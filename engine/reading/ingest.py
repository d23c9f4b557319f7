"""Reading a whole book into the compressive memory, once, resumably.

Chapter i is streamed from the memory saved at the end of chapter i-1 (an empty memory for
the first), and its own end-of-chapter memory is saved in the same transaction as the
progress mark. Each `stream()` call also writes its last, shorter segment, so a chapter
boundary is always a segment boundary: resuming = loading the last saved memory and going on
with the next chapter, which performs exactly the operations an uninterrupted run performs,
so the final memory is bit-for-bit the same.

Nothing here imports torch at module import time (the GUI imports the facade without it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.errors import Cancelled, LibraryError
from engine.fingerprint import Fingerprint

from .events import IngestEvent, ReadStatus, StaleMemory

SNAPSHOT_DTYPE = "float32"  # exact: resumed == uninterrupted needs the memory saved losslessly


# -- text -> tokens ----------------------------------------------------------------------------


def chapter_stream_text(title: str, text: str) -> str:
    """What the memory reads for one chapter: its heading, then its text."""
    title = (title or "").strip()
    return f"{title}\n\n{text}\n\n" if title else f"{text}\n\n"


def encode(engine, text: str) -> list[int]:
    """Token ids of plain text, no special tokens, no length warnings. A chat marker written in
    a book ("<|im_end|>") is text too: as its special id it would put a stop token into memory."""
    tokenizer = engine.tokenizer
    backend = _text_backend(tokenizer)
    if backend is not None:
        return list(backend.encode(text, add_special_tokens=False).ids)
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True, verbose=False).input_ids)


def _text_backend(tokenizer):
    """A copy of a fast tokenizer's backend that reads special-token strings as text (the
    tokenizer itself keeps its markers for the chat template); None for a slow tokenizer."""
    cached = getattr(tokenizer, "_infinibook_text_backend", None)
    if cached is None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or not hasattr(backend, "encode_special_tokens"):
            return None
        from tokenizers import Tokenizer

        cached = Tokenizer.from_str(backend.to_str())
        cached.encode_special_tokens = True
        tokenizer._infinibook_text_backend = cached
    return cached


def chapter_ids(engine, chapter) -> list[int]:
    return encode(engine, chapter_stream_text(chapter.title, chapter.text))


# -- fingerprints and status -------------------------------------------------------------------


def fingerprint_of(engine) -> str | None:
    """The engine's fingerprint as the library stores it; accepts an engine, a string or None."""
    if engine is None or isinstance(engine, str):
        return engine
    return str(engine.fingerprint)


def stale_message(saved: str, current: str) -> str:
    try:
        difference = Fingerprint.parse(current).difference(Fingerprint.parse(saved))
    except LibraryError:
        difference = None
    what = f"a different {difference}" if difference else "a different model setup"
    return (f"This book was read with {what}, so its saved memory does not fit; "
            f"read it again from the start to rebuild it (ingest with --restart).")


def read_status(library, book_id: int, engine=None) -> ReadStatus:
    """Chapters read, tokens read, and whether the saved memory fits `engine` (None: unknown)."""
    progress = library.ingest_progress(book_id)
    total = progress.chapters_total
    done = progress.chapters_done
    current = fingerprint_of(engine)
    stale = bool(done and current and progress.fingerprint and progress.fingerprint != current)
    if stale:
        message = stale_message(progress.fingerprint, current)
    elif total == 0:
        message = "This book has no chapters to read."
    elif done == 0:
        message = f"Not read yet ({total} chapters)."
    elif done >= total:
        message = f"Read completely: {total} chapters, {progress.tokens_done:,} tokens."
    else:
        message = f"Read {done} of {total} chapters ({progress.tokens_done:,} tokens); reading can resume."
    return ReadStatus(done, total, progress.tokens_done, stale, message)


def require_fresh(library, book_id: int, engine) -> ReadStatus:
    status = read_status(library, book_id, engine)
    if status.stale:
        raise StaleMemory(status.message)
    return status


def load_state(library, book_id: int, chapter_idx: int, engine):
    """The memory saved at the end of chapter `chapter_idx` (checksum and fingerprint checked)."""
    from engine.infini.state import MemoryState

    snapshot = library.load_snapshot(book_id, chapter_idx)
    if snapshot is None:
        raise LibraryError(f"Chapter {chapter_idx + 1} has not been read into memory yet; read the book first.")
    return MemoryState.from_bytes(snapshot.blob, expected=engine.fingerprint, device=engine.device)


def shape_text(state) -> str:
    return f"memory={tuple(state.memory.shape)};norm={tuple(state.norm.shape)}"


# -- ingest ------------------------------------------------------------------------------------


def _stop_if_cancelled(should_cancel: Callable[[], bool] | None) -> None:
    if should_cancel is not None and should_cancel():
        raise Cancelled("Reading was cancelled; chapters already finished are kept.")


def ingest(
    library,
    book_id: int,
    engine,
    *,
    on_event: Callable[[IngestEvent], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    restart: bool = False,
) -> ReadStatus:
    """Read the book's remaining chapters into memory, saving a snapshot at every chapter end.

    Raises Cancelled when `should_cancel()` turns true (finished chapters are kept) and
    StaleMemory when the book was read under another fingerprint and `restart` is false.
    """
    current = fingerprint_of(engine)
    if not restart:
        require_fresh(library, book_id, engine)
    chapters = library.chapters(book_id)
    progress = library.ingest_progress(book_id)
    # A restart keeps the old memory until its first chapter replaces it (one transaction), so
    # a restart cancelled early loses nothing.
    start = 0 if restart else min(progress.chapters_done, len(chapters))
    if restart and not chapters:
        library.reset_ingest(book_id)

    # Token counts of every chapter, for the totals and the ETA; ids are kept one chapter at a
    # time so memory use does not grow with the book.
    counts = []
    for chapter in chapters:
        _stop_if_cancelled(should_cancel)  # counting a long book's tokens takes a while too
        n = len(chapter_ids(engine, chapter))
        counts.append(n)
        if chapter.n_tokens != n:
            library.set_chapter_tokens(book_id, chapter.idx, n)
    tokens_total = sum(counts)
    tokens_done = sum(counts[:start])

    if start == 0:
        state = engine.new_state()
    else:
        state = load_state(library, book_id, chapters[start - 1].idx, engine)

    began = time.monotonic()
    streamed = 0  # tokens streamed in this call, for the rate

    def event(index: int, chapter_done: int, finished: bool) -> IngestEvent:
        elapsed = time.monotonic() - began
        done_now = streamed + chapter_done
        rate = done_now / elapsed if elapsed > 0 and done_now else 0.0
        done = tokens_done + chapter_done
        eta = (tokens_total - done) / rate if rate > 0 else None
        return IngestEvent(index, len(chapters), chapters[index].title, done, tokens_total, rate, eta, finished)

    with engine.packed_for_streaming(tokens_total - tokens_done):  # once for the book's segments
        for index in range(start, len(chapters)):
            _stop_if_cancelled(should_cancel)
            chapter = chapters[index]
            ids = chapter_ids(engine, chapter)
            if on_event is not None:  # "chapter i of n" at once, before its first segment
                on_event(event(index, 0, False))

            def progress_cb(done: int, _total: int, index=index) -> None:
                if on_event is not None:
                    on_event(event(index, done, False))

            state = engine.stream(ids, state, progress=progress_cb, should_cancel=should_cancel)
            blob = state.to_bytes(SNAPSHOT_DTYPE)
            # One transaction: the memory at this chapter's end and the progress mark.
            library.save_snapshot(book_id, chapter.idx, tokens_done + len(ids), current, blob, SNAPSHOT_DTYPE,
                                  shape_text(state), replace_others=restart and index == 0)
            finished = event(index, len(ids), True)
            streamed += len(ids)
            tokens_done += len(ids)
            if on_event is not None:
                on_event(finished)
    return read_status(library, book_id, engine)
