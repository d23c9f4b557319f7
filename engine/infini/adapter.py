"""The Infini adapter: everything Infini-attention adds to a base model, kept apart from its weights.

A safetensors file holding one gate logit vector per layer (`gate.{layer}`), plus any trained
extras, and metadata naming the base model it was trained on and the segment length and update
rule it was trained with. Its sha256 enters every memory fingerprint.

Base weights trained as well (tiny models in tests train their MLPs and embeddings beside the
gates) are stored as `base.{parameter name}` and copied into the model when the adapter loads:
the base model then carries them too, `unpatched()` included.

Optional LoRA weights on the attention projections, and on the MLPs' (trained through peft), are
stored as `lora.{peft state-dict key}` with their peft configuration in the metadata (`lora`).
Loading applies them to *copies* of the projections inside the Infini layers (of the MLPs, for
their targets) and merges them, so inference runs at base speed and `InfiniModel.unpatched()`
still gives the untouched base model.
LoRA trained for the memory path only (`memory_only`) stays unmerged: local attention must keep
the base projections, and the low-rank addition costs little next to a second projection.
"""

import copy
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file

from engine.errors import ModelError
from engine.paths import replace_durably

from .model import InfiniModel, store_gate_up_together
from .state import safetensors_metadata

ADAPTER_FORMAT = "infinibook-adapter/1"
LORA_PREFIX = "lora."
BASE_PREFIX = "base."
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def add_lora(model: InfiniModel, *, rank: int = 8, alpha: int = 16, targets=("q_proj", "k_proj", "v_proj"),
             layers=None, dropout: float = 0.0, memory_only: bool = False):
    """Inject peft LoRA layers into the Infini layers' projections; returns the peft LoraConfig.

    The projections are copied first: the base model's own attention and MLPs (used by
    `unpatched()`) keep the original, LoRA-free weights. memory_only: LoRA changes the memory's
    queries, keys and values, never local attention's (o_proj, which serves both, and the MLPs
    cannot be targets then).
    """
    from peft import LoraConfig, inject_adapter_in_model

    bad = set(targets) - set(PROJECTIONS) - set(MLP_PROJECTIONS)
    if bad:
        raise ModelError(f"LoRA targets must be attention or MLP projections {PROJECTIONS + MLP_PROJECTIONS}, "
                         f"not {sorted(bad)}.")
    if memory_only and set(targets) - {"q_proj", "k_proj", "v_proj"}:
        raise ModelError("LoRA on the memory path only can target q_proj, k_proj and v_proj, nothing else.")
    for attention in model.attention:
        attention.lora_in_local = not memory_only
        for name in set(targets) & set(PROJECTIONS):
            setattr(attention, name, copy.deepcopy(getattr(attention, name)))
    if set(targets) & set(MLP_PROJECTIONS):
        model.copy_mlps(layers)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                        layers_to_transform=list(layers) if layers is not None else None, bias="none")
    inject_adapter_in_model(config, model.lm)
    return config


def lora_tensors(model: InfiniModel) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model.lm)
    return {LORA_PREFIX + k: v.detach().float().cpu().contiguous() for k, v in state.items()}


def lora_metadata(model: InfiniModel, config) -> str:
    return json.dumps({
        "r": config.r, "lora_alpha": config.lora_alpha, "target_modules": sorted(config.target_modules),
        "layers_to_transform": config.layers_to_transform, "memory_only": lora_memory_only(model),
    })


def lora_memory_only(model: InfiniModel) -> bool:
    return not model.attention[0].lora_in_local


def merge_lora(model: InfiniModel) -> None:
    """Fold LoRA into the (copied) projections and drop the peft wrappers: inference at base speed."""
    from peft.tuners.lora import LoraLayer

    for owner, names in [(a, PROJECTIONS) for a in model.attention] + [(m, MLP_PROJECTIONS) for m in model.mlp]:
        for name in names:
            module = getattr(owner, name, None)
            if isinstance(module, LoraLayer):
                module.merge()
                setattr(owner, name, module.get_base_layer())
    for mlp in model.mlp:  # where merging gave gate and up weights of their own: one product again
        store_gate_up_together(mlp)
    if hasattr(model.lm, "peft_config"):  # merged: nothing of peft is left to save or train
        del model.lm.peft_config


def _load_lora(model: InfiniModel, tensors: dict[str, torch.Tensor], spec: str, name: str, merge: bool = True,
               widen_to: int | None = None) -> None:
    """Apply an adapter's LoRA; merged for inference, or left as trainable peft layers (of rank
    `widen_to`, when given: see `widened`)."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    try:
        options = json.loads(spec)
        rank, alpha = int(options["r"]), options["lora_alpha"]
        targets, layers = tuple(options["target_modules"]), options.get("layers_to_transform")
        memory_only = bool(options.get("memory_only", False))
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(f"The adapter {name} has an unreadable LoRA description; choose another adapter.") from error
    if widen_to is not None and widen_to < rank:
        raise ModelError(f"The adapter {name} has LoRA of rank {rank}; it can be widened, not narrowed to {widen_to}.")
    wide = widen_to or rank
    # the same alpha / rank: the stored components keep their scale
    add_lora(model, rank=wide, alpha=alpha * wide / rank if wide != rank else alpha, targets=targets, layers=layers,
             memory_only=memory_only)
    state = {k[len(LORA_PREFIX):]: v for k, v in tensors.items() if k.startswith(LORA_PREFIX)}
    if wide != rank:
        state = widened(state, get_peft_model_state_dict(model.lm))
    result = set_peft_model_state_dict(model.lm, {k: v.to(model.device) for k, v in state.items()})
    if getattr(result, "unexpected_keys", None):
        raise ModelError(f"The adapter {name} does not fit this model's layers; choose a matching adapter.")
    if set(get_peft_model_state_dict(model.lm)) - set(state):  # those layers would keep B = 0, silently
        raise ModelError(f"The adapter {name} lacks some of the LoRA weights it describes; it is damaged, "
                         "choose another adapter.")
    if merge and not lora_memory_only(model):
        merge_lora(model)


def widened(stored: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stored LoRA pairs inside freshly initialised wider ones: A's first rows and B's first columns
    are the stored ones, the other columns of B zero, so with alpha / rank kept the wider LoRA adds
    exactly what the stored one did, and its new components start to learn from peft's random A."""
    state = {}
    for key, tensor in stored.items():
        if key not in fresh or fresh[key].dim() != tensor.dim() or any(
                n > m for n, m in zip(tensor.shape, fresh[key].shape, strict=True)):
            state[key] = tensor  # another model's: loading it says so
            continue
        grown = fresh[key].detach().clone().to(tensor.device, tensor.dtype)
        if "lora_B" in key:
            grown.zero_()
        grown[tuple(slice(0, n) for n in tensor.shape)] = tensor
        state[key] = grown
    return state


