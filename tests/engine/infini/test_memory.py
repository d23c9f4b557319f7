"""The memory equations against naive per-token references (paper eqs. 3-6)."""

import torch

from engine.infini import memory as mem


def naive_retrieve(sigma_q, memory, norm):
    out = torch.zeros(*sigma_q.shape[:-1], memory.shape[-1])
    for t in range(sigma_q.shape[-2]):
        q = sigma_q[..., t, :]
        out[..., t, :] = torch.einsum("bhk,bhkv->bhv", q, memory) / torch.einsum("bhk,bhk->bh", q, norm)[..., None]
    return out


def random_segment(tokens=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(2, 3, tokens, d, generator=g)
    v = torch.randn(2, 3, tokens, d, generator=g)
    return mem.sigma(k), v


def test_sigma_is_elu_plus_one_in_value_and_gradient():
    x = torch.linspace(-30, 30, 1001, dtype=torch.float64).float().requires_grad_()
    reference = x.detach().clone().requires_grad_()
    ours, elu_plus_one = mem.sigma(x), torch.nn.functional.elu(reference) + 1
    assert torch.allclose(ours, elu_plus_one, rtol=1e-6, atol=1e-7)
    assert torch.all(ours > 0)  # positive everywhere here, so sigma(Q) z > 0 once written
    ours.sum().backward()
    elu_plus_one.sum().backward()
    assert torch.allclose(x.grad, reference.grad, rtol=1e-6, atol=1e-7)
    assert torch.equal(mem.sigma(torch.tensor([0.0, 2.0])), torch.tensor([1.0, 3.0]))


def test_empty_memory_retrieves_exact_zero_without_nan():
    memory, norm = mem.empty_memory(2, 3, 5, 5)
    sigma_q, _ = random_segment()
    out = mem.retrieve(sigma_q, memory, norm)
    assert torch.equal(out, torch.zeros_like(out))


def test_linear_update_equals_per_token_sum():
    sigma_k, v = random_segment()
    memory, norm = mem.empty_memory(2, 3, 5, 5)
    new_memory, new_norm = mem.update_linear(memory, norm, sigma_k, v)
    ref_m, ref_z = memory.clone(), norm.clone()
    for t in range(sigma_k.shape[-2]):
        ref_m += torch.einsum("bhk,bhv->bhkv", sigma_k[..., t, :], v[..., t, :])
        ref_z += sigma_k[..., t, :]
    assert torch.allclose(new_memory, ref_m, atol=1e-5)
    assert torch.allclose(new_norm, ref_z, atol=1e-5)


def test_delta_update_equals_per_token_reference():
    sigma_k, v = random_segment(seed=1)
    memory, norm = mem.update_linear(*mem.empty_memory(2, 3, 5, 5), *random_segment(seed=2))
    new_memory, new_norm = mem.update_delta(memory, norm, sigma_k, v)
    ref_m = memory.clone()
    for t in range(sigma_k.shape[-2]):
        k = sigma_k[..., t, :]
        retrieved = torch.einsum("bhk,bhkv->bhv", k, memory) / torch.einsum("bhk,bhk->bh", k, norm)[..., None]
        ref_m += torch.einsum("bhk,bhv->bhkv", k, v[..., t, :] - retrieved)
    assert torch.allclose(new_memory, ref_m, atol=1e-4)
    assert torch.allclose(new_norm, norm + sigma_k.sum(-2), atol=1e-5)


def test_retrieval_equals_per_token_reference():
    sigma_q, _ = random_segment(seed=3)
    memory, norm = mem.update_linear(*mem.empty_memory(2, 3, 5, 5), *random_segment(seed=4))
    assert torch.allclose(mem.retrieve(sigma_q, memory, norm), naive_retrieve(sigma_q, memory, norm), atol=1e-5)


def test_delta_rule_writes_a_known_segment_almost_not_at_all():
    # Near one-hot sigma(K): the memory can store each value exactly, so the second write adds nothing.
    d = 8
    keys = torch.full((1, 1, d, d), -20.0) + 21.0 * torch.eye(d)
    sigma_k, v = mem.sigma(keys), torch.randn(1, 1, d, d)
    memory, norm = mem.empty_memory(1, 1, d, d)
    once = mem.update_delta(memory, norm, sigma_k, v)
    twice = mem.update_delta(*once, sigma_k, v)
    first_change = (once[0] - memory).norm()
    second_change = (twice[0] - once[0]).norm()
    assert second_change < 1e-4 * first_change
    linear_once = mem.update_linear(memory, norm, sigma_k, v)
    linear_twice = mem.update_linear(*linear_once, sigma_k, v)
    assert torch.allclose(linear_twice[0] - linear_once[0], linear_once[0] - memory)


def test_gate_mixes_memory_and_local_per_head():
    a_mem, a_dot = torch.ones(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)
    out = mem.combine(torch.tensor([0.0, 30.0]), a_mem, a_dot)
    assert torch.allclose(out[:, 0], torch.full((1, 3, 4), 0.5))
    assert torch.allclose(out[:, 1], torch.ones(1, 3, 4))


def test_hundred_segments_stay_finite():
    memory, norm = mem.empty_memory(1, 2, 16, 16)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        k = torch.randn(1, 2, 64, 16, generator=g) * 10
        v = torch.randn(1, 2, 64, 16, generator=g) * 10
        memory, norm = mem.update_delta(memory, norm, mem.sigma(k), v)
    out = mem.retrieve(mem.sigma(torch.randn(1, 2, 64, 16, generator=g) * 10), memory, norm)
    assert torch.isfinite(memory).all() and torch.isfinite(norm).all() and torch.isfinite(out).all()
