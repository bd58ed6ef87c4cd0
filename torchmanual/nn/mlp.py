"""``MLP``: the slides' dense feed-forward network, ``f = W3 max(0, W2 max(0, W1 x))``."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence

import torch

from torchmanual.nn.activation import (
    ELU,
    GELU,
    LeakyReLU,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
)
from torchmanual.nn.linear import Linear, Maxout
from torchmanual.nn.normalization import BatchNorm1d

ACTIVATIONS: dict[str, type[torch.nn.Module] | None] = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "prelu": PReLU,
    "elu": ELU,
    "gelu": GELU,
    "silu": SiLU,
    "softplus": Softplus,
    "maxout": None,  # the hidden layers themselves are Maxout units
}


class MLP(torch.nn.Sequential):
    r"""A multilayer perceptron: ``Linear → activation`` per hidden layer, then ``Linear``.

    ``sizes = [in, hidden..., out]``; the layers are named ``fc1, act1, fc2, act2, …, fcN``
    (``bn1, …`` between each hidden ``fc`` and its activation when ``batch_norm``), and no
    activation follows the last layer, so the output is the scores (logits) the slides' losses
    take. With ``activation='maxout'`` each hidden ``fc`` is a two-piece :class:`Maxout`
    layer and there is no separate ``act``. ``init`` names a scheme of
    ``torchmanual.init`` ('zeros', 'small', 'unit', 'xavier', 'glorot', 'he'); ``None``
    keeps torch.nn.Linear's default, so with the same seed an ``MLP`` holds the same
    weights as the equivalent ``torch.nn.Sequential``.

    Shape:
        - Input: ``(*, sizes[0])``
        - Output: ``(*, sizes[-1])``

    Example::

        >>> model = MLP([2, 100, 3], activation="relu", init="he")
        >>> model
        MLP(
          (fc1): Linear(in_features=2, out_features=100, bias=True)
          (act1): ReLU()
          (fc2): Linear(in_features=100, out_features=3, bias=True)
        )
        >>> model(torch.randn(5, 2)).shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | type[torch.nn.Module] = "relu",
        init: str | None = None,
        bias: bool = True,
        batch_norm: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        sizes = list(sizes)
        if len(sizes) < 2 or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes
        ):
            raise ValueError(
                f"MLP: sizes must be [in, hidden..., out] with at least 2 positive ints, "
                f"got {sizes}"
            )
        make_activation = _activation_factory(activation)
        factory = {"device": device, "dtype": dtype}
        layers: OrderedDict[str, torch.nn.Module] = OrderedDict()
        last = len(sizes) - 1
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1):
            hidden = i < last
            if hidden and activation == "maxout":
                layers[f"fc{i}"] = Maxout(n_in, n_out, bias=bias, **factory)
            else:
                layers[f"fc{i}"] = Linear(n_in, n_out, bias=bias, **factory)
            if hidden and batch_norm:
                layers[f"bn{i}"] = BatchNorm1d(n_out, **factory)
            if hidden and make_activation is not None:
                layers[f"act{i}"] = (
                    make_activation().to(**factory) if device or dtype else (make_activation())
                )
        super().__init__(layers)
        self.sizes = sizes
        if init is not None:
            from torchmanual.init import apply_  # init depends on torch only

            apply_(self, init)


def _activation_factory(activation: str | type[torch.nn.Module]):
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"MLP: unknown activation {activation!r}; choose one of "
                f"{', '.join(ACTIVATIONS)} or pass a torch.nn.Module class"
            )
        return ACTIVATIONS[activation]
    if isinstance(activation, type) and issubclass(activation, torch.nn.Module):
        return activation
    raise TypeError(
        f"MLP: activation must be a name or a torch.nn.Module class, got {activation!r}"
    )
