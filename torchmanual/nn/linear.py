"""Affine layers: ``Linear`` (the slides' ``f = W x + b``) and ``Maxout``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from torchmanual import functional as F


class Linear(torch.nn.Linear):
    r"""The affine layer ``y = x Wᵀ + b``, a drop-in for ``torch.nn.Linear``.

    Same constructor, parameters (``weight (out_features, in_features)``, ``bias
    (out_features)``), ``state_dict`` keys, ``repr`` and initialisation as torch.nn.Linear
    (so with the same seed both hold the same numbers), but ``forward`` runs the Linear gate,
    whose backward is ``dx = dy W``, ``dW = dyᵀ x``, ``db = Σ_batch dy``.

    Shape:
        - Input: ``(*, in_features)``
        - Output: ``(*, out_features)``

    Example::

        >>> layer = Linear(20, 30)
        >>> layer(torch.randn(128, 20)).shape
        torch.Size([128, 30])
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)


class Maxout(torch.nn.Module):
    r"""The slides' Maxout unit ``max(w₁ᵀx + b₁, w₂ᵀx + b₂)``, generalised to ``pieces`` maps.

    ``out_features`` units, each the max of ``pieces`` affine maps of the input; the
    gradient is routed to the winning piece. Generalises ReLU (pieces ``w`` and ``0``) and
    leaky ReLU, never saturates, and has ``pieces`` times the parameters of a Linear layer.
    Initialised like ``torch.nn.Linear(in_features, out_features * pieces)``.

    Args:
        in_features: size of each input sample.
        out_features: number of Maxout units.
        pieces: affine maps per unit (the slides use 2).
        bias: whether each piece has a bias.

    Shape:
        - Input: ``(*, in_features)``
        - Output: ``(*, out_features)``
        - ``weight``: ``(out_features * pieces, in_features)``; rows ``o·pieces + k`` are
          piece ``k`` of unit ``o``.

    Example::

        >>> m = Maxout(20, 30, pieces=3)
        >>> m(torch.randn(128, 20)).shape
        torch.Size([128, 30])
    """

    __constants__ = ["in_features", "out_features", "pieces"]
    in_features: int
    out_features: int
    pieces: int

    def __init__(
        self,
        in_features: int,
        out_features: int,
        pieces: int = 2,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        for name, value in (
            ("in_features", in_features),
            ("out_features", out_features),
            ("pieces", pieces),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Maxout: {name} must be a positive int, got {value!r}")
        super().__init__()
        self.in_features, self.out_features, self.pieces = in_features, out_features, pieces
        factory = {"device": device, "dtype": dtype}
        self.weight = torch.nn.Parameter(torch.empty(out_features * pieces, in_features, **factory))
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(out_features * pieces, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # NOTE: torch.nn.Linear's scheme, so Maxout starts like the Linear layer it widens.
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.maxout(input, self.weight, self.bias, self.pieces)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"pieces={self.pieces}, bias={self.bias is not None}"
        )
