"""Offline model loading: local folders, clear refusals, the embedded default's GGUF."""

import pytest

from engine.errors import ModelError
from engine.infini import load_engine
from engine.infini.loading import default_gguf_path, resolve_model_folder
from engine.infini.tiny import tiny_llama


def test_default_model_is_found_inside_the_installed_wheel():
    path = default_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_a_local_folder_loads_and_patches(tmp_path, tokenizer):
    folder = tmp_path / "tiny"
    tiny_llama(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    engine = load_engine(str(folder), adapter=None, device="cpu", segment=16)
    assert engine.segment == 16 and engine.adapter_sha == "none"
    assert len(engine.fingerprint.base) == 64
    state = engine.stream(tokenizer.encode("A short text to remember."), engine.new_state())
    assert state.tokens > 0


def test_unsupported_architecture_folder_is_refused_clearly(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match=r"architecture \(gpt2\) is not supported; choose a Llama"):
        load_engine(str(tmp_path), adapter=None, device="cpu")


def test_missing_model_and_hub_ids_are_refused_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("INFINIBOOK_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(ModelError, match="--allow-download"):
        resolve_model_folder("HuggingFaceTB/SmolLM2-135M-Instruct")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelError, match="neither a model folder nor a .gguf"):
        resolve_model_folder(tmp_path / "notes.txt")
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model_folder(tmp_path)


def test_cuda_is_refused_clearly_without_a_gpu():
    import torch

    from engine.infini.loading import pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match="no CUDA device"):
        pick_device("cuda")
    assert pick_device("auto")[0].type == "cpu"


def test_a_hub_model_is_a_local_snapshot_fingerprinted_by_its_weights(tmp_path, tokenizer, monkeypatch):
    import huggingface_hub

    from engine.infini.loading import weights_sha256

    def snapshot(repo_id, revision_folder, **options):
        folder = tmp_path / repo_id.replace("/", "--") / revision_folder
        tiny_llama(len(tokenizer), hidden=16 if revision_folder == "v1" else 32, layers=1).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **o: snapshot(repo_id, "v1", **o))
    first = load_engine("someone/tiny-llama", adapter=None, device="cpu", segment=16, allow_download=True)
    assert first.fingerprint.base == weights_sha256(tmp_path / "someone--tiny-llama" / "v1")
    # the same repository id after an upstream update: other weights, another fingerprint
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **o: snapshot(repo_id, "v2", **o))
    updated = load_engine("someone/tiny-llama", adapter=None, device="cpu", segment=16, allow_download=True)
    assert updated.fingerprint.base != first.fingerprint.base


def test_a_failed_hub_download_is_one_sentence(monkeypatch):
    import huggingface_hub

    def offline(repo_id, **options):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelError, match=r"Could not download someone/model from the Hugging Face hub \(no network\)"):
        resolve_model_folder("someone/model", allow_download=True)
