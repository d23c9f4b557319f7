"""The evaluations on a tiny random model: honest shared prefixes, tables with a memory-off control."""

import math
import random

import pytest
import torch

from engine.errors import EvaluationError
from engine.evaluation import passkey, ppl_with_control, recall
from engine.evaluation.core import Prompt, exact, greedy_batch, score_prompts, stream_batch
from engine.infini.tiny import tiny_engine
from engine.texts import public_domain_text
from engine.training import data

SEGMENT = 32


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return tiny_engine(tokenizer=tokenizer, segment=SEGMENT, gate_init=0.0)


def test_shared_prefix_scoring_equals_streaming_each_prompt_alone(model, tokenizer):
    rng = random.Random(0)
    prompts = []
    for depth in (0.0, 0.5, 1.0, 0.5):
        example = data.passkey_example(tokenizer, 8 * SEGMENT, depth, rng, last_segment=SEGMENT, filler_offset=0)
        prompts.append(Prompt(example.ids[: example.prompt_length], example.answer_ids))
    shared = score_prompts(model, prompts, batch=2)
    for prompt, answer in zip(prompts, shared, strict=True):
        ids = torch.tensor([prompt.ids])
        final = ((len(prompt.ids) - 1) // SEGMENT) * SEGMENT
        memories = stream_batch(model, ids[:, :final], model.empty_memories(1))
        alone = greedy_batch(model, ids[:, final:], memories, len(prompt.answer_ids) + 1)[0].tolist()
        assert alone == answer


def test_memory_off_control_ignores_everything_before_the_last_segment(model, tokenizer):
    rng = random.Random(1)
    a = data.passkey_example(tokenizer, 6 * SEGMENT, 0.0, rng, last_segment=SEGMENT, key="11111", filler_offset=0)
    b = data.passkey_example(tokenizer, 6 * SEGMENT, 0.0, rng, last_segment=SEGMENT, key="99999", filler_offset=0)
    prompts = [Prompt(e.ids[: e.prompt_length], e.answer_ids) for e in (a, b)]
    off = score_prompts(model, prompts, memory=False)
    assert off[0] == off[1]  # only the (identical) last segment matters
    assert all(attention.read_memory for attention in model.attention)  # restored afterwards


def test_passkey_table_has_every_length_depth_and_control(model):
    rows = passkey(model, [4 * SEGMENT, 6 * SEGMENT], ["start", "middle", "end"], samples=2)
    assert {(r["length"], r["depth"]) for r in rows} == {(n, d) for n in (128, 192) for d in ("start", "middle", "end")}
    for row in rows:
        assert row["samples"] == 2 and 0 <= row["memory"] <= row["memory_prefix"] <= 2 and 0 <= row["control"] <= 2
        assert len(row["answers"]) == 2 and all(len(a["expected"]) == 5 for a in row["answers"])


def test_recall_plants_a_fact_in_real_text(model):
    text = public_domain_text("kjv")[:4000]
    rows = recall(model, text, ["start", "end"], samples=1, max_tokens=6 * SEGMENT)
    assert [r["depth"] for r in rows] == ["start", "end"] and all(r["samples"] == 1 for r in rows)


def test_recall_answers_inside_the_questions_segment(model, monkeypatch):
    """The question stays in view while the whole answer is written: no segment is written to
    memory between the answer's tokens (a prompt of a whole number of segments would be)."""
    writes = []
    write = model.write
    monkeypatch.setattr(model, "write", lambda memories, caches: writes.append(1) or write(memories, caches))
    recall(model, public_domain_text("kjv")[:4000], ["middle"], samples=1, max_tokens=6 * SEGMENT)
    assert writes == []


def test_eval_passkey_puts_key_and_question_between_whole_fillers(tokenizer):
    """Evaluation prompts read "…back again. The pass key is…", never a sentence cut by the key or
    the question, and stay within one filler of the length asked for."""
    unit = len(data._encode(tokenizer, data.PASSKEY_FILLER + " "))
    for length, depth in ((2048, 0.5), (2048, 1.0), (4096, 0.3)):
        example = data.passkey_example(tokenizer, length, depth, random.Random(0), last_segment=256,
                                       whole_fillers=True)
        assert length - unit < len(example.ids) <= length
        start, end = example.marks
        before = tokenizer.decode(example.ids[start - 6:start])
        after = tokenizer.decode(example.ids[end + 1:end + 6])
        question = tokenizer.decode(example.ids[example.prompt_length - 16:example.prompt_length])
        assert before.endswith(("back again. ", "information there. ")), before
        assert after.startswith("The grass is green."), after
        assert question.endswith("back again. What is the pass key? The pass key is"), question
        assert end < len(example.ids) - 256  # the key is read from memory only


def test_a_seeds_keys_at_one_length_do_not_depend_on_the_others(model):
    def keys(lengths, at):
        rows = passkey(model, lengths, ["start"], samples=2, seed=3)
        return [a["expected"] for r in rows if r["length"] == at for a in r["answers"]]

    alone = keys([6 * SEGMENT], 6 * SEGMENT)
    assert alone == keys([4 * SEGMENT, 6 * SEGMENT], 6 * SEGMENT)
    assert alone != keys([4 * SEGMENT], 4 * SEGMENT)


def test_perplexity_with_and_without_memory(model):
    text = public_domain_text("kjv")[:3000]
    result = ppl_with_control(model, text, max_tokens=5 * SEGMENT)
    assert result["tokens"] == 5 * SEGMENT
    on, empty, off = (result[k]["ppl"] for k in ("memory", "empty_memory", "control"))
    assert all(map(math.isfinite, (on, empty, off))) and len({on, empty, off}) == 3


def test_perplexity_progress_covers_all_three_passes(model):
    reports = []
    ppl_with_control(model, public_domain_text("kjv")[:3000], max_tokens=3 * SEGMENT,
                     progress=lambda done, total: reports.append((done, total)))
    dones = [done for done, _ in reports]
    assert dones == sorted(dones) and {total for _, total in reports} == {9 * SEGMENT}
    assert dones[-1] == 9 * SEGMENT


def test_an_answer_that_runs_on_is_not_exact(tokenizer):
    def ids(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    key, name = ids(" 12345"), ids(" Maud")
    assert exact(ids(" 12345."), key, tokenizer)
    assert exact(key + ids("<|im_end|>"), key, tokenizer)
    assert not exact(ids(" 123456"), key, tokenizer)  # the sixth digit makes it another number
    assert not exact(ids(" 12354"), key, tokenizer)
    assert exact(name + ids(","), name, tokenizer)
    assert not exact(name + ids("lin"), name, tokenizer)  # "Maudlin" is not "Maud"


def test_scoring_generates_one_token_past_the_longest_answer(model, tokenizer):
    example = data.passkey_example(tokenizer, 4 * SEGMENT, 0.0, random.Random(1), last_segment=SEGMENT, filler_offset=0)
    answers = score_prompts(model, [Prompt(example.ids[: example.prompt_length], example.answer_ids)])
    assert len(answers[0]) == len(example.answer_ids) + 1


def test_recall_refuses_a_text_shorter_than_its_prompts(model):
    with pytest.raises(EvaluationError, match="too short"):
        recall(model, public_domain_text("kjv"), ["start"], samples=1, max_tokens=10)


def test_a_passkey_length_shorter_than_two_segments_is_one_sentence(model):
    with pytest.raises(EvaluationError, match=f"at least {2 * SEGMENT} tokens"):
        passkey(model, [SEGMENT // 2], ["start"], samples=1)


def test_perplexity_of_a_single_token_is_one_sentence(model, tokenizer):
    one = tokenizer.decode(tokenizer.encode("a", add_special_tokens=False)[:1])
    with pytest.raises(EvaluationError, match="shorter than two tokens"):
        ppl_with_control(model, one)


def test_recall_plants_the_fact_between_sentences(tokenizer):
    """The fact follows a sentence's end ("…unto Moses. The archivist is called …"), never the
    middle of one, at every depth."""
    from engine.evaluation.tasks import SENTENCE_ENDS, _recall_example

    text_ids = data._encode(tokenizer, public_domain_text("kjv")[:20000])
    for depth in (0.1, 0.3, 0.5, 0.7, 0.9):
        rng, draw = random.Random(depth), random.Random(depth)  # `draw` repeats the example's first draws
        subject, name = draw.choice(data.FACT_SUBJECTS), draw.choice(data.FACT_NAMES)
        fact = data.fact_tokens(tokenizer, subject, name)[0]
        example = _recall_example(tokenizer, text_ids, 16 * SEGMENT, depth, rng, SEGMENT)
        at = next(i for i in range(len(example.ids)) if example.ids[i:i + len(fact)] == fact)
        assert at > 0 and tokenizer.decode(example.ids[at - 1:at]).rstrip(" ").endswith(SENTENCE_ENDS), depth
