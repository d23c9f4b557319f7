"""One bounded end-to-end run on the real default model (SmolLM2-135M-Instruct, CPU)."""

import time

import pytest

from engine import api
from engine.reading import chapter_ids

from .helpers import write_book

pytestmark = pytest.mark.slow


def test_read_ask_summarize_with_the_default_model(library, tmp_path):
    engine = api.load_engine(adapter=None, device="cpu", segment=128)
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=3, sentences=10,
                                          facts={2: "The lighthouse keeper is named Zebediah."})), add_paths=True)
    events = []
    status = api.ingest(library, book.id, engine, on_event=events.append)
    assert status.complete and status.tokens_done == sum(len(chapter_ids(engine, c)) for c in library.chapters(book.id))
    assert len(library.load_snapshot(book.id, 2).blob) > api.engine_info(engine).memory_bytes

    began = time.monotonic()
    pieces = api.ask(library, book.id, engine, "Where did the traveller go?", as_of=0, max_new_tokens=16)
    first = next(pieces, "")
    first_token_s = time.monotonic() - began
    answer = first + "".join(pieces)
    assert first_token_s < 20  # bounded on a loaded, shared CPU; `bench ask` measures it properly
    stored = library.messages(book.id)
    assert [(m.role, m.as_of_chapter) for m in stored] == [("user", 0), ("assistant", 0)]
    assert stored[1].content == answer.strip() and answer.strip()

    summary = "".join(api.summarize_chapter(library, book.id, engine, 1, max_new_tokens=24)).strip()
    assert summary and [s.text for s in library.summaries(book.id)] == [summary]
    assert "## Chapter summaries" in api.export_markdown(library, book.id)
