"""What a careful user of the command line runs into: a reader that stops early (`| head`), a
mistyped device, chapter number or question on a book new to the library, `chat --json`."""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest
import torch

from app.cli import build_parser, main
from engine import api
from tests.engine.reading.helpers import tiny, write_book, writes


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(api, "load_engine", lambda model=None, **options: tiny())
    yield
    torch.set_num_threads(threads)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def library_titles(capsys, lib: str) -> list[str]:
    code, out, _ = run(capsys, "list", "--json", "--data-dir", lib)
    assert code == 0
    return [book["title"] for book in json.loads(out)]


@contextlib.contextmanager
def closed_stdout():
    """sys.stdout as a pipe whose reader has gone (`infinibook export 1 | head -c 10`); set inside
    the test, as pytest's own capture resets sys.stdout when the test body starts."""
    read, write = os.pipe()
    os.close(read)
    with open(write, "w", encoding="utf-8") as stream, pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", stream)
        yield stream


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path, capsys):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=1)
    with api.open_library(lib) as library:
        record = library.resolve(str(book), add_paths=True)
        library.add_message(record.id, "user", "a long question " * 20000, 0)  # more than a pipe holds
    with closed_stdout() as stdout:
        code = main(["export", "1", "--data-dir", lib])
        stdout.write("the interpreter's last flush must not fail either\n" * 1000)
        stdout.flush()
    err = capsys.readouterr().err
    assert code == 141 and err == ""


@pytest.mark.parametrize("device", ["gpu", "cuda1", ""])
def test_an_unknown_device_is_one_usage_error(tmp_path, capsys, device):
    book = str(write_book(tmp_path / "road.md", chapters=1))
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", book, "--device", device, "--data-dir", str(tmp_path / "lib")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert f"'{device}' is not a device; use auto, cpu or cuda" in err.strip().splitlines()[-1]
    assert not (tmp_path / "lib").exists()


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_the_devices_torch_knows_are_accepted(device):
    assert build_parser().parse_args(["bench", "ask", "--device", device]).device == device


@pytest.mark.parametrize("argv", [["ask", "BOOK", "Who?", "--as-of", "0"],
                                  ["ask", "BOOK", "Who?", "--as-of", "-2"],
                                  ["chat", "BOOK", "--as-of", "0"],
                                  ["summarize", "BOOK", "--chapter", "0"],
                                  ["ask", "BOOK", "   "],
                                  ["ask", "BOOK", b"Who is \xff here?".decode("utf-8", "surrogateescape")]])
def test_a_bad_chapter_number_or_question_leaves_a_new_book_out(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.setattr("sys.stdin", io.StringIO("Who?\n\n"))
    lib = str(tmp_path / "lib")
    book = str(write_book(tmp_path / "road.md", chapters=2))
    argv = [book if part == "BOOK" else part for part in argv]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--data-dir", lib])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("usage: ") and "Traceback" not in err
    assert library_titles(capsys, lib) == []


def test_chat_json_is_one_object_per_answer(tmp_path, capsys, monkeypatch):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    assert run(capsys, "ingest", str(book), "--json", "--data-dir", lib)[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("First question?\nSecond question?\n\n"))
    writes(tiny(), monkeypatch, "On foot.")  # the tiny model writes blank lines, which are not stored
    code, out, err = run(capsys, "chat", "1", "--as-of", "1", "--max-tokens", "4", "--json", "--data-dir", lib)
    assert code == 0, err
    turns = [json.loads(line) for line in out.splitlines()]
    assert [t["question"] for t in turns] == ["First question?", "Second question?"]
    assert all(t["as_of_chapter"] == 1 and t["book_id"] == 1 and t["answer"] == "On foot." for t in turns)
    with api.open_library(lib) as library:
        answers = [m.content for m in library.messages(1) if m.role == "assistant"]
    assert answers == [t["answer"] for t in turns]


def test_eval_reads_the_text_of_an_epub(tmp_path):
    """`eval ppl|recall` measure an EPUB or PDF through the book parser (was an ImportError traceback)."""
    from app.cli.evaluate import _read_text
    from tests.engine.books.makebooks import simple_epub

    text = _read_text(str(simple_epub(tmp_path / "b.epub")))
    assert "First words of chapter 1." in text
