"""`infinibook train` and `infinibook eval` end to end on a tiny random model."""

import json

import pytest
import torch

from app.cli import main
from engine.infini.adapter import read_adapter


def test_train_then_eval_on_a_tiny_model(tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "run"
        code = main(["train", "--tiny", "--out", str(out), "--steps", "3", "--batch", "2", "--segment", "32",
                     "--curriculum", "3", "--min-segments", "3", "--tasks", "passkey=1", "--save-every", "2",
                     "--no-progress", "--json", "--export", str(tmp_path / "exported.safetensors")])
        assert code == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["steps"] == 3 and (out / "checkpoint.pt").exists()
        _, metadata = read_adapter(tmp_path / "exported.safetensors")
        assert metadata["segment"] == "32" and "lora" in metadata
        code = main(["train", "--tiny", "--out", str(out), "--steps", "4", "--batch", "2", "--segment", "32",
                     "--curriculum", "3", "--min-segments", "3", "--tasks", "passkey=1", "--resume", "--no-progress",
                     "--grad-segments", "1"])  # the filler between key and question straight-through
        assert code == 0 and len((out / "log.jsonl").read_text().splitlines()) == 4
        capsys.readouterr()
        code = main(["eval", "passkey", "--tiny", "--segment", "32", "--lengths", "128", "--depths", "start,end",
                     "--samples", "1", "--json"])
        assert code == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        assert [(r["length"], r["depth"]) for r in rows] == [(128, "start"), (128, "end")]
        assert all("control" in r for r in rows)
    finally:
        torch.set_num_threads(threads)


def test_eval_of_a_missing_file_is_one_sentence(capsys):
    assert main(["eval", "ppl", "/nonexistent/book.txt", "--tiny"]) != 0
    assert "cannot read" in capsys.readouterr().err


def test_eval_table_with_a_progress_bar_prints_its_rows(capsys):
    # The bar has no total (prompts share prefixes): closing it must not ask bool() of a tqdm.
    code = main(["eval", "passkey", "--tiny", "--segment", "32", "--lengths", "128", "--depths", "middle",
                 "--samples", "1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "memory-off" in out and "middle" in out


def test_eval_key_signal_prints_a_row_per_layer_and_length(capsys):
    code = main(["eval", "key-signal", "--tiny", "--segment", "32", "--lengths", "128,256", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["length"], r["layer"]) for r in rows] == [(128, 0), (128, 1), (256, 0), (256, 1)]
    assert main(["eval", "key-signal", "--tiny", "--segment", "32", "--lengths", "128", "--no-progress"]) == 0
    assert "no layer has a gate" in capsys.readouterr().out  # untrained gates: local only


def test_train_refuses_a_share_outside_zero_to_one(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--tiny", "--out", str(tmp_path / "run"), "--hardest-share", "1.5"])
    assert "1.5 is not a share between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
