"""Training the memory of a tiny random Llama on CPU: it learns to carry a key across segments.

The learning test uses a 32-token vocabulary (digits, a KEY and a QUERY marker, filler) so a
2-layer random model can learn the task in seconds: "KEY d" somewhere in the first segments,
QUERY as the last token of the last segment, the label d. Only the memory can connect them.
"""

import json
import math
import random
from dataclasses import replace

import pytest
import torch

from engine.errors import ModelError
from engine.evaluation.core import Prompt, exact, score_prompts
from engine.infini.adapter import load_adapter, read_adapter, save_adapter
from engine.infini.model import InfiniModel
from engine.infini.tiny import randomize_lora, tiny_engine, tiny_llama
from engine.training import TrainConfig, data, sequence_loss, setup, train
from engine.training.trainer import (
    TaskSampler,
    make_optimizer,
    mixed_precision,
    sampler_seed,
    straight_through_write,
    trainable,
    trained_extras,
)

SEGMENT, VOCAB, KEY, QUERY = 16, 32, 10, 11


def key_batch(n, segments, generator):
    ids = torch.randint(12, VOCAB, (n, segments * SEGMENT), generator=generator)
    digits = torch.randint(0, 10, (n,), generator=generator)
    where = torch.randint(0, (segments - 1) * SEGMENT - 1, (n,), generator=generator)
    labels = torch.full_like(ids, -100)
    for i in range(n):
        ids[i, where[i]], ids[i, where[i] + 1] = KEY, digits[i]
        ids[i, -1] = QUERY
        labels[i, -1] = digits[i]
    return ids, labels, digits


def small_vocab_model() -> InfiniModel:
    torch.manual_seed(0)
    return InfiniModel(tiny_llama(VOCAB), None, segment=SEGMENT, base_sha="tiny-vocab-32")


def tiny_config(steps: int = 1, **overrides) -> TrainConfig:
    options = dict(
        steps=steps, batch=4, segment=SEGMENT, min_segments=3, max_segments=4, curriculum=(3, 4),
        tasks={"passkey": 1.0}, gate_init=0.0, gate_lr=1e-1, lora_lr=1e-2, lora_rank=8,
        lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"), extra_trainable=("mlp", "embed"), key_digits=1,
        save_every=10_000, warmup=3, checkpointing=True,
    )
    options.update(overrides)
    return TrainConfig(**options)


def accuracy(model, segments, memory, n=50):
    ids, _, digits = key_batch(n, segments, torch.Generator().manual_seed(9))
    prompts = [Prompt(ids[i].tolist(), [int(digits[i])]) for i in range(n)]
    answers = score_prompts(model, prompts, batch=25, memory=memory)
    return sum(exact(a, p.answer_ids) for a, p in zip(answers, prompts, strict=True)) / n


@pytest.fixture(scope="module")
def trained():
    model = small_vocab_model()
    config = tiny_config()
    params = setup(model, config)
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(120):
        ids, labels, _ = key_batch(16, 3, generator)
        loss, count = sequence_loss(model, ids, labels, SEGMENT, checkpointing=True)
        optimizer.zero_grad()
        (loss / count).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(float(loss.detach() / count))
    return model, losses


def test_tiny_model_learns_a_key_through_memory(trained):
    model, losses = trained
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.7, "the loss falls"
    with_memory, control = accuracy(model, 3, True), accuracy(model, 3, False)
    assert with_memory >= 0.3, with_memory  # chance is 1 in 10
    assert control <= 0.2, control  # the key is never in the last segment: memory-off stays at chance
    assert max(float(torch.sigmoid(a.gate.detach()).max()) for a in model.attention) > 0.5


