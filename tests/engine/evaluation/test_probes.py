"""The key-signal probe on a tiny random model: it reads what the attention reads, and only the key moves it."""

import torch

from engine.evaluation.probes import key_signal
from engine.infini.tiny import tiny_engine

SEGMENT = 32


def test_memory_read_is_what_a_fully_open_gate_passes_on(tokenizer):
    torch.manual_seed(0)
    model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    attention = model.attention[0]
    memories = model.stream_segment(torch.randint(0, 1000, (1, SEGMENT)), model.empty_memories(1))
    hidden, cos, sin = model._embed(torch.randint(0, 1000, (1, 5)), 0)
    with torch.no_grad():
        attention.gate.fill_(30.0)  # sigmoid(30) = 1 - 1e-13: eq. 6 passes the memory read alone
        output, _ = attention(hidden, cos, sin, *memories[0])
        read = attention.memory_read(hidden, *memories[0])
    expected = attention.o_proj(read.transpose(1, 2).reshape(1, 5, -1))
    assert torch.allclose(output, expected, atol=1e-5)


def test_key_signal_is_zero_for_the_same_key_and_fades_with_filler(tokenizer):
    torch.manual_seed(0)
    model = tiny_engine(tokenizer=tokenizer, segment=SEGMENT)
    same = key_signal(model, [4 * SEGMENT], keys=("12345", "12345"))
    assert len(same) == len(model.attention) and all(row["signal"] == 0 for row in same)
    rows = key_signal(model, [4 * SEGMENT, 16 * SEGMENT])
    short = [r["signal"] for r in rows if r["length"] == 4 * SEGMENT]
    long = [r["signal"] for r in rows if r["length"] == 16 * SEGMENT]
    assert all(s > 0 for s in short + long)
    assert sum(long) < sum(short)  # the key's share of sigma(Q) z shrinks as filler is written after it
