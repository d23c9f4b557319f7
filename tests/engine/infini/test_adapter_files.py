"""Adapter files: damaged or diverged ones refused, the fingerprint naming exactly what was loaded."""

import hashlib
import os

import pytest
import torch

from engine.errors import ModelError
from engine.infini import adapter as adapter_module
from engine.infini.adapter import load_adapter, save_adapter
from engine.infini.tiny import tiny_engine


def with_gates(model, value: float):
    with torch.no_grad():
        for attention in model.attention:
            attention.gate.fill_(value)
    return model


def test_an_adapter_from_a_diverged_run_is_refused_not_loaded(tmp_path, tokenizer):
    path = save_adapter(with_gates(tiny_engine(tokenizer=tokenizer), float("nan")), tmp_path / "nan.safetensors")
    fresh = tiny_engine(tokenizer=tokenizer)
    with pytest.raises(ModelError, match="not numbers \\(NaN or infinity\\).*train it again"):
        load_adapter(fresh, path)
    assert fresh.adapter_sha == "none"


def test_a_saved_adapter_is_on_disk_before_it_takes_its_name(tmp_path, tokenizer, flushed):
    path = save_adapter(tiny_engine(tokenizer=tokenizer), tmp_path / "adapter.safetensors")
    assert path.stat().st_ino in flushed and list(tmp_path.iterdir()) == [path]


def test_the_adapter_fingerprint_names_the_file_whose_gates_were_loaded(tmp_path, tokenizer, monkeypatch):
    path = save_adapter(with_gates(tiny_engine(tokenizer=tokenizer), 1.0), tmp_path / "adapter.safetensors")
    loaded_bytes = path.read_bytes()
    newer = save_adapter(with_gates(tiny_engine(tokenizer=tokenizer), 2.0), tmp_path / "newer.safetensors")

    # A training run saves its next adapter to the same path right after the loader read the
    # tensors (whichever safetensors reader adapter.py uses).
    for name in ("load_file", "load_tensors"):
        reader = getattr(adapter_module, name, None)
        if reader is None:
            continue

        def read_then_replace(*args, _reader=reader, **kwargs):
            result = _reader(*args, **kwargs)
            if newer.exists():
                os.replace(newer, path)
            return result

        monkeypatch.setattr(adapter_module, name, read_then_replace)

    fresh = tiny_engine(tokenizer=tokenizer)
    load_adapter(fresh, path)
    assert fresh.attention[0].gate.detach()[0].item() == 1.0
    assert fresh.adapter_sha == hashlib.sha256(loaded_bytes).hexdigest()


def test_a_truncated_or_foreign_file_is_one_sentence(tmp_path, tokenizer):
    path = save_adapter(tiny_engine(tokenizer=tokenizer), tmp_path / "adapter.safetensors")
    data = path.read_bytes()
    model = tiny_engine(tokenizer=tokenizer)
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 10])
    with pytest.raises(ModelError, match="cannot be read"):
        load_adapter(model, tmp_path / "cut.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01")
    with pytest.raises(ModelError, match="cannot be read"):
        load_adapter(model, tmp_path / "tiny.safetensors")
    (tmp_path / "list.safetensors").write_bytes(len(b"[]").to_bytes(8, "little") + b"[]")
    with pytest.raises(ModelError, match="cannot be read"):
        load_adapter(model, tmp_path / "list.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "weights.safetensors")
    with pytest.raises(ModelError, match="not an Infinibook adapter"):
        load_adapter(model, tmp_path / "weights.safetensors")
