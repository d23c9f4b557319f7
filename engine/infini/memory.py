"""The compressive memory of Infini-attention, equation by equation (arXiv 2404.07143, sec. 2.1).

Shapes, per layer: one memory per key/value head (grouped-query attention); a query head reads
its group's memory, handed to it by `for_query_heads`:

    sigma_k, values  : (batch, kv_heads, tokens, d_k / d_v)
    memory  M        : (batch, kv_heads, d_k, d_v)
    norm    z        : (batch, kv_heads, d_k)
    sigma_q          : (batch, heads, tokens, d_k), read with M and z repeated per query head

The memory is always kept in float32: the normaliser is a running sum over the whole book and
would lose precision (or overflow) in half precision.
"""

import functools

import torch

# sigma(x) > 0 everywhere, so sigma(Q) z > 0 once anything was written; the floor only guards
# the empty memory (z = 0), where retrieval must give exactly zero, not 0/0 = NaN.
DENOMINATOR_FLOOR = 1e-6

UPDATE_RULES = ("delta", "linear")


def sigma(x: torch.Tensor) -> torch.Tensor:
    """Eq. 3's non-linearity: ELU + 1, a positive feature map for linear attention.

    ELU(x) + 1 is exp(x) below zero and x + 1 above, written as max(x, 0) + exp(min(x, 0)) with
    the exp in place: four passes over x, ~30% less time than ELU then + 1 on CPU, and sigma(Q)
    is taken for every token of every layer (the reference test checks it against ELU + 1).
    """
    return x.clamp(min=0.0).add_(x.clamp(max=0.0).exp_())  # exp's output stays as saved for backward


def in_float32(equation):
    """Runs an equation with autocast off: mixed-precision training would otherwise round the
    memory's products (and the running normaliser inside them) to bfloat16."""

    @functools.wraps(equation)
    def without_autocast(first: torch.Tensor, *args, **kwargs):
        with torch.autocast(first.device.type, enabled=False):
            return equation(first, *args, **kwargs)

    return without_autocast


def empty_memory(batch: int, kv_heads: int, d_k: int, d_v: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """M_0 = 0 and z_0 = 0: the first segment retrieves nothing."""
    memory = torch.zeros(batch, kv_heads, d_k, d_v, dtype=torch.float32, device=device)
    norm = torch.zeros(batch, kv_heads, d_k, dtype=torch.float32, device=device)
    return memory, norm


def for_query_heads(memory: torch.Tensor, norm: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grouped-query attention: the `group` query heads of a key/value head share its memory.

    Repeating the small M and z (as modeling_llama's repeat_kv does for K and V) lets the queries
    stay in the layout their projection produced, instead of copying them into groups.
    """
    return memory.repeat_interleave(group, dim=1), norm.repeat_interleave(group, dim=1)


@in_float32
def retrieve(sigma_q: torch.Tensor, memory: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """Eq. 3: A_mem = sigma(Q) M_{s-1} / (sigma(Q) z_{s-1}).

    Two products, the quotient written over the numerator: appending z to M as one more column
    reads sigma(Q) once, but that product of odd width (65 for SmolLM2) ran ~20% slower on CPU
    than these two together (0.47 vs 0.39 ms, 1024 tokens, 9 heads).
    """
    denominator = (sigma_q @ norm.unsqueeze(-1)).clamp_min(DENOMINATOR_FLOOR)
    return (sigma_q @ memory).div_(denominator)


@in_float32
def update_linear(memory: torch.Tensor, norm: torch.Tensor, sigma_k: torch.Tensor, values: torch.Tensor):
    """Eq. 4: M_s = M_{s-1} + sigma(K)^T V;  z_s = z_{s-1} + sum_t sigma(K_t)."""
    memory = memory + sigma_k.transpose(-2, -1) @ values
    norm = norm + sigma_k.sum(dim=-2)
    return memory, norm


@in_float32
def update_delta(memory: torch.Tensor, norm: torch.Tensor, sigma_k: torch.Tensor, values: torch.Tensor):
    """Eq. 5: M_s = M_{s-1} + sigma(K)^T (V - sigma(K) M_{s-1} / (sigma(K) z_{s-1})).

    Only what the memory does not already return for these keys is added, so writing the same
    segment twice leaves the memory (almost) unchanged the second time.
    """
    already_stored = retrieve(sigma_k, memory, norm)
    # = M + sigma(K)^T (V - already_stored), with the difference taken in place (a fresh tensor in
    # another layout than V's cost ~25% of the write on CPU) and differentiable all the same.
    memory = memory - sigma_k.transpose(-2, -1) @ already_stored.sub_(values)
    norm = norm + sigma_k.sum(dim=-2)
    return memory, norm


def update(memory, norm, sigma_k, values, rule: str = "delta"):
    """Write one segment's keys and values with the chosen rule."""
    if rule == "delta":
        return update_delta(memory, norm, sigma_k, values)
    if rule == "linear":
        return update_linear(memory, norm, sigma_k, values)
    raise ValueError(f"unknown memory update rule {rule!r}; use one of {UPDATE_RULES}")


def combine(
    gate_logit: torch.Tensor, memory_output: torch.Tensor, local_output: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 6: A = sigmoid(beta) * A_mem + (1 - sigmoid(beta)) * A_dot, one beta per query head.

    gate_logit: (heads,); outputs: (batch, heads, tokens, d_v). `out` (not differentiable) lets
    the caller choose the result's memory layout.
    """
    g = torch.sigmoid(gate_logit.to(memory_output.dtype)).view(1, -1, 1, 1)
    return torch.lerp(local_output, memory_output, g, out=out)  # = g * A_mem + (1 - g) * A_dot, one pass
