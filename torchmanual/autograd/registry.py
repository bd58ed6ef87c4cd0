"""REGISTRY: every Function with the inputs that exercise it and torch's own op to compare.

Registering a Function is what puts it under test: the gradcheck suite
(``tests/test_functions.py``) and ``torchmanual gradcheck`` iterate over ``REGISTRY``, so a
new Function is gradchecked and compared with torch the moment it is registered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from torchmanual.autograd.function import ManualFunction


@dataclass(frozen=True)
class Sample:
    """One call's positional arguments; tensors that need a gradient have ``requires_grad``."""

    args: tuple[Any, ...]
    label: str = ""

    def clone(self) -> Sample:
        """Fresh leaf copies of every tensor (same values, strides and requires_grad)."""
        return Sample(tuple(_clone_leaf(a) for a in self.args), self.label)

    @property
    def differentiable(self) -> list[Tensor]:
        return [a for a in self.args if isinstance(a, Tensor) and a.requires_grad]


def _clone_leaf(a: Any) -> Any:
    if not isinstance(a, Tensor):
        return a
    # NOTE: empty_strided + copy_ keeps non-contiguous strides, so a clone tests the same layout.
    copy = torch.empty_strided(a.shape, a.stride(), dtype=a.dtype, device=a.device)
    with torch.no_grad():
        copy.copy_(a)
    return copy.requires_grad_(a.requires_grad)


SampleMaker = Callable[[torch.dtype, torch.device], list[Sample]]


@dataclass(frozen=True)
class Entry:
    """A registered Function.

    ``samples`` are smooth points (away from kinks) for the gradcheck family and the torch
    comparison; ``edge_samples`` are kinks at exactly 0, extremes and non-finite values,
    compared with torch only (a numerical derivative is meaningless there).
    ``reference`` is torch's own op taking the same arguments as the Function.
    """

    name: str
    function: type[ManualFunction]
    reference: Callable[..., Tensor]
    samples: SampleMaker
    edge_samples: SampleMaker | None = None
    # Tolerances for the float32 comparison with torch (float64 is held to 1e-12).
    float32_tol: tuple[float, float] = (1e-5, 1e-6)

    def __call__(self, *args: Any) -> Tensor:
        return self.function.apply(*args)


REGISTRY: dict[str, Entry] = {}


def register(
    reference: Callable[..., Tensor],
    samples: SampleMaker,
    edge_samples: SampleMaker | None = None,
    *,
    name: str | None = None,
    float32_tol: tuple[float, float] = (1e-5, 1e-6),
) -> Callable[[type[ManualFunction]], type[ManualFunction]]:
    """Class decorator: put a Function in ``REGISTRY`` (and so under test)."""

    def decorate(function: type[ManualFunction]) -> type[ManualFunction]:
        key = name or function.__name__
        if key in REGISTRY:
            raise ValueError(f"a Function named {key!r} is already registered")
        REGISTRY[key] = Entry(key, function, reference, samples, edge_samples, float32_tol)
        return function

    return decorate


# ---------------------------------------------------------------------------------------
# Sample makers. Each returns fresh tensors, so one test cannot disturb another's inputs.
# ---------------------------------------------------------------------------------------

EDGE_VALUES = (0.0, -0.0, 1e-300, -1e-300, 1.0, -1.0, 20.0, -20.0, 1000.0, -1000.0)
NONFINITE_VALUES = (math.inf, -math.inf, math.nan)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_values(
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    *,
    low: float = -3.0,
    high: float = 3.0,
    kinks: Sequence[float] = (),
    seed: int = 0,
    contiguous: bool = True,
) -> Tensor:
    """Uniform values in [low, high] kept at least 0.05 away from every kink.

    Non-contiguous tensors are a transposed allocation, so strides are really permuted.
    """
    alloc = tuple(shape) if contiguous or len(shape) < 2 else tuple(reversed(shape))
    x = torch.rand(alloc, generator=_generator(seed), dtype=torch.float64)
    x = low + (high - low) * x
    for kink in kinks:
        # NOTE: 0.05 ≫ gradcheck's eps=1e-6, so no finite difference straddles a kink.
        too_close = (x - kink).abs() < 0.05
        x = torch.where(too_close, kink + 0.05 * torch.where(x >= kink, 1.0, -1.0), x)
    x = x.to(device=device, dtype=dtype)
    if not contiguous and len(shape) >= 2:
        x = x.t() if len(shape) == 2 else x.permute(*reversed(range(len(shape))))
    return x