def test_training_can_start_from_an_adapter(trained, tmp_path):
    """The adapter carries everything trained: gates, LoRA and the base weights trained beside
    them (this fixture's MLPs and embeddings), so a fresh model computes what the trained one does."""
    model, _ = trained
    path = save_adapter(model, tmp_path / "adapter.safetensors", extra=trained_extras(model))
    assert any(name.startswith("base.") and ".mlp.gate_proj." in name for name in read_adapter(path)[0])
    fresh = small_vocab_model()
    params = setup(fresh, tiny_config(init_adapter=str(path), gate_init=-5.0, lora_rank=2, extra_trainable=()))
    for ours, theirs in zip(fresh.attention, model.attention, strict=True):
        assert torch.equal(ours.gate, theirs.gate) and ours.gate.requires_grad  # not gate_init
    lora = [p for p in params if p.dim() == 2]
    assert lora and all(p.requires_grad for p in lora)
    assert {p.shape[0] for p in lora} | {p.shape[1] for p in lora} >= {8}  # the adapter's rank 8, not 2
    saved = read_adapter(save_adapter(fresh, tmp_path / "again.safetensors"))[0]
    for name, tensor in read_adapter(path)[0].items():
        assert name.startswith("base.") or torch.equal(saved[name], tensor), name
    ids, _, _ = key_batch(2, 2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, _ = model.segment_forward(ids[:, :SEGMENT], model.empty_memories(2))
        got, _ = fresh.segment_forward(ids[:, :SEGMENT], fresh.empty_memories(2))
    assert torch.allclose(expected, got, atol=1e-4)


def test_training_can_widen_an_adapters_lora_and_start_where_it_ended(trained, tmp_path):
    """Rank 8 grown to 24, alpha 16 to 48: the same outputs at the start, and the new components
    learn (their B columns get gradients through A's fresh random rows)."""
    model, _ = trained
    path = save_adapter(model, tmp_path / "adapter.safetensors", extra=trained_extras(model))
    stored = read_adapter(path)[0]
    wide = small_vocab_model()
    params = setup(wide, tiny_config(init_adapter=str(path), widen_lora=24, extra_trainable=()))
    state, metadata = read_adapter(save_adapter(wide, tmp_path / "wide.safetensors"))
    lora = json.loads(metadata["lora"])
    assert (lora["r"], lora["lora_alpha"]) == (24, 48)
    a_key = next(k for k in stored if "lora_A" in k)
    b_key = a_key.replace("lora_A", "lora_B")
    assert state[a_key].shape[0] == 24 and torch.equal(state[a_key][:8], stored[a_key])
    assert state[a_key][8:].abs().sum() > 0  # peft's random A: the new components can learn
    assert torch.equal(state[b_key][:, :8], stored[b_key]) and not state[b_key][:, 8:].any()
    ids, labels, _ = key_batch(2, 3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, _ = model.segment_forward(ids[:, :SEGMENT], model.empty_memories(2))
        got, _ = wide.segment_forward(ids[:, :SEGMENT], wide.empty_memories(2))
    assert torch.allclose(expected, got, atol=1e-4)
    loss, count = sequence_loss(wide, ids, labels, SEGMENT, checkpointing=False)
    (loss / count).backward()
    b_params = [p for p in params if p.dim() == 2 and p.shape[1] == 24]  # every lora_B
    assert b_params and any(p.grad[:, 8:].abs().sum() > 0 for p in b_params)
    with pytest.raises(ModelError, match="widened, not narrowed"):
        setup(small_vocab_model(), tiny_config(init_adapter=str(path), widen_lora=4, extra_trainable=()))


def test_an_adapter_whose_trained_base_weights_do_not_fit_is_refused(trained, tmp_path):
    model, _ = trained
    wrong = {"base.model.embed_tokens.weight": torch.zeros(3, 3)}
    path = save_adapter(model, tmp_path / "adapter.safetensors", extra=wrong)
    with pytest.raises(ModelError, match="does not fit this model"):
        load_adapter(small_vocab_model(), path)


def differs_by(x: torch.Tensor, y: torch.Tensor) -> float:
    """Largest difference, as a share of x's largest value."""
    return float((x - y).abs().max() / x.abs().max())


def fresh_with_trained_base(model: InfiniModel) -> InfiniModel:
    """A new tiny model with `model`'s trained MLPs and embeddings, without its gates and LoRA."""
    fresh = small_vocab_model()
    named = dict(fresh.lm.named_parameters())
    with torch.no_grad():
        for name, value in trained_extras(model).items():
            named[name.removeprefix("base.")].copy_(value)
    return fresh


def test_adapter_round_trip_with_lora(trained, tmp_path):
    model, _ = trained
    path = save_adapter(model, tmp_path / "adapter.safetensors", extra=trained_extras(model))
    tensors, metadata = read_adapter(path)
    assert any(k.startswith("lora.") for k in tensors) and "lora" in metadata
    assert int(metadata["segment"]) == SEGMENT
    fresh = small_vocab_model()
    load_adapter(fresh, path)
    assert fresh.adapter_sha != "none"
    ids, _, _ = key_batch(2, 2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, caches = model.segment_forward(ids[:, :SEGMENT], model.empty_memories(2))
        b, _ = fresh.segment_forward(ids[:, :SEGMENT], fresh.empty_memories(2))
        memories = model.write(model.empty_memories(2), caches)
        c, _ = model.segment_forward(ids[:, SEGMENT:], memories)
        d, _ = fresh.segment_forward(ids[:, SEGMENT:], memories)
        without_lora = fresh_with_trained_base(model)
        e, _ = without_lora.segment_forward(ids[:, :SEGMENT], without_lora.empty_memories(2))
    # Merged LoRA against peft's unmerged layers differ by float32 rounding, which grows with the
    # residual stream (values up to ~700 here): the same function within 1e-4 of its scale.
    assert differs_by(a, b) < 1e-4 and differs_by(c, d) < 1e-4
    assert differs_by(a, e) > 1e-2  # and the LoRA is what made them so
    with fresh.unpatched() as lm:  # LoRA went into copies: the base model's own attention is untouched
        assert all(type(layer.self_attn.q_proj) is torch.nn.Linear for layer in lm.model.layers)


@pytest.mark.parametrize("targets", [("q_proj", "k_proj", "v_proj", "o_proj"), ("k_proj", "gate_proj", "up_proj", "down_proj")])
def test_gates_and_lora_receive_gradients_through_memory(tokenizer, targets):
    model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    trained = setup(model, tiny_config(extra_trainable=(), lora_targets=targets))
    rng = random.Random(0)
    ids, labels = data.collate([data.passkey_example(tokenizer, 4 * SEGMENT, 0.0, rng, last_segment=SEGMENT, digits=1)
                                for _ in range(2)])
    loss, count = sequence_loss(model, ids, labels, SEGMENT, checkpointing=True)
    (loss / count).backward()
    for attention in model.attention:
        assert attention.gate.grad is not None and attention.gate.grad.abs().sum() > 0
    for target in targets:
        lora = [p for n, p in model.lm.named_parameters() if "lora_B" in n and target in n]
        assert lora and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)
        assert all(any(p is t for t in trained) for p in lora)


def test_checkpointing_gives_the_same_gradients():
    grads = []
    for flag in (True, False):
        model = small_vocab_model()
        setup(model, tiny_config(lora_rank=0, extra_trainable=()))
        ids, labels, _ = key_batch(2, 4, torch.Generator().manual_seed(0))
        loss, count = sequence_loss(model, ids, labels, SEGMENT, checkpointing=flag)
        (loss / count).backward()
        grads.append(torch.cat([a.gate.grad for a in model.attention]))
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("rule", ["linear", "delta"])
def test_straight_through_write_is_exact_forward_and_identity_backward(rule):
    """Values as streamed; gradient to the earlier memory unchanged. For one layer and the linear
    rule (M_s = M_{s-1} + sigma(K)^T V, K and V independent of M) that is the exact gradient."""
    model = InfiniModel(tiny_llama(VOCAB, layers=1), None, segment=SEGMENT, rule=rule, base_sha="tiny", gate_init=0.0)
    ids = torch.randint(12, VOCAB, (2, 2 * SEGMENT), generator=torch.Generator().manual_seed(0))
    written = model.stream_segment(ids[:, :SEGMENT], model.empty_memories(2))
    first = [t.detach().requires_grad_() for pair in written for t in pair]  # M, z, M, z, ... as training keeps them
    weights = [torch.randn_like(t) for t in first]

    def weighted_gradient(outputs):
        return torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, outputs, strict=True)), first)

    through = straight_through_write(model, ids[:, SEGMENT:], first)
    exact = [t for pair in model.stream_segment(ids[:, SEGMENT:], [tuple(first)]) for t in pair]
    grads, exact_grads = weighted_gradient(through), weighted_gradient(exact)
    for value, expected, grad, weight, exact_grad in zip(through, exact, grads, weights, exact_grads, strict=True):
        assert torch.allclose(value, expected, rtol=1e-5, atol=1e-6)
        assert torch.equal(grad, weight)
        assert torch.allclose(grad, exact_grad, rtol=1e-4, atol=1e-5) == (rule == "linear")


