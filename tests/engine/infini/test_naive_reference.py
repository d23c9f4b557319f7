"""The engine's fused, reordered streaming equals Infini-attention written the obvious way."""

import pytest
import torch

from engine.infini.tiny import tiny_engine

from .naive_reference import naive_segment


@pytest.mark.parametrize("rule", ["delta", "linear"])
def test_streaming_equals_the_naive_reference_over_several_segments(tokenizer, rule):
    # gates at sigmoid(0.5) in some heads and sigmoid(-1) in others: memory and local both count
    model = tiny_engine(tokenizer=tokenizer, segment=24, rule=rule, gate_init=0.5, hidden=96, layers=3, heads=6, kv_heads=2)
    with torch.no_grad():
        model.attention[1].gate[::2] = -1.0
    ids = torch.randint(0, 49152, (1, 4 * 24), generator=torch.Generator().manual_seed(3))
    segments = ids.split(24, dim=1)
    state = model.stream(ids[0], model.new_state())

    naive = model.empty_memories()
    with torch.inference_mode():
        for segment in segments[:-1]:
            _, naive = naive_segment(model, segment, naive)
        engine_hidden, _ = model.segment_forward(segments[-1], naive)
        naive_hidden, naive = naive_segment(model, segments[-1], naive)

    assert torch.allclose(engine_hidden, naive_hidden, atol=1e-5, rtol=1e-4)
    for (memory, norm), (naive_memory, naive_norm) in zip(state.layers(), naive, strict=True):
        assert naive_norm.abs().max() > 0
        assert torch.allclose(memory, naive_memory, atol=1e-5, rtol=1e-4)
        assert torch.allclose(norm, naive_norm, atol=1e-5, rtol=1e-4)
