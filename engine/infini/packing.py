"""Float32 weights packed once for MKL's matrix product, while a whole book streams on a CPU.

torch's float32 `linear` on a CPU has MKL copy the weight into its blocked layout on every call,
about 4% of a 1024 x 576 by 576 x 3072 product. Streaming a book calls the same weights with the
same number of rows (one segment) thousands of times, so packing each once pays: +3.7% tokens/s at
segment 1024 and +5.8% at 512 in a same-run probe (BENCHMARKS.md, thirtieth session), with values
identical to `F.linear`'s. The packed copies take as much memory again as the weights they copy
(~400 MB for SmolLM2-135M in float32), so they live only inside `packed`, around a book's streaming.

The table is a context variable: only the thread that packed uses it (the window reads a book in
one thread and may answer in another), and only code that asks for it here: the base model's own
forward, which the benchmarks compare against, never does.
"""

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

WeightKey = tuple[int, tuple[int, ...], tuple[int, ...]]


def can_pack(weight: torch.Tensor) -> bool:
    """MKL packs float32 CPU matrices; other builds (no MKL: ARM), dtypes and devices do not."""
    return (
        weight.device.type == "cpu" and weight.dtype == torch.float32 and weight.dim() == 2
        and weight.is_contiguous() and torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear")
    )


def _key(weight: torch.Tensor) -> WeightKey:
    """Where a weight's values lie: the fused gate/up matrix is a fresh view at every call."""
    return weight.data_ptr(), tuple(weight.shape), tuple(weight.stride())


class PackedWeights:
    """MKL-packed copies of some weights, for products with exactly `rows` rows."""

    def __init__(self, rows: int):
        self.rows = rows
        self._packed: dict[WeightKey, tuple[torch.Tensor, torch.Tensor, int]] = {}
        self.products = 0  # how many products used a packed copy

    def __len__(self) -> int:
        return len(self._packed)

    def add(self, weight: torch.Tensor) -> None:
        if can_pack(weight) and _key(weight) not in self._packed:
            packed = torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), self.rows)
            self._packed[_key(weight)] = (weight, packed, weight._version)

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """F.linear's value; from the packed copy when it has one for this weight, as it was
        packed, and `x` has `rows` rows (a chapter's last, shorter segment does not)."""
        entry = self._packed.get(_key(weight))
        usable = (
            entry is not None and entry[2] == weight._version and x.dtype == torch.float32
            and x.numel() == self.rows * x.shape[-1] and not torch.is_grad_enabled()
        )
        if not usable:
            return F.linear(x, weight, bias)
        self.products += 1
        return torch.ops.mkl._mkl_linear(x, entry[1], weight, bias, self.rows)


_active: ContextVar[PackedWeights | None] = ContextVar("packed_weights", default=None)


@contextlib.contextmanager
def packed(weights: Iterable[torch.Tensor], rows: int) -> Iterator[PackedWeights]:
    """Inside, `linear` and `apply` in this thread use packed copies of `weights`."""
    table = PackedWeights(rows)
    for weight in weights:
        table.add(weight)
    token = _active.set(table)
    try:
        yield table
    finally:
        _active.reset(token)


def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """F.linear(x, weight), packed inside `packed`."""
    table = _active.get()
    return F.linear(x, weight) if table is None else table.linear(x, weight)


def apply(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """module(x), packed inside `packed` when the module is a plain nn.Linear (not a peft layer)."""
    table = _active.get()
    if table is None or type(module) is not nn.Linear:
        return module(x)
    return table.linear(x, module.weight, module.bias)
