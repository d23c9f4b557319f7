"""`infinibook ingest | ask | chat | summarize | export` through main(), on a tiny random model."""

from __future__ import annotations

import io
import json

import pytest
import torch

from app.cli import main
from engine import api
from tests.engine.reading.helpers import tiny, write_book, writes


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    models = []

    def load(model=None, **options):
        models.append(model)
        return tiny()

    monkeypatch.setattr(api, "load_engine", load)
    yield models
    torch.set_num_threads(threads)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_ingest_ask_summarize_export(tmp_path, capsys, monkeypatch):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=3)

    code, out, err = run(capsys, "ingest", str(book), "--data-dir", lib, "--json")
    assert code == 0, err
    events = json_lines(out)
    assert events[0]["event"] == "start" and events[0]["chapters_done"] == 0
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["chapter_index"] for e in progress if e["finished_chapter"]] == [0, 1, 2]
    assert {"tokens_done", "tokens_total", "tokens_per_s", "eta_s", "chapter_title"} <= progress[0].keys()
    assert events[-1]["event"] == "done" and events[-1]["chapters_done"] == 3 and not events[-1]["stale"]

    code, out, err = run(capsys, "ingest", "1", "--data-dir", lib)  # BOOK as an id; nothing left to read
    assert code == 0 and "Read completely" in out

    code, out, err = run(capsys, "ask", "1", "Blank?", "--max-tokens", "4", "--data-dir", lib)
    assert code == 0 and api.NO_ANSWER in err  # the tiny model writes blank lines: not stored

    writes(tiny(), monkeypatch, "The traveller walks on.")
    code, out, err = run(capsys, "ask", "1", "Where did the traveller go?", "--as-of", "2", "--json",
                         "--max-tokens", "8", "--data-dir", lib)
    assert code == 0, err
    answer = json_lines(out)[0]
    assert answer["as_of_chapter"] == 2 and answer["chapter_title"] == "Chapter 2: Stage 2"
    assert answer["question"] == "Where did the traveller go?" and "answer" in answer

    code, out, err = run(capsys, "ask", str(book), "And then?", "--max-tokens", "8", "--data-dir", lib)
    assert code == 0 and "as of chapter 3" in err and "The traveller walks on." in out

    code, out, err = run(capsys, "ask", "1", "Too far?", "--as-of", "9", "--data-dir", lib)
    assert code == 2 and "no chapter 9" in err

    code, out, err = run(capsys, "summarize", "1", "--chapter", "2", "--json", "--max-tokens", "8", "--data-dir", lib)
    assert code == 0, err
    summary = json_lines(out)[0]
    assert summary["chapter"] == 2 and summary["title"] == "Chapter 2: Stage 2" and "summary" in summary

    code, out, err = run(capsys, "summarize", "1", "--json", "--max-tokens", "8", "--data-dir", lib)
    assert code == 0, err
    assert json_lines(out)[0]["chapter"] is None

    target = tmp_path / "notes.md"
    code, out, err = run(capsys, "export", "1", "-o", str(target), "--data-dir", lib)
    assert code == 0 and str(target) in out
    notes = target.read_text()
    assert notes.startswith("# ") and "## Summary of the whole book" in notes and "## Chapter summaries" in notes
    assert "Where did the traveller go?" in notes and "(as of Chapter 2: Stage 2)" in notes

    with api.open_library(lib) as library:
        messages = library.messages(1)
    assert [(m.role, m.as_of_chapter) for m in messages] == [("user", 1), ("assistant", 1), ("user", 2), ("assistant", 2)]


def test_chat_streams_answers_until_an_empty_line(tmp_path, capsys, monkeypatch):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    assert run(capsys, "ingest", str(book), "--data-dir", lib, "--json")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("Blank?\nFirst question?\nSecond question?\n\n"))
    answers = iter(["\n\n", "On foot.", "By the river."])
    monkeypatch.setattr(tiny(), "generate", lambda prompt_ids, state, **options: iter(tiny().tokenizer.encode(
        next(answers), add_special_tokens=False)))
    code, out, err = run(capsys, "chat", "1", "--as-of", "1", "--max-tokens", "4", "--data-dir", lib)
    assert code == 0 and "as of chapter 1" in err
    assert out.count("infinibook> ") == 3 and "On foot." in out and err.count(api.NO_ANSWER) == 1
    with api.open_library(lib) as library:
        messages = library.messages(1)
    assert [m.content for m in messages] == ["First question?", "On foot.", "Second question?", "By the river."]
    assert all(m.as_of_chapter == 0 for m in messages)