def base_tensors(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Trained base weights, by parameter name, as an adapter stores them."""
    return {BASE_PREFIX + n: w.detach().float().cpu().contiguous() for n, w in weights.items()}


def _load_base(model: InfiniModel, tensors: dict[str, torch.Tensor], name: str) -> None:
    trained = {k[len(BASE_PREFIX):]: v for k, v in tensors.items() if k.startswith(BASE_PREFIX)}
    if not trained:  # the usual adapter: gates and LoRA only
        return
    named = dict(model.lm.named_parameters())
    if any(k not in named or named[k].shape != v.shape for k, v in trained.items()):
        raise ModelError(f"The adapter {name} does not fit this model's layers; choose a matching adapter.")
    with torch.no_grad():
        for k, v in trained.items():
            named[k].copy_(v)


def gate_tensors(model: InfiniModel) -> dict[str, torch.Tensor]:
    return {f"gate.{i}": a.gate.detach().float().cpu().contiguous() for i, a in enumerate(model.attention)}


def save_adapter(model: InfiniModel, path: str | os.PathLike, extra: dict[str, torch.Tensor] | None = None,
                 info: dict | None = None) -> Path:
    path = Path(path)
    tensors = gate_tensors(model) | dict(extra or {})
    lora_config = _lora_config(model)
    if lora_config is not None:
        tensors |= lora_tensors(model)
    metadata = {
        "format": ADAPTER_FORMAT,
        "base_sha": model.base_sha,
        "segment": str(model.segment),
        "rule": model.rule,
        "info": json.dumps(info or {}),
    }
    if lora_config is not None:
        metadata["lora"] = lora_metadata(model, lora_config)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
    replace_durably(tmp, path)
    return path


def _lora_config(model: InfiniModel):
    config = getattr(model.lm, "peft_config", None)
    return config.get("default") if isinstance(config, dict) else None


def read_adapter(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata); refuses anything that is not an Infinibook adapter."""
    tensors, metadata, _ = _read_adapter(Path(path))
    return tensors, metadata


def _read_adapter(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str], str]:
    """(tensors, metadata, sha256), all from ONE read of the file: hashing it in a second read
    would give the fingerprint of whatever replaced it meanwhile (a training run saving to the
    same path), and memories made with these gates would be filed under the other adapter."""
    try:
        data = path.read_bytes()
        metadata = safetensors_metadata(data)
        # the format first: another safetensors file (a model's weights) is refused unparsed
        tensors = load_tensors(data) if metadata.get("format") == ADAPTER_FORMAT else None
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelError(f"The adapter {path.name} cannot be read ({error}); choose another adapter file.") from error
    if tensors is None:
        raise ModelError(f"{path.name} is not an Infinibook adapter; choose a file made by `infinibook train`.")
    for tensor in tensors.values():  # a diverged training run saves NaN: every answer would be NaN
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelError(f"The adapter {path.name} holds values that are not numbers (NaN or infinity), as a "
                             "training run that diverged saves; choose another adapter or train it again.")
    return tensors, metadata, hashlib.sha256(data).hexdigest()


def load_adapter(model: InfiniModel, path: str | os.PathLike, *, check_base: bool = True,
                 merge: bool = True, widen_lora_to: int | None = None) -> dict[str, str]:
    """Set the gates (and trained extras) from an adapter file; returns its metadata.

    merge=False keeps its LoRA as peft layers, so training can continue from it; widen_lora_to
    gives them that rank (more capacity, starting where the adapter ends: `widened`).
    """
    path = Path(path)
    tensors, metadata, sha = _read_adapter(path)
    if check_base and metadata.get("base_sha") not in (model.base_sha, None):
        raise ModelError(
            f"The adapter {path.name} was trained for another base model; choose its base model or another adapter."
        )
    with torch.no_grad():
        for i, attention in enumerate(model.attention):
            gate = tensors.get(f"gate.{i}")
            if gate is None or gate.shape != attention.gate.shape:
                raise ModelError(f"The adapter {path.name} does not fit this model's layers; choose a matching adapter.")
            attention.gate.copy_(gate)
    _load_base(model, tensors, path.name)
    if metadata.get("lora"):
        _load_lora(model, tensors, metadata["lora"], path.name, merge=merge, widen_to=widen_lora_to)
    elif widen_lora_to:
        raise ModelError(f"The adapter {path.name} has no LoRA to widen; train LoRA with --lora-rank instead.")
    model.adapter_sha = sha
    return metadata
