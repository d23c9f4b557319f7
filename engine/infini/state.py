"""A book's memory: every layer's M and z, with the fingerprint of what produced it.

Serialised as safetensors bytes (no pickle) so it can live in a SQLite blob. A memory is
meaningless under another model, adapter, segment length or update rule, so loading checks
the fingerprint and refuses with a sentence that names the difference.
"""

import json
import struct
from dataclasses import dataclass

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from engine.errors import LibraryError
from engine.fingerprint import Fingerprint, check_fingerprint

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class MemoryState:
    """M: (layers, batch, kv_heads, d_k, d_v) and z: (layers, batch, kv_heads, d_k), float32."""

    memory: torch.Tensor
    norm: torch.Tensor
    fingerprint: Fingerprint
    tokens: int = 0  # tokens written so far

    @property
    def nbytes(self) -> int:
        """Fixed by the model, never by the book."""
        return self.memory.numel() * self.memory.element_size() + self.norm.numel() * self.norm.element_size()

    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(self.memory[i], self.norm[i]) for i in range(self.memory.shape[0])]

    @classmethod
    def from_layers(cls, layers, fingerprint: Fingerprint, tokens: int) -> "MemoryState":
        memory = torch.stack([m for m, _ in layers])
        norm = torch.stack([z for _, z in layers])
        return cls(memory, norm, fingerprint, tokens)

    def clone(self) -> "MemoryState":
        return MemoryState(self.memory.clone(), self.norm.clone(), self.fingerprint, self.tokens)

    def to_bytes(self, dtype: str = "float32") -> bytes:
        if dtype not in DTYPES:
            raise ValueError(f"memory dtype must be one of {sorted(DTYPES)}")
        tensors = {
            "memory": self.memory.detach().to("cpu", DTYPES[dtype]).contiguous(),
            "norm": self.norm.detach().to("cpu", DTYPES[dtype]).contiguous(),
        }
        metadata = {"fingerprint": str(self.fingerprint), "tokens": str(self.tokens), "format": "infinibook-memory/1"}
        return save_tensors(tensors, metadata=metadata)

    @classmethod
    def from_bytes(cls, data: bytes, expected: Fingerprint | None = None, device=None) -> "MemoryState":
        metadata = read_metadata(data)
        fingerprint = Fingerprint.parse(metadata.get("fingerprint", ""))
        if expected is not None:
            check_fingerprint(expected, fingerprint)
        try:
            tensors = load_tensors(data)
        except Exception as error:  # safetensors raises its own error types for damaged bytes
            raise LibraryError("A saved memory is damaged and cannot be read; re-read the book.") from error
        memory = tensors["memory"].to(device=device, dtype=torch.float32)
        norm = tensors["norm"].to(device=device, dtype=torch.float32)
        return cls(memory, norm, fingerprint, int(metadata.get("tokens", 0)))


def read_metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's __metadata__, read without loading the tensors."""
    try:
        return safetensors_metadata(data)
    except ValueError as error:
        raise LibraryError("A saved memory is damaged and cannot be read; re-read the book.") from error


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The header's __metadata__ of safetensors bytes; ValueError when the header is damaged."""
    try:
        (header_length,) = struct.unpack("<Q", data[:8])
    except struct.error as error:
        raise ValueError("shorter than a safetensors header") from error
    if header_length > len(data) - 8:
        raise ValueError("header longer than the data")
    header = json.loads(data[8 : 8 + header_length])  # JSON and UTF-8 errors are ValueErrors
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        raise ValueError("the header is not a safetensors header")
    return metadata
