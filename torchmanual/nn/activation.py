"""Activation modules (the slides' section 3), drop-ins for their torch.nn namesakes.

Each holds only its hyper-parameters (and, for PReLU, α); ``forward`` calls
``torchmanual.functional``, whose Function has the slide's derivative as its backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from torchmanual import functional as F


def _refuse_inplace(module: str, inplace: bool) -> None:
    if inplace:
        raise NotImplementedError(
            f"{module}(inplace=True) is not supported: a torchmanual Function saves what its "
            "backward needs and never overwrites its input"
        )


class Sigmoid(torch.nn.Sigmoid):
    r"""``σ(x) = 1 / (1 + e⁻ˣ)``; ``σ'(x) = σ(x)(1 − σ(x))`` ≤ 0.25.

    Squashes to [0, 1]; saturated units kill gradients; outputs are not zero-centred.

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> Sigmoid()(torch.zeros(2)).tolist()
        [0.5, 0.5]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Tanh(torch.nn.Tanh):
    r"""``tanh(x)``; derivative ``1 − tanh²(x)`` ≤ 1. Zero-centred, still saturates.

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> Tanh()(torch.zeros(2)).tolist()
        [0.0, 0.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class ReLU(torch.nn.ReLU):
    r"""``max(0, x)``; derivative 1 for x > 0, 0 for x ≤ 0 (0 at x = 0, as torch).

    Does not saturate for x > 0; a unit whose input stays negative never updates
    ("dying ReLU"). ``inplace=True`` is refused.

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> ReLU()(torch.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """

    def __init__(self, inplace: bool = False) -> None:
        _refuse_inplace("ReLU", inplace)
        super().__init__(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)


class LeakyReLU(torch.nn.LeakyReLU):
    r"""``max(negative_slope·x, x)``; derivative ``negative_slope`` for x ≤ 0, 1 for x > 0.

    Never saturates, never kills gradients.

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> LeakyReLU(0.1)(torch.tensor([-1.0, 2.0])).tolist()
        [-0.10000000149011612, 2.0]
    """

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False) -> None:
        _refuse_inplace("LeakyReLU", inplace)
        super().__init__(negative_slope, inplace)

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope)


class PReLU(torch.nn.PReLU):
    r"""``max(αx, x)`` with α learned ("backprop into α"): ``∂f/∂α = x`` for x ≤ 0, else 0.

    One α (``num_parameters=1``) or one per channel (dim 1 of the input), initialised to
    ``init``, as torch.nn.PReLU.

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> PReLU()(torch.tensor([-1.0, 2.0])).tolist()
        [-0.25, 2.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)


class ELU(torch.nn.ELU):
    r"""``x`` for x > 0, ``α(eˣ − 1)`` for x ≤ 0; derivative 1, or ``α eˣ = f(x) + α``.

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> ELU()(torch.tensor([0.0, 2.0])).tolist()
        [0.0, 2.0]
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        _refuse_inplace("ELU", inplace)
        super().__init__(alpha, inplace)

    def forward(self, input: Tensor) -> Tensor:
        return F.elu(input, self.alpha)


class GELU(torch.nn.GELU):
    r"""``x Φ(x)`` (``approximate='tanh'``: ``0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))``).

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> GELU()(torch.zeros(1)).tolist()
        [0.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)


class SiLU(torch.nn.SiLU):
    r"""The sigmoid linear unit ``x σ(x)``; derivative ``σ(x)(1 + x(1 − σ(x)))``.

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> SiLU()(torch.zeros(1)).tolist()
        [0.0]
    """

    def __init__(self, inplace: bool = False) -> None:
        _refuse_inplace("SiLU", inplace)
        super().__init__(inplace)

    def forward(self, input: Tensor) -> Tensor:
        return F.silu(input)


class Softplus(torch.nn.Softplus):
    r"""``log(1 + e^(βx)) / β``, linear where ``βx > threshold``; derivative ``σ(βx)``.

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> round(Softplus()(torch.zeros(1)).item(), 4)
        0.6931
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)


class Step(torch.nn.Module):
    r"""The perceptron's step: 1 for x > 0, else 0. Its derivative is 0 everywhere but 0.

    Kept for teaching: with a zero gradient, gradient descent never moves the weights
    before a step unit, which is why networks use smooth or piecewise-linear activations.

    Shape:
        - Input: ``(*)``, Output: ``(*)``, same shape.

    Example::

        >>> Step()(torch.tensor([-1.0, 0.0, 2.0])).tolist()
        [0.0, 0.0, 1.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.step(input)
