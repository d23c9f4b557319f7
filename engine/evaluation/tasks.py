"""The evaluations: passkey (paper sec. 4.2), facts recalled from a real long text, perplexity.

Each one also runs the memory-off control (the same model, memory read switched off) so a
table shows what the memory itself adds.
"""

import math
import random
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from engine.errors import EvaluationError
from engine.infini.model import InfiniModel
from engine.training import data

from .core import Prompt, exact, score_prompts, stream_batch

DEPTH_NAMES = tuple(data.DEPTHS)


def parse_depth(name: str) -> float:
    if name in data.DEPTHS:
        return data.DEPTHS[name]
    value = float(name)
    if not 0.0 <= value <= 1.0:
        raise ValueError("a depth is start, middle, end or a number between 0 and 1")
    return value


def _table(model, prompts, expected_text, *, batch, progress, control=True):
    started = time.perf_counter()
    answers = score_prompts(model, prompts, batch=batch, memory=True, progress=progress)
    seconds = time.perf_counter() - started
    controls = score_prompts(model, prompts, batch=batch, memory=False) if control else [None] * len(prompts)
    rows: dict[tuple, dict] = {}
    for prompt, answer, off, text in zip(prompts, answers, controls, expected_text, strict=True):
        row = rows.setdefault(prompt.group, {"samples": 0, "memory": 0, "control": 0, "memory_prefix": 0,
                                             "answers": []})
        row["samples"] += 1
        row["memory"] += exact(answer, prompt.answer_ids, model.tokenizer)
        # the expected tokens first, whatever followed: how answers were scored before 2026-11-25
        row["memory_prefix"] += exact(answer, prompt.answer_ids)
        row["control"] += bool(off is not None and exact(off, prompt.answer_ids, model.tokenizer))
        # every answer, not a sample of them: which keys a cell misses is what the model card analyses;
        # with the token after it, which decides an answer that runs on (" 123456")
        shown = len(prompt.answer_ids) + 1
        row["answers"].append({"expected": text, "memory": model.tokenizer.decode(answer[:shown]),
                               "control": model.tokenizer.decode(off[:shown]) if off else None})
    return rows, seconds


def passkey(model: InfiniModel, lengths: Sequence[int], depths: Sequence[str], samples: int = 2, *, seed: int = 0,
            batch: int = 4, progress=None) -> list[dict]:
    """Exact-match accuracy of the 5-digit pass key per length and depth, with the memory-off control.

    Each length draws its keys from its own generator, so a seed's keys at 32K are the same
    whatever other lengths are asked for, and differ from its keys at 8K or 128K."""
    results = []
    for length in lengths:
        rng = random.Random(f"passkey:{seed}:{length}")
        prompts, texts = [], []
        for depth in depths:
            for _ in range(samples):
                try:
                    example = data.passkey_example(model.tokenizer, length, parse_depth(depth), rng,
                                                   last_segment=model.segment, whole_fillers=True)
                except ValueError as error:  # the question needs the last segment to itself
                    raise EvaluationError(
                        f"A pass-key prompt of {length} tokens is too short for {model.segment}-token segments; "
                        f"give lengths of at least {2 * model.segment} tokens.") from error
                prompts.append(Prompt(example.ids[: example.prompt_length], example.answer_ids[:-1], (length, depth)))
                texts.append(example.answer)
        rows, seconds = _table(model, prompts, texts, batch=batch, progress=progress)
        for (row_length, depth), row in rows.items():
            results.append({"task": "passkey", "length": row_length, "depth": depth, **row,
                            "stream_seconds": round(seconds, 1)})
    return results