def test_straight_through_filler_keeps_the_loss_and_trains_everything():
    ids, labels, _ = key_batch(2, 6, torch.Generator().manual_seed(0))
    results = []
    for exact_segments in (None, {0, 5}):
        model = small_vocab_model()
        setup(model, tiny_config(extra_trainable=()))
        loss, count = sequence_loss(model, ids, labels, SEGMENT, checkpointing=True, exact=exact_segments)
        (loss / count).backward()
        results.append(float(loss.detach()))
        trained = [a.gate for a in model.attention] + [p for n, p in model.lm.named_parameters() if "lora_B" in n]
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    assert results[1] == pytest.approx(results[0], rel=1e-5)


def test_exact_segments_hold_the_key_and_the_last_ones(tokenizer):
    rng = random.Random(0)
    example = data.passkey_example(tokenizer, 8 * 64, 0.5, rng, last_segment=64)
    first, last = example.marks
    assert tokenizer.decode(example.ids[first : last + 1]).startswith("The pass key is")
    exact = data.exact_segments([example], 64, 8, grad_segments=2)
    assert exact == {first // 64, last // 64, 6, 7} and len(exact) < 8
    assert data.exact_segments([example], 64, 8, grad_segments=0) is None
    facts = data.facts_example(tokenizer, list(range(1000, 3000)), 8 * 64, rng, last_segment=64, n_facts=2)
    assert len(facts.marks) == 4 and "is called" in tokenizer.decode(facts.ids[facts.marks[0] : facts.marks[1] + 1])


def last_segment_loss(model, ids, labels, memories):
    """The summed loss of the fourth (last) segment read from `memories`: the dilution tests' by-hand value."""
    hidden, _ = model.segment_forward(ids[:, 3 * SEGMENT :], memories)
    mask = labels[:, 3 * SEGMENT :] != -100
    return torch.nn.functional.cross_entropy(model.logits(hidden[mask]).float(), labels[:, 3 * SEGMENT :][mask],
                                             reduction="sum")


def test_dilution_multiplies_the_memory_before_the_key_segment_and_nothing_else():
    """sequence_loss with a plan equals streaming by hand with the row's memory multiplied before
    the segment the plan names; a factor of 1 changes nothing."""
    ids, labels, _ = key_batch(2, 4, torch.Generator().manual_seed(3))
    model = small_vocab_model()
    setup(model, tiny_config(extra_trainable=(), rule="linear"))
    plan = [data.Dilution(2, 3.0, 3, 1.0), data.Dilution(1, 1.0, 2, 1.0)]  # row 0 diluted before segment 2

    with torch.no_grad():
        loss, count = sequence_loss(model, ids, labels, SEGMENT, checkpointing=False, dilution=plan)
        plain, _ = sequence_loss(model, ids, labels, SEGMENT, checkpointing=False)
        unit, _ = sequence_loss(model, ids, labels, SEGMENT, checkpointing=False,
                                dilution=[data.Dilution(2, 1.0, 3, 1.0), data.Dilution(1, 1.0, 2, 1.0)])
        memories = model.empty_memories(2)
        for index in range(3):
            if index == 2:
                scale = torch.tensor([3.0, 1.0])
                memories = [(m * scale.view(-1, 1, 1, 1), z * scale.view(-1, 1, 1)) for m, z in memories]
            memories = model.stream_segment(ids[:, index * SEGMENT : (index + 1) * SEGMENT], memories)
        by_hand = last_segment_loss(model, ids, labels, memories)
    assert count == 2
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(unit) == float(plain) and float(loss) != pytest.approx(float(plain), rel=1e-3)


def test_dilution_is_drawn_per_pass_key_and_planned_at_its_segment(tokenizer):
    rng = random.Random(0)
    example = data.passkey_example(tokenizer, 8 * 64, 0.5, rng, last_segment=64)
    assert data.dilution_plan([example], 64) is None  # undiluted: nothing to do
    config = tiny_config(batch=8, segment=64, min_segments=8, max_segments=8, key_digits=5, dilute=8.0)
    examples = TaskSampler(tokenizer, config, None, seed=0).draw(8)[3]
    factors = [e.dilution for e in examples]
    assert all(1.0 <= f <= 8.0 for f in factors) and len(set(factors)) == len(factors)
    plan = data.dilution_plan(examples, 64)
    assert plan == [(e.marks[0] // 64, e.dilution, e.marks[-1] // 64 + 1, 1.0) for e in examples]
    undiluted = TaskSampler(tokenizer, tiny_config(batch=8, segment=64, min_segments=8, max_segments=8, key_digits=5),
                            None, seed=0).draw(8)[3]
    assert {e.dilution for e in undiluted} == {1.0}
    after = TaskSampler(tokenizer, replace(config, dilute_after=4.0), None, seed=0).draw(8)[3]
    assert all(1.0 <= e.dilution_after <= 4.0 for e in after) and len({e.dilution_after for e in after}) == 8
    assert after[0].ids == examples[0].ids and after[0].dilution == factors[0]  # drawn last: the first row stays


def test_dilution_after_the_key_multiplies_each_later_write_and_keeps_the_gradient():
    """Writes from the plan's after_segment on weigh `after` times: equal to streaming by hand with
    memory = before + after * (written - before), on the full and the straight-through path alike."""
    ids, labels, _ = key_batch(2, 4, torch.Generator().manual_seed(4))
    model = small_vocab_model()
    setup(model, tiny_config(extra_trainable=(), rule="linear"))
    plan = [data.Dilution(0, 1.0, 1, 5.0), data.Dilution(0, 1.0, 2, 1.0)]  # row 0: segments 1 and 2 weigh 5x

    with torch.no_grad():
        full, _ = sequence_loss(model, ids, labels, SEGMENT, checkpointing=False, dilution=plan)
        straight, _ = sequence_loss(model, ids, labels, SEGMENT, checkpointing=False, dilution=plan, exact={0})
        plain, _ = sequence_loss(model, ids, labels, SEGMENT, checkpointing=False)
        memories = model.empty_memories(2)
        for index in range(3):
            written = model.stream_segment(ids[:, index * SEGMENT : (index + 1) * SEGMENT], memories)
            scale = torch.tensor([5.0 if index >= 1 else 1.0, 1.0])
            memories = [(m + (m2 - m) * scale.view(-1, 1, 1, 1), z + (z2 - z) * scale.view(-1, 1, 1))
                        for (m, z), (m2, z2) in zip(memories, written, strict=True)]
        by_hand = last_segment_loss(model, ids, labels, memories)
    assert float(full) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(straight) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(full) != pytest.approx(float(plain), rel=1e-3)
    loss, _ = sequence_loss(model, ids, labels, SEGMENT, checkpointing=False, dilution=plan, exact={0})
    loss.backward()
    gates = [a.gate.grad for a in model.attention if a.gate.grad is not None]
    assert gates and all(torch.isfinite(g).all() for g in gates) and any(g.abs().sum() > 0 for g in gates)


def test_hardest_share_sets_how_often_the_longest_count_is_drawn(tokenizer):
    def counts(share):
        config = tiny_config(batch=1, segment=64, min_segments=2, max_segments=12, hardest_share=share)
        sampler = TaskSampler(tokenizer, config, None, seed=0)
        return [sampler.draw(12)[1] for _ in range(200)]

    always, mixed = counts(1.0), counts(0.0)
    assert set(always) == {12}
    assert set(mixed) == set(range(2, 13)) and mixed.count(12) < 40  # uniform 2..12: ~18 of 200


def test_log_length_draw_trains_short_counts_as_often_as_long_ones(tokenizer):
    def counts(draw):
        config = tiny_config(batch=1, segment=64, min_segments=4, max_segments=128, hardest_share=0.0, length_draw=draw)
        sampler = TaskSampler(tokenizer, config, None, seed=0)
        return [sampler.draw(128)[1] for _ in range(1000)]

    log, uniform = counts("log"), counts("uniform")
    assert min(log) >= 4 and max(log) <= 128
    short, long = sum(n < 8 for n in log), sum(n >= 64 for n in log)  # one doubling each: ~200 of 1000
    assert 150 < short < 260 and 150 < long < 260
    assert sum(n < 8 for n in uniform) < 60  # uniform in the count: ~32 of 1000


def test_strata_put_a_short_and_a_long_example_into_every_step(tokenizer):
    config = tiny_config(batch=1, segment=64, min_segments=4, max_segments=128, hardest_share=0.3,
                         length_draw="strata", accumulate=2)
    sampler = TaskSampler(tokenizer, config, None, seed=0)
    steps = [(sampler.draw(128, 0)[1], sampler.draw(128, 1)[1]) for _ in range(300)]
    short, long = zip(*steps, strict=True)
    middle = math.exp((math.log(4) + math.log(129)) / 2)  # 22.7: the strata meet half way in log
    assert min(short) >= 4 and max(short) <= middle and max(long) <= 128 and min(long) >= int(middle)
    assert 60 < long.count(128) < 120  # the hardest share goes to the long micro-batch only (~90 of 300)
    assert sum(n < 8 for n in short) > 80  # log-uniform within the stratum: 4-7 is a third of 4-22


def run_log(out_dir) -> list[dict]:
    """A training run's log.jsonl, one record per step."""
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]


def test_accumulated_micro_batches_step_once_on_their_mean_gradient(tokenizer, tmp_path, monkeypatch):
    config = tiny_config(1, batch=2, min_segments=2, max_segments=8, curriculum=(8,), hardest_share=0.0,
                         length_draw="strata", accumulate=2, extra_trainable=(), grad_clip=1e9)
    seen = []

    def record_step(optimizer, *args, **kwargs):
        seen.append({id(p): p.grad.clone() for group in optimizer.param_groups for p in group["params"]
                     if p.grad is not None})

    monkeypatch.setattr(torch.optim.AdamW, "step", record_step)
    torch.manual_seed(1)
    model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    train(model, config, tmp_path, progress=False)
    [record] = run_log(tmp_path)
    lengths = [part["segments"] for part in record["parts"]]
    assert len(seen) == 1 and lengths[0] < 4 <= lengths[1]  # strata of 2-8 meet at 4.2

    torch.manual_seed(1)  # the same model, LoRA and draws, by hand: each micro-batch's mean loss, averaged
    again = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    torch.manual_seed(config.seed)
    params = setup(again, config)
    sampler = TaskSampler(tokenizer, config, None, sampler_seed(config.seed))
    for part in range(2):
        _, n, segment, examples = sampler.draw(8, part)
        ids, labels = data.collate(examples)
        loss, count = sequence_loss(again, ids, labels, segment)
        (loss / count / 2).backward()
        assert n == lengths[part]
    mine = dict(zip([id(p) for p in trainable(model)], params, strict=True))
    assert set(seen[0]) == set(mine) and len(mine) > 10
    for key, grad in seen[0].items():
        torch.testing.assert_close(grad, mine[key].grad, rtol=1e-4, atol=1e-6)


def test_a_non_finite_loss_skips_the_step_and_the_rest_of_its_forwards(tokenizer, tmp_path, monkeypatch):
    from engine.training import trainer

    config = tiny_config(2, batch=1, min_segments=4, max_segments=8, curriculum=(8,), hardest_share=0.0,
                         length_draw="strata", accumulate=2, extra_trainable=())

    def run(out, poison_first: bool):
        calls, steps = [], []
        real = trainer.sequence_loss

        def loss(*args, **kwargs):
            total, count = real(*args, **kwargs)
            calls.append(1)
            return (total * math.nan if poison_first and len(calls) == 1 else total), count

        monkeypatch.setattr(trainer, "sequence_loss", loss)
        monkeypatch.setattr(torch.optim.AdamW, "step", lambda *a, **k: steps.append(1))
        torch.manual_seed(1)
        train(tiny_engine(tokenizer=tokenizer, segment=SEGMENT), config, out, progress=False)
        records = run_log(out)
        return len(calls), len(steps), records

    calls, steps, records = run(tmp_path / "poisoned", poison_first=True)
    _, clean_steps, clean = run(tmp_path / "clean", poison_first=False)
    assert [r["skipped"] for r in records] == [True, False] and steps == 1 and clean_steps == 2
    assert calls == 3  # step 1: the poisoned micro-batch only; step 2: both
    assert math.isnan(records[0]["parts"][1]["loss"]) and not math.isnan(records[1]["loss"])
    draws = [[(p["segments"], p["answers"]) for p in r["parts"]] for r in records]
    assert draws == [[(p["segments"], p["answers"]) for p in r["parts"]] for r in clean]  # the same draws


def test_a_non_finite_loss_in_another_process_skips_the_step_here_too(tokenizer, tmp_path, monkeypatch):
    from accelerate import Accelerator

    class TwoProcesses:
        """This process's finite losses, and another process whose first step was non-finite."""

        def __init__(self):
            self.real, self.flags = Accelerator(cpu=True), []

        def __getattr__(self, name):
            return getattr(self.real, name)

        num_processes = 2

        def reduce(self, tensor, reduction):
            if tensor.shape == (1,):  # the skip flag: sum over both processes
                self.flags.append(float(tensor))
                return tensor + (1.0 if len(self.flags) == 1 else 0.0)
            return tensor  # gradients: the other process's are taken to equal these

    steps = []
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda *a, **k: steps.append(1))
    accelerator = TwoProcesses()
    config = tiny_config(2, batch=1, min_segments=4, max_segments=8, curriculum=(8,), extra_trainable=())
    train(tiny_engine(tokenizer=tokenizer, segment=SEGMENT), config, tmp_path, accelerator=accelerator, progress=False)
    records = run_log(tmp_path)
    assert accelerator.flags == [0.0, 0.0]  # this process itself had nothing to skip
    assert [r["skipped"] for r in records] == [True, False] and len(steps) == 1


def test_hard_keys_share_draws_keys_with_at_most_three_digits(tokenizer):
    def keys(share):
        config = tiny_config(batch=1, segment=64, min_segments=2, max_segments=2, hard_keys=share, key_digits=5,
                             tasks={"passkey": 1.0})
        sampler = TaskSampler(tokenizer, config, None, seed=0)
        return [sampler.draw(2)[3][0].answer for _ in range(100)]

    hard, uniform = keys(1.0), keys(0.0)
    assert all(len(k) == 5 and k[0] != "0" and len(set(k)) <= 3 for k in hard)
    assert len(set(hard)) > 50  # many different keys, not a few patterns
    assert sum(len(set(k)) <= 3 for k in uniform) < 40  # uniform keys: about a fifth


def test_resume_continues_from_the_checkpoint(tokenizer, tmp_path):
    model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    train(model, tiny_config(4, save_every=2, batch=2, extra_trainable=()), tmp_path, progress=False)
    with (tmp_path / "log.jsonl").open("a") as log:  # a run killed after logging step 5, before its checkpoint
        log.write(json.dumps({"step": 5, "task": "passkey", "loss": 9.9, "answers": ["0", "0"]}) + "\n")
    again = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    result = train(again, tiny_config(6, save_every=2, batch=2, extra_trainable=()), tmp_path, resume=True,
                   progress=False)
    records = run_log(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6] and result["steps"] == 6
    # every passkey step names its keys (one digit here), so hard keys can be told apart later
    assert all(len(r["answers"]) == 2 and all(a.isdigit() for a in r["answers"]) for r in records)
    assert (tmp_path / "adapter.safetensors").exists()


def test_the_adapter_a_run_saves_carries_the_base_weights_it_trained(tokenizer, tmp_path):
    model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    train(model, tiny_config(2, save_every=2, batch=2, extra_trainable=("mlp",)), tmp_path, progress=False)
    saved = read_adapter(tmp_path / "adapter.safetensors")[0]
    trained_mlp = {n: p for n, p in model.lm.named_parameters() if ".mlp." in n}
    assert trained_mlp and all(torch.equal(saved[f"base.{n}"], p.detach().float()) for n, p in trained_mlp.items())
    assert not any(name.startswith("base.") and "embed" in name for name in saved)


def test_hundred_segments_of_streaming_stay_finite(trained):
    model, _ = trained
    ids = torch.randint(0, VOCAB, (100 * SEGMENT,), generator=torch.Generator().manual_seed(0)).tolist()
    state = model.stream(ids, model.new_state())
    assert torch.isfinite(state.memory).all() and torch.isfinite(state.norm).all()
    hidden, _ = model.segment_forward(torch.tensor([ids[:SEGMENT]]), [(m, z) for m, z in state.layers()])
    assert torch.isfinite(hidden).all() and math.isfinite(float(state.norm.max()))


def memory_only_lora_model() -> InfiniModel:
    """Gates open and LoRA B non-zero, so both the memory and LoRA change what comes out."""
    model = small_vocab_model()
    setup(model, tiny_config(lora_memory_only=True, lora_targets=("q_proj", "k_proj", "v_proj"), extra_trainable=()))
    return randomize_lora(model)


def two_segments(model: InfiniModel, ids: torch.Tensor):
    """Hidden states of the second segment after the first was written, and that memory."""
    first, caches = model.segment_forward(ids[:, :SEGMENT], model.empty_memories(ids.shape[0]))
    memories = model.write(model.empty_memories(ids.shape[0]), caches)
    second, _ = model.segment_forward(ids[:, SEGMENT:], memories)
    return second, memories


def test_memory_only_lora_leaves_local_attention_to_the_base():
    ids, _, _ = key_batch(2, 2, torch.Generator().manual_seed(3))
    model, base = memory_only_lora_model(), small_vocab_model()
    with torch.no_grad():
        (ours, our_memories), (theirs, their_memories) = two_segments(model, ids), two_segments(base, ids)
        assert not torch.allclose(our_memories[0][0], their_memories[0][0]), "LoRA changes what is written"
        assert not torch.allclose(ours, theirs, atol=1e-3), "... and what is read"
        model.set_memory_read(False)
        base.set_memory_read(False)
        assert torch.allclose(two_segments(model, ids)[0], two_segments(base, ids)[0], atol=1e-6), "memory off = base"


def test_memory_only_lora_learns_through_the_memory_and_round_trips(tmp_path):
    model = memory_only_lora_model()
    ids, labels, _ = key_batch(2, 3, torch.Generator().manual_seed(4))
    loss, count = sequence_loss(model, ids, labels, SEGMENT, checkpointing=True)
    (loss / count).backward()
    lora = {n: p for n, p in model.lm.named_parameters() if "lora_A" in n}
    assert {n.split(".")[-4] for n in lora} == {"q_proj", "k_proj", "v_proj"}
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora.values())
    path = save_adapter(model, tmp_path / "memory-only.safetensors")
    assert json.loads(read_adapter(path)[1]["lora"])["memory_only"] is True
    fresh = small_vocab_model()
    load_adapter(fresh, path)  # merge=True is ignored: merging would put LoRA into local attention
    assert all(not a.lora_in_local and hasattr(a.q_proj, "lora_A") for a in fresh.attention)
    with torch.no_grad():
        assert torch.allclose(two_segments(model, ids[:, :2 * SEGMENT])[0], two_segments(fresh, ids[:, :2 * SEGMENT])[0],
                              atol=1e-5)


