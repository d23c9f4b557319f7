"""Every hostile or broken file: one BookError with a specific sentence, library unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.books import load_book
from engine.errors import BookError
from engine.library import LIBRARY_FILENAME, Library

from .hostile import MIN_CASES, build_corpus
from .makebooks import simple_epub


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    cases = build_corpus(tmp_path_factory.mktemp("hostile"))
    return {name: (path, expect) for name, path, expect in cases}


@pytest.fixture(scope="module")
def library_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("lib")
    with Library.open(d) as lib:
        lib.add_path(simple_epub(d / "good.epub"))
    return d


def _digest(d: Path) -> tuple[str, list[str]]:
    return hashlib.sha256((d / LIBRARY_FILENAME).read_bytes()).hexdigest(), sorted(p.name for p in d.iterdir())


def test_corpus_is_large_enough(corpus: dict) -> None:
    assert len(corpus) >= MIN_CASES


def test_every_hostile_file_gives_its_error_and_leaves_the_library_alone(corpus: dict, library_dir: Path) -> None:
    before = _digest(library_dir)
    failures = []
    for name, (path, expect) in corpus.items():
        lib = Library.open(library_dir)
        try:
            lib.add_path(path)
            failures.append(f"{name}: no error")
        except BookError as e:
            message = str(e)
            if expect not in message:
                failures.append(f"{name}: {message!r} lacks {expect!r}")
            if "\n" in message or not message.endswith("."):
                failures.append(f"{name}: not one sentence: {message!r}")
        except Exception as e:  # noqa: BLE001 - any other exception type is the failure
            failures.append(f"{name}: escaped {type(e).__name__}: {e}")
        finally:
            lib.close()
        assert _digest(library_dir) == before, name
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", ["zip bomb: compression ratio", "billion laughs in the OPF", "cyclic PDF outline",
                                  "200 MB single-line text", "PDF pages drawing one huge shared content stream",
                                  "PDF pages drawing one form XObject hundreds of times"])
def test_named_hostile_cases_are_fast(corpus: dict, name: str) -> None:
    import time

    path, expect = corpus[name]
    start = time.perf_counter()
    with pytest.raises(BookError, match=expect.split()[0]):
        load_book(path)
    assert time.perf_counter() - start < 2
