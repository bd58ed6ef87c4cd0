"""torchmanual: the lecture slides on backpropagation as PyTorch autograd Functions.

Every gate, activation and loss of the slides is a ``torch.autograd.Function`` whose
``backward`` is the slide's formula written out by hand. See ``torchmanual.functional``
for the torch.nn.functional-style API, ``torchmanual.nn`` for drop-in modules and
``torchmanual.Tape`` to watch backpropagation gate by gate.
"""

from torchmanual.tape import Tape

__version__ = "0.1.0"

__all__ = ["Tape", "__version__"]
