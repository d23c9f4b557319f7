"""`infinibook ingest | ask | chat | summarize | export`: reading a book and talking about it.

BOOK is a library id or the path of a book file (a file not in the library yet is added
first, except by `export`, which only reads). Chapter numbers on the command line are 1-based,
as `infinibook show` lists them. Nothing here imports torch: the model is loaded through the
engine facade when a command needs it.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from engine import api
from engine.books import load_book, storable
from engine.errors import LibraryError
from engine.paths import write_text_atomically

from .common import add_common_options, fail, positive_int


def _engine(args: argparse.Namespace):
    return api.load_engine(args.model, adapter=args.adapter or "default", device=args.device, dtype=args.dtype)


def _book_and_engine(lib, args: argparse.Namespace):
    """The book and the model. A file new to the library is parsed first (its problems are told
    before the slow model load) but stored only once the model has loaded, so a bad --model
    leaves the library as it was."""
    try:
        known = lib.resolve(args.book)
    except LibraryError:
        path = Path(args.book).expanduser()
        if not path.is_file():
            raise
        parsed = load_book(path)
        engine = _engine(args)
        return lib.add_book(parsed, path), engine
    return known, _engine(args)


def _chapter_index(number: int | None) -> int | None:
    """A 1-based chapter number from the command line (checked by `positive_int`) as an index."""
    return None if number is None else number - 1


def _question(text: str) -> str:
    """An argparse type: an empty or undecodable question is refused before a new book is added
    or a model loads (`plan_question` checks again for callers other than this command line)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the question is empty; type a question about the book")
    if storable(text) != text:  # bytes from a terminal in another encoding, as surrogate escapes
        raise argparse.ArgumentTypeError("the question contains bytes that are not UTF-8 text; set your "
                                         "terminal to UTF-8 and type it again")
    return text


def _emit(data: dict) -> None:
    print(json.dumps(data, ensure_ascii=False), flush=True)


# -- ingest --------------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    with api.open_library(args.data_dir) as lib:
        book, engine = _book_and_engine(lib, args)
        status = api.read_status(lib, book.id, engine)
        if status.stale and not args.restart:
            raise api.StaleMemory(status.message.replace("(ingest with --restart)",
                                                         f"(infinibook ingest {args.book} --restart)"))
        if args.json:
            _emit({"event": "start", "book_id": book.id, "title": book.title, **asdict(status)})
            final = api.ingest(lib, book.id, engine, restart=args.restart,
                               on_event=lambda e: _emit({"event": "progress", **asdict(e)}))
            _emit({"event": "done", "book_id": book.id, **asdict(final)})
            return 0
        final = _ingest_with_bar(lib, book, engine, status, args.restart)
        print(f"[{book.id}] {book.title}: {final.message}")
    return 0


def _ingest_with_bar(lib, book, engine, status, restart: bool):
    from tqdm import tqdm

    if status.complete and not restart:
        return status
    if status.chapters_done and not restart:
        print(f"Resuming '{book.title}' at chapter {status.chapters_done + 1} of {status.chapters_total}.",
              file=sys.stderr)
    bar = None

    def on_event(event) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=event.tokens_total, initial=0, unit="tok", unit_scale=True, dynamic_ncols=True,
                       file=sys.stderr, disable=None)
        bar.set_description(f"chapter {event.chapter_index + 1}/{event.chapters_total}", refresh=False)
        bar.update(event.tokens_done - bar.n)

    try:
        return api.ingest(lib, book.id, engine, on_event=on_event, restart=restart)
    finally:
        if bar is not None:
            bar.close()


# -- ask and chat --------------------------------------------------------------------------------


def _stream_answer(pieces, *, echo: bool = True, into: list[str] | None = None) -> tuple[str, float | None]:
    """Print pieces as they come (when `echo`), collected in `into` (kept if Ctrl-C stops it);
    (answer, seconds to the first piece)."""
    began = time.monotonic()
    first = None
    text = [] if into is None else into
    for piece in pieces:
        if first is None:
            first = time.monotonic() - began
        text.append(piece)
        if echo:
            sys.stdout.write(piece)
            sys.stdout.flush()
    return "".join(text), first


