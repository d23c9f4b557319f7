"""Scoring many long prompts on a CPU without cheating: shared prefixes are streamed once.

Every prompt is a full token sequence (filler or book text with something planted in it,
question at the end). Prompts that begin with the same tokens (all passkey prompts share their
filler up to the key) share the memory of that common prefix: it is streamed once, a snapshot
is taken at the last segment boundary before a prompt diverges, and each prompt then streams
its own remainder, key included, in a batch. So every key is inside what is streamed, and
every prompt's memory is exactly what streaming the whole prompt would give.

The memory-off control runs the same model with the memory read switched off: only the last,
local segment can matter, so it is scored on that segment alone.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.infini.model import InfiniModel

Progress = Callable[[int, int], None]


@dataclass
class Prompt:
    ids: list[int]  # prompt tokens (question included, answer excluded)
    answer_ids: list[int]  # greedy decoding must produce these
    group: tuple = ()  # (length, depth) or similar, for the table


def final_chunk_start(length: int, segment: int) -> int:
    """Where a prompt's last, local chunk starts: the question never begins a segment alone."""
    return ((length - 1) // segment) * segment


def _expand(memories, batch: int):
    return [(m.expand(batch, *m.shape[1:]).clone(), z.expand(batch, *z.shape[1:]).clone()) for m, z in memories]


@torch.inference_mode()
def stream_batch(model: InfiniModel, ids: torch.Tensor, memories, progress: Progress | None = None):
    """Write (batch, tokens) into memories segment by segment; tokens must be whole segments."""
    with model.packed_for_streaming(ids.numel(), batch=ids.shape[0]):
        for start in range(0, ids.shape[1], model.segment):
            memories = model.stream_segment(ids[:, start : start + model.segment], memories)
            if progress is not None:
                progress(ids.shape[0] * min(model.segment, ids.shape[1] - start), 0)
    return memories


@torch.inference_mode()
def greedy_batch(model: InfiniModel, ids: torch.Tensor, memories, steps: int) -> torch.Tensor:
    """Greedy continuation of a batch of equally long final chunks (< one segment) from memory."""
    hidden, caches = model.segment_forward(ids, memories)
    out = []
    for _ in range(steps):
        token = model.logits(hidden[:, -1]).argmax(-1, keepdim=True)
        out.append(token)
        if caches[0].length >= model.segment:  # the answer crosses a segment boundary
            memories, caches = model.write(memories, caches), None
        hidden, caches = model.segment_forward(token, memories, caches)
    return torch.cat(out, dim=1)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@torch.inference_mode()
def score_prompts(model: InfiniModel, prompts: list[Prompt], *, batch: int = 4, memory: bool = True,
                  progress: Progress | None = None) -> list[list[int]]:
    """Greedy answers (token ids) for every prompt; all prompts must have the same length."""
    if not prompts:
        return []
    segment, device = model.segment, model.device
    length = len(prompts[0].ids)
    if any(len(p.ids) != length for p in prompts):
        raise ValueError("prompts of one call must have the same length")
    steps = max(len(p.answer_ids) for p in prompts) + 1  # one more: " 123456" must not pass for " 12345"
    final = final_chunk_start(length, segment)  # the last, local chunk: ids[final:]
    model.set_memory_read(memory)
    try:
        if not memory:  # memory-off: nothing before the last chunk can matter
            answers = []
            for i in range(0, len(prompts), batch):
                chunk = torch.tensor([p.ids[final:] for p in prompts[i : i + batch]], device=device)
                answers += greedy_batch(model, chunk, model.empty_memories(len(chunk)), steps).tolist()
            return answers
        reference = prompts[0].ids
        boundaries = [min(final, (_common_prefix(reference, p.ids) // segment) * segment) for p in prompts]
        snapshots, memories, done = {}, model.empty_memories(1), 0
        ref = torch.tensor([reference], device=device)
        for boundary in sorted(set(boundaries)):
            memories = stream_batch(model, ref[:, done:boundary], memories, progress)
            snapshots[boundary], done = memories, boundary
        answers: list[list[int] | None] = [None] * len(prompts)
        for boundary in sorted(set(boundaries)):
            members = [i for i, b in enumerate(boundaries) if b == boundary]
            for j in range(0, len(members), batch):
                part = members[j : j + batch]
                ids = torch.tensor([prompts[i].ids for i in part], device=device)
                state = stream_batch(model, ids[:, boundary:final], _expand(snapshots[boundary], len(part)), progress)
                for i, answer in zip(part, greedy_batch(model, ids[:, final:], state, steps).tolist(), strict=True):
                    answers[i] = answer
        return answers
    finally:
        model.set_memory_read(True)


def exact(answer: list[int], expected: list[int], tokenizer=None) -> bool:
    """The expected tokens, then no more of the same word: " 123456" is not " 12345", nor "Maudlin"
    "Maud" ("12345." and "Maud," are right). Without a tokenizer (toy vocabularies) the tokens alone."""
    if answer[: len(expected)] != list(expected):
        return False
    following = answer[len(expected) : len(expected) + 1]
    return tokenizer is None or not following or not tokenizer.decode(following)[:1].isalnum()
