"""Export of notes: what the Markdown says about the summaries it holds."""

from __future__ import annotations

from engine import api
from tests.engine.reading.helpers import write_book


def test_a_whole_book_summary_older_than_a_regenerated_chapter_summary_is_exported_as_out_of_date(library, tmp_path):
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=2)), add_paths=True)
    library.save_summary(book.id, 0, "He sets out.", "fp")
    library.save_summary(book.id, None, "A journey that ends at the mill.", "fp")
    assert "out of date" not in api.export_markdown(library, book.id)

    library.save_summary(book.id, 0, "He sets out, then turns back.", "fp")  # regenerated after the book's
    notes = api.export_markdown(library, book.id)
    section = notes[notes.index("## Summary of the whole book"):notes.index("## Chapter summaries")]
    assert "A journey that ends at the mill." in section and "out of date" in section


def test_summaries_written_from_a_memory_the_book_no_longer_has_are_exported_as_out_of_date(library, tmp_path):
    book = library.resolve(str(write_book(tmp_path / "book.md", chapters=2)), add_paths=True)
    library.save_snapshot(book.id, 0, 10, "fp", b"x", "float32", "[1]")
    library.save_summary(book.id, 0, "He sets out.", "fp")
    library.save_summary(book.id, None, "A journey.", "fp")
    assert "out of date" not in api.export_markdown(library, book.id)

    library.save_snapshot(book.id, 0, 12, "fp-2", b"y", "float32", "[1]", replace_others=True)  # re-read, new model
    notes = api.export_markdown(library, book.id)
    assert notes.count("written from a memory made with other settings") == 2
    assert "He sets out." in notes and "A journey." in notes
