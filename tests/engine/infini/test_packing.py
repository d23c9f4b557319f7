"""Weights packed for MKL give exactly F.linear's values, only where and while they should."""

import threading

import pytest
import torch
import torch.nn.functional as F

from engine.infini import packing
from engine.infini.model import PACK_MIN_SEGMENTS
from engine.infini.tiny import tiny_engine

needs_mkl = pytest.mark.skipif(not packing.can_pack(torch.zeros(2, 2)), reason="this torch build has no MKL packing")


@pytest.fixture
def weight():
    return torch.randn(96, 48, generator=torch.Generator().manual_seed(0))


@needs_mkl
def test_packed_product_equals_linear_for_its_rows_and_falls_back_for_others(weight):
    table = packing.PackedWeights(rows=64)
    table.add(weight)
    assert len(table) == 1
    for shape in [(64, 48), (1, 64, 48), (2, 32, 48), (7, 48), (1, 48)]:
        x = torch.randn(shape)
        with torch.inference_mode():
            assert torch.equal(table.linear(x, weight), F.linear(x, weight)), shape
    assert table.products == 3  # the three with 64 rows


@needs_mkl
def test_a_weight_changed_after_packing_is_not_read_from_its_stale_copy(weight):
    table = packing.PackedWeights(rows=8)
    table.add(weight)
    x = torch.randn(8, 48)
    with torch.inference_mode():
        before = table.linear(x, weight)
        weight.mul_(2)
        assert torch.equal(table.linear(x, weight), F.linear(x, weight))
    assert torch.equal(2 * before, F.linear(x, weight))
    assert table.products == 1  # before the change only


def test_packing_leaves_other_dtypes_devices_and_gradients_alone(weight):
    table = packing.PackedWeights(rows=8)
    table.add(weight.to(torch.bfloat16))
    assert len(table) == 0
    table.add(weight)
    x = torch.randn(8, 48, requires_grad=True)
    table.linear(x, weight).sum().backward()  # no packed product (it has no gradient) in training
    expected = x.detach().clone().requires_grad_()
    F.linear(expected, weight).sum().backward()
    assert torch.equal(x.grad, expected.grad)


@needs_mkl
def test_the_packed_weights_serve_only_the_thread_that_packed_them(weight):
    seen = {}

    def elsewhere():
        seen["table"] = packing._active.get()

    with packing.packed([weight], rows=8) as table:
        assert packing._active.get() is table and len(table) == 1
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert seen["table"] is None
    assert packing._active.get() is None


@needs_mkl
def test_streaming_a_book_on_packed_weights_gives_the_same_memory(tokenizer):
    engine = tiny_engine(tokenizer=tokenizer, segment=16, gate_init=0.0)
    ids = torch.randint(0, 1000, (PACK_MIN_SEGMENTS * 16 + 5,), generator=torch.Generator().manual_seed(1)).tolist()
    plain = engine.stream(ids, engine.new_state())
    with engine.packed_for_streaming(len(ids)) as table:
        packed = engine.stream(ids, engine.new_state())
    # per layer: q, k, v, o, gate/up together, down; the last layer's k and v only
    assert len(table) == 6 * (len(engine.layers) - 1) + 2
    assert table.products == PACK_MIN_SEGMENTS * len(table)  # every full segment, not the last
    for (m1, z1), (m2, z2) in zip(plain.layers(), packed.layers(), strict=True):
        assert torch.equal(m1, m2) and torch.equal(z1, z2)


def test_a_short_text_is_not_worth_packing_for(tokenizer):
    engine = tiny_engine(tokenizer=tokenizer, segment=16)
    with engine.packed_for_streaming(PACK_MIN_SEGMENTS * 16 - 1) as table:
        assert table is None and packing._active.get() is None