def test_chat_refuses_a_question_too_long_for_the_segment_and_goes_on(tmp_path, capsys, monkeypatch):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    assert run(capsys, "ingest", str(book), "--data-dir", lib, "--json")[0] == 0
    long_question = " ".join(["Why did the traveller cross the old bridge at night?"] * 8)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{long_question}\nShort question?\n\n"))
    code, out, err = run(capsys, "chat", "1", "--as-of", "1", "--max-tokens", "4", "--data-dir", lib)
    assert code == 0 and out.count("infinibook> ") == 1
    refusal = next(line for line in err.splitlines() if "too long" in line)
    assert refusal.startswith("infinibook: ") and "at most" in refusal and refusal.endswith("shorten it.")
    with api.open_library(lib) as library:
        assert [m.content for m in library.messages(1) if m.role == "user"] == ["Short question?"]


def test_chat_refuses_a_line_that_is_not_utf8_and_goes_on(tmp_path, capsys, monkeypatch):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    assert run(capsys, "ingest", str(book), "--data-dir", lib, "--json")[0] == 0
    typed = b"Who is \xff here?\nShort question?\n\n"  # a Latin-1 terminal, read by a strict UTF-8 stdin
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(typed), encoding="utf-8"))
    code, out, err = run(capsys, "chat", "1", "--as-of", "1", "--max-tokens", "4", "--data-dir", lib)
    assert code == 0 and out.count("infinibook> ") == 1 and "Traceback" not in err
    assert any(line.startswith("infinibook: ") and "not UTF-8" in line for line in err.splitlines())
    with api.open_library(lib) as library:
        assert [m.content for m in library.messages(1) if m.role == "user"] == ["Short question?"]


def test_unread_and_stale_books_get_one_clear_sentence(tmp_path, capsys, monkeypatch):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    code, out, err = run(capsys, "ask", str(book), "Who?", "--data-dir", lib)
    assert code == 2 and "not been read into memory yet" in err and "Traceback" not in err

    assert run(capsys, "ingest", "1", "--data-dir", lib)[0] == 0
    monkeypatch.setattr(api, "load_engine", lambda model=None, **options: tiny(16))
    code, out, err = run(capsys, "ask", "1", "Who?", "--data-dir", lib)
    assert code == 2 and "segment length" in err
    code, out, err = run(capsys, "ingest", "1", "--data-dir", lib)
    assert code == 2 and "--restart" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "ingest", "1", "--restart", "--json", "--data-dir", lib)
    assert code == 0 and json_lines(out)[-1]["chapters_done"] == 2


def test_export_without_notes_prints_markdown(tmp_path, capsys):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    assert run(capsys, "add", str(book), "--data-dir", lib)[0] == 0
    code, out, err = run(capsys, "export", str(book), "--data-dir", lib)
    assert code == 0 and out.startswith("# ") and "No summaries or conversation yet." in out


def test_export_of_a_file_not_in_the_library_adds_nothing(tmp_path, capsys):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    code, out, err = run(capsys, "export", str(book), "--data-dir", lib)
    assert code == 2 and out == "" and err == "infinibook: 'road.md' is not in the library; add it first with `infinibook add`.\n"
    code, out, _ = run(capsys, "list", "--data-dir", lib, "--json")
    assert code == 0 and "road" not in out.lower()


def test_export_json_to_stdout_is_one_object(tmp_path, capsys):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    assert run(capsys, "add", str(book), "--data-dir", lib)[0] == 0
    code, out, err = run(capsys, "export", "1", "--json", "--data-dir", lib)
    assert code == 0, err
    [notes] = json_lines(out)
    assert notes["book_id"] == 1 and notes["title"]
    assert notes["markdown"].startswith(f"# {notes['title']}\n") and "No summaries" in notes["markdown"]


def test_an_empty_summary_is_one_sentence_and_keeps_the_stored_one(tmp_path, capsys, monkeypatch):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    assert run(capsys, "ingest", str(book), "--json", "--data-dir", lib)[0] == 0
    with api.open_library(lib) as library:
        library.save_summary(1, 0, "He sets out.", str(tiny().fingerprint))
    writes(tiny(), monkeypatch, "\n\n")
    code, out, err = run(capsys, "summarize", "1", "--chapter", "1", "--data-dir", lib)
    assert code == 2 and "empty summary of chapter 1" in err and "Traceback" not in err
    with api.open_library(lib) as library:
        assert [(s.chapter_idx, s.text) for s in library.summaries(1)] == [(0, "He sets out.")]

