"""Two Infinibooks on one library: a book removed by one while the other writes to it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.books import Book, Chapter
from engine.errors import LibraryError
from engine.library import Library


def _book() -> Book:
    chapters = tuple(Chapter(f"Chapter {i}", f"Text of chapter {i}.") for i in range(2))
    return Book("Title", "Author", "en", "b" * 64, "txt", chapters)


WRITES = {
    "save_snapshot": lambda lib, book_id: lib.save_snapshot(book_id, 0, 10, "fp", b"blob", "float32", "[1]"),
    "save_summary": lambda lib, book_id: lib.save_summary(book_id, None, "A summary.", "fp"),
    "add_message": lambda lib, book_id: lib.add_message(book_id, "user", "A question?", None),
    "set_position": lambda lib, book_id: lib.set_position(book_id, 1, 5),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_book_removed_by_another_infinibook_meanwhile_is_no_book_not_a_damaged_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    with Library.open(tmp_path) as mine, Library.open(tmp_path) as other:
        book_id = mine.add_book(_book(), tmp_path / "book.txt").id
        original_write = mine._write

        @contextmanager
        def write_after_removal():
            other.remove_book(book_id)  # the other window removes the book just before this write
            with original_write() as conn:
                yield conn

        monkeypatch.setattr(mine, "_write", write_after_removal)
        with pytest.raises(LibraryError, match=f"no book with id {book_id}") as error:
            WRITES[write](mine, book_id)
        assert "damaged" not in str(error.value)
        monkeypatch.undo()
        assert mine.list_books() == []
        for table in ("chapters", "snapshots", "summaries", "messages"):
            assert mine.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
