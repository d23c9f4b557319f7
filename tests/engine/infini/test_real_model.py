"""A bounded set of checks on the embedded default model, SmolLM2-135M-Instruct."""

import hashlib

import pytest
import torch

pytestmark = pytest.mark.slow


def test_local_only_one_segment_equals_unpatched_default_model(real_engine):
    ids = torch.tensor([real_engine.tokenizer.encode("The capital of France is Paris. The capital of Italy is")])
    with real_engine.unpatched() as lm, torch.inference_mode():
        expected = lm(ids).logits
    real_engine.set_memory_read(False)
    try:
        with torch.inference_mode():
            hidden, _ = real_engine.segment_forward(ids, real_engine.empty_memories())
            got = real_engine.logits(hidden)
    finally:
        real_engine.set_memory_read(True)
    assert torch.allclose(got, expected, atol=1e-4)


@pytest.fixture(params=["untrained", "shipped"])
def engine(request, real_engine, shipped_engine):
    return real_engine if request.param == "untrained" else shipped_engine


def test_default_model_answers_a_factual_question_through_the_memory_path(engine):
    tokenizer = engine.tokenizer
    text = "Paris is the capital and largest city of France. " * 20
    state = engine.stream(tokenizer.encode(text), engine.new_state())
    assert state.tokens > engine.segment  # several segments went through memory
    prompt = engine.chat_prompt([{"role": "user", "content": "What is the capital of France?"}])
    answer = tokenizer.decode(list(engine.generate(prompt, state, max_new_tokens=24, stop_ids=engine.stop_ids())))
    assert "Paris" in answer


def test_the_shipped_adapter_loads_by_default_and_none_opts_out():
    from engine.infini import DEFAULT_ADAPTER, GATE_LOCAL_ONLY, load_engine

    shipped = load_engine(device="cpu")
    assert shipped.adapter_sha == hashlib.sha256(DEFAULT_ADAPTER.read_bytes()).hexdigest()
    assert shipped.segment == 1024  # the segment it was trained at, stamped in the file
    assert max(float(torch.sigmoid(a.gate.detach()).max()) for a in shipped.attention) > 0.1
    untrained = load_engine(adapter="none", device="cpu")
    assert untrained.adapter_sha == "none"
    assert all(bool((a.gate == GATE_LOCAL_ONLY).all()) for a in untrained.attention)


def test_the_experimental_passkey_adapter_finds_the_key_only_through_memory():
    # Three 1,024-token segments: the key sits in the first or the second, the question in the last.
    from engine.evaluation import passkey
    from engine.infini import DEFAULT_ADAPTER, load_engine

    adapter = DEFAULT_ADAPTER.with_name("smollm2-135m-instruct-infini-seg1024-passkey.safetensors")
    engine = load_engine(adapter=str(adapter), device="cpu")
    assert engine.segment == 1024
    rows = passkey(engine, [3072], ["start", "end"], samples=1, seed=3, batch=2)
    # The key's five digits through memory and never without it. Where the answer stops is not
    # reliable yet (stage 22 still adds a sixth digit at 8K tokens; see its model card), so this
    # checks retrieval, the "starts right" count, and the control's exact count.
    assert [(r["memory_prefix"], r["control"]) for r in rows] == [(1, 0), (1, 0)], rows
