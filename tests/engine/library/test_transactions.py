"""Transactions and opening: two Infinibooks on one new library, a COMMIT that fails."""

import threading
from pathlib import Path

import pytest

from engine.library import Library


def test_two_openers_of_a_new_library_both_succeed(tmp_path: Path) -> None:
    failures: list[str] = []

    def opener(folder: Path, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            Library.open(folder).close()
        except Exception as e:  # noqa: BLE001 - the test reports whatever went wrong
            failures.append(str(e))

    for attempt in range(20):
        folder = tmp_path / str(attempt)
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=opener, args=(folder, barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    with Library.open(tmp_path / "0") as library:
        assert library.list_books() == []


def test_a_commit_that_fails_is_rolled_back_not_left_open(library) -> None:
    from engine.errors import LibraryError

    with pytest.raises(LibraryError), library._write() as conn:
        conn.execute("PRAGMA defer_foreign_keys = ON")  # the check moves to COMMIT, which then fails
        conn.execute("INSERT INTO summaries (book_id, chapter_idx, text, fingerprint, created_at) VALUES (999, 0, 'x', 'f', 'now')")
    assert not library.db.conn.in_transaction
    assert library.list_books() == []  # and the library goes on working
