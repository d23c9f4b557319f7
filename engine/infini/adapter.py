"""The Infini adapter: everything Infini-attention adds to a base model, kept apart from its weights.

A safetensors file holding one gate logit vector per layer (`gate.{layer}`), plus any trained
extras, and metadata naming the base model it was trained on and the segment length and update
rule it was trained with. Its sha256 enters every memory fingerprint.
"""

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.errors import ModelError

from .model import InfiniModel

ADAPTER_FORMAT = "infinibook-adapter/1"


def gate_tensors(model: InfiniModel) -> dict[str, torch.Tensor]:
    return {f"gate.{i}": a.gate.detach().float().cpu().contiguous() for i, a in enumerate(model.attention)}


def save_adapter(model: InfiniModel, path: str | os.PathLike, extra: dict[str, torch.Tensor] | None = None,
                 info: dict | None = None) -> Path:
    path = Path(path)
    tensors = gate_tensors(model) | dict(extra or {})
    metadata = {
        "format": ADAPTER_FORMAT,
        "base_sha": model.base_sha,
        "segment": str(model.segment),
        "rule": model.rule,
        "info": json.dumps(info or {}),
    }
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
    os.replace(tmp, path)
    return path


def read_adapter(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata); refuses anything that is not an Infinibook adapter."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(path)
    except (OSError, SafetensorError) as error:
        raise ModelError(f"The adapter {path.name} cannot be read ({error}); choose another adapter file.") from error
    if metadata.get("format") != ADAPTER_FORMAT:
        raise ModelError(f"{path.name} is not an Infinibook adapter; choose a file made by `infinibook train`.")
    return tensors, metadata


def load_adapter(model: InfiniModel, path: str | os.PathLike, *, check_base: bool = True) -> dict[str, str]:
    """Set the gates (and trained extras) from an adapter file; returns its metadata."""
    tensors, metadata = read_adapter(path)
    if check_base and metadata.get("base_sha") not in (model.base_sha, None):
        raise ModelError(
            f"The adapter {Path(path).name} was trained for another base model; choose its base model or another adapter."
        )
    with torch.no_grad():
        for i, attention in enumerate(model.attention):
            gate = tensors.get(f"gate.{i}")
            if gate is None or gate.shape != attention.gate.shape:
                raise ModelError(f"The adapter {Path(path).name} does not fit this model's layers; choose a matching adapter.")
            attention.gate.copy_(gate)
    model.adapter_sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return metadata
