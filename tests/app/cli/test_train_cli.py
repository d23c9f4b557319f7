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


def test_train_takes_the_lora_rank_alpha_and_mlp_targets(tmp_path, capsys):
    code = main(["train", "--tiny", "--out", str(tmp_path / "run"), "--steps", "1", "--batch", "1", "--segment", "32",
                 "--curriculum", "2", "--min-segments", "2", "--tasks", "passkey=1", "--lora-rank", "4",
                 "--lora-alpha", "12", "--lora-targets", "q_proj,up_proj,down_proj", "--no-progress", "--json"])
    assert code == 0
    lora = json.loads(read_adapter(tmp_path / "run" / "adapter.safetensors")[1]["lora"])
    assert (lora["r"], lora["lora_alpha"], lora["target_modules"]) == (4, 12, ["down_proj", "q_proj", "up_proj"])
    assert main(["train", "--tiny", "--out", str(tmp_path / "bad"), "--steps", "1", "--lora-targets", "lm_head",
                 "--no-progress"]) != 0
    assert "attention or MLP projections" in capsys.readouterr().err


def test_widen_lora_needs_an_adapter_to_widen(tmp_path, capsys):
    assert main(["train", "--tiny", "--out", str(tmp_path / "run"), "--steps", "1", "--widen-lora", "24",
                 "--no-progress"]) != 0
    assert "--init-adapter" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


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


TINY_RUN = ["train", "--tiny", "--steps", "2", "--batch", "1", "--segment", "32", "--curriculum", "2",
            "--min-segments", "2", "--tasks", "passkey=1", "--save-every", "1", "--no-progress"]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_resumed_train_json_is_one_object_and_exports_into_a_folder(tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    assert main([*TINY_RUN, "--out", str(out)]) == 0
    capsys.readouterr()
    folder = tmp_path / "adapters"
    folder.mkdir()
    code = main([*TINY_RUN, "--out", str(out), "--steps", "3", "--resume", "--json", "--export", str(folder)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["steps"] == 3  # "resumed from ..." goes to stderr
    assert "resumed from" in captured.err
    assert (folder / "adapter.safetensors").read_bytes() == (out / "adapter.safetensors").read_bytes()


def test_an_export_that_cannot_be_written_is_one_sentence(tmp_path, capsys, one_thread):
    (tmp_path / "a-file").write_text("not a folder")
    code = main([*TINY_RUN, "--out", str(tmp_path / "run"), "--export", str(tmp_path / "a-file" / "x.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("infinibook: ") and "Traceback" not in err
    assert str(tmp_path / "run" / "adapter.safetensors") in err  # where the adapter still is
    assert (tmp_path / "run" / "adapter.safetensors").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--memory-layers", "x"], "'x' is not a layer"),
    (["--memory-layers", "4,,8"], "'' is not a layer"),
    (["--memory-layers", "10-5"], "10-5 is an empty range"),
    (["--out", "A_FILE"], "is a file, not a folder"),
])
def test_bad_train_options_are_one_usage_error(tmp_path, capsys, argv, message):
    (tmp_path / "a-file").write_text("not a folder")
    argv = [str(tmp_path / "a-file") if part == "A_FILE" else part for part in argv]
    with pytest.raises(SystemExit) as exit_:
        main([*TINY_RUN, "--out", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err and message in err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


def test_train_has_no_adapter_option_it_would_ignore(tmp_path, capsys):
    # training starts from untrained gates or --init-adapter; --adapter was accepted and ignored
    with pytest.raises(SystemExit) as exit_:
        main([*TINY_RUN, "--out", str(tmp_path / "run"), "--adapter", "some.safetensors"])
    assert exit_.value.code == 2 and "unrecognized arguments: --adapter" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("task", [["ppl"], ["recall", "--samples", "1"]])
@pytest.mark.parametrize("content", ["", " \n\n "])
def test_eval_of_an_empty_text_is_one_sentence(tmp_path, capsys, task, content):
    empty = tmp_path / "empty.txt"
    empty.write_text(content)
    code = main(["eval", task[0], str(empty), *task[1:], "--tiny", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and "holds no text" in err


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_eval_of_a_damaged_gzip_is_one_sentence(tmp_path, capsys, damage):
    import gzip

    packed = gzip.compress(b"The traveller walked on. " * 4000)
    packed = packed[: len(packed) // 2] if damage == "truncated" else packed[:20] + b"\xff" * 50 + packed[70:]
    (tmp_path / "book.txt.gz").write_bytes(packed)
    code = main(["eval", "ppl", str(tmp_path / "book.txt.gz"), "--tiny", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and "cannot read" in err


def test_resume_without_a_checkpoint_and_a_second_fresh_run_are_refused(tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    assert main([*TINY_RUN, "--out", str(out), "--resume"]) == 2
    assert "no checkpoint to resume" in capsys.readouterr().err and not out.exists()
    assert main([*TINY_RUN, "--out", str(out)]) == 0
    log = (out / "log.jsonl").read_text()
    capsys.readouterr()
    assert main([*TINY_RUN, "--out", str(out)]) == 2  # would overwrite the run's checkpoint, mix its log
    assert "already holds a training run" in capsys.readouterr().err
    assert (out / "log.jsonl").read_text() == log
