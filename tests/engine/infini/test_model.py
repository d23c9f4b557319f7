"""The patched model on tiny random Llama/Qwen2/Mistral models."""

import copy

import pytest
import torch

from engine.errors import FingerprintMismatch, ModelError
from engine.infini import InfiniModel
from engine.infini import memory as mem
from engine.infini.adapter import add_lora
from engine.infini.model import gate_up_weight, mlp_in_place, rms_norm
from engine.infini.state import MemoryState
from engine.infini.tiny import randomize_lora, tiny_engine, tiny_llama


@pytest.fixture(scope="module")
def engine(tokenizer):
    return tiny_engine(tokenizer=tokenizer, segment=16, gate_init=0.0)


@pytest.fixture(scope="module")
def memory_lora_engine(tokenizer):
    """LoRA on the memory path only (random, non-zero): memory K/V differ from local attention's."""
    model = tiny_engine(tokenizer=tokenizer, segment=16, gate_init=0.0)
    add_lora(model, rank=4, memory_only=True)
    return randomize_lora(model)


both_engines = pytest.mark.parametrize("engine_name", ["engine", "memory_lora_engine"])


def random_ids(n, seed=0, vocab=49152):
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "mistral"])
def test_local_only_one_segment_equals_unpatched_model(tokenizer, model_type):
    model = tiny_engine(tokenizer=tokenizer, segment=64, gate_init=0.0, model_type=model_type)
    model.set_memory_read(False)
    ids = torch.tensor([random_ids(40)])
    with model.unpatched() as lm:
        expected = lm(ids).logits
    hidden, _ = model.segment_forward(ids, model.empty_memories())
    assert torch.allclose(model.logits(hidden), expected, atol=1e-5)


def test_unsupported_architecture_is_refused_clearly():
    lm = tiny_llama(100)
    lm.config.model_type = "gpt2"
    with pytest.raises(ModelError, match="architecture \\(gpt2\\) is not supported"):
        InfiniModel(lm)


