"""A Hugging Face Llama-family causal LM with its attention layers patched to Infini-attention.

The decoder loop is written out, as in transformers' `modeling_llama.py`, because a segment's
forward needs what the stock loop cannot pass: every layer's memory, RoPE positions counted
from the segment start, and a key/value cache that lives only inside the current segment.
"""

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import SiLUActivation

from engine.errors import Cancelled, ModelError
from engine.fingerprint import Fingerprint, check_fingerprint

from . import memory as mem
from . import packing
from .attention import GATE_LOCAL_ONLY, InfiniAttention, SegmentCache
from .state import MemoryState

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "mistral")
SILU = (nn.SiLU, SiLUActivation)  # the activation of all three (transformers' own class for "silu")

Memories = list[tuple[torch.Tensor, torch.Tensor]]
Caches = list[SegmentCache]
ProgressCallback = Callable[[int, int], None]  # (tokens done, tokens total)
# Packing the weights once (0.2-0.7 s) pays when it saves 3-6% of many segments (~30-50 ms each on a CPU).
PACK_MIN_SEGMENTS = 16


class InfiniModel:
    """Streams token ids through a compressive memory and generates answers from it."""

    def __init__(
        self,
        causal_lm: nn.Module,
        tokenizer=None,
        *,
        segment: int = 1024,
        rule: str = "delta",
        base_sha: str = "unknown",
        gate_init: float = GATE_LOCAL_ONLY,
    ):
        config = causal_lm.config
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelError(
                f"The model's architecture ({config.model_type}) is not supported; "
                f"choose a Llama, Qwen2 or Mistral model."
            )
        if rule not in mem.UPDATE_RULES:
            raise ModelError(f"Unknown memory update rule {rule!r}; use delta or linear.")
        if segment < 1:
            raise ModelError("The segment length must be a positive number of tokens.")
        self.lm = causal_lm
        self.tokenizer = tokenizer
        self.config = config
        self.segment = segment
        self.rule = rule
        self.base_sha = base_sha
        self.adapter_sha = "none"
        self.backbone = causal_lm.get_decoder()
        self.layers = self.backbone.layers
        self._original_attention = [layer.self_attn for layer in self.layers]
        self.attention = nn.ModuleList(InfiniAttention(a, config, gate_init) for a in self._original_attention)
        self.attention.to(next(causal_lm.parameters()).device)
        self._original_mlp = [layer.mlp for layer in self.layers]
        # The MLPs the patched model runs: the base model's own, until LoRA on them needs copies.
        self.mlp = nn.ModuleList(self._original_mlp)
        self._install(self.attention, self.mlp)
        for layer in self.layers:
            store_gate_up_together(layer.mlp)

    # -- patching ---------------------------------------------------------------------------

    def _install(self, attention: Sequence[nn.Module], mlps: Sequence[nn.Module]) -> None:
        for layer, attention_module, mlp in zip(self.layers, attention, mlps, strict=True):
            layer.self_attn, layer.mlp = attention_module, mlp

    def copy_mlps(self, layers: Sequence[int] | None = None) -> None:
        """Give these layers (default: all) an MLP of their own, a copy of the base model's, so that
        what trains or merges into it (LoRA) never reaches `unpatched()`."""
        for index in range(len(self.layers)) if layers is None else layers:
            if self.mlp[index] is self._original_mlp[index]:
                self.mlp[index] = copy.deepcopy(self._original_mlp[index])
                store_gate_up_together(self.mlp[index])
        self._install(self.attention, self.mlp)

    @contextlib.contextmanager
    def unpatched(self):
        """The base model exactly as loaded: for baselines measured on the same weights."""
        self._install(self._original_attention, self._original_mlp)
        try:
            yield self.lm
        finally:
            self._install(self.attention, self.mlp)

    def set_memory_read(self, enabled: bool) -> None:
        """False forces every gate to local-only: the memory-off control of every eval."""
        for attention in self.attention:
            attention.read_memory = enabled

    @property
    def device(self) -> torch.device:
        return self.backbone.embed_tokens.weight.device

    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.base_sha, self.adapter_sha, self.segment, self.rule)

    @property
    def kv_cache_bytes_per_token(self) -> int:
        """What a plain transformer keeps per token of context: K and V, every layer, fp16."""
        first = self.attention[0]
        return len(self.layers) * 2 * first.num_kv_heads * first.head_dim * 2

    # -- memory -----------------------------------------------------------------------------

    def empty_memories(self, batch: int = 1) -> Memories:
        first = self.attention[0]
        return [
            mem.empty_memory(batch, first.num_kv_heads, first.head_dim, first.head_dim, self.device)
            for _ in self.layers
        ]

    def new_state(self) -> MemoryState:
        return MemoryState.from_layers(self.empty_memories(1), self.fingerprint, tokens=0)

    def write(self, memories: Memories, caches: Caches) -> Memories:
        """End of a segment: fold its keys and values into every layer's memory (eq. 4 or 5)."""
        return [self._write_layer(m, z, cache) for (m, z), cache in zip(memories, caches, strict=True)]

    def _write_layer(self, memory: torch.Tensor, norm: torch.Tensor, cache: SegmentCache):
        return mem.update(memory, norm, cache.sigma_key, cache.written_value.float(), self.rule)

    # -- one segment ------------------------------------------------------------------------

    def _embed(self, input_ids: torch.Tensor, past_length: int):
        """Token embeddings and RoPE cos/sin for positions counted from the segment's start."""
        hidden = self.backbone.embed_tokens(input_ids)
        positions = torch.arange(past_length, past_length + input_ids.shape[1], device=input_ids.device)
        cos, sin = self.backbone.rotary_emb(hidden, positions.unsqueeze(0))
        return hidden, cos, sin

    @staticmethod
    def _decoder_layer(layer: nn.Module, hidden, cos, sin, memory, norm, past: SegmentCache | None):
        """modeling_llama's LlamaDecoderLayer, with the memory passed to the attention.

        With nothing to differentiate (streaming a book, answering) the residual stream is added to
        in place and the MLP runs as `mlp_in_place`: the same values with four fewer full-size
        temporaries per layer (two sums, one in each RMSNorm) and two fewer in the MLP, cheaper on
        CPU. `hidden` is this segment's own tensor then (the embedding output is).
        """
        in_place = not torch.is_grad_enabled()
        attended, cache = layer.self_attn(rms_norm(layer.input_layernorm, hidden), cos, sin, memory, norm, past)
        hidden = hidden.add_(attended) if in_place else hidden + attended
        normed = rms_norm(layer.post_attention_layernorm, hidden)
        update = mlp_in_place(layer.mlp, normed) if in_place else layer.mlp(normed)
        return (hidden.add_(update) if in_place else hidden + update), cache

    def segment_forward(
        self, input_ids: torch.Tensor, memories: Memories, caches: Caches | None = None
    ) -> tuple[torch.Tensor, Caches]:
        """Run tokens of the current segment through every layer (no LM head).

        `caches` holds the earlier tokens of this segment (generation); RoPE positions continue
        from there. The memories are read, not written: see `write`.
        """
        hidden, cos, sin = self._embed(input_ids, caches[0].length if caches else 0)
        new_caches: Caches = []
        for index, (layer, (memory, norm)) in enumerate(zip(self.layers, memories, strict=True)):
            hidden, cache = self._decoder_layer(layer, hidden, cos, sin, memory, norm, caches[index] if caches else None)
            new_caches.append(cache)
        return hidden, new_caches

    def stream_segment(self, input_ids: torch.Tensor, memories: Memories) -> Memories:
        """One whole segment into memory: what `segment_forward` then `write` give, for less.

        Each layer writes its memory as soon as it has attended (its read used the memory from
        before this segment, as eq. 3 asks), so no layer's keys and values outlive the layer,
        and the last layer stops after its keys and values: nothing later reaches the memory.
        """
        hidden, cos, sin = self._embed(input_ids, 0)
        written: Memories = []
        last = len(self.layers) - 1
        for index, (layer, (memory, norm)) in enumerate(zip(self.layers, memories, strict=True)):
            if index == last:
                cache = layer.self_attn.memory_inputs(layer.input_layernorm(hidden))
            else:
                hidden, cache = self._decoder_layer(layer, hidden, cos, sin, memory, norm, None)
            written.append(self._write_layer(memory, norm, cache))
        return written

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm.lm_head(self.backbone.norm(hidden))

    # -- streaming --------------------------------------------------------------------------

    def packed_for_streaming(self, tokens: int, batch: int = 1):
        """A context in which `stream` runs on weights packed once for its segments (float32 on a
        CPU with MKL; elsewhere nothing changes), when `tokens` (a whole book's, say) fill at least
        `PACK_MIN_SEGMENTS` segments: packing takes 0.2-0.7 s and as much memory as the weights."""
        if tokens < PACK_MIN_SEGMENTS * batch * self.segment:
            return contextlib.nullcontext()
        return packing.packed(self._streamed_weights(), rows=batch * self.segment)

    def _streamed_weights(self) -> Iterator[torch.Tensor]:
        """The weights `stream_segment` multiplies by; of the last layer, its keys' and values'."""
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            attention = layer.self_attn
            projections = [attention.k_proj, attention.v_proj]
            if index < last:
                projections += [attention.q_proj, attention.o_proj]
                gate_up = gate_up_weight(layer.mlp)  # None: the MLP runs as its own module
                if gate_up is not None:
                    yield gate_up
                    projections.append(layer.mlp.down_proj)
            yield from (p.weight for p in projections if type(p) is nn.Linear)

    @torch.inference_mode()
    def stream(
        self,
        token_ids: Sequence[int] | torch.Tensor,
        state: MemoryState,
        progress: ProgressCallback | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> MemoryState:
        """Write token ids into memory segment by segment; the last, shorter segment too.

        Returns a new state; `state` is left as it was, so a cancelled chapter changes nothing.
        """
        check_fingerprint(self.fingerprint, state.fingerprint)
        ids = torch.as_tensor(token_ids, dtype=torch.long, device=self.device).reshape(1, -1)
        total = ids.shape[1]
        memories = [(m.clone(), z.clone()) for m, z in state.layers()]
        for start in range(0, total, self.segment):
            if should_cancel is not None and should_cancel():
                raise Cancelled("Reading was cancelled; chapters already finished are kept.")
            memories = self.stream_segment(ids[:, start : start + self.segment], memories)
            if progress is not None:
                progress(min(start + self.segment, total), total)
        return MemoryState.from_layers(memories, state.fingerprint, state.tokens + total)

    # -- generation -------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        prompt_ids: Sequence[int],
        state: MemoryState,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop_ids: Sequence[int] = (),
        seed: int | None = None,
        repetition_penalty: float = 1.0,
    ) -> Iterator[int]:
        """Answer token by token from memory; temperature 0 is greedy.

        `repetition_penalty` > 1 makes tokens this answer already used less likely (as in
        transformers: positive logits divided, negative multiplied); the prompt is exempt, so
        names and words from the book can still be quoted. Small greedy models loop without it.

        Local attention covers the prompt and the answer so far inside the current segment
        (with a KV cache); every layer also reads memory. When the segment fills, it is
        written into (a copy of) the memory and the next segment starts at position 0.
        """
        check_fingerprint(self.fingerprint, state.fingerprint)
        generator = torch.Generator(device=self.device)
        if seed is not None:
            generator.manual_seed(seed)
        memories = [(m.clone(), z.clone()) for m, z in state.layers()]
        caches: Caches | None = None
        pending = list(prompt_ids)
        stops = set(stop_ids)
        answered: list[int] = []
        for _ in range(max_new_tokens):
            hidden = None
            while pending:  # feed pending tokens, never across a segment boundary
                room = self.segment - (caches[0].length if caches else 0)
                chunk, pending = pending[:room], pending[room:]
                ids = torch.tensor([chunk], dtype=torch.long, device=self.device)
                hidden, caches = self.segment_forward(ids, memories, caches)
                if caches[0].length >= self.segment:
                    memories, caches = self.write(memories, caches), None
            logits = penalise_repeats(self.logits(hidden[:, -1]), answered, repetition_penalty)
            token = sample_next(logits, temperature, top_p, generator)
            if token in stops:
                return
            yield token
            answered.append(token)
            pending = [token]

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of a chat, formatted with the model's own chat template.

        The contents are text (a book's passage, a question): a chat marker typed in them
        ("<|im_end|>") must not become the marker itself, which would end the turn early or
        stop the answer, so each is broken by a zero-width space first.
        """
        if self.tokenizer is None:
            raise ModelError("This model has no tokenizer; load it from a folder or GGUF file that has one.")
        markers = special_markers(self.tokenizer)
        messages = [{**m, "content": neutralise_markers(m["content"], markers)} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return self.tokenizer.encode(text)

    def stop_ids(self) -> list[int]:
        stops = set()
        for name in ("eos_token_id", "pad_token_id"):
            value = getattr(self.tokenizer, name, None) if self.tokenizer is not None else None
            if value is not None:
                stops.add(int(value))
        for token in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            if self.tokenizer is not None and token in self.tokenizer.get_vocab():
                stops.add(self.tokenizer.convert_tokens_to_ids(token))
        return sorted(stops)


def special_markers(tokenizer) -> tuple[str, ...]:
    """The special tokens' strings ("<|im_end|>", "<|endoftext|>", ...) the tokenizer would turn
    into their ids wherever they appear in a text."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    found = {token.content for token in added.values() if getattr(token, "special", False)}
    found |= set(getattr(tokenizer, "all_special_tokens", []) or [])
    return tuple(sorted((m for m in found if len(m) > 1), key=len, reverse=True))


def neutralise_markers(text: str, markers: Sequence[str]) -> str:
    """`text` with a zero-width space after the first character of every marker in it: it reads
    the same but is tokenised as text."""
    for marker in markers:
        if marker in text:
            text = text.replace(marker, f"{marker[0]}\u200b{marker[1:]}")
    return text


def rms_norm(module: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """LlamaRMSNorm's (and Qwen2's, Mistral's) value for float32 input, with one temporary fewer.

    Its in-place steps would break back-propagation, so with gradients on it is the module itself.
    """
    epsilon = getattr(module, "variance_epsilon", None)
    if hidden.dtype != torch.float32 or epsilon is None or torch.is_grad_enabled():
        return module(hidden)
    variance = hidden.pow(2).mean(-1, keepdim=True)
    return (hidden * variance.add_(epsilon).rsqrt_()).mul_(module.weight)


def _plain_linear(module: nn.Module | None) -> bool:
    return type(module) is nn.Linear and module.bias is None


def _fusable(mlp: nn.Module) -> bool:
    """A LlamaMLP-shaped block `mlp_in_place` can run: bias-free gate/up/down and SiLU."""
    gate, up = getattr(mlp, "gate_proj", None), getattr(mlp, "up_proj", None)
    return (
        _plain_linear(gate) and _plain_linear(up) and _plain_linear(getattr(mlp, "down_proj", None))
        and gate.weight.shape[1] == up.weight.shape[1] and isinstance(getattr(mlp, "act_fn", None), SILU)
    )


def store_gate_up_together(mlp: nn.Module) -> None:
    """Re-home gate_proj's and up_proj's weights, unchanged, as the two halves of one matrix.

    Their values, the modules and a peft model built on them stay as they were; it costs no
    memory (the old storage is freed) and lets `mlp_in_place` do both in one matrix product.
    Weights already together are left where they are.
    """
    if not _fusable(mlp) or gate_up_weight(mlp) is not None:
        return
    gate, up = mlp.gate_proj, mlp.up_proj
    both = torch.cat((gate.weight.detach(), up.weight.detach()))
    rows = gate.weight.shape[0]
    gate.weight = nn.Parameter(both[:rows], requires_grad=gate.weight.requires_grad)
    up.weight = nn.Parameter(both[rows:], requires_grad=up.weight.requires_grad)


def gate_up_weight(mlp: nn.Module) -> torch.Tensor | None:
    """[gate_proj; up_proj] as one matrix, if their weights still lie back to back in one storage
    (moving or casting the model gives each its own, and a peft layer wraps them)."""
    if not _fusable(mlp):
        return None
    g, u = mlp.gate_proj.weight, mlp.up_proj.weight
    adjacent = (
        g.is_contiguous() and u.is_contiguous() and g.dtype == u.dtype
        and g.untyped_storage().data_ptr() == u.untyped_storage().data_ptr()
        and u.storage_offset() == g.storage_offset() + g.numel()
    )
    return g.as_strided((g.shape[0] + u.shape[0], g.shape[1]), (g.shape[1], 1)) if adjacent else None


def mlp_in_place(mlp: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """LlamaMLP's value, down(act(gate(x)) * up(x)), with gate and up as one matrix product and
    the activation and product in place: up to ~1% of a streamed segment on CPU (ingest runs 41-48).

    With nothing to differentiate only; elsewhere, or for an MLP of another shape, the module."""
    weight = gate_up_weight(mlp)
    if weight is None:
        return mlp(hidden)
    gate, up = packing.linear(hidden, weight).split(mlp.gate_proj.weight.shape[0], dim=-1)
    return packing.apply(mlp.down_proj, F.silu(gate, inplace=True).mul_(up))


def penalise_repeats(logits: torch.Tensor, used: Sequence[int], penalty: float) -> torch.Tensor:
    if penalty == 1.0 or not used:
        return logits
    index = torch.tensor(sorted(set(used)), device=logits.device)
    chosen = logits[..., index]
    logits = logits.clone()
    logits[..., index] = torch.where(chosen > 0, chosen / penalty, chosen * penalty)
    return logits


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """Greedy at temperature 0; otherwise nucleus sampling (top-p) at the given temperature."""
    logits = logits[0].float()
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p  # always keeps the most likely token
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
