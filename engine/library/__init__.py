"""The library: one SQLite file (WAL, foreign keys on, versioned schema) holding books, their
chapters, memory snapshots, summaries and chat messages.

Crash safety comes from SQLite: every change is one transaction, and a chapter's memory
snapshot is written in the same transaction as the book's ingest progress mark, so after a
crash at any instant the library opens and an ingest resumes from the last finished chapter.
One connection is shared by all threads behind a lock (the GUI ingests in a worker thread).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from engine.books import Book, file_sha256, load_book, storable
from engine.errors import InfinibookError, LibraryError
from engine.paths import data_dir as default_data_dir

from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "BookRecord",
    "ChapterRecord",
    "IngestProgress",
    "Library",
    "MessageRecord",
    "SnapshotRecord",
    "SummaryRecord",
    "LIBRARY_FILENAME",
]

LIBRARY_FILENAME = "library.sqlite3"


@dataclass(frozen=True)
class BookRecord:
    id: int
    title: str
    author: str
    language: str | None
    format: str
    path: str
    sha256: str
    added_at: str
    n_chapters: int
    n_chars: int


@dataclass(frozen=True)
class ChapterRecord:
    idx: int
    title: str
    text: str
    label: str | None
    n_chars: int
    n_tokens: int | None


@dataclass(frozen=True)
class SnapshotRecord:
    chapter_idx: int
    token_offset: int
    fingerprint: str
    dtype: str
    shape: str
    blob: bytes


@dataclass(frozen=True)
class IngestProgress:
    chapters_done: int
    tokens_done: int
    fingerprint: str | None
    chapters_total: int


@dataclass(frozen=True)
class SummaryRecord:
    chapter_idx: int | None
    text: str
    fingerprint: str
    created_at: str
    # A whole-book summary is built from the chapter summaries: once one of them is regenerated
    # after it, it no longer says what they say.
    superseded: bool = False


@dataclass(frozen=True)
class MessageRecord:
    id: int
    role: str
    content: str
    as_of_chapter: int | None
    created_at: str


_BOOK_COLUMNS = "id, title, author, language, format, path, sha256, added_at, n_chapters, n_chars"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _book(row: dict) -> BookRecord:
    return BookRecord(**{k: row[k] for k in BookRecord.__dataclass_fields__})



def _busy(error: sqlite3.Error) -> bool:
    """Another connection holds the lock: worth a retry, not a sign of damage."""
    return "locked" in str(error) or "busy" in str(error)

class Library:
    """All persistent state of Infinibook. Use `Library.open()`; close it when done."""

    def __init__(self, path: Path, db: sqlite_utils.Database) -> None:
        self.path = path
        self.db = db
        self._lock = threading.RLock()
        self._closed = False

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: str | os.PathLike | None = None) -> Library:
        """Open (creating and migrating if needed) `<data_dir>/library.sqlite3`."""
        try:
            directory = default_data_dir(data_dir)
        except OSError as e:
            raise LibraryError(f"The library folder '{data_dir}' cannot be created ({e.strerror or e}); choose another with --data-dir.") from e
        path = directory / LIBRARY_FILENAME
        try:
            conn = sqlite3.connect(path, timeout=15, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise LibraryError(f"The library '{path}' cannot be opened ({e}); check the folder's permissions.") from e
        lib = cls(path, sqlite_utils.Database(conn))
        try:
            lib._setup()
        except InfinibookError:
            conn.close()
            raise
        except sqlite3.DatabaseError as e:
            conn.close()
            if _busy(e):
                raise LibraryError(f"The library '{path}' is busy (another Infinibook is writing to it); try again in a moment.") from e
            raise LibraryError(
                f"'{path}' is not an Infinibook library or is damaged ({e}); move it aside or "
                "choose another library folder with --data-dir."
            ) from e
        return lib

    def _setup(self) -> None:
        conn = self.db.conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LibraryError(
                f"The library '{self.path}' was made by a newer Infinibook (schema {version}); "
                "update Infinibook to use it."
            )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 15000")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._enable_wal()
        conn.execute("PRAGMA synchronous = FULL")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with self._write():
                # Another process opening the same new library may have migrated it meanwhile.
                if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                    continue
                for statement in MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    def _enable_wal(self, patience_s: float = 15.0) -> None:
        """Switching to WAL needs the file to itself, and SQLite answers "locked" at once instead
        of waiting (two processes opening a new library together): retry for a while."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self.db.enable_wal()
                return
            except sqlite3.OperationalError as e:
                if not _busy(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.db.conn.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """The lock, plus SQLite errors turned into one readable LibraryError."""
        with self._lock:
            if self._closed:
                raise LibraryError("The library is closed; open it again.")
            try:
                yield self.db.conn
            except sqlite3.OperationalError as e:
                if _busy(e):
                    raise LibraryError("The library is busy (another Infinibook is writing to it); try again in a moment.") from e
                raise LibraryError(f"The library '{self.path}' could not be used ({e}); check free disk space and permissions.") from e
            except sqlite3.Error as e:
                raise LibraryError(f"The library '{self.path}' could not be used ({e}); it may be damaged — move it aside to start a new one.") from e

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of it is written, or none of it."""
        with self._guard() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (disk full, busy) too: never left open
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _write_to_book(self, book_id: int) -> Iterator[tuple[sqlite3.Connection, dict]]:
        """A write transaction on one book, whose row is read INSIDE it: a book another
        Infinibook removed just before is "no such book", not a foreign-key failure reported
        as a damaged library (which would have the person move the whole library aside)."""
        with self._write() as conn:
            yield conn, self._book_row(book_id)

    def _row(self, sql: str, params: tuple = ()) -> dict | None:
        with self._guard():
            rows = list(self.db.query(sql, params))
        return rows[0] if rows else None

    def _book_row(self, book_id: int) -> dict:
        row = self._row("SELECT * FROM books WHERE id = ?", (int(book_id),))
        if row is None:
            raise LibraryError(f"There is no book with id {book_id} in the library; `infinibook list` shows the ids.")
        return row

    # -- books -------------------------------------------------------------------------

    def add_book(self, book: Book, source_path: str | os.PathLike) -> BookRecord:
        """Store a parsed book with its chapters; the same file (sha256) twice is one book.

        Every text goes through `storable`: the path is only shown (books are matched by content),
        so a name with undecodable bytes is stored with U+FFFD rather than refused."""
        source = storable(str(Path(source_path).resolve()))
        chapters = [(storable(c.title), storable(c.text), storable(c.label)) for c in book.chapters]
        with self._write() as conn:
            existing = conn.execute("SELECT id FROM books WHERE sha256 = ?", (book.source_sha256,)).fetchone()
            if existing:
                return self.get_book(existing[0])
            book_id = self.db["books"].insert(
                {
                    "sha256": book.source_sha256,
                    "title": storable(book.title),
                    "author": storable(book.author),
                    "language": storable(book.language),
                    "format": book.format,
                    "path": source,
                    "added_at": _now(),
                    "n_chapters": len(chapters),
                    "n_chars": sum(len(text) for _, text, _ in chapters),
                }
            ).last_pk
            conn.executemany(
                "INSERT INTO chapters (book_id, idx, title, text, label, n_chars) VALUES (?, ?, ?, ?, ?, ?)",
                [(book_id, i, title, text, label, len(text)) for i, (title, text, label) in enumerate(chapters)],
            )
        return self.get_book(book_id)

    def add_path(self, path: str | os.PathLike) -> BookRecord:
        """Parse the file first (a bad file never touches the database), then store it."""
        book = load_book(path)
        return self.add_book(book, path)

    def find_by_sha256(self, sha256: str) -> BookRecord | None:
        row = self._row(f"SELECT {_BOOK_COLUMNS} FROM books WHERE sha256 = ?", (sha256,))
        return _book(row) if row else None

    def resolve(self, ref: str | int, *, add_paths: bool = False) -> BookRecord:
        """A book by id, or by the path of its file (matched by content, so moved or renamed
        copies are found); unknown files are added when `add_paths`."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isascii() and ref.strip().isdigit()):
            # SQLite ids are 64-bit: a longer number is no book (sqlite3 would raise OverflowError)
            row = (self._row(f"SELECT {_BOOK_COLUMNS} FROM books WHERE id = ?", (int(ref),))
                   if 0 <= int(ref) < 2**63 else None)
            if row:
                return _book(row)
            if isinstance(ref, int) or not Path(ref).is_file():
                raise LibraryError(f"There is no book with id {int(ref)} in the library; `infinibook list` shows the ids.")
        path = Path(os.fspath(ref)).expanduser()
        if not path.is_file():
            raise LibraryError(f"'{ref}' is neither a book id nor a file; `infinibook list` shows the books in the library.")
        try:
            sha = file_sha256(path)
        except OSError as e:
            raise LibraryError(f"'{ref}' cannot be read ({e.strerror or e}); check its permissions.") from e
        found = self.find_by_sha256(sha)
        if found:
            return found
        if add_paths:
            return self.add_path(path)
        raise LibraryError(f"'{path.name}' is not in the library; add it first with `infinibook add`.")

    def get_book(self, book_id: int) -> BookRecord:
        return _book(self._book_row(book_id))

    def list_books(self) -> list[BookRecord]:
        with self._guard():
            return [_book(r) for r in self.db.query(f"SELECT {_BOOK_COLUMNS} FROM books ORDER BY id")]

    def remove_book(self, book_id: int) -> None:
        """Delete a book and, through ON DELETE CASCADE, everything it owns."""
        self._book_row(book_id)
        with self._write() as conn:
            conn.execute("DELETE FROM books WHERE id = ?", (int(book_id),))

    def chapters(self, book_id: int) -> list[ChapterRecord]:
        self._book_row(book_id)
        with self._guard():
            rows = self.db.query(
                "SELECT idx, title, text, label, n_chars, n_tokens FROM chapters WHERE book_id = ? ORDER BY idx",
                (int(book_id),),
            )
            return [ChapterRecord(**r) for r in rows]

    def chapter_sizes(self, book_id: int) -> list[ChapterRecord]:
        """Chapters without their text (text is ""), for listings of long books."""
        self._book_row(book_id)
        with self._guard():
            rows = self.db.query(
                "SELECT idx, title, '' AS text, label, n_chars, n_tokens FROM chapters WHERE book_id = ? ORDER BY idx",
                (int(book_id),),
            )
            return [ChapterRecord(**r) for r in rows]

    def set_chapter_tokens(self, book_id: int, idx: int, n_tokens: int) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE chapters SET n_tokens = ? WHERE book_id = ? AND idx = ?", (int(n_tokens), int(book_id), int(idx))
            )
            if cur.rowcount == 0:
                raise LibraryError(f"Book {book_id} has no chapter {idx + 1}; re-add the book if its chapters changed.")

    # -- memory snapshots and ingest progress ------------------------------------------

    def save_snapshot(
        self, book_id: int, chapter_idx: int, token_offset: int, fingerprint: str, blob: bytes, dtype: str, shape: str,
        *, replace_others: bool = False,
    ) -> None:
        """The memory after `chapter_idx` and the progress mark, in ONE transaction.

        `replace_others` drops the book's other snapshots in that same transaction: a re-read
        from the start keeps the old memory until its first chapter is safely stored."""
        blob = bytes(blob)
        checksum = hashlib.sha256(blob).hexdigest()
        with self._write_to_book(book_id) as (conn, row):
            if not 0 <= chapter_idx < row["n_chapters"]:
                raise LibraryError(f"Book {book_id} has no chapter {chapter_idx + 1}; it has {row['n_chapters']}.")
            if replace_others:
                conn.execute("DELETE FROM snapshots WHERE book_id = ?", (int(book_id),))
            elif row["ingested_chapters"] != chapter_idx or (chapter_idx and row["ingest_fingerprint"] != fingerprint):
                # Another reader (a second window, `infinibook ingest`) saved or restarted this book
                # meanwhile: going on would leave gaps, or chapters of two models, behind "complete".
                raise LibraryError(f"Another Infinibook is reading '{row['title']}' too; wait for it or cancel it, "
                                   "then read on.")
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (book_id, chapter_idx, token_offset, fingerprint, dtype, shape, blob, checksum, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (int(book_id), int(chapter_idx), int(token_offset), fingerprint, dtype, shape, blob, checksum, _now()),
            )
            conn.execute(
                "UPDATE books SET ingested_chapters = ?, ingest_fingerprint = ?, ingested_tokens = ? WHERE id = ?",
                (int(chapter_idx) + 1, fingerprint, int(token_offset), int(book_id)),
            )

    def load_snapshot(self, book_id: int, chapter_idx: int) -> SnapshotRecord:
        """The saved memory after a chapter, checksum-verified: a corrupted blob is never used."""
        book = self._book_row(book_id)
        row = self._row(
            "SELECT chapter_idx, token_offset, fingerprint, dtype, shape, blob, checksum FROM snapshots"
            " WHERE book_id = ? AND chapter_idx = ?",
            (int(book_id), int(chapter_idx)),
        )
        if row is None:
            raise LibraryError(f"No memory is saved for chapter {chapter_idx + 1} of '{book['title']}'; read the book first.")
        blob = row.pop("blob")
        checksum = row.pop("checksum")
        if not isinstance(blob, bytes) or hashlib.sha256(blob).hexdigest() != checksum:
            raise LibraryError(
                f"The saved memory for chapter {chapter_idx + 1} of '{book['title']}' is corrupted; re-read the book."
            )
        return SnapshotRecord(blob=blob, **row)

    def ingest_progress(self, book_id: int) -> IngestProgress:
        row = self._book_row(book_id)
        return IngestProgress(
            chapters_done=row["ingested_chapters"],
            tokens_done=row["ingested_tokens"],
            fingerprint=row["ingest_fingerprint"],
            chapters_total=row["n_chapters"],
        )

    def reset_ingest(self, book_id: int) -> None:
        """Forget the book's memory (e.g. to re-read it under another model fingerprint)."""
        with self._write_to_book(book_id) as (conn, _):
            conn.execute("DELETE FROM snapshots WHERE book_id = ?", (int(book_id),))
            conn.execute(
                "UPDATE books SET ingested_chapters = 0, ingested_tokens = 0, ingest_fingerprint = NULL WHERE id = ?",
                (int(book_id),),
            )

    # -- summaries, chat, reading position ---------------------------------------------

    def save_summary(self, book_id: int, chapter_idx: int | None, text: str, fingerprint: str) -> None:
        """Store a chapter's (or, with None, the whole book's) summary, replacing an older one."""
        with self._write_to_book(book_id) as (conn, _):
            conn.execute(
                "DELETE FROM summaries WHERE book_id = ? AND chapter_idx IS ?",
                (int(book_id), None if chapter_idx is None else int(chapter_idx)),
            )
            conn.execute(
                "INSERT INTO summaries (book_id, chapter_idx, text, fingerprint, created_at) VALUES (?, ?, ?, ?, ?)",
                (int(book_id), None if chapter_idx is None else int(chapter_idx), text, fingerprint, _now()),
            )

    def summaries(self, book_id: int) -> list[SummaryRecord]:
        self._book_row(book_id)
        with self._guard():
            rows = self.db.query(
                # ids only grow (max + 1), so a chapter row with a larger id was stored later
                "SELECT chapter_idx, text, fingerprint, created_at,"
                " chapter_idx IS NULL AND EXISTS (SELECT 1 FROM summaries AS c WHERE c.book_id = s.book_id"
                " AND c.chapter_idx IS NOT NULL AND c.id > s.id) AS superseded"
                " FROM summaries AS s WHERE book_id = ? ORDER BY chapter_idx IS NULL, chapter_idx",
                (int(book_id),),
            )
            return [SummaryRecord(**{**r, "superseded": bool(r["superseded"])}) for r in rows]

    def add_message(self, book_id: int, role: str, content: str, as_of_chapter: int | None) -> int:
        return self.add_messages(book_id, [(role, content)], as_of_chapter)[0]

    def add_messages(self, book_id: int, messages: list[tuple[str, str]], as_of_chapter: int | None) -> list[int]:
        """Store (role, content) messages in ONE transaction: a question and its answer are kept
        together or not at all, never a question without its answer."""
        with self._write_to_book(book_id):
            return [
                int(
                    self.db["messages"].insert(
                        {
                            "book_id": int(book_id),
                            "role": role,
                            "content": content,
                            "as_of_chapter": as_of_chapter,
                            "created_at": _now(),
                        }
                    ).last_pk
                )
                for role, content in messages
            ]

    def messages(self, book_id: int) -> list[MessageRecord]:
        self._book_row(book_id)
        with self._guard():
            rows = self.db.query(
                "SELECT id, role, content, as_of_chapter, created_at FROM messages WHERE book_id = ? ORDER BY id",
                (int(book_id),),
            )
            return [MessageRecord(**r) for r in rows]

    def set_position(self, book_id: int, chapter_idx: int, offset: int = 0) -> None:
        with self._write_to_book(book_id) as (conn, _):
            conn.execute(
                "UPDATE books SET position_chapter = ?, position_offset = ? WHERE id = ?",
                (int(chapter_idx), int(offset), int(book_id)),
            )

    def get_position(self, book_id: int) -> tuple[int, int]:
        row = self._book_row(book_id)
        return int(row["position_chapter"]), int(row["position_offset"])
