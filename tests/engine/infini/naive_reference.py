"""Infini-attention written the obvious way, as an oracle for the engine and a speed reference.

This is what a first implementation looks like: transformers' own `repeat_kv` and
`apply_rotary_pos_emb`, the memory read and write as einsums over the expanded heads, every
layer (the last one too) run in full, and the memories written after the whole segment from
keys and values kept for every layer. The engine must give the same memories and hidden states
(`test_naive_reference.py`), and `bench_against_naive.py` times both on the same segments.
"""

import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

from engine.infini.model import InfiniModel

Memories = list[tuple[torch.Tensor, torch.Tensor]]


def naive_read(sigma_q, memory, norm, group):
    memory, norm = memory.repeat_interleave(group, 1), norm.repeat_interleave(group, 1)
    numerator = torch.einsum("bhnd,bhde->bhne", sigma_q, memory)
    denominator = torch.einsum("bhnd,bhd->bhn", sigma_q, norm).unsqueeze(-1)
    return numerator / denominator.clamp_min(1e-6)


def naive_write(memory, norm, sigma_k, value, rule):
    if rule == "delta":
        value = value - naive_read(sigma_k, memory, norm, 1)
    return memory + torch.einsum("bhnd,bhne->bhde", sigma_k, value), norm + sigma_k.sum(-2)


def naive_layer(model: InfiniModel, index: int, hidden, cos, sin, memory, norm):
    layer, attention = model.layers[index], model.attention[index]
    batch, tokens, _ = hidden.shape
    x = layer.input_layernorm(hidden)

    def heads(projection, count):
        return projection(x).view(batch, tokens, count, attention.head_dim).transpose(1, 2)

    query = heads(attention.q_proj, attention.num_heads)
    key, value = heads(attention.k_proj, attention.num_kv_heads), heads(attention.v_proj, attention.num_kv_heads)
    sigma_q, sigma_k = F.elu(query) + 1, F.elu(key) + 1
    rotated_q, rotated_k = apply_rotary_pos_emb(query, key, cos, sin)
    local = F.scaled_dot_product_attention(
        rotated_q, repeat_kv(rotated_k, attention.group), repeat_kv(value, attention.group),
        is_causal=tokens > 1, scale=attention.scaling,
    )
    gate = torch.sigmoid(attention.gate).view(1, -1, 1, 1)
    mixed = gate * naive_read(sigma_q, memory, norm, attention.group) + (1 - gate) * local
    hidden = hidden + attention.o_proj(mixed.transpose(1, 2).reshape(batch, tokens, -1))
    hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return hidden, (sigma_k, value)


def naive_segment(model: InfiniModel, ids: torch.Tensor, memories: Memories) -> tuple[torch.Tensor, Memories]:
    """One segment through every layer, then every memory written: (hidden, new memories)."""
    hidden, cos, sin = model._embed(ids, 0)
    kept = []
    for index, (memory, norm) in enumerate(memories):
        hidden, keys_values = naive_layer(model, index, hidden, cos, sin, memory, norm)
        kept.append(keys_values)
    written = [naive_write(m, z, sk, v, model.rule) for (m, z), (sk, v) in zip(memories, kept, strict=True)]
    return hidden, written
