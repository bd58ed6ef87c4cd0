"""``MLP``: the slides' dense feed-forward network, ``f = W3 max(0, W2 max(0, W1 x))``."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn.modules import module as _module

from torchmanual import functional as F
from torchmanual.autograd.function import _observers
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

# Activation modules a hidden Linear can be fused with: (name, parameters) for
# functional.linear_activation. PReLU is not among them (its slope is a parameter).
_FUSABLE: dict[type[torch.nn.Module], Callable[[Any], tuple[str, tuple[Any, ...]]]] = {
    ReLU: lambda m: ("relu", ()),
    LeakyReLU: lambda m: ("leaky_relu", (m.negative_slope,)),
    ELU: lambda m: ("elu", (m.alpha,)),
    Sigmoid: lambda m: ("sigmoid", ()),
    Tanh: lambda m: ("tanh", ()),
    GELU: lambda m: ("gelu", (m.approximate,)),
    SiLU: lambda m: ("silu", ()),
    Softplus: lambda m: ("softplus", (m.beta, m.threshold)),
}


def _unhooked(module: torch.nn.Module) -> bool:
    """True when calling ``module`` would run its forward and nothing else (no hooks)."""
    return not (
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _no_global_hooks() -> bool:
    return not (
        _module._global_forward_hooks
        or _module._global_forward_pre_hooks
        or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
    )


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

    The whole network runs as one fused gate (:func:`torchmanual.functional.mlp`, whose
    backward is the slides' layer-by-layer δ recursion: the same values and gradients, one
    autograd node, far less per-layer overhead); with batch norm, Maxout, PReLU or a custom
    activation in between, each hidden ``fc`` + ``act`` pair that can be fused still is
    (:func:`torchmanual.functional.linear_activation`). Nothing is fused while something
    watches the layers one by one — a forward/backward hook on them (e.g.
    ``torchmanual.monitor``), a global module hook, a recording ``torchmanual.Tape``, or
    ``torchmanual.functional.check_finite()`` — or when ``fuse`` is False: then every module
    is called in turn, as ``torch.nn.Sequential`` would.

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
        self.fuse = True  # False: always call the layers one by one (teaching, debugging)
        if init is not None:
            from torchmanual.init import apply_  # init depends on torch only

            apply_(self, init)

    def forward(self, input: Tensor) -> Tensor:
        # NOTE: functional.check_finite() reports the first layer a nan reaches, so it
        # wants the layers one by one too.
        fuse = getattr(self, "fuse", True) and not _observers and not F._checking_finite()
        if not (fuse and _no_global_hooks()):
            return super().forward(input)
        layers = list(self._modules.values())
        network = _as_network(layers)
        if network is not None:
            return F._mlp_of_module(input, *network)
        i = 0
        while i < len(layers):
            layer = layers[i]
            act = layers[i + 1] if i + 1 < len(layers) else None
            fusable = act is not None and type(layer) is Linear and type(act) in _FUSABLE
            if fusable and _unhooked(layer) and _unhooked(act):
                name, params = _FUSABLE[type(act)](act)
                input = F.linear_activation(input, layer.weight, layer.bias, name, *params)
                i += 2
            else:
                input = layer(input)
                i += 1
        return input


def _as_network(layers: list[torch.nn.Module]) -> tuple[list, str, tuple] | None:
    """([W₁, b₁, …], activation, params) when the layers are Linear, act, …, Linear with one
    fusable activation and no hooks anywhere; else None."""
    if len(layers) % 2 == 0:
        return None
    parameters_in_order = []
    activation = None
    for i, m in enumerate(layers):
        if not _unhooked(m):
            return None
        if i % 2 == 0:
            if type(m) is not Linear:
                return None
            # NOTE: the parameter dict, not m.weight (Module.__getattr__ is slow Python); a
            # parametrized Linear is a subclass, so it never gets here.
            parameters = m._parameters
            parameters_in_order += [parameters["weight"], parameters["bias"]]
            continue
        fused = _FUSABLE.get(type(m))
        if fused is None:
            return None
        this = fused(m)
        if activation is not None and this != activation:
            return None
        activation = this
    name, params = activation or ("relu", ())  # (no hidden layer: unused)
    return parameters_in_order, name, params


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
