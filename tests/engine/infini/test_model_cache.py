"""The model cache: GGUF conversion once, atomically, for two Infinibooks at once; clear refusals."""

import errno
import os
import threading
from pathlib import Path

import pytest
import torch

from engine.errors import ModelError
from engine.infini.loading import converted_gguf_folder, file_sha256, pick_device


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("INFINIBOOK_CACHE_DIR", str(folder))
    return folder


class FakeTokenizer:
    def save_pretrained(self, folder) -> None:
        Path(folder, "tokenizer.json").write_text("{}")


def fake_gguf_loaders(monkeypatch, save=None) -> list[int]:
    """transformers' GGUF loading replaced by a tiny Llama (dequantising is not what is tested);
    `save(model, folder, original)` stands in for save_pretrained. Returns the conversion count."""
    import transformers

    from engine.infini.tiny import tiny_llama

    conversions: list[int] = []

    def model_from_pretrained(*_args, **_kwargs):
        conversions.append(1)
        model = tiny_llama(32, hidden=16, layers=1)
        if save is not None:
            original = model.save_pretrained
            model.save_pretrained = lambda folder, **kw: save(model, folder, original)
        return model

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained",
                        classmethod(lambda cls, *a, **k: transformers.LlamaConfig()))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", classmethod(lambda cls, *a, **k: FakeTokenizer()))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        classmethod(lambda cls, *a, **k: model_from_pretrained()))
    return conversions


def test_converted_weights_are_on_disk_before_the_cache_folder_takes_its_name(tmp_path, cache, monkeypatch, flushed):
    """A power cut after the rename must not leave empty weights that the next start would trust."""
    fake_gguf_loaders(monkeypatch)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")
    folder = converted_gguf_folder(gguf)
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert any(path.suffix == ".safetensors" for path in files)
    assert {path.stat().st_ino for path in files} <= set(flushed)
    if hasattr(os, "O_DIRECTORY"):  # the folders too, where they can be opened for it
        assert folder.stat().st_ino in flushed and folder.parent.stat().st_ino == flushed[-1]


def test_two_infinibooks_converting_one_gguf_share_one_conversion(tmp_path, cache, monkeypatch):
    barrier = threading.Barrier(2, timeout=3)

    def save_together(_model, folder, original) -> None:
        try:  # both conversions write at the same moment, when they can
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        original(folder)

    conversions = fake_gguf_loaders(monkeypatch, save_together)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")
    results, errors = [], []

    def convert() -> None:
        try:
            results.append(converted_gguf_folder(gguf))
        except Exception as error:  # noqa: BLE001 - the test reports whatever went wrong
            errors.append(repr(error))

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(conversions) == 1  # the second waited and reused the first one's folder
    assert results[0] == results[1]
    assert (results[0] / "config.json").exists() and (results[0] / "tokenizer.json").exists()
    assert not list(results[0].parent.glob("*.partial"))


def test_a_full_disk_during_conversion_is_one_sentence_and_leaves_no_half_folder(tmp_path, cache, monkeypatch):
    def disk_full(_model, folder, original) -> None:
        original(folder)  # some files written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    fake_gguf_loaders(monkeypatch, disk_full)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")
    with pytest.raises(ModelError, match="No space left on device.*free some disk space"):
        converted_gguf_folder(gguf)
    assert [p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")] == []

    fake_gguf_loaders(monkeypatch)  # space freed: the next start converts
    folder = converted_gguf_folder(gguf)
    assert (folder / "config.json").exists()


def write_gguf(path: Path, architecture: str) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_head_count(2)
    writer.add_feed_forward_length(16)
    writer.add_layer_norm_eps(1e-5)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_an_unsupported_gguf_architecture_is_refused_before_dequantising(tmp_path, cache):
    from engine.infini.loading import resolve_model_folder

    gguf = write_gguf(tmp_path / "gpt2.gguf", "gpt2")
    with pytest.raises(ModelError, match=r"architecture \(gpt2\) is not supported; choose a Llama"):
        resolve_model_folder(gguf)
    models = cache / "models"
    assert not models.exists() or [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_a_hash_index_that_cannot_be_written_does_not_stop_a_model_loading(tmp_path, cache):
    cache.mkdir()
    (cache / "hashes.json").mkdir()  # unwritable index (e.g. a cache folder left by another user)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    import hashlib

    assert file_sha256(weights) == hashlib.sha256(b"weights").hexdigest()


def test_a_missing_gpu_index_or_mps_is_refused_before_the_model_moves(monkeypatch):
    if not torch.backends.mps.is_available():
        with pytest.raises(ModelError, match="mps.*not available; use --device cpu"):
            pick_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    with pytest.raises(ModelError, match="no CUDA device 3: this machine has 1"):
        pick_device("cuda:3")
    assert pick_device("cuda:0")[0] == torch.device("cuda:0")
    with pytest.raises(ModelError, match="Unknown device 'gpu'"):
        pick_device("gpu")


def test_weights_replaced_with_their_old_size_and_mtime_are_hashed_again(tmp_path, cache):
    import hashlib
    import os
    import time

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights A")
    before = weights.stat()
    assert file_sha256(weights) == hashlib.sha256(b"weights A").hexdigest()
    time.sleep(0.01)
    weights.write_bytes(b"weights B")  # same size; `cp -p` or `rsync -a` then keeps the old mtime
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file_sha256(weights) == hashlib.sha256(b"weights B").hexdigest()


def test_a_model_too_big_for_the_gpu_is_one_sentence(tmp_path, tokenizer, monkeypatch):
    import transformers

    from engine.infini.loading import load_base_model
    from engine.infini.tiny import tiny_llama

    folder = tmp_path / "tiny"
    tiny_llama(len(tokenizer), hidden=16, layers=1).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    loader = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def load_then_fail_to_move(cls, *args, **kwargs):
        model = loader(cls, *args, **kwargs)

        def to(*_args, **_kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        model.to = to
        return model

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(load_then_fail_to_move))
    with pytest.raises(ModelError, match="does not fit in the memory of cpu; use --device cpu or choose a smaller"):
        load_base_model(str(folder), device="cpu")


@pytest.mark.parametrize(("capability", "dtype", "autocast"), [((9, 0), torch.bfloat16, True),
                                                                 ((7, 5), torch.float32, False)])
def test_auto_precision_is_bfloat16_only_on_gpus_that_run_it_natively(monkeypatch, capability, dtype, autocast):
    """A T4 or V100 (before Ampere) emulates bfloat16 far slower than float32: auto gives it float32."""
    from engine.training.trainer import mixed_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert pick_device("cuda") == (torch.device("cuda"), dtype)
    assert pick_device("cuda", "bfloat16")[1] == torch.bfloat16  # asked for explicitly: given
    # (a CPU-only torch cannot build a CUDA autocast: what it would be asked for is what counts)
    monkeypatch.setattr(torch, "autocast", lambda device_type, dtype, enabled: (device_type, dtype, enabled))
    assert mixed_precision(torch.device("cuda"), "auto") == ("cuda", torch.bfloat16, autocast)
    assert mixed_precision(torch.device("cuda"), "bf16") == ("cuda", torch.bfloat16, True)
