"""Training and evaluation tasks, all synthetic or built from offline public-domain text.

Every example is a token-id sequence of exactly `segments * segment` tokens with a label per
position (-100 = no loss), so a batch needs no padding and every segment boundary is known:

- passkey: the paper's task (sec. 4.2): repetitive filler, a 5-digit key at some depth, the
  question at the very end; loss on the key's digits only.
- facts: a few short facts ("The keeper of the red gate is called Osmund.") planted in King
  James prose at random depths; one of them asked at the end; loss on the answer only.
- text: a window of plain prose; next-token loss on the last segment (which can only use the
  earlier segments through the memory).

The key (or the fact) is always placed before the last segment, so local attention cannot see
it: what the model answers, it got from the memory.
"""

import random
from dataclasses import dataclass
from typing import NamedTuple

import torch

PASSKEY_INTRO = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about the important information there."
)
PASSKEY_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
PASSKEY_QUESTION = "What is the pass key? The pass key is"
DEPTHS = {"start": 0.0, "middle": 0.5, "end": 1.0}

FACT_SUBJECTS = [
    "keeper of the red gate", "captain of the grey ship", "baker in the old mill", "healer of the north village",
    "guard of the silver bridge", "owner of the black horse", "singer at the harvest feast", "scribe of the high tower",
    "smith by the river", "shepherd of the east hills", "weaver of the blue cloth", "master of the lighthouse",
]
FACT_NAMES = [
    "Osmund", "Berengar", "Ysolde", "Tancred", "Melisande", "Aldric", "Rowena", "Leofric", "Isembard", "Gunhild",
    "Wulfstan", "Ermengarde", "Hereward", "Sigrun", "Cuthbert", "Elfleda", "Radulf", "Maud", "Odo", "Thora",
]


@dataclass
class Example:
    ids: list[int]
    labels: list[int]  # labels[t] is the token position t must predict (ids[t + 1]) or -100
    answer: str = ""
    answer_ids: list[int] | None = None
    prompt_length: int = 0  # tokens before the answer (for generation-based scoring)
    marks: tuple[int, ...] = ()  # positions of what must be remembered (first and last token of a key or fact)
    dilution: float = 1.0  # the memory before the first mark's segment weighs this many times (see dilution_plan)
    dilution_after: float = 1.0  # each write after the last mark's segment weighs this many times (see dilution_plan)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def _repeat_to(ids: list[int], length: int, offset: int = 0) -> list[int]:
    if length <= 0:
        return []
    out = []
    while len(out) < length + offset:
        out.extend(ids)
    return out[offset : offset + length]


def _with_answer(prefix: list[int], answer_ids: list[int], total: int, answer: str, marks=()) -> Example:
    ids = prefix + answer_ids
    assert len(ids) == total, (len(ids), total)
    labels = [-100] * total
    start = len(prefix)
    for i, token in enumerate(answer_ids):
        labels[start + i - 1] = token
    return Example(ids, labels, answer, answer_ids, start, tuple(marks))


def _span(start: int, tokens: list[int]) -> tuple[int, int]:
    return start, start + len(tokens) - 1


def few_digit_key(rng: random.Random, digits: int = 5, distinct: int = 3) -> str:
    """A key spelt with at most `distinct` different digits (first one not 0), e.g. 25455.

    The hard case: on forty fresh 32K keys the stage-6 adapter (trained on uniform keys) found 5 of
    the 10 spelt with three different digits and 28 of the other 30, answering the right digits in
    the wrong order; these keys train what tells repeated digits apart.
    """
    pool = rng.sample("0123456789", distinct)
    while True:
        key = "".join(rng.choice(pool) for _ in range(digits))
        if digits == 1 or key[0] != "0":
            return key


def passkey_example(tokenizer, total: int, depth: float, rng: random.Random, *, last_segment: int | None = None,
                    key: str | None = None, filler_offset: int | None = None, digits: int = 5,
                    whole_fillers: bool = False) -> Example:
    """Filler of `total` tokens with the key at `depth` (0 = start, 1 = as late as possible).

    With `last_segment` given, the key line ends before the last `last_segment` tokens, so only
    the memory can carry it to the question. Training cuts the filler anywhere (a random offset);
    with `whole_fillers` (evaluation) the key and the question go between whole repetitions of
    the filler, "…back again. The pass key is…", as in the paper, and the prompt is shorter than
    `total` by less than one repetition.
    """
    key = key or str(rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1))
    intro = _encode(tokenizer, PASSKEY_INTRO + " ")
    filler = _encode(tokenizer, PASSKEY_FILLER + " ")
    needle = _encode(tokenizer, f"The pass key is {key}. Remember it. {key} is the pass key. ")
    question = _encode(tokenizer, PASSKEY_QUESTION)
    # The full stop is trained too: with the digits alone as targets the model never learned where
    # the key ends and ran on (" 604944" for 60494). Evaluations expect the digits (answer_ids[:-1]).
    answer_ids = _encode(tokenizer, f" {key}.")
    if total < len(intro) + len(needle) + len(question) + len(answer_ids) + (last_segment or 0):
        intro = []  # short prompts (tiny tests) drop the introduction
    body = total - len(intro) - len(needle) - len(question) - len(answer_ids)  # filler tokens
    latest = body if last_segment is None else min(body, total - last_segment - len(intro) - len(needle))
    if latest < 0:
        raise ValueError(f"{total} tokens are too few for the passkey prompt")
    before = int(round(depth * latest))
    if whole_fillers:  # whole fillers before and after the key, the same number at every depth
        offset = 0
        total -= body % len(filler)
        body -= body % len(filler)
        before -= before % len(filler)
    else:
        offset = rng.randrange(len(filler)) if filler_offset is None else filler_offset
    after = body - before
    prefix = intro + _repeat_to(filler, before, offset)
    marks = _span(len(prefix), needle)
    prefix += needle + _repeat_to(filler, after, offset + before) + question
    return _with_answer(prefix, answer_ids, total, key, marks)


