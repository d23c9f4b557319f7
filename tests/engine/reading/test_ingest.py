"""Ingest end to end on generated books with a tiny random model."""

import subprocess
import sys

import pytest

from engine import api
from engine.errors import Cancelled, FingerprintMismatch, InfinibookError
from engine.infini.model import PACK_MIN_SEGMENTS
from engine.reading import chapter_ids

from .helpers import tiny, write_book


def add(library, folder, **options):
    folder.mkdir(parents=True, exist_ok=True)
    return library.resolve(str(write_book(folder / "book.md", **options)), add_paths=True)


def final_memory(library, book_id):
    from engine.infini.state import MemoryState

    progress = library.ingest_progress(book_id)
    return MemoryState.from_bytes(library.load_snapshot(book_id, progress.chapters_done - 1).blob)


def same_memory(a, b) -> bool:
    """Bit-for-bit the same M, z and token count (safetensors headers may order keys differently)."""
    import torch

    return a.tokens == b.tokens and torch.equal(a.memory, b.memory) and torch.equal(a.norm, b.norm)


def test_facade_imports_without_torch():
    code = "import sys, engine.api; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ingest_streams_every_chapter_and_snapshots_each_end(library, tmp_path):
    engine = tiny()
    book = add(library, tmp_path, chapters=4)
    events = []
    status = api.ingest(library, book.id, engine, on_event=events.append)
    assert status.complete and not status.stale and status.chapters_done == 4

    # The memory after chapter i is the memory after chapter i-1 with chapter i streamed on top.
    from engine.infini.state import MemoryState

    chapters = library.chapters(book.id)
    state = engine.new_state()
    total = 0
    for chapter in chapters:
        ids = chapter_ids(engine, chapter)
        assert chapter.n_tokens == len(ids)
        total += len(ids)
        state = engine.stream(ids, state)
        snapshot = library.load_snapshot(book.id, chapter.idx)
        assert snapshot.token_offset == total
        assert snapshot.fingerprint == str(engine.fingerprint)
        assert same_memory(MemoryState.from_bytes(snapshot.blob), state)
        assert MemoryState.from_bytes(snapshot.blob).tokens == total
    assert status.tokens_done == total
    # Long enough that reading it packed the weights (engine.infini.packing), with the same memories.
    assert total >= PACK_MIN_SEGMENTS * engine.segment

    finished = [e for e in events if e.finished_chapter]
    assert [e.chapter_index for e in finished] == [0, 1, 2, 3]
    assert finished[-1].tokens_done == finished[-1].tokens_total == total
    assert all(e.chapters_total == 4 and e.tokens_total == total for e in events)
    assert [e.tokens_done for e in events] == sorted(e.tokens_done for e in events)
    assert finished[-1].eta_s == 0 and finished[-1].tokens_per_s > 0
    assert len(events) > len(finished)  # per-segment events too
    assert finished[1].chapter_title == chapters[1].title

    # Ingesting again does nothing and keeps the memory.
    again = []
    assert api.ingest(library, book.id, engine, on_event=again.append).complete
    assert again == [] and same_memory(final_memory(library, book.id), state)


def test_cancel_then_resume_gives_the_uninterrupted_memory(library, tmp_path):
    engine = tiny()
    book = add(library, tmp_path, chapters=5)
    reference = add(library, tmp_path / "ref", chapters=5, title="Another Road")  # same chapters, other file
    api.ingest(library, reference.id, engine)

    for cancel_after in (3, 11, 20):  # events: mid-chapter and near chapter ends
        seen = []
        before = api.read_status(library, book.id, engine).chapters_done
        with pytest.raises(Cancelled):
            api.ingest(library, book.id, engine, on_event=seen.append, should_cancel=lambda s=seen, n=cancel_after: len(s) >= n)
        status = api.read_status(library, book.id, engine)
        assert status.chapters_done == before + sum(e.finished_chapter for e in seen)
        assert not status.complete
        assert status.chapters_done == 0 or "resume" in status.message
    assert api.ingest(library, book.id, engine).complete
    assert same_memory(final_memory(library, book.id), final_memory(library, reference.id))


def test_another_fingerprint_is_stale_until_reingested_on_request(library, tmp_path):
    book = add(library, tmp_path, chapters=2)
    api.ingest(library, book.id, tiny(32))
    other = tiny(16)
    status = api.read_status(library, book.id, other)
    assert status.stale and not status.complete
    assert "segment length" in status.message and "read it again" in status.message
    with pytest.raises(FingerprintMismatch, match="segment length"):
        api.ingest(library, book.id, other)
    with pytest.raises(InfinibookError, match="segment length"):
        api.ask(library, book.id, other, "Who?")
    assert api.ingest(library, book.id, other, restart=True).complete
    assert not api.read_status(library, book.id, other).stale
    assert api.read_status(library, book.id, tiny(32)).stale
    assert library.load_snapshot(book.id, 1).fingerprint == str(other.fingerprint)