def test_a_failed_export_leaves_the_existing_file_as_it_was(tmp_path, capsys, monkeypatch):
    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    assert run(capsys, "add", str(book), "--data-dir", lib)[0] == 0
    target = tmp_path / "out" / "notes.md"
    target.parent.mkdir()
    target.write_text("Notes kept from last week.\n", encoding="utf-8")
    # The write fails part-way: text UTF-8 cannot encode (a lone surrogate).
    with monkeypatch.context() as patch, pytest.raises(UnicodeEncodeError):
        patch.setattr(api, "export_markdown", lambda library, book_id: "# Notes\n\ud800\n")
        main(["export", "1", "-o", str(target), "--data-dir", lib])
    assert target.read_text(encoding="utf-8") == "Notes kept from last week.\n"
    assert [p.name for p in target.parent.iterdir()] == ["notes.md"]  # no temporary file left behind

    code, out, err = run(capsys, "export", "1", "-o", str(target), "--data-dir", lib)
    assert code == 0, err
    assert "No summaries or conversation yet." in target.read_text(encoding="utf-8")
    assert [p.name for p in target.parent.iterdir()] == ["notes.md"]


@pytest.mark.parametrize("command", [["ask", "1", "Who?"], ["chat", "1"], ["summarize", "1"],
                                     ["summarize", "1", "--chapter", "1"]])
@pytest.mark.parametrize("tokens", ["0", "-3"])
def test_max_tokens_below_one_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch, command, tokens):
    monkeypatch.setattr("sys.stdin", io.StringIO("Who?\n\n"))
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--max-tokens", tokens, "--data-dir", str(tmp_path / "lib")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"{tokens} is too small; give a whole number of 1 or more" in err
    assert not (tmp_path / "lib").exists()


@pytest.mark.parametrize(("as_of", "message"), [("5", "There is no chapter 5; this book has 2 chapters."),
                                                ("2", "Chapter 2 has not been read into memory yet")])
def test_chat_checks_its_chapter_before_the_banner(tmp_path, capsys, monkeypatch, as_of, message):
    from engine.errors import Cancelled

    lib = str(tmp_path / "lib")
    book = write_book(tmp_path / "road.md", chapters=2)
    with api.open_library(lib) as library:  # chapter 1 read, chapter 2 not
        record = library.resolve(str(book), add_paths=True)
        events = []
        with pytest.raises(Cancelled):
            api.ingest(library, record.id, tiny(), on_event=events.append,
                       should_cancel=lambda: any(e.finished_chapter for e in events))
    stdin = io.StringIO("Who?\n\n")
    monkeypatch.setattr("sys.stdin", stdin)
    code, out, err = run(capsys, "chat", "1", "--as-of", as_of, "--data-dir", lib)
    assert code == 2 and message in err and "Chatting" not in err and out == ""
    assert stdin.read() == "Who?\n\n"  # no question was asked for


def test_bench_ask_reports_the_keys(capsys):
    code, out, err = run(capsys, "bench", "ask", "--json", "--tokens", "600", "--repeats", "2", "--max-tokens", "6")
    assert code == 0, err
    result = json.loads(out)
    assert {"load_snapshot_s", "first_token_s", "tokens_per_s"} <= result.keys()
    assert result["load_snapshot_s"] > 0 and result["first_token_s"] > 0 and result["chapters"] == 4
    assert result["snapshot_bytes"] > result["memory_bytes"] > 0


@pytest.mark.parametrize("command", [["ingest"], ["ask", "BOOK", "Who?"], ["summarize"]])
def test_a_model_that_fails_to_load_leaves_a_new_book_out_of_the_library(tmp_path, capsys, monkeypatch, command):
    from engine.errors import ModelError

    def no_model(model=None, **options):
        raise ModelError(f"No model at {model}.")

    monkeypatch.setattr(api, "load_engine", no_model)
    lib = str(tmp_path / "lib")
    book = str(write_book(tmp_path / "road.md", chapters=2))
    argv = [book if part == "BOOK" else part for part in command] + ([] if "BOOK" in command else [book])
    code, _, err = run(capsys, *argv, "--model", "/nonexistent/model", "--data-dir", lib)
    assert code != 0 and "No model at /nonexistent/model" in err
    code, out, _ = run(capsys, "list", "--data-dir", lib)
    assert code == 0 and "road" not in out.lower()


def test_dtype_reaches_the_model_loader(tmp_path, capsys, monkeypatch):
    options_seen = []

    def load(model=None, **options):
        options_seen.append(options)
        return tiny()

    monkeypatch.setattr(api, "load_engine", load)
    book = str(write_book(tmp_path / "road.md", chapters=1))
    code, _, err = run(capsys, "ingest", book, "--dtype", "bfloat16", "--data-dir", str(tmp_path / "lib"))
    assert code == 0, err
    assert options_seen[0]["dtype"] == "bfloat16"
    with pytest.raises(SystemExit):
        main(["ingest", book, "--dtype", "float8"])
