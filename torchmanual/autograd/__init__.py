"""The Functions: every gate, activation and loss of the slides, with its backward by hand.

``REGISTRY`` maps each Function's name to its entry (sample inputs and torch's own op),
which is what the gradcheck suite and ``torchmanual gradcheck`` iterate over.
"""

from torchmanual.autograd import (  # noqa: F401
    activations,
    gates,
    layers,
    losses,
    normalization,
)
from torchmanual.autograd.function import ManualFunction
from torchmanual.autograd.registry import REGISTRY, Entry, Sample

__all__ = ["REGISTRY", "Entry", "ManualFunction", "Sample"]
