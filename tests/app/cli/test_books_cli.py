"""`infinibook add | list | show | remove`, and hostile files through the real command line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from engine.library import LIBRARY_FILENAME
from tests.engine.books.hostile import build_corpus
from tests.engine.books.makebooks import build_pdf, lorem, simple_epub

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path, str]]:
    return build_corpus(tmp_path_factory.mktemp("hostile"))


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_show_remove(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lib = str(tmp_path / "lib")
    epub = simple_epub(tmp_path / "b.epub", n=3, title="CLI Book", author="Cli Author")
    code, out, err = run(capsys, "add", str(epub), "--data-dir", lib, "--json")
    assert code == 0 and err == ""
    added = json.loads(out)
    assert (added["title"], added["author"], added["chapters"], added["already_present"]) == ("CLI Book", "Cli Author", 3, False)
    assert added["characters"] > 0 and isinstance(added["id"], int)

    code, out, _ = run(capsys, "add", str(epub), "--data-dir", lib)
    assert code == 0 and out.startswith("Already in the library: [1] CLI Book")

    pdf = build_pdf(tmp_path / "p.pdf", [("One", 0, lorem(3)), ("Two", 0, lorem(3))], title="PDF Book")
    code, out, _ = run(capsys, "add", str(pdf), "--data-dir", lib)
    assert code == 0 and out.startswith("Added: [2] PDF Book") and "2 chapters" in out

    code, out, _ = run(capsys, "list", "--data-dir", lib, "--json")
    assert [b["title"] for b in json.loads(out)] == ["CLI Book", "PDF Book"]
    code, out, _ = run(capsys, "list", "--data-dir", lib)
    assert "[1] CLI Book — Cli Author" in out and "[2] PDF Book" in out

    code, out, _ = run(capsys, "show", "1", "--data-dir", lib, "--json")
    shown = json.loads(out)
    assert [c["title"] for c in shown["chapter_list"]] == [f"Chapter {i}: Title {i}" for i in (1, 2, 3)]
    assert all(c["characters"] > 0 for c in shown["chapter_list"])
    code, out, _ = run(capsys, "show", str(pdf), "--data-dir", lib)  # BOOK as a path
    assert code == 0 and "1. One" in out and "2. Two" in out and "[p. 1]" in out

    code, out, _ = run(capsys, "remove", str(epub), "--data-dir", lib)
    assert code == 0 and "Removed [1] CLI Book" in out
    code, out, err = run(capsys, "show", "1", "--data-dir", lib)
    assert code != 0 and out == "" and err.count("\n") == 1 and "no book with id 1" in err


def test_data_dir_from_environment(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINIBOOK_DATA_DIR", str(tmp_path / "envlib"))
    code, _, _ = run(capsys, "add", str(simple_epub(tmp_path / "b.epub")))
    assert code == 0 and (tmp_path / "envlib" / LIBRARY_FILENAME).exists()
    code, out, _ = run(capsys, "list")
    assert "A Test Book" in out


def test_empty_library_and_unknown_refs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lib = str(tmp_path / "lib")
    code, out, _ = run(capsys, "list", "--data-dir", lib)
    assert code == 0 and "empty" in out
    for ref in ("42", str(tmp_path / "nope.epub")):
        code, out, err = run(capsys, "remove", ref, "--data-dir", lib)
        assert code != 0 and err.count("\n") == 1
    other = simple_epub(tmp_path / "other.epub")
    code, _, err = run(capsys, "show", str(other), "--data-dir", lib)
    assert code != 0 and "not in the library" in err


def _lib_state(d: Path) -> tuple[str, list[str]]:
    return hashlib.sha256((d / LIBRARY_FILENAME).read_bytes()).hexdigest(), sorted(p.name for p in d.iterdir())


def test_every_hostile_file_one_line_nonzero_library_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture, corpus: list) -> None:
    lib = tmp_path / "lib"
    assert run(capsys, "add", str(simple_epub(tmp_path / "good.epub")), "--data-dir", str(lib))[0] == 0
    before = _lib_state(lib)
    assert len(corpus) >= 25
    for name, path, expect in corpus:
        code, out, err = run(capsys, "add", str(path), "--data-dir", str(lib))
        assert code != 0, name
        assert out == "", name
        assert err.count("\n") == 1 and err.startswith("infinibook: ") and expect in err, (name, err)
        assert "Traceback" not in err, name
        assert _lib_state(lib) == before, name


@pytest.mark.parametrize("case", ["random bytes .epub", "billion laughs in the OPF", "cyclic PDF outline", "PDF header then garbage"])
def test_hostile_file_in_a_real_process(tmp_path: Path, case: str, corpus: list) -> None:
    lib = tmp_path / "lib"
    cases = {name: path for name, path, _ in corpus}
    proc = subprocess.run(
        [sys.executable, "-m", "app", "add", str(cases[case]), "--data-dir", str(lib)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (lib / LIBRARY_FILENAME).exists()  # the file was parsed before the library was opened