def test_mixed_precision_keeps_the_memory_in_float32():
    """bf16 autocast (CUDA's default, the CPU's on request) must not round the memory's sums."""
    grads = []
    for precision in ("fp32", "bf16"):
        model = small_vocab_model()
        setup(model, tiny_config(lora_rank=0, extra_trainable=()))
        ids, labels, _ = key_batch(2, 4, torch.Generator().manual_seed(0))
        with mixed_precision(torch.device("cpu"), precision):
            loss, count = sequence_loss(model, ids, labels, SEGMENT, checkpointing=True)
            written = model.stream_segment(ids[:, :SEGMENT], model.empty_memories(2))
        assert all(m.dtype == z.dtype == torch.float32 for m, z in written)
        (loss / count).backward()
        grads.append(torch.cat([a.gate.grad for a in model.attention]))
    assert torch.isfinite(grads[1]).all() and grads[1].abs().sum() > 0
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.98


def test_training_keys_come_from_another_stream_than_the_evaluation_keys(tokenizer):
    import random

    from engine.evaluation.tasks import parse_depth
    from engine.training.trainer import sampler_seed

    eval_rng = random.Random("passkey:0:512")  # what `eval passkey --seed 0 --lengths 512` draws from
    evaluated = {data.passkey_example(tokenizer, 8 * 64, parse_depth(d), eval_rng, last_segment=64,
                                      whole_fillers=True).answer
                 for d in ("start", "middle", "end") * 12}
    old_eval_rng = random.Random(0)  # what it drew from before prompts of whole fillers
    old_evaluated = {data.passkey_example(tokenizer, 8 * 64, parse_depth(d), old_eval_rng, last_segment=64,
                                          filler_offset=0).answer for d in ("start", "middle", "end") * 12}
    config = tiny_config(batch=4, segment=64, min_segments=2, max_segments=8, key_digits=5, tasks={"passkey": 1.0})

    def trained(seed) -> set[str]:
        sampler = TaskSampler(tokenizer, config, None, seed=seed)
        return {e.answer for _ in range(300) for e in sampler.draw(8)[3]}

    assert len(trained(0) & old_evaluated) >= 5  # the old seeding: the same stream, keys shared
    assert len(trained(sampler_seed(0)) & old_evaluated) <= 1  # ~0.5 expected by chance
    assert len(trained(sampler_seed(0)) & evaluated) <= 4  # 2,400 draws of 90,000 keys: ~1 by chance
    assert trained(sampler_seed(0, process=1)) != trained(sampler_seed(0, process=0))


