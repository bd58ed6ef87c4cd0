"""Drop-in ``torch.nn`` modules whose forward runs torchmanual's Functions.

Constructors, defaults, parameter and buffer names, ``state_dict`` keys, ``repr`` and
initialisation match the torch.nn module of the same name, so swapping ``torch.nn.X`` for
``torchmanual.nn.X`` changes no number, and ``load_state_dict`` works both ways.
"""

from torchmanual.nn.activation import (
    ELU,
    GELU,
    LeakyReLU,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Step,
    Tanh,
)
from torchmanual.nn.linear import Linear, Maxout
from torchmanual.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HingeLoss,
    LogisticLoss,
    MSELoss,
    MulticlassSVMLoss,
)
from torchmanual.nn.mlp import ACTIVATIONS, MLP
from torchmanual.nn.normalization import BatchNorm1d

__all__ = [
    "ACTIVATIONS",
    "ELU",
    "GELU",
    "MLP",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "CrossEntropyLoss",
    "HingeLoss",
    "LeakyReLU",
    "Linear",
    "LogisticLoss",
    "MSELoss",
    "Maxout",
    "MulticlassSVMLoss",
    "PReLU",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softplus",
    "Step",
    "Tanh",
]
