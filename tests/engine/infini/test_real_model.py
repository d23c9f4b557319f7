"""A bounded set of checks on the embedded default model, SmolLM2-135M-Instruct."""

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


def test_default_model_answers_a_factual_question_through_the_memory_path(real_engine):
    tokenizer = real_engine.tokenizer
    text = "Paris is the capital and largest city of France. " * 20
    state = real_engine.stream(tokenizer.encode(text), real_engine.new_state())
    assert state.tokens > real_engine.segment  # several segments went through memory
    prompt = real_engine.chat_prompt([{"role": "user", "content": "What is the capital of France?"}])
    answer = tokenizer.decode(list(real_engine.generate(prompt, state, max_new_tokens=24, stop_ids=real_engine.stop_ids())))
    assert "Paris" in answer
