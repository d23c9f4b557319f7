"""Infini-attention on a Hugging Face Llama-family model (arXiv 2404.07143).

    memory.py     the paper's equations (sigma, retrieval, linear and delta updates, gate)
    attention.py  one patched attention layer
    model.py      the patched model: segment forward, streaming, generation
    state.py      memory state, fingerprint, serialisation
    adapter.py    gates and trained extras, stored apart from the base weights
    loading.py    offline model loading (embedded default, folders, GGUF)
    allocator.py  CPU: freed activations stay in the process for the next layer
"""

from pathlib import Path

from engine.fingerprint import Fingerprint

from .attention import GATE_LOCAL_ONLY, InfiniAttention
from .model import SUPPORTED_MODEL_TYPES, InfiniModel
from .state import MemoryState

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
DEFAULT_ADAPTER = RESOURCES / "adapters" / "smollm2-135m-instruct-infini.safetensors"
DEFAULT_SEGMENT = 1024

__all__ = [
    "DEFAULT_ADAPTER", "DEFAULT_SEGMENT", "GATE_LOCAL_ONLY", "SUPPORTED_MODEL_TYPES",
    "Fingerprint", "InfiniAttention", "InfiniModel", "MemoryState", "load_engine",
]


def load_engine(
    model: str | None = None,
    *,
    adapter: str | None = "default",
    device: str = "auto",
    segment: int | None = None,
    rule: str | None = None,
    allow_download: bool | None = None,
    dtype: str = "auto",
) -> InfiniModel:
    """Load a base model, patch it, apply an adapter.

    adapter: a path, "default" (the shipped adapter when the model is the embedded default and
    the file exists), or None or "none" (untrained gates: segment-local attention only). Segment length and
    rule default to the adapter's own, since a memory is trained for them.
    """
    from .adapter import load_adapter, read_adapter
    from .allocator import keep_freed_memory
    from .loading import load_base_model

    lm, tokenizer, base_sha = load_base_model(model, device=device, allow_download=allow_download, dtype=dtype)
    if lm.device.type == "cpu":
        keep_freed_memory()
    if adapter == "default":
        adapter = str(DEFAULT_ADAPTER) if model is None and DEFAULT_ADAPTER.exists() else None
    elif adapter == "none":
        adapter = None
    trained: dict[str, str] = {}
    if adapter:
        _, trained = read_adapter(adapter)
    infini = InfiniModel(
        lm,
        tokenizer,
        segment=segment or int(trained.get("segment", DEFAULT_SEGMENT)),
        rule=rule or trained.get("rule", "delta"),
        base_sha=base_sha,
    )
    if adapter:
        load_adapter(infini, adapter)
    return infini
