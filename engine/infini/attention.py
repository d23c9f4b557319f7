"""Infini-attention for one decoder layer of a Llama-family model (paper fig. 1 and eqs. 2-6).

The layer keeps the base model's own q/k/v/o projections and adds one gate logit per query
head. Local attention is ordinary causal softmax attention inside the current segment, with
RoPE positions counted from the segment's start; the compressive memory is read and written
with the queries and keys *before* RoPE, as the paper does.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import memory as mem
from . import packing

# sigmoid(-30) ~ 1e-13: without a trained adapter the layer behaves as the base model with
# segment-local attention, which is what an untrained memory can honestly offer.
GATE_LOCAL_ONLY = -30.0


@dataclass
class SegmentCache:
    """What one layer has seen of the current, unfinished segment."""

    key: torch.Tensor  # (batch, kv_heads, tokens, d) after RoPE for local attention (memory_inputs: before)
    value: torch.Tensor  # (batch, kv_heads, tokens, d)
    sigma_key: torch.Tensor  # (batch, kv_heads, tokens, d) float32, sigma(K) before RoPE: memory write
    memory_value: torch.Tensor | None = None  # V for the memory write when it differs from local V (LoRA)

    @property
    def length(self) -> int:
        return self.key.shape[-2]

    @property
    def written_value(self) -> torch.Tensor:
        return self.value if self.memory_value is None else self.memory_value

    def extended(self, new: "SegmentCache") -> "SegmentCache":
        """This segment's earlier tokens followed by `new` ones (generation, token by token)."""
        memory_value = None if new.memory_value is None else torch.cat((self.memory_value, new.memory_value), dim=-2)
        return SegmentCache(
            torch.cat((self.key, new.key), dim=-2),
            torch.cat((self.value, new.value), dim=-2),
            torch.cat((self.sigma_key, new.sigma_key), dim=-2),
            memory_value,
        )


def lora_addition(projection: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """What a peft LoRA layer adds to its base layer's output: sum of B(A(x)) * scaling."""
    addition = 0
    for name in projection.active_adapters:
        if name in projection.lora_A:
            down, up = projection.lora_A[name], projection.lora_B[name]
            addition = addition + up(down(projection.lora_dropout[name](hidden))) * projection.scaling[name]
    return addition


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE as in modeling_llama: x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1).

    cos/sin: (batch, tokens, d), positions inside the segment. Adding each half's rotated term
    in place skips building rotate_half(x): three passes over the queries instead of five.
    With nothing to differentiate the result is laid out head by head (x, a view of the
    projection, is token by token): softmax attention ran ~2% faster on it on CPU, at no cost.
    """
    half = x.shape[-1] // 2
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    rotated = x * cos if torch.is_grad_enabled() else torch.mul(x, cos, out=x.new_empty(x.shape))
    rotated[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1.0)
    rotated[..., half:].addcmul_(x[..., :half], sin[..., half:])
    return rotated


class InfiniAttention(nn.Module):
    """Replaces a LlamaAttention/Qwen2Attention/MistralAttention, reusing its projections."""

    def __init__(self, original: nn.Module, config, gate_init: float = GATE_LOCAL_ONLY):
        super().__init__()
        self.q_proj, self.k_proj = original.q_proj, original.k_proj
        self.v_proj, self.o_proj = original.v_proj, original.o_proj
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.num_heads
        self.group = self.num_heads // self.num_kv_heads
        self.scaling = self.head_dim**-0.5
        self.gate = nn.Parameter(torch.full((self.num_heads,), float(gate_init), dtype=torch.float32))
        # False = the memory-off control: local attention only, the memory is neither read nor needed.
        self.read_memory = True
        # False = LoRA on the projections serves only the memory's Q/K/V: local attention keeps the
        # base model's projections, so with the memory off the layer is exactly the base layer.
        self.lora_in_local = True

    def _heads(self, output: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = output.shape
        return output.view(batch, tokens, -1, self.head_dim).transpose(1, 2)

    def _project(self, projection: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(for local attention, for the memory): one tensor unless LoRA is on the memory path only."""
        if self.lora_in_local or not hasattr(projection, "lora_A"):
            heads = self._heads(packing.apply(projection, hidden))
            return heads, heads
        base = projection.get_base_layer()(hidden)
        return self._heads(base), self._heads(base + lora_addition(projection, hidden))

    def memory_inputs(self, hidden: torch.Tensor) -> SegmentCache:
        """Keys before RoPE, values and sigma(K): all the memory write needs (the last streamed layer)."""
        key, memory_key = self._project(self.k_proj, hidden)
        value, memory_value = self._project(self.v_proj, hidden)
        return SegmentCache(key, value, mem.sigma(memory_key.float()), None if memory_value is value else memory_value)

    def keys_values(self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> SegmentCache:
        """The same with RoPE applied to the keys, for local attention."""
        plain = self.memory_inputs(hidden)
        return SegmentCache(apply_rope(plain.key, cos, sin), plain.value, plain.sigma_key, plain.memory_value)

    def forward(
        self,
        hidden: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        memory: torch.Tensor,
        norm: torch.Tensor,
        past: SegmentCache | None = None,
    ) -> tuple[torch.Tensor, SegmentCache]:
        """Attend to the segment so far (past + these tokens) and read memory of earlier segments."""
        batch, tokens, _ = hidden.shape
        query, memory_query = self._project(self.q_proj, hidden)
        current = self.keys_values(hidden, cos, sin)
        if past is not None:
            current = past.extended(current)
        local = self._local_attention(apply_rope(query, cos, sin), current, past_length=past.length if past else 0)
        if self.read_memory:
            retrieved = self.read(memory_query, memory, norm)
            output = mem.combine(self.gate, retrieved, local.float(), out=self._token_major(local)).to(local.dtype)  # eq. 6
        else:
            output = local
        output = output.transpose(1, 2).reshape(batch, tokens, self.num_heads * self.head_dim)
        return packing.apply(self.o_proj, output), current

    @staticmethod
    def _token_major(local: torch.Tensor) -> torch.Tensor | None:
        """Where eq. 6 can write A so that o_proj's input is a view, not a copy: float32 inference."""
        if local.dtype != torch.float32 or torch.is_grad_enabled():
            return None
        batch, heads, tokens, d_v = local.shape
        return local.new_empty(batch, tokens, heads, d_v).transpose(1, 2)

    def read(self, memory_query: torch.Tensor, memory: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        """A_mem (eq. 3): one memory per key/value head, read by the `group` query heads that share it."""
        return mem.retrieve(mem.sigma(memory_query.float()), *mem.for_query_heads(memory, norm, self.group))

    def memory_read(self, hidden: torch.Tensor, memory: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        """What these tokens would retrieve from memory, with no local attention (probes)."""
        return self.read(self._project(self.q_proj, hidden)[1], memory, norm)

    def _local_attention(self, query: torch.Tensor, cache: SegmentCache, past_length: int) -> torch.Tensor:
        """A_dot (eq. 2): causal softmax attention inside the segment."""
        tokens = query.shape[-2]
        mask, causal = None, past_length == 0 and tokens > 1
        if past_length and tokens > 1:
            positions = torch.arange(cache.length, device=query.device)
            mask = positions[None, :] <= (past_length + torch.arange(tokens, device=query.device))[:, None]
        return F.scaled_dot_product_attention(
            query, cache.key, cache.value, attn_mask=mask, is_causal=causal, scale=self.scaling, enable_gqa=True
        )
