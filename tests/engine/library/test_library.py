"""The SQLite library: schema, identity by sha256, cascades, checksummed snapshots, atomic
progress marks, threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from engine.books import Book, Chapter
from engine.errors import LibraryError
from engine.library import LIBRARY_FILENAME, IngestProgress, Library
from engine.library.schema import SCHEMA_VERSION

from ..books.makebooks import simple_epub


def _book(sha: str = "a" * 64, n: int = 3) -> Book:
    chapters = tuple(Chapter(f"Chapter {i}", f"Text of chapter {i}. " * (i + 1), label=str(i)) for i in range(n))
    return Book("Title", "Author", "en", sha, "txt", chapters)


@pytest.fixture
def lib(tmp_path: Path):  # noqa: ANN201
    library = Library.open(tmp_path)
    yield library
    library.close()


def test_open_creates_wal_database_with_foreign_keys_and_version(tmp_path: Path) -> None:
    with Library.open(tmp_path) as lib:
        assert lib.path == tmp_path / LIBRARY_FILENAME
        conn = lib.db.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert {"books", "chapters", "snapshots", "summaries", "messages"} <= set(lib.db.table_names())
    with Library.open(tmp_path) as lib:  # reopening migrates nothing and keeps data
        assert lib.list_books() == []


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINIBOOK_DATA_DIR", str(tmp_path / "env"))
    with Library.open() as lib:
        assert lib.path == tmp_path / "env" / LIBRARY_FILENAME


def test_newer_schema_and_non_database_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    conn = sqlite3.connect(tmp_path / "a" / LIBRARY_FILENAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(LibraryError, match="newer Infinibook"):
        Library.open(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / LIBRARY_FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="not an Infinibook library"):
        Library.open(tmp_path / "b")


def test_add_book_is_idempotent_by_sha256_and_keeps_chapters(lib: Library, tmp_path: Path) -> None:
    first = lib.add_book(_book(), tmp_path / "x.txt")
    again = lib.add_book(_book(), tmp_path / "elsewhere.txt")
    assert first == again and len(lib.list_books()) == 1
    assert (first.n_chapters, first.n_chars, first.format, first.language) == (3, sum(len(c.text) for c in _book().chapters), "txt", "en")
    chapters = lib.chapters(first.id)
    assert [c.idx for c in chapters] == [0, 1, 2]
    assert chapters[1].title == "Chapter 1" and chapters[1].label == "1" and chapters[1].n_tokens is None
    lib.set_chapter_tokens(first.id, 1, 42)
    assert lib.chapters(first.id)[1].n_tokens == 42
    with pytest.raises(LibraryError):
        lib.set_chapter_tokens(first.id, 9, 1)


def test_names_with_undecodable_bytes_are_stored_with_a_replacement_character(lib: Library, tmp_path: Path) -> None:
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")  # a Latin-1 file name, as Python lists it
    broken = "\ud83d"  # half a surrogate pair, as a damaged PDF's text can hold
    chapters = (Chapter(f"Chapter {broken}", f"Text {broken} and \ud83d\ude00.", label=broken),)
    record = lib.add_book(Book(name.removesuffix(".txt"), "Author", "en", "b" * 64, "txt", chapters), tmp_path / name)
    stored = lib.chapters(record.id)[0]
    assert record.title == "caf\ufffd" and record.n_chars == stored.n_chars == len(stored.text)
    assert (stored.title, stored.label) == ("Chapter \ufffd", "\ufffd")
    assert stored.text == "Text \ufffd and \U0001f600."
    assert lib.list_books()[0].path.endswith("caf\ufffd.txt")


def test_add_path_and_resolve_by_id_or_path(lib: Library, tmp_path: Path) -> None:
    path = simple_epub(tmp_path / "b.epub")
    record = lib.add_path(path)
    assert lib.add_path(path) == record
    assert lib.resolve(record.id) == record == lib.resolve(str(record.id)) == lib.resolve(str(path))
    copy = tmp_path / "renamed copy.epub"
    copy.write_bytes(path.read_bytes())
    assert lib.resolve(copy) == record  # identity is the content, not the name
    other = simple_epub(tmp_path / "other.epub", n=4)
    with pytest.raises(LibraryError, match="not in the library"):
        lib.resolve(str(other))
    assert lib.resolve(str(other), add_paths=True).n_chapters == 4
    with pytest.raises(LibraryError, match="no book with id 999"):
        lib.resolve("999")
    with pytest.raises(LibraryError, match="neither a book id nor a file"):
        lib.resolve("no/such/file.epub")
    for digits in ("²", "١٢"):  # digits to str.isdigit, but not to int() or to SQLite ids
        with pytest.raises(LibraryError, match="neither a book id nor a file"):
            lib.resolve(digits)


def test_remove_book_cascades(lib: Library, tmp_path: Path) -> None:
    keep = lib.add_book(_book("b" * 64), tmp_path / "keep.txt")
    gone = lib.add_book(_book(), tmp_path / "x.txt")
    for rec in (keep, gone):
        lib.save_snapshot(rec.id, 0, 10, "fp", b"blob", "float32", "[1]")
        lib.save_summary(rec.id, None, "summary", "fp")
        lib.add_message(rec.id, "user", "hello", 0)
    lib.remove_book(gone.id)
    counts = {t: lib.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("books", "chapters", "snapshots", "summaries", "messages")}
    assert counts == {"books": 1, "chapters": 3, "snapshots": 1, "summaries": 1, "messages": 1}
    with pytest.raises(LibraryError):
        lib.get_book(gone.id)
    with pytest.raises(LibraryError):
        lib.remove_book(gone.id)


def test_snapshot_roundtrip_progress_and_reset(lib: Library, tmp_path: Path) -> None:
    rec = lib.add_book(_book(), tmp_path / "x.txt")
    assert lib.ingest_progress(rec.id) == IngestProgress(chapters_done=0, tokens_done=0, fingerprint=None, chapters_total=3)
    blob = bytes(range(256)) * 100
    lib.save_snapshot(rec.id, 0, 1000, "fp1", blob, "float32", "[2, 64]")
    lib.save_snapshot(rec.id, 1, 2500, "fp1", blob[::-1], "float32", "[2, 64]")
    snap = lib.load_snapshot(rec.id, 1)
    assert (snap.chapter_idx, snap.token_offset, snap.fingerprint, snap.dtype, snap.shape, snap.blob) == (1, 2500, "fp1", "float32", "[2, 64]", blob[::-1])
    progress = lib.ingest_progress(rec.id)
    assert (progress.chapters_done, progress.tokens_done, progress.fingerprint, progress.chapters_total) == (2, 2500, "fp1", 3)
    # Only the next chapter may be saved: another reader's chapters would leave gaps behind the mark.
    with pytest.raises(LibraryError, match="Another Infinibook is reading"):
        lib.save_snapshot(rec.id, 1, 2600, "fp1", b"new", "float32", "[1]")
    with pytest.raises(LibraryError, match="Another Infinibook is reading"):
        lib.save_snapshot(rec.id, 2, 3600, "fp2", b"new", "float32", "[1]")  # another model's chapter
    assert lib.load_snapshot(rec.id, 1).blob == blob[::-1] and lib.ingest_progress(rec.id).chapters_done == 2
    lib.save_snapshot(rec.id, 0, 900, "fp2", b"new", "float32", "[1]", replace_others=True)  # a re-read
    assert lib.load_snapshot(rec.id, 0).blob == b"new" and lib.ingest_progress(rec.id).fingerprint == "fp2"
    with pytest.raises(LibraryError, match="No memory is saved"):
        lib.load_snapshot(rec.id, 1)
    with pytest.raises(LibraryError, match="no chapter"):
        lib.save_snapshot(rec.id, 7, 0, "fp1", b"x", "f", "[]")
    with pytest.raises(LibraryError, match="No memory is saved"):
        lib.load_snapshot(rec.id, 2)
    lib.reset_ingest(rec.id)
    assert lib.ingest_progress(rec.id).chapters_done == 0 and lib.ingest_progress(rec.id).fingerprint is None
    with pytest.raises(LibraryError):
        lib.load_snapshot(rec.id, 0)


def test_corrupted_snapshot_is_reported_not_used(lib: Library, tmp_path: Path) -> None:
    rec = lib.add_book(_book(), tmp_path / "x.txt")
    lib.save_snapshot(rec.id, 0, 10, "fp", b"\x01" * 4096, "float32", "[1024]")
    with lib._write() as conn:
        conn.execute("UPDATE snapshots SET blob = ? WHERE book_id = ?", (b"\x01" * 4095 + b"\x02", rec.id))
    with pytest.raises(LibraryError, match="is corrupted; re-read the book"):
        lib.load_snapshot(rec.id, 0)


def test_snapshot_and_progress_are_one_transaction(lib: Library, tmp_path: Path) -> None:
    """If the progress update fails, the snapshot row is rolled back too."""
    rec = lib.add_book(_book(), tmp_path / "x.txt")
    with lib._write() as conn:
        conn.execute(
            "CREATE TRIGGER fail_progress BEFORE UPDATE OF ingested_chapters ON books "
            "BEGIN SELECT RAISE(ABORT, 'simulated crash'); END"
        )
    with pytest.raises(LibraryError):
        lib.save_snapshot(rec.id, 0, 10, "fp", b"blob", "float32", "[1]")
    assert lib.db.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
    assert lib.ingest_progress(rec.id).chapters_done == 0


def test_crash_mid_write_leaves_a_library_that_opens(tmp_path: Path) -> None:
    """A process killed inside a transaction: the next open sees the last committed state."""
    import subprocess
    import sys

    with Library.open(tmp_path) as lib:
        rec = lib.add_book(_book(), tmp_path / "x.txt")
        lib.save_snapshot(rec.id, 0, 10, "fp", b"first", "float32", "[1]")
    code = (
        f"import os, sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})\n"
        "from engine.library import Library\n"
        f"lib = Library.open({str(tmp_path)!r})\n"
        "conn = lib.db.conn\n"
        "conn.execute('BEGIN IMMEDIATE')\n"
        "conn.execute(\"INSERT OR REPLACE INTO snapshots VALUES (1, 1, 20, 'fp', 'f', '[1]', x'00', 'bad', 'now')\")\n"
        "conn.execute('UPDATE books SET ingested_chapters = 2')\n"
        "os._exit(9)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    with Library.open(tmp_path) as lib:
        assert lib.ingest_progress(rec.id).chapters_done == 1
        assert lib.load_snapshot(rec.id, 0).blob == b"first"
        with pytest.raises(LibraryError):
            lib.load_snapshot(rec.id, 1)


def test_summaries_replace_and_whole_book(lib: Library, tmp_path: Path) -> None:
    rec = lib.add_book(_book(), tmp_path / "x.txt")
    lib.save_summary(rec.id, 1, "old", "fp")
    lib.save_summary(rec.id, 1, "new", "fp")
    lib.save_summary(rec.id, None, "book v1", "fp")
    lib.save_summary(rec.id, None, "book v2", "fp2")
    lib.save_summary(rec.id, 0, "zero", "fp")
    got = [(s.chapter_idx, s.text, s.fingerprint) for s in lib.summaries(rec.id)]
    assert got == [(0, "zero", "fp"), (1, "new", "fp"), (None, "book v2", "fp2")]


def test_a_regenerated_chapter_summary_supersedes_the_whole_book_summary(lib: Library, tmp_path: Path) -> None:
    rec = lib.add_book(_book(), tmp_path / "x.txt")

    def superseded() -> list[bool]:
        return [s.superseded for s in lib.summaries(rec.id)]

    lib.save_summary(rec.id, 0, "zero", "fp")
    lib.save_summary(rec.id, 1, "one", "fp")
    lib.save_summary(rec.id, None, "book", "fp")
    assert superseded() == [False, False, False]
    lib.save_summary(rec.id, 0, "zero again", "fp")  # the book summary no longer says what it says
    assert superseded() == [False, False, True]
    lib.save_summary(rec.id, None, "book again", "fp")
    assert superseded() == [False, False, False]


def test_an_id_too_large_for_sqlite_is_no_book(lib: Library) -> None:
    with pytest.raises(LibraryError, match="no book with id"):
        lib.resolve("99999999999999999999999")


def test_messages_and_position(lib: Library, tmp_path: Path) -> None:
    rec = lib.add_book(_book(), tmp_path / "x.txt")
    a = lib.add_message(rec.id, "user", "Who is Ahab?", 1)
    b = lib.add_message(rec.id, "assistant", "A captain.", None)
    assert b > a
    assert [(m.role, m.content, m.as_of_chapter) for m in lib.messages(rec.id)] == [("user", "Who is Ahab?", 1), ("assistant", "A captain.", None)]
    assert lib.get_position(rec.id) == (0, 0)
    lib.set_position(rec.id, 2, 123)
    assert lib.get_position(rec.id) == (2, 123)
    with pytest.raises(LibraryError):
        lib.add_message(999, "user", "x", None)


def test_a_question_and_its_answer_are_stored_together_or_not_at_all(lib: Library, tmp_path: Path) -> None:
    rec = lib.add_book(_book(), tmp_path / "x.txt")
    ids = lib.add_messages(rec.id, [("user", "Who is Ahab?"), ("assistant", "A captain.")], 1)
    assert [m.id for m in lib.messages(rec.id)] == ids and len(ids) == 2
    with pytest.raises(LibraryError):  # the answer cannot be stored (no content): nor is the question
        lib.add_messages(rec.id, [("user", "And Ishmael?"), ("assistant", None)], 1)
    assert [m.content for m in lib.messages(rec.id)] == ["Who is Ahab?", "A captain."]

def test_usable_from_worker_threads(lib: Library, tmp_path: Path) -> None:
    rec = lib.add_book(_book(n=40), tmp_path / "x.txt")
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            for i in range(40):
                lib.save_snapshot(rec.id, i, i * 10, "fp", bytes([i]) * 1000, "u8", "[1000]")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def chat() -> None:
        try:
            for i in range(40):
                lib.add_message(rec.id, "user", f"q{i}", None)
                lib.list_books()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=ingest), threading.Thread(target=chat)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert lib.ingest_progress(rec.id).chapters_done == 40
    assert len(lib.messages(rec.id)) == 40
    assert lib.load_snapshot(rec.id, 39).blob == bytes([39]) * 1000


def test_closed_library_refuses_work(tmp_path: Path) -> None:
    lib = Library.open(tmp_path)
    lib.close()
    lib.close()
    with pytest.raises(LibraryError, match="closed"):
        lib.list_books()
