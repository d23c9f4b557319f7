"""Training the memory of a tiny random Llama on CPU: it learns to carry a key across segments."""

import json
import math
import random

import pytest
import torch

from engine.evaluation.core import Prompt, exact, score_prompts
from engine.infini.adapter import load_adapter, read_adapter
from engine.infini.tiny import tiny_engine
from engine.training import TrainConfig, data, sequence_loss, setup, train

SEGMENT = 16


def tiny_config(steps: int, **overrides) -> TrainConfig:
    options = dict(
        steps=steps, batch=16, segment=SEGMENT, min_segments=3, max_segments=4, curriculum=(3, 4),
        tasks={"passkey": 1.0}, gate_init=0.0, gate_lr=1e-1, lora_lr=1e-2, lora_rank=8,
        lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"), extra_trainable=("mlp",), key_digits=1,
        save_every=10_000, warmup=3, advance_loss=0.5, stage_max_steps=steps // 2, checkpointing=True,
    )
    options.update(overrides)
    return TrainConfig(**options)


def passkey_prompts(tokenizer, n=40, seed=1, total=4 * SEGMENT):
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        example = data.passkey_example(tokenizer, total, rng.random(), rng, last_segment=SEGMENT, digits=1)
        prompts.append(Prompt(example.ids[: example.prompt_length], example.answer_ids))
    return prompts


def accuracy(model, prompts, memory):
    answers = score_prompts(model, prompts, batch=20, memory=memory)
    return sum(exact(a, p.answer_ids) for a, p in zip(answers, prompts, strict=True)) / len(prompts)


@pytest.fixture(scope="module")
def trained(tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("run")
    model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    result = train(model, tiny_config(80), out, progress=False)
    return model, result, out


def test_tiny_model_learns_passkey_through_memory(trained, tokenizer):
    model, _, out = trained
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert sum(losses[-10:]) / 10 < losses[0] - 0.5, "the loss falls"
    prompts = passkey_prompts(tokenizer)
    with_memory, control = accuracy(model, prompts, True), accuracy(model, prompts, False)
    assert with_memory >= 0.25, with_memory  # chance is 1 in 10
    assert control <= 0.15, control  # the key is never in the last segment: memory-off stays at chance
    assert with_memory > control + 0.1


def test_adapter_round_trip_with_lora(trained, tokenizer, tmp_path):
    model, _, out = trained
    tensors, metadata = read_adapter(out / "adapter.safetensors")
    assert any(k.startswith("lora.") for k in tensors) and "lora" in metadata
    assert int(metadata["segment"]) == SEGMENT
    fresh = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    prompts = passkey_prompts(tokenizer, n=8, seed=3)
    trained_params = dict(model.lm.named_parameters())
    with torch.no_grad():  # the tiny test also trains the MLP: copy it, the adapter covers gates + LoRA
        for name, q in fresh.lm.named_parameters():
            if ".mlp." in name:
                q.copy_(trained_params[name])
    load_adapter(fresh, out / "adapter.safetensors")
    assert fresh.adapter_sha != "none"
    ids = torch.tensor([prompts[0].ids])
    with torch.no_grad():
        a, _ = model.segment_forward(ids[:, :SEGMENT], model.empty_memories())
        b, _ = fresh.segment_forward(ids[:, :SEGMENT], fresh.empty_memories())
    assert torch.allclose(a, b, atol=1e-4)
    with fresh.unpatched() as lm:  # LoRA went into copies: the base model's own attention is untouched
        assert all(type(layer.self_attn.q_proj) is torch.nn.Linear for layer in lm.model.layers)


def test_gates_receive_gradients_through_memory(tokenizer):
    model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    setup(model, tiny_config(1))
    rng = random.Random(0)
    ids, labels = data.collate([data.passkey_example(tokenizer, 4 * SEGMENT, 0.0, rng, last_segment=SEGMENT, digits=1)
                                for _ in range(2)])
    loss, count = sequence_loss(model, ids, labels, SEGMENT, checkpointing=True)
    (loss / count).backward()
    for attention in model.attention:
        assert attention.gate.grad is not None and attention.gate.grad.abs().sum() > 0
    lora = [p for n, p in model.lm.named_parameters() if "lora_A" in n and "k_proj" in n]
    assert lora and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)


def test_checkpointing_gives_the_same_gradients(tokenizer):
    grads = []
    for flag in (True, False):
        torch.manual_seed(0)
        model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
        setup(model, tiny_config(1, lora_rank=0))
        rng = random.Random(0)
        ids, labels = data.collate([data.passkey_example(tokenizer, 4 * SEGMENT, 0.0, rng, last_segment=SEGMENT,
                                                         digits=1)])
        loss, count = sequence_loss(model, ids, labels, SEGMENT, checkpointing=flag)
        (loss / count).backward()
        grads.append(torch.cat([a.gate.grad for a in model.attention]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_resume_continues_from_the_checkpoint(tokenizer, tmp_path):
    model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    train(model, tiny_config(4, save_every=2, batch=2), tmp_path, progress=False)
    again = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    result = train(again, tiny_config(6, save_every=2, batch=2), tmp_path, resume=True, progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6] and result["steps"] == 6


def test_hundred_segments_of_streaming_stay_finite(trained):
    model, _, _ = trained
    ids = torch.randint(0, 49152, (100 * SEGMENT,), generator=torch.Generator().manual_seed(0)).tolist()
    state = model.stream(ids, model.new_state())
    assert torch.isfinite(state.memory).all() and torch.isfinite(state.norm).all()
    hidden, _ = model.segment_forward(torch.tensor([ids[:SEGMENT]]), [(m, z) for m, z in state.layers()])
    assert torch.isfinite(hidden).all()
    assert math.isfinite(float(state.norm.max()))