def test_the_passkey_target_ends_with_a_full_stop_so_the_model_learns_where_the_key_ends(tokenizer):
    example = data.passkey_example(tokenizer, 8 * 64, 0.5, random.Random(0), last_segment=64, key="60494")
    assert tokenizer.decode(example.answer_ids) == " 60494."
    targets = [t for t in example.labels if t != -100]
    assert targets == example.answer_ids and tokenizer.decode(targets[-1:]) == "."


def test_stop_weight_lands_on_the_last_digit_and_the_full_stop(tokenizer):
    example = data.passkey_example(tokenizer, 8 * 64, 0.5, random.Random(0), last_segment=64, key="60494")
    weights = data.loss_weights([example], stop_weight=4.0)[0]
    heavy = [example.labels[t] for t in range(len(example.labels)) if weights[t] == 4.0]
    assert tokenizer.decode(heavy) == "4."
    assert int((weights != 1.0).sum()) == 2
    assert bool((data.loss_weights([example])[0] == 1.0).all())
    prose = data.text_example(list(range(1000)), 8 * 64, random.Random(0), last_segment=64)
    assert bool((data.loss_weights([prose], stop_weight=4.0) == 1.0).all())  # no answer, nothing weighted


def test_weighted_sequence_loss_is_the_weighted_sum_of_token_losses():
    model = small_vocab_model()
    ids, labels, _ = key_batch(2, 3, torch.Generator().manual_seed(3))
    weights = torch.ones(labels.shape)
    labelled = (labels != -100).nonzero()
    weights[tuple(labelled[0])] = 5.0  # one labelled token of the first row counts five times
    with torch.no_grad():
        plain, plain_count = sequence_loss(model, ids, labels, SEGMENT)
        weighted, weighted_count = sequence_loss(model, ids, labels, SEGMENT, weights=weights)
        single = labels.clone().fill_(-100)
        single[tuple(labelled[0])] = labels[tuple(labelled[0])]
        alone, _ = sequence_loss(model, ids, single, SEGMENT)
    assert weighted_count == pytest.approx(plain_count + 4.0)
    assert float(weighted) == pytest.approx(float(plain) + 4.0 * float(alone), rel=1e-5)