def cmd_ask(args: argparse.Namespace) -> int:
    with api.open_library(args.data_dir) as lib:
        book, engine = _book_and_engine(lib, args)
        began = time.monotonic()
        plan = api.plan_question(lib, book.id, engine, args.question, _chapter_index(args.as_of),
                                 max_new_tokens=args.max_tokens)
        pieces = api.ask(lib, book.id, engine, args.question, as_of=plan.chapter_idx, max_new_tokens=args.max_tokens)
        chapter = next(c for c in lib.chapter_sizes(book.id) if c.idx == plan.chapter_idx)
        if args.json:
            first = None
            text = []
            for piece in pieces:
                first = first if first is not None else time.monotonic() - began
                text.append(piece)
            _emit({"book_id": book.id, "title": book.title, "question": args.question,
                   "as_of_chapter": plan.chapter_idx + 1, "chapter_title": chapter.title,
                   "answer": "".join(text).strip(), "first_token_s": first,
                   "total_s": time.monotonic() - began})
            return 0
        print(f"[as of chapter {plan.chapter_idx + 1}: {chapter.title}]", file=sys.stderr)
        answer, _ = _stream_answer(pieces)
        print()
        _say_if_blank(answer)
    return 0


def _say_if_blank(answer: str) -> None:
    """An answer of nothing but blank lines is not stored: say so rather than leave an empty line."""
    if not answer.strip():
        fail(api.NO_ANSWER)


def cmd_chat(args: argparse.Namespace) -> int:
    with api.open_library(args.data_dir) as lib:
        book, engine = _book_and_engine(lib, args)
        # checked before the banner: a chapter beyond the book or not read yet is told at once
        chapter_idx = api.choose_chapter(lib, book.id, engine, _chapter_index(args.as_of))
        title = next((c.title for c in lib.chapter_sizes(book.id) if c.idx == chapter_idx), "")
        print(f"Chatting about '{book.title}' as of chapter {chapter_idx + 1}: {title}. "
              f"An empty line, /quit or Ctrl-D ends; Ctrl-C stops an answer.", file=sys.stderr)
        if isinstance(sys.stdin, io.TextIOWrapper):  # a line in another encoding is then refused by
            sys.stdin.reconfigure(errors="surrogateescape")  # `ask` in one sentence, not a traceback
        while True:
            try:
                question = input("" if args.json else "you> ")  # --json: stdout holds JSON only
            except (EOFError, KeyboardInterrupt):
                print(file=sys.stderr)
                return 0
            if not question.strip() or question.strip() in ("/quit", "/exit"):
                return 0
            try:
                pieces = api.ask(lib, book.id, engine, question, as_of=chapter_idx, max_new_tokens=args.max_tokens)
            except LibraryError as refused:  # this question only (too long, say): nothing stored, the chat goes on
                fail(str(refused))
                continue
            if not args.json:
                sys.stdout.write("infinibook> ")
            answer, finished = _answer_turn(pieces, echo=not args.json)
            if args.json:  # one object per answer, as stored (also when stopped part-way)
                _emit({"book_id": book.id, "as_of_chapter": chapter_idx + 1, "question": question.strip(),
                       "answer": answer, "stopped": not finished})
            else:
                print("" if finished else " [stopped]")
                if finished:
                    _say_if_blank(answer)


def _answer_turn(pieces, *, echo: bool) -> tuple[str, bool]:
    """Run one chat answer to its end, printed as it comes when `echo`: the answer as stored
    (kept here: an answer stopped before its first piece is not stored at all) and False when
    Ctrl-C stopped it (a partial answer is stored all the same)."""
    said: list[str] = []
    try:
        _stream_answer(pieces, echo=echo, into=said)
    except KeyboardInterrupt:
        pieces.close()
        return "".join(said).strip(), False
    return "".join(said).strip(), True


# -- summaries and export ------------------------------------------------------------------------


