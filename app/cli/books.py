"""`infinibook add | list | show | remove`: the library from the command line.

`add` parses the file before the library is even opened, so a bad file can never change it.
BOOK is a library id or the path of the book's file (matched by content).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from engine.books import load_book
from engine.library import BookRecord, Library

from .common import add_common_options, silence_stdout


def _book_json(record: BookRecord) -> dict:
    data = asdict(record)
    data["chapters"] = record.n_chapters
    data["characters"] = record.n_chars
    return data


def _emit(*lines: str) -> None:
    """Print, tolerating a reader that stops early (`infinibook show 1 | head`)."""
    try:
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()


def _print_json(data: object) -> None:
    _emit(json.dumps(data, ensure_ascii=False, indent=2))


def cmd_add(args: argparse.Namespace) -> int:
    book = load_book(args.path)  # before opening the library: nothing to undo on failure
    with Library.open(args.data_dir) as lib:
        existing = lib.find_by_sha256(book.source_sha256)
        record = existing or lib.add_book(book, args.path)
    if args.json:
        _print_json({**_book_json(record), "already_present": existing is not None})
    else:
        verb = "Already in the library" if existing else "Added"
        _emit(
            f"{verb}: [{record.id}] {record.title} — {record.author} "
            f"({record.n_chapters} chapters, {record.n_chars:,} characters)"
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with Library.open(args.data_dir) as lib:
        books = lib.list_books()
    if args.json:
        _print_json([_book_json(b) for b in books])
        return 0
    if not books:
        _emit("The library is empty; add a book with `infinibook add PATH`.")
        return 0
    _emit(*(f"[{b.id}] {b.title} — {b.author} ({b.format}, {b.n_chapters} chapters, {b.n_chars:,} characters)" for b in books))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with Library.open(args.data_dir) as lib:
        record = lib.resolve(args.book)
        chapters = lib.chapter_sizes(record.id)
        progress = lib.ingest_progress(record.id)
    if args.json:
        data = _book_json(record)
        data["chapter_list"] = [
            {"index": c.idx, "title": c.title, "characters": c.n_chars, "label": c.label, "tokens": c.n_tokens}
            for c in chapters
        ]
        data["ingested_chapters"] = progress.chapters_done
        _print_json(data)
        return 0
    width = len(str(len(chapters)))
    lines = [
        f"[{record.id}] {record.title} — {record.author}",
        f"    {record.format}, {record.n_chapters} chapters, {record.n_chars:,} characters, read into memory: "
        f"{progress.chapters_done}/{progress.chapters_total} chapters",
        f"    {record.path}",
    ]
    for c in chapters:
        label = f"  [p. {c.label}]" if c.label else ""
        lines.append(f"  {c.idx + 1:>{width}}. {c.title}  ({c.n_chars:,} characters){label}")
    _emit(*lines)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with Library.open(args.data_dir) as lib:
        record = lib.resolve(args.book)
        lib.remove_book(record.id)
    if args.json:
        _print_json({"removed": record.id, "title": record.title})
    else:
        _emit(f"Removed [{record.id}] {record.title} and everything saved for it.")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("add", help="add a book (EPUB, PDF, TXT, Markdown) to the library")
    p.add_argument("path", help="the book file")
    add_common_options(p)
    p.set_defaults(handler=cmd_add)

    p = commands.add_parser("list", help="list the books in the library")
    add_common_options(p)
    p.set_defaults(handler=cmd_list)

    p = commands.add_parser("show", help="show a book's chapters with their sizes")
    p.add_argument("book", help="book id or path of the book's file")
    add_common_options(p)
    p.set_defaults(handler=cmd_show)

    p = commands.add_parser("remove", help="remove a book and everything saved for it")
    p.add_argument("book", help="book id or path of the book's file")
    add_common_options(p)
    p.set_defaults(handler=cmd_remove)