def test_each_query_head_reads_its_own_groups_memory(engine):
    attention = engine.attention[0]
    heads, kv_heads, d = attention.num_heads, attention.num_kv_heads, attention.head_dim
    assert kv_heads < heads
    memory = torch.stack([torch.full((d, d), float(j)) for j in range(kv_heads)]).unsqueeze(0)
    norm = torch.ones(1, kv_heads, d)
    sigma_q = torch.rand(1, heads, 5, d) + 0.5
    group = heads // kv_heads
    out = mem.retrieve(sigma_q, *mem.for_query_heads(memory, norm, group))
    for head in range(heads):
        assert torch.allclose(out[0, head], torch.full((5, d), float(head // group)), atol=1e-5)


def test_memory_bytes_do_not_grow_with_the_book(engine):
    state = engine.new_state()
    after_two = engine.stream(random_ids(2 * engine.segment), state)
    after_fifty = engine.stream(random_ids(50 * engine.segment, seed=1), state)
    assert after_two.nbytes == after_fifty.nbytes == state.nbytes
    assert len(after_two.to_bytes()) == len(after_fifty.to_bytes())
    assert after_fifty.tokens == 50 * engine.segment


def test_streaming_in_one_go_equals_save_load_continue(engine):
    ids = random_ids(7 * engine.segment + 5, seed=2)
    one_go = engine.stream(ids, engine.new_state())
    split = 3 * engine.segment
    first = engine.stream(ids[:split], engine.new_state())
    restored = MemoryState.from_bytes(first.to_bytes("float32"), expected=engine.fingerprint)
    continued = engine.stream(ids[split:], restored)
    assert torch.equal(one_go.memory, continued.memory)
    assert torch.equal(one_go.norm, continued.norm)
    assert continued.tokens == one_go.tokens


@both_engines
def test_streaming_a_segment_equals_reading_it_then_writing_it(engine_name, request):
    """stream_segment writes layer by layer and skips the last layer's output; same memory."""
    engine = request.getfixturevalue(engine_name)
    memories = engine.stream(random_ids(2 * engine.segment, seed=3), engine.new_state()).layers()
    segment = torch.tensor([random_ids(engine.segment, seed=4)])
    with torch.inference_mode():
        streamed = engine.stream_segment(segment, memories)
        _, caches = engine.segment_forward(segment, memories)
        written = engine.write(memories, caches)
    for (m_streamed, z_streamed), (m_written, z_written), (m_before, _) in zip(streamed, written, memories, strict=True):
        assert torch.allclose(m_streamed, m_written, atol=1e-6) and torch.allclose(z_streamed, z_written)
        assert not torch.allclose(m_streamed, m_before)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_snapshots_round_trip_closely(engine, dtype):
    state = engine.stream(random_ids(3 * engine.segment), engine.new_state())
    restored = MemoryState.from_bytes(state.to_bytes(dtype))
    assert len(state.to_bytes(dtype)) < len(state.to_bytes("float32"))
    assert torch.allclose(restored.memory, state.memory, rtol=2e-2, atol=1e-2)


def test_snapshot_under_another_fingerprint_is_refused(engine):
    state = engine.stream(random_ids(20), engine.new_state())
    other = tiny_engine(tokenizer=engine.tokenizer, segment=engine.segment * 2, gate_init=0.0)
    with pytest.raises(FingerprintMismatch, match="different segment length .*re-read the book"):
        MemoryState.from_bytes(state.to_bytes(), expected=other.fingerprint)
    with pytest.raises(FingerprintMismatch):
        list(other.generate([1, 2, 3], state, max_new_tokens=1))


def test_damaged_snapshot_bytes_are_refused(engine):
    from engine.errors import LibraryError

    with pytest.raises(LibraryError, match="damaged"):
        MemoryState.from_bytes(b"\xff" * 40)


def test_stream_reports_progress_and_can_be_cancelled(engine):
    from engine.errors import Cancelled

    seen = []
    engine.stream(random_ids(3 * engine.segment + 1), engine.new_state(), progress=lambda d, t: seen.append((d, t)))
    total = 3 * engine.segment + 1
    assert seen == [(16, total), (32, total), (48, total), (49, total)]
    calls = iter([False, True])
    with pytest.raises(Cancelled):
        engine.stream(random_ids(3 * engine.segment), engine.new_state(), should_cancel=lambda: next(calls))


def naive_next_token(engine, sequence, state):
    """Recompute from scratch: full segments into memory, the partial one attended without a cache."""
    full = len(sequence) // engine.segment * engine.segment
    if full == len(sequence):
        full -= engine.segment
    memory_state = engine.stream(sequence[:full], state) if full else state
    with torch.inference_mode():
        hidden, _ = engine.segment_forward(torch.tensor([sequence[full:]]), memory_state.layers())
        return int(engine.logits(hidden[:, -1]).argmax())


@both_engines
def test_generation_with_cache_equals_recomputation_across_segment_boundaries(engine_name, request):
    engine = request.getfixturevalue(engine_name)
    state = engine.stream(random_ids(40, seed=5), engine.new_state())
    prompt = random_ids(13, seed=6)  # 13 + 20 new tokens cross two segment boundaries of 16
    generated = list(engine.generate(prompt, state, max_new_tokens=20))
    assert len(generated) == 20
    sequence = list(prompt)
    for token in generated:
        assert token == naive_next_token(engine, sequence, state)
        sequence.append(token)


def test_memory_changes_what_the_model_says(engine):
    prompt = random_ids(5, seed=7)
    empty = list(engine.generate(prompt, engine.new_state(), max_new_tokens=8))
    full = engine.stream(random_ids(64, seed=8), engine.new_state())
    with torch.inference_mode():
        a, _ = engine.segment_forward(torch.tensor([prompt]), engine.new_state().layers())
        b, _ = engine.segment_forward(torch.tensor([prompt]), full.layers())
    assert not torch.allclose(a, b)
    assert len(empty) == 8


def test_sampling_is_reproducible_and_top_p_tiny_is_greedy(engine):
    state = engine.new_state()
    prompt = random_ids(6, seed=9)
    greedy = list(engine.generate(prompt, state, max_new_tokens=6))
    nucleus = list(engine.generate(prompt, state, max_new_tokens=6, temperature=1.0, top_p=1e-9, seed=1))
    assert nucleus == greedy
    a = list(engine.generate(prompt, state, max_new_tokens=6, temperature=1.5, seed=3))
    b = list(engine.generate(prompt, state, max_new_tokens=6, temperature=1.5, seed=3))
    assert a == b


def test_generation_leaves_the_books_memory_untouched(engine):
    state = engine.stream(random_ids(30), engine.new_state())
    before = state.memory.clone()
    list(engine.generate(random_ids(40, seed=3), state, max_new_tokens=5))
    assert torch.equal(state.memory, before)


def test_repetition_penalty_discourages_the_answers_own_tokens(engine):
    from engine.infini.model import penalise_repeats

    logits = torch.tensor([[2.0, -1.0, 1.9, 0.5]])
    penalised = penalise_repeats(logits, [0, 1], 1.5)
    assert torch.allclose(penalised, torch.tensor([[2.0 / 1.5, -1.5, 1.9, 0.5]]))
    assert int(penalised.argmax()) == 2
    state = engine.new_state()
    prompt = random_ids(6, seed=11)
    plain = list(engine.generate(prompt, state, max_new_tokens=24))
    penalised_run = list(engine.generate(prompt, state, max_new_tokens=24, repetition_penalty=3.0))
    assert len(set(penalised_run)) >= len(set(plain))


def test_bfloat16_model_keeps_a_float32_memory_close_to_the_float32_one(tokenizer):
    exact = tiny_engine(tokenizer=tokenizer, segment=16, gate_init=0.0)
    half = tiny_engine(tokenizer=tokenizer, segment=16, gate_init=0.0)
    half.lm.to(torch.bfloat16)
    ids = random_ids(80, seed=12)
    a = exact.stream(ids, exact.new_state())
    b = half.stream(ids, half.new_state())
    assert b.memory.dtype == torch.float32 and torch.isfinite(b.memory).all()
    assert torch.allclose(a.memory, b.memory, rtol=0.1, atol=0.1)
    assert len(list(half.generate(random_ids(5), b, max_new_tokens=4))) == 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_streaming_rms_norm_equals_the_models_own(engine, dtype):
    module = copy.deepcopy(engine.layers[0].input_layernorm)  # its weight gets randomised below
    hidden = torch.randn(1, 7, engine.config.hidden_size, generator=torch.Generator().manual_seed(5)).to(dtype)
    with torch.no_grad():
        module.weight.normal_()
        assert torch.equal(rms_norm(module, hidden), module(hidden))


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "mistral"])
def test_streaming_mlp_is_one_gate_up_product_with_the_models_own_value(tokenizer, model_type):
    model = tiny_engine(tokenizer=tokenizer, segment=16, gate_init=0.0, model_type=model_type)
    mlp = model.layers[1].mlp
    hidden = torch.randn(1, 9, model.config.hidden_size, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        expected = mlp(hidden)
        weight = gate_up_weight(mlp)
        assert weight is not None
        assert torch.equal(weight, torch.cat((mlp.gate_proj.weight, mlp.up_proj.weight)))
        original_forward, mlp.forward = mlp.forward, None  # the fused path must not call the module
        try:
            assert torch.equal(mlp_in_place(mlp, hidden), expected)
        finally:
            mlp.forward = original_forward


def test_streaming_mlp_falls_back_to_the_module_once_the_model_is_cast(tokenizer):
    model = tiny_engine(tokenizer=tokenizer, segment=16, gate_init=0.0)
    model.lm.to(torch.bfloat16)  # gives gate_proj and up_proj separate storage again
    mlp = model.layers[0].mlp
    hidden = torch.randn(1, 5, model.config.hidden_size, generator=torch.Generator().manual_seed(7)).bfloat16()
    with torch.inference_mode():
        assert gate_up_weight(mlp) is None
        assert torch.equal(mlp_in_place(mlp, hidden), mlp(hidden))


def test_streaming_attention_equals_the_differentiable_one(engine):
    """Without autograd the layer writes RoPE and eq. 6 into other memory layouts: same values."""
    attention = engine.attention[1]
    generator = torch.Generator().manual_seed(8)
    hidden = torch.randn(1, 12, engine.config.hidden_size, generator=generator)
    keys = torch.randn(1, attention.num_kv_heads, 40, attention.head_dim, generator=generator)
    values = torch.randn(1, attention.num_kv_heads, 40, attention.head_dim, generator=generator)
    memory, norm = mem.update(*engine.empty_memories()[1], mem.sigma(keys), values)
    cos, sin = engine.backbone.rotary_emb(hidden, torch.arange(12).unsqueeze(0))
    with torch.enable_grad():
        expected, expected_cache = attention(hidden, cos, sin, memory, norm)
    with torch.inference_mode():
        streamed, cache = attention(hidden, cos, sin, memory, norm)
    assert expected.requires_grad  # the differentiable path was the one taken
    assert torch.allclose(streamed, expected.detach(), rtol=1e-5, atol=1e-6)
    assert torch.equal(cache.key, expected_cache.key.detach())
    assert cache.key.is_contiguous() and not expected_cache.key.is_contiguous()


def test_an_adapter_missing_some_of_its_lora_weights_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from engine.infini.adapter import load_adapter, save_adapter

    source = tiny_engine(segment=16, gate_init=0.0)
    add_lora(source, rank=4, targets=("q_proj", "k_proj", "v_proj"))
    randomize_lora(source)
    whole = save_adapter(source, tmp_path / "whole.safetensors")
    tensors = load_file(whole)
    with safe_open(whole, "pt") as handle:
        metadata = handle.metadata()
    damaged = {k: v for k, v in tensors.items() if not ("layers.1." in k and "lora_B" in k)}
    assert len(damaged) < len(tensors)
    save_file(damaged, tmp_path / "damaged.safetensors", metadata=metadata)
    load_adapter(tiny_engine(segment=16), whole)  # the whole file loads
    with pytest.raises(ModelError, match="lacks some of the LoRA weights"):
        load_adapter(tiny_engine(segment=16), tmp_path / "damaged.safetensors")


def test_lora_on_mlps_trains_copies_and_round_trips_merged(tmp_path):
    """MLP LoRA changes the patched model only, in the chosen layers, and loads back merged."""
    from engine.infini.adapter import load_adapter, save_adapter

    source = tiny_engine(segment=16, gate_init=0.0)
    ids = torch.tensor([random_ids(16, vocab=len(source.tokenizer))])
    with source.unpatched() as lm:
        base_logits = lm(ids).logits
    before, _ = source.segment_forward(ids, source.empty_memories())
    add_lora(source, rank=4, targets=("q_proj", "gate_proj", "up_proj", "down_proj"), layers=[1])
    randomize_lora(source)
    assert source.mlp[0] is source._original_mlp[0] and source.mlp[1] is not source._original_mlp[1]
    assert {n.split(".")[-4] for n, _ in source.lm.named_parameters() if "lora_A" in n and ".1." in n} == {
        "q_proj", "gate_proj", "up_proj", "down_proj"}
    with source.unpatched() as lm:
        assert torch.equal(lm(ids).logits, base_logits)
    with torch.no_grad():
        after, _ = source.segment_forward(ids, source.empty_memories())
    assert not torch.allclose(after, before, atol=1e-3)

    loaded = tiny_engine(segment=16)
    load_adapter(loaded, save_adapter(source, tmp_path / "mlp.safetensors"))
    assert not any("lora_" in n for n, _ in loaded.lm.named_parameters())  # merged
    assert gate_up_weight(loaded.mlp[1]) is not None  # gate and up one product again after merging
    with torch.no_grad():
        merged, _ = loaded.segment_forward(ids, loaded.empty_memories())
    assert torch.allclose(merged, after, atol=1e-4)
    with loaded.unpatched() as lm:
        assert torch.equal(lm(ids).logits, base_logits)


def test_lora_targets_outside_attention_and_mlp_are_refused():
    with pytest.raises(ModelError, match="attention or MLP projections"):
        add_lora(tiny_engine(segment=16), targets=("q_proj", "lm_head"))
    with pytest.raises(ModelError, match="memory path only"):
        add_lora(tiny_engine(segment=16), targets=("q_proj", "up_proj"), memory_only=True)


def test_a_chat_marker_typed_in_a_message_stays_text(engine):
    """A book quoting "<|im_end|>" must not end the user's turn (nor stop the answer) early."""
    im_end = engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    plain = engine.chat_prompt([{"role": "user", "content": "What does the sign say?"}])
    quoted = engine.chat_prompt([{"role": "user", "content": "What does <|im_end|> or <|endoftext|> say?"}])
    assert quoted.count(im_end) == plain.count(im_end)
    assert engine.tokenizer.convert_tokens_to_ids("<|endoftext|>") not in quoted
    assert "<|im_end|>" in engine.tokenizer.decode(quoted).replace("\u200b", "")  # still reads the same