def test_status_messages(library, tmp_path):
    book = add(library, tmp_path, chapters=3)
    status = api.read_status(library, book.id, None)
    assert (status.chapters_done, status.chapters_total, status.stale) == (0, 3, False)
    assert "Not read yet" in status.message


def test_engine_info_reports_fixed_memory_size():
    engine = tiny()
    info = api.engine_info(engine)
    assert info.memory_bytes == engine.new_state().nbytes
    assert info.segment == 32 and info.rule == "delta" and info.device == "cpu"
    assert info.fingerprint == str(engine.fingerprint) and not info.trained_adapter
    assert info.kv_cache_bytes_per_token == engine.kv_cache_bytes_per_token


def test_a_restart_cancelled_before_its_first_chapter_keeps_the_old_memory(library, tmp_path):
    engine = tiny()
    book = add(library, tmp_path, chapters=3)
    api.ingest(library, book.id, engine)
    before = final_memory(library, book.id)
    with pytest.raises(Cancelled):
        api.ingest(library, book.id, engine, restart=True, should_cancel=lambda: True)
    assert api.read_status(library, book.id, engine).complete
    assert same_memory(final_memory(library, book.id), before)


def test_a_restart_replaces_every_old_snapshot_with_its_first_chapter(library, tmp_path):
    book = add(library, tmp_path, chapters=3)
    api.ingest(library, book.id, tiny(32))
    other = tiny(16)
    saved = []
    with pytest.raises(Cancelled):  # cancelled as soon as the first new chapter is stored
        api.ingest(library, book.id, other, restart=True, should_cancel=lambda: bool(saved),
                   on_event=lambda e: saved.append(e) if e.finished_chapter else None)
    progress = library.ingest_progress(book.id)
    assert progress.chapters_done == 1 and progress.fingerprint == str(other.fingerprint)
    assert library.load_snapshot(book.id, 0).fingerprint == str(other.fingerprint)
    with pytest.raises(InfinibookError, match="No memory is saved for chapter 2"):
        library.load_snapshot(book.id, 1)  # the old model's chapter 2 went with the rest


def test_cancel_is_heard_while_the_chapters_are_still_being_counted(library, tmp_path):
    book = add(library, tmp_path, chapters=3)
    asked = []

    def second_time() -> bool:  # the first check passes; the second comes while counting
        asked.append(True)
        return len(asked) >= 2

    events = []
    with pytest.raises(Cancelled):
        api.ingest(library, book.id, tiny(), should_cancel=second_time, on_event=events.append)
    assert events == []  # stopped before the first chapter began streaming
    assert library.ingest_progress(book.id).chapters_done == 0


def test_chat_markers_in_a_book_are_read_as_text(tokenizer):
    from types import SimpleNamespace

    from engine.reading.ingest import encode

    engine = SimpleNamespace(tokenizer=tokenizer)
    ids = encode(engine, "The manual says: type <|im_end|> to finish, never <|endoftext|>.")
    specials = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>", "<|im_start|>")}
    assert not specials & set(ids)
    assert tokenizer.decode(ids) == "The manual says: type <|im_end|> to finish, never <|endoftext|>."
    plain = "An ordinary sentence, with commas and digits 12345."
    assert encode(engine, plain) == tokenizer.encode(plain, add_special_tokens=False)  # other text unchanged


def test_a_second_reader_of_the_same_book_is_refused_and_leaves_no_gap(library, tmp_path):
    """A re-read from the start (another window, say) while this reading runs: this one stops
    with one sentence instead of saving chapters on top of the other's, behind "complete"."""
    from engine.errors import LibraryError

    engine = tiny()
    book = add(library, tmp_path, chapters=4)
    done = []
    with pytest.raises(Cancelled):
        api.ingest(library, book.id, engine, should_cancel=lambda: len(done) >= 2,
                   on_event=lambda e: done.append(e) if e.finished_chapter else None)
    started = []

    def other_reader(event) -> None:  # restarts the book once, stopped after its first chapter
        if started:
            return
        started.append(event)
        finished = []
        with pytest.raises(Cancelled):
            api.ingest(library, book.id, engine, restart=True, should_cancel=lambda: bool(finished),
                       on_event=lambda e: finished.append(e) if e.finished_chapter else None)

    with pytest.raises(LibraryError, match="Another Infinibook is reading"):
        api.ingest(library, book.id, engine, on_event=other_reader)
    progress = library.ingest_progress(book.id)
    assert progress.chapters_done == 1
    for index in range(progress.chapters_done):  # every chapter up to the mark has its memory
        library.load_snapshot(book.id, index)
    assert api.ingest(library, book.id, engine).complete
    for index in range(4):
        library.load_snapshot(book.id, index)