def cmd_summarize(args: argparse.Namespace) -> int:
    with api.open_library(args.data_dir) as lib:
        book, engine = _book_and_engine(lib, args)
        chapter_idx = _chapter_index(args.chapter)
        chapters = lib.chapter_sizes(book.id)
        limit = {"max_new_tokens": args.max_tokens} if args.max_tokens is not None else {}
        if chapter_idx is not None:
            if chapter_idx >= len(chapters):
                raise LibraryError(f"There is no chapter {args.chapter}; this book has {len(chapters)} chapters.")
            title = chapters[chapter_idx].title
            pieces = api.summarize_chapter(lib, book.id, engine, chapter_idx, **limit)
            header = f"Chapter {chapter_idx + 1}: {title}"
        else:
            title = book.title

            def progress(idx: int, total: int) -> None:
                if not args.json:
                    print(f"summarising chapter {idx + 1} of {total} first ...", file=sys.stderr)

            chapter_limit = {"chapter_max_new_tokens": args.max_tokens} if args.max_tokens is not None else {}
            pieces = api.summarize_book(lib, book.id, engine, on_chapter=progress, **limit, **chapter_limit)
            header = f"{book.title} (whole book)"
        if args.json:
            text = "".join(pieces).strip()
            _emit({"book_id": book.id, "chapter": None if chapter_idx is None else chapter_idx + 1,
                   "title": title, "summary": text})
            return 0
        print(f"[{header}]", file=sys.stderr)
        _stream_answer(pieces)
        print()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with api.open_library(args.data_dir) as lib:
        book = lib.resolve(args.book)  # a read-only command: an unknown file is not added
        text = api.export_markdown(lib, book.id)
    if not args.output or args.output == "-":
        if args.json:
            _emit({"book_id": book.id, "title": book.title, "markdown": text})
        else:
            sys.stdout.write(text)
        return 0
    try:
        write_text_atomically(args.output, text)  # a failed write leaves an existing file as it was
    except OSError as error:
        raise LibraryError(f"Cannot write {args.output} ({error.strerror or error}); choose another file.") from error
    if args.json:
        _emit({"book_id": book.id, "path": args.output, "bytes": len(text.encode("utf-8"))})
    else:
        print(f"Wrote the notes on '{book.title}' to {args.output}.")
    return 0


# -- registration --------------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("ingest", help="read a book into memory (resumes where it stopped)")
    p.add_argument("book", help="book id or path of the book's file (added first if new)")
    p.add_argument("--restart", action="store_true", help="forget the saved memory and read from the start")
    add_common_options(p, model=True)
    p.set_defaults(handler=cmd_ingest)

    p = commands.add_parser("ask", help="ask a question about a book, as of a chapter")
    p.add_argument("book", help="book id or path of the book's file")
    p.add_argument("question", type=_question, help="the question")
    p.add_argument("--as-of", type=positive_int, default=None, metavar="N",
                   help="answer as of the end of chapter N (default: the last chapter read)")
    p.add_argument("--max-tokens", type=positive_int, default=256, help="longest answer, in tokens")
    add_common_options(p, model=True)
    p.set_defaults(handler=cmd_ask)

    p = commands.add_parser("chat", help="talk about a book interactively, answers streamed (--json: one "
                                         "object per answer, questions read from stdin)")
    p.add_argument("book", help="book id or path of the book's file")
    p.add_argument("--as-of", type=positive_int, default=None, metavar="N",
                   help="as of the end of chapter N (default: the last chapter read)")
    p.add_argument("--max-tokens", type=positive_int, default=256, help="longest answer, in tokens")
    add_common_options(p, model=True)
    p.set_defaults(handler=cmd_chat)

    p = commands.add_parser("summarize", help="summarise a chapter, or the whole book")
    p.add_argument("book", help="book id or path of the book's file")
    p.add_argument("--chapter", type=positive_int, default=None, metavar="N", help="chapter N only (default: the whole book)")
    p.add_argument("--max-tokens", type=positive_int, default=None, help="longest summary, in tokens")
    add_common_options(p, model=True)
    p.set_defaults(handler=cmd_summarize)

    p = commands.add_parser("export", help="a book's summaries and chat as Markdown")
    p.add_argument("book", help="book id or path of a book file already in the library")
    p.add_argument("-o", "--output", default=None, metavar="FILE.md", help="output file (default: print)")
    add_common_options(p)
    p.set_defaults(handler=cmd_export)