def leaf(x: Tensor, requires_grad: bool = True) -> Tensor:
    """A leaf tensor (strides kept) that needs a gradient when the dtype allows it."""
    x = x.detach()
    return x.requires_grad_(requires_grad and x.is_floating_point())


UNARY_SHAPES: tuple[tuple[str, tuple[int, ...], bool], ...] = (
    ("0-d", (), True),
    ("vector", (7,), True),
    ("matrix", (5, 7), True),
    ("non-contiguous", (5, 7), False),
    ("empty", (0, 3), True),
)


def unary_samples(
    *extra: Any, low: float = -3.0, high: float = 3.0, kinks: Sequence[float] = (0.0,)
) -> SampleMaker:
    """Samples for an elementwise op ``f(x, *extra)`` over every shape of ``UNARY_SHAPES``."""

    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        return [
            Sample(
                (
                    leaf(
                        smooth_values(
                            shape,
                            dtype,
                            device,
                            low=low,
                            high=high,
                            kinks=kinks,
                            seed=i,
                            contiguous=contiguous,
                        )
                    ),
                    *extra,
                ),
                label,
            )
            for i, (label, shape, contiguous) in enumerate(UNARY_SHAPES)
        ]

    return make


def unary_edges(
    *extra: Any, values: Sequence[float] = EDGE_VALUES + NONFINITE_VALUES
) -> SampleMaker:
    """Kinks at exactly ±0, tiny and huge magnitudes and (by default) ±inf and nan."""

    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        x = torch.tensor(values, dtype=dtype, device=device)
        return [Sample((leaf(x), *extra), "edges")]

    return make


BINARY_SHAPES: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("0-d", (), ()),
    ("same", (5, 7), (5, 7)),
    ("broadcast row", (5, 7), (7,)),
    ("broadcast outer", (5, 1), (1, 7)),
    ("broadcast 0-d", (), (5, 7)),
    ("empty", (0, 3), (3,)),
)


def binary_samples(*, low: float = -3.0, high: float = 3.0, separate: bool = False) -> SampleMaker:
    """Pairs over ``BINARY_SHAPES`` (broadcasting included) plus a non-contiguous pair.

    ``separate`` keeps y away from x (for max, whose derivative jumps where x == y).
    """

    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        samples = []
        for i, (label, sx, sy) in enumerate(BINARY_SHAPES):
            x = smooth_values(sx, dtype, device, low=low, high=high, seed=2 * i)
            y = smooth_values(sy, dtype, device, low=low, high=high, seed=2 * i + 1)
            if separate:
                _separate(x, y)
            samples.append(Sample((leaf(x), leaf(y)), label))
        x = smooth_values((5, 7), dtype, device, low=low, high=high, seed=98, contiguous=False)
        y = smooth_values((5, 7), dtype, device, low=low, high=high, seed=99, contiguous=False)
        if separate:
            _separate(x, y)
        samples.append(Sample((leaf(x), leaf(y)), "non-contiguous"))
        return samples

    return make


def _separate(x: Tensor, y: Tensor) -> None:
    """Shift y (in place, so its strides stay) until no pair is within 0.05 of a tie."""
    while ((x - y).abs() < 0.05).any():
        y.add_(0.1)


def binary_edges(values: Sequence[float] = EDGE_VALUES + NONFINITE_VALUES) -> SampleMaker:
    """Every pair of edge values, ties (x == y) included."""

    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        v = torch.tensor(values, dtype=dtype, device=device)
        return [Sample((leaf(v[:, None].expand(-1, len(v)).clone()), leaf(v.clone())), "edges")]

    return make
