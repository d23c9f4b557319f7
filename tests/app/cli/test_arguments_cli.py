"""Bad numbers and lists on the command line: one usage line and one sentence, exit status 2,
before any model loads (never a traceback from deep inside a run)."""

from __future__ import annotations

import pytest
import torch

from app.cli import main
from engine import api
from tests.engine.reading.helpers import tiny


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch):
    """Were a bad value let through, the run would use a tiny model, quickly."""
    import engine.infini

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(api, "load_engine", lambda model=None, **options: tiny())
    monkeypatch.setattr(engine.infini, "load_engine", lambda model=None, **options: tiny())
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "ask", "--repeats", "0", "--tokens", "300", "--max-tokens", "2"], "0 is too small"),
    (["bench", "ask", "--tokens", "0", "--repeats", "1", "--max-tokens", "2"], "0 is too small"),
    (["bench", "ingest", "--repeats", "0", "--tokens", "128"], "0 is too small"),
    (["bench", "ingest", "--tokens", "0", "--repeats", "1"], "0 is too small"),
    (["bench", "ingest", "--tokens", "many"], "'many' is not a whole number"),
    (["eval", "passkey", "--tiny", "--batch", "0", "--lengths", "64", "--samples", "1", "--no-progress"],
     "0 is too small"),
    (["eval", "passkey", "--tiny", "--samples", "-1", "--lengths", "64", "--no-progress"], "-1 is too small"),
    (["eval", "passkey", "--tiny", "--lengths", "64,0", "--samples", "1", "--no-progress"], "0 is too small"),
    (["eval", "passkey", "--tiny", "--lengths", "64", "--depths", "sideways", "--samples", "1", "--no-progress"],
     "'sideways' is not a depth; use start, middle, end or a number between 0 and 1"),
    (["eval", "passkey", "--tiny", "--lengths", "64", "--depths", ",", "--samples", "1", "--no-progress"],
     "no depth given"),
    (["eval", "key-signal", "--tiny", "--lengths", "64", "--depth", "1.5", "--no-progress"], "'1.5' is not a depth"),
    (["train", "--tiny", "--out", "OUT", "--curriculum", "", "--steps", "1"], "the list is empty"),
    (["train", "--tiny", "--out", "OUT", "--steps", "0"], "0 is too small"),
    (["train", "--tiny", "--out", "OUT", "--steps", "1", "--stop-weight", "0"], "0 is not a positive weight"),
    (["train", "--tiny", "--out", "OUT", "--steps", "1", "--stop-weight", "nan"], "nan is not a positive weight"),
    (["train", "--tiny", "--out", "OUT", "--steps", "1", "--stop-weight", "heavy"], "'heavy' is not a number"),
    (["train", "--tiny", "--out", "OUT", "--steps", "1", "--dilute", "0.5"], "0.5 is not a dilution"),
    (["train", "--tiny", "--out", "OUT", "--steps", "1", "--dilute", "inf"], "inf is not a dilution"),
])
def test_bad_numbers_and_lists_are_one_usage_error(tmp_path, capsys, argv, message):
    argv = [str(tmp_path / "run") if part == "OUT" else part for part in argv]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("usage: ") and "Traceback" not in err
    assert "error: argument" in err.strip().splitlines()[-1] and message in err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [
    ["bench", "ingest", "--tokens", "128"],
    ["bench", "ask", "--tokens", "300"],
    ["eval", "passkey", "--tiny", "--lengths", "64"],
    ["train", "--tiny", "--out", "OUT", "--steps", "1"],
])
def test_commands_without_a_library_do_not_offer_its_folder(tmp_path, capsys, argv):
    argv = [str(tmp_path / "run") if part == "OUT" else part for part in argv]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--data-dir", str(tmp_path / "lib")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "unrecognized arguments: --data-dir" in err
    assert not (tmp_path / "lib").exists() and not (tmp_path / "run").exists()
