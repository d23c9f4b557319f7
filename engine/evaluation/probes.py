"""Probes of the memory itself: why a passkey row fails, not whether it does.

`key_signal` streams two passkey prompts that differ only in the key and compares, layer by
layer, what the question's last token reads from memory (A_mem, eq. 3). Near 1 the read still
tells the keys apart; it shrinks as the normaliser z fills with filler keys, since the key's own
share of sigma(Q) z falls with every token written after it unless sigma(Q) is nearly
orthogonal to the filler's sigma(K). A trained retrieval head keeps it high for longer.
There is no memory-off row: with the memory off nothing is read, so the signal is 0 by construction.
"""

import random
from collections.abc import Sequence

import torch

from engine.infini.model import InfiniModel
from engine.training import data

from .core import Progress, final_chunk_start, stream_batch

KEY_PAIR = ("60494", "17235")


@torch.inference_mode()
def key_signal(model: InfiniModel, lengths: Sequence[int], depth: float = 0.0, keys: tuple[str, str] = KEY_PAIR,
               progress: Progress | None = None) -> list[dict]:
    """Per length and layer: |A1 - A2| / |A1| at the question, in the layer's most open head."""
    rows = []
    gates = [torch.sigmoid(attention.gate.detach()) for attention in model.attention]
    for length in lengths:
        prompts = []
        for key in keys:  # same filler, same place: only the key differs
            example = data.passkey_example(model.tokenizer, length, depth, random.Random(0), key=key,
                                           last_segment=model.segment, filler_offset=0)
            prompts.append(example.ids[: example.prompt_length])
        ids = torch.tensor(prompts, device=model.device)
        final = final_chunk_start(ids.shape[1], model.segment)
        memories = stream_batch(model, ids[:, :final], model.empty_memories(len(keys)), progress)
        questions = _attention_inputs(model, ids[:, final:], memories)
        for layer, (attention, gate, question, (memory, norm)) in enumerate(
            zip(model.attention, gates, questions, memories, strict=True)
        ):
            read = attention.memory_read(question[:, -1:], memory, norm)  # (keys, heads, 1, d)
            head = int(gate.argmax())
            first, second = read[0, head, -1], read[1, head, -1]
            signal = float((first - second).norm() / first.norm().clamp_min(1e-12))
            rows.append({"length": length, "layer": layer, "gate": round(float(gate[head]), 4),
                         "signal": round(signal, 4)})
    return rows


def _attention_inputs(model: InfiniModel, chunk: torch.Tensor, memories) -> list[torch.Tensor]:
    """Every layer's attention input (after its norm) for the last chunk, the question included."""
    captured: list[torch.Tensor] = []
    handles = [a.register_forward_pre_hook(lambda _module, args: captured.append(args[0])) for a in model.attention]
    try:
        model.segment_forward(chunk, memories)
    finally:
        for handle in handles:
            handle.remove()
    return captured
