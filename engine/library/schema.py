"""The library's tables and their migrations, tracked by SQLite's `PRAGMA user_version`.

Each migration runs in its own transaction together with the version bump, so a crash in
the middle of an upgrade leaves the previous, working schema.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: books, chapters, memory snapshots, summaries, chat messages.
    """
    CREATE TABLE books (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        author TEXT NOT NULL,
        language TEXT,
        format TEXT NOT NULL,
        path TEXT NOT NULL,
        added_at TEXT NOT NULL,
        n_chapters INTEGER NOT NULL,
        n_chars INTEGER NOT NULL,
        ingested_chapters INTEGER NOT NULL DEFAULT 0,
        ingested_tokens INTEGER NOT NULL DEFAULT 0,
        ingest_fingerprint TEXT,
        position_chapter INTEGER NOT NULL DEFAULT 0,
        position_offset INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE chapters (
        book_id INTEGER NOT NULL REFERENCES books(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        title TEXT NOT NULL,
        text TEXT NOT NULL,
        label TEXT,
        n_chars INTEGER NOT NULL,
        n_tokens INTEGER,
        PRIMARY KEY (book_id, idx)
    );
    CREATE TABLE snapshots (
        book_id INTEGER NOT NULL REFERENCES books(id) ON DELETE CASCADE,
        chapter_idx INTEGER NOT NULL,
        token_offset INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        dtype TEXT NOT NULL,
        shape TEXT NOT NULL,
        blob BLOB NOT NULL,
        checksum TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (book_id, chapter_idx)
    );
    CREATE TABLE summaries (
        id INTEGER PRIMARY KEY,
        book_id INTEGER NOT NULL REFERENCES books(id) ON DELETE CASCADE,
        chapter_idx INTEGER,
        text TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX summaries_one_per_chapter ON summaries (book_id, ifnull(chapter_idx, -1));
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        book_id INTEGER NOT NULL REFERENCES books(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        as_of_chapter INTEGER,
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_by_book ON messages (book_id, id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