def recall(model: InfiniModel, text: str, depths: Sequence[str], samples: int = 2, *, max_tokens: int | None = None,
           seed: int = 0, batch: int = 4, progress=None) -> list[dict]:
    """Facts planted in a real text at the given depths, asked after the whole text."""
    rng = random.Random(seed)
    text_ids = model.tokenizer.encode(text, add_special_tokens=False)
    if max_tokens:
        text_ids = text_ids[:max_tokens]
    segment = model.segment
    total = max(2 * segment, (len(text_ids) // segment) * segment)
    prompts, texts = [], []
    for depth in depths:
        for _ in range(samples):
            example = _recall_example(model.tokenizer, text_ids, total, parse_depth(depth), rng, segment)
            prompts.append(Prompt(example.ids[: example.prompt_length], example.answer_ids[:-1], (total, depth)))
            texts.append(example.answer)
    rows, seconds = _table(model, prompts, texts, batch=batch, progress=progress)
    return [{"task": "recall", "length": length, "depth": depth, **row, "stream_seconds": round(seconds, 1)}
            for (length, depth), row in rows.items()]


def _recall_example(tokenizer, text_ids, total, depth, rng, segment):
    """One fact at `depth` of the text itself (not a random window): prompts share the text."""
    subject, name = rng.choice(data.FACT_SUBJECTS), rng.choice(data.FACT_NAMES)
    fact, question, answer_ids = data.fact_tokens(tokenizer, subject, name)
    # Every prompt is `total` tokens less room for the longest answer: the answer is written in the
    # question's segment (a prompt of whole segments had it written to memory after one token).
    answer_room = max(len(data.fact_tokens(tokenizer, subject, other)[2]) for other in data.FACT_NAMES)
    prose_length = total - len(fact) - len(question) - answer_room
    room = total - segment - len(fact)
    if prose_length < 0 or room < 0 or len(text_ids) < prose_length:  # else the question would be cut short
        raise EvaluationError(f"The text is too short for a recall test with {segment}-token segments "
                              f"({len(text_ids)} tokens); give a longer text or a larger --max-tokens.")
    prose = text_ids[:prose_length]
    position = _sentence_start(tokenizer, prose, int(round(depth * min(room, prose_length))))
    ids = prose[:position] + fact + prose[position:] + question + answer_ids
    return data.Example(ids, [], name, answer_ids, total - answer_room)


SENTENCE_ENDS = (".", "!", "?", "\n", '."', '!"', '?"', ".'", ".)")


def _sentence_start(tokenizer, ids: list[int], position: int, reach: int = 512) -> int:
    """The start of the sentence holding `position`, if one begins within `reach` tokens before it.

    A fact spliced in mid-sentence ("and the LORD The archivist is called Mara. said unto") is
    garbled text the model would also have to see through; between sentences it reads as prose.
    """
    for start in range(position, max(0, position - reach), -1):
        if tokenizer.decode(ids[start - 1:start]).rstrip(" ").endswith(SENTENCE_ENDS):
            return start
    return 0 if position <= reach else position


@torch.inference_mode()
def perplexity(model: InfiniModel, text: str, *, max_tokens: int | None = None, memory: bool = True,
               write: bool = True, progress=None) -> dict:
    """Token-level perplexity of a text streamed segment by segment, the memory read on or off.

    write=False keeps the memory empty while reading it: the gates still take their share from
    local attention but nothing comes back, which tells what the retrieved memory itself adds.
    """
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    if max_tokens:
        ids = ids[: max_tokens + 1]
    tokens = torch.tensor([ids], device=model.device)
    total = tokens.shape[1] - 1
    if total < 1:
        raise EvaluationError("The text is shorter than two tokens; perplexity needs a text to predict.")
    memories = model.empty_memories(1)
    nll, count = 0.0, 0
    model.set_memory_read(memory)
    started = time.perf_counter()
    try:
        for start in range(0, total, model.segment):
            chunk = tokens[:, start : min(start + model.segment, total)]
            targets = tokens[:, start + 1 : start + 1 + chunk.shape[1]]
            hidden, caches = model.segment_forward(chunk, memories)
            logits = model.logits(hidden).float()
            nll += float(F.cross_entropy(logits[0], targets[0], reduction="sum"))
            count += targets.shape[1]
            if memory and write:
                memories = model.write(memories, caches)
            if progress is not None:
                progress(count, total)
    finally:
        model.set_memory_read(True)
    return {"tokens": count, "nll": nll / count, "ppl": math.exp(nll / count),
            "seconds": round(time.perf_counter() - started, 1)}


PPL_PASSES = {"memory": {}, "empty_memory": {"write": False}, "control": {"memory": False}}


def ppl_with_control(model: InfiniModel, text: str, *, max_tokens: int | None = None, progress=None) -> dict:
    """Perplexity with memory, with an empty memory and memory-off; progress counts all three passes."""
    results = {}
    for index, (name, options) in enumerate(PPL_PASSES.items()):
        step = None if progress is None else (
            lambda done, total, index=index: progress(index * total + done, len(PPL_PASSES) * total))
        results[name] = perplexity(model, text, max_tokens=max_tokens, progress=step, **options)
    return {"task": "ppl", "tokens": results["memory"]["tokens"], **results}


__all__ = ["passkey", "recall", "perplexity", "ppl_with_control", "stream_batch", "DEPTH_NAMES"]