def fact_tokens(tokenizer, subject: str, name: str) -> tuple[list[int], list[int], list[int]]:
    """(the fact as planted, the question asked about it, the answer): one wording for training and eval."""
    fact = _encode(tokenizer, f" The {subject} is called {name}. ")
    question = _encode(tokenizer, f"\n\nQuestion: Who is the {subject}? Answer: The {subject} is called")
    return fact, question, _encode(tokenizer, f" {name}.")


def facts_example(tokenizer, text_ids: list[int], total: int, rng: random.Random, *, last_segment: int,
                  n_facts: int = 3, depth: float | None = None) -> Example:
    """Facts planted in prose at random depths before the last segment; one is asked at the end."""
    subjects = rng.sample(FACT_SUBJECTS, n_facts)
    names = rng.sample(FACT_NAMES, n_facts)
    asked = rng.randrange(n_facts)
    facts = [fact_tokens(tokenizer, s, n)[0] for s, n in zip(subjects, names, strict=True)]
    _, question, answer_ids = fact_tokens(tokenizer, subjects[asked], names[asked])
    prose_length = total - sum(map(len, facts)) - len(question) - len(answer_ids)
    room = total - last_segment - sum(map(len, facts))  # fact tokens all end before the last segment
    if room < 0 or prose_length < 0:
        raise ValueError(f"{total} tokens are too few for {n_facts} facts")
    start = rng.randrange(0, max(1, len(text_ids) - prose_length))
    prose = text_ids[start : start + prose_length]
    if depth is None:
        positions = sorted(rng.randrange(0, room + 1) for _ in range(n_facts))
    else:  # the asked fact at `depth`, the others anywhere
        positions = [rng.randrange(0, room + 1) for _ in range(n_facts)]
        positions[asked] = int(round(depth * room))
        order = sorted(range(n_facts), key=lambda i: positions[i])
        facts = [facts[i] for i in order]
        positions = [positions[i] for i in order]
    prefix, cursor, marks = [], 0, []
    for fact, position in zip(facts, positions, strict=True):
        prefix += prose[cursor:position]
        marks += _span(len(prefix), fact)
        prefix += fact
        cursor = position
    prefix += prose[cursor:] + question
    return _with_answer(prefix, answer_ids, total, names[asked], marks)


def text_example(text_ids: list[int], total: int, rng: random.Random, *, last_segment: int) -> Example:
    """Plain prose; next-token loss on the last segment only (what the memory should help with)."""
    start = rng.randrange(0, len(text_ids) - total - 1)
    ids = text_ids[start : start + total + 1]
    labels = [-100] * (total - last_segment) + ids[total - last_segment + 1 : total + 1]
    return Example(ids[:total], labels)


def exact_segments(examples: list[Example], segment: int, segments: int, grad_segments: int) -> set[int] | None:
    """Segments that back-propagate in full: every one holding a key or fact, and the last ones.

    The rest are filler: written into memory with a straight-through gradient (see
    `trainer.sequence_loss`), so an example can be many times longer than what backprop could
    afford. None (all in full) when `grad_segments` is 0 or covers the whole example.
    """
    if grad_segments <= 0 or grad_segments >= segments:
        return None
    marked = {mark // segment for example in examples for mark in example.marks}
    return marked | set(range(max(0, segments - grad_segments), segments))


class Dilution(NamedTuple):
    """One row's plan: its memory is multiplied by `before` ahead of segment `before_segment`, and
    the write of every segment from `after_segment` on (bar the last, which is not written) by `after`."""

    before_segment: int
    before: float
    after_segment: int
    after: float


def dilution_plan(examples: list[Example], segment: int) -> list[Dilution] | None:
    """Per row, how its memory is diluted around its pass key, or None when no row is.

    The key's share of what the question reads falls as filler is written around it: z, and the
    filler's part of M with it, grow with every filler token (the delta rule keeps
    sigma(K) M / sigma(K) z near the filler's values), while the key's own write stays one
    segment's. So the memory before the key's segment, multiplied by c, reads as c times the filler
    had come before the key, and each later filler write multiplied by c as c times the filler
    after it: a 16-segment example teaches what a much longer one would, at 16 segments' cost.
    An approximation: c times the filler, really written, would also change what the later
    segments read, and so their keys and values.
    """
    if all(e.dilution == 1.0 and e.dilution_after == 1.0 for e in examples):  # only pass keys are diluted
        return None
    return [Dilution(e.marks[0] // segment if e.marks else 0, e.dilution,
                     e.marks[-1] // segment + 1 if e.marks else 0, e.dilution_after) for e in examples]


def collate(examples: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([e.ids for e in examples], dtype=torch.long)
    labels = torch.tensor([e.labels for e in examples], dtype=torch.long)
    return ids, labels


def loss_weights(examples: list[Example], stop_weight: float = 1.0) -> torch.Tensor:
    """1 per position, `stop_weight` on an answer's last token and its full stop.

    Those two positions are where the model decides the answer has ended, the decision that
    moved with the number of segments in memory (a sixth digit at 32K, a digit short at 128K);
    weighting them makes that decision a larger share of the loss.
    """
    weights = torch.ones(len(examples), len(examples[0].ids))
    for row, example in enumerate(examples):
        if example.answer_ids and stop_weight != 1.0:
            first = example.prompt_length - 1  # answer token i is labelled at first + i (see _with_answer)
            last = first + len(example.answer_ids) - 1
            weights[row, max(first, last - 1) : last + 1] = stop_weight
    return weights
