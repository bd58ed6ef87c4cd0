"""Loss modules (the slides' section 4); the torch.nn ones are drop-ins for their namesakes."""

from __future__ import annotations

import torch
from torch import Tensor

from torchmanual import functional as F


class MSELoss(torch.nn.MSELoss):
    r"""The mean squared error ``1/N Σ (ŷ − y)²`` (``reduction='sum'``: no 1/N).

    Shape: input ``(*)``, target the same shape; output scalar (``'none'``: ``(*)``).

    Example::

        >>> MSELoss()(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])).item()
        2.5
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    r"""Softmax cross-entropy with class indices ``−log softmax(x)[y]``; gradient ``p − onehot``.

    ``weight`` and ``label_smoothing`` are not supported (refused here, at construction);
    targets equal to ``ignore_index`` are refused when seen.

    Shape: input ``(N, C)`` or ``(C,)``, target ``(N,)`` or ``()`` int64; output scalar
    (``'none'``: ``(N,)``).

    Example::

        >>> loss = CrossEntropyLoss()(torch.zeros(1, 4), torch.tensor([2]))
        >>> round(loss.item(), 4)  # log 4
        1.3863
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        if weight is not None:
            raise NotImplementedError(
                "CrossEntropyLoss(weight=...) is not supported by torchmanual"
            )
        if label_smoothing != 0.0:
            raise NotImplementedError(
                f"CrossEntropyLoss(label_smoothing={label_smoothing}) is not supported"
            )
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, self.reduction, ignore_index=self.ignore_index)


class BCELoss(torch.nn.BCELoss):
    r"""Binary cross-entropy on probabilities: ``−[y log p + (1 − y) log(1 − p)]``.

    Each log is clamped at −100 as torch does. ``weight`` is not supported.

    Shape: input ``(*)`` in [0, 1], target the same shape; output scalar (``'none'``: ``(*)``).

    Example::

        >>> round(BCELoss()(torch.tensor([0.5]), torch.tensor([1.0])).item(), 4)  # log 2
        0.6931
    """

    def __init__(
        self, weight: Tensor | None = None, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        if weight is not None:
            raise NotImplementedError("BCELoss(weight=...) is not supported by torchmanual")
        super().__init__(weight, size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, self.reduction)


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    r"""Binary cross-entropy on logits z, stable for any z; gradient ``σ(z) − y``.

    The slides' K-sigmoid-outputs cost ``J(Θ)`` (mean over all entries), whose output
    error is ``δ = a − y``. ``weight`` and ``pos_weight`` are not supported.

    Shape: input ``(*)``, target the same shape; output scalar (``'none'``: ``(*)``).

    Example::

        >>> round(BCEWithLogitsLoss()(torch.zeros(1), torch.ones(1)).item(), 4)  # log 2
        0.6931
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        reduce=None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        for name, value in (("weight", weight), ("pos_weight", pos_weight)):
            if value is not None:
                raise NotImplementedError(
                    f"BCEWithLogitsLoss({name}=...) is not supported by torchmanual"
                )
        super().__init__(weight, size_average, reduce, reduction, pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.reduction)


class _SlideLoss(torch.nn.Module):
    """A loss torch.nn has no exact namesake for: it holds ``reduction`` only."""

    __constants__ = ["reduction"]
    reduction: str

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in F.REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: reduction={reduction!r} is not valid; "
                f"choose one of {', '.join(F.REDUCTIONS)}"
            )
        super().__init__()
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class HingeLoss(_SlideLoss):
    r"""The slides' hinge loss ``max(0, 1 − y f(x))`` with ``y ∈ {−1, 1}``.

    Gradient ``−y`` where the margin is violated (``y f < 1``), 0 otherwise.

    Shape: scores ``(*)``, target the same shape with values ±1.

    Example::

        >>> HingeLoss()(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.0])).item()
        0.25
    """

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        return F.hinge_loss(scores, target, self.reduction)


class LogisticLoss(_SlideLoss):
    r"""The slides' logistic loss ``log(1 + exp(−y f(x)))``, ``y ∈ {−1, 1}``; stable for any f.

    The same numbers as ``torch.nn.SoftMarginLoss``. Gradient ``−y σ(−y f)``.

    Shape: scores ``(*)``, target the same shape with values ±1.

    Example::

        >>> round(LogisticLoss()(torch.zeros(1), torch.ones(1)).item(), 4)  # log 2
        0.6931
    """

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        return F.logistic_loss(scores, target, self.reduction)


class MulticlassSVMLoss(_SlideLoss):
    r"""The slides' multiclass SVM loss ``L_i = Σ_{j≠y_i} max(0, s_j − s_{y_i} + margin)``.

    Not divided by the number of classes (``torch.nn.MultiMarginLoss`` is). Add the
    slides' L2 penalty ``λ Σ W²`` through the optimizer's ``weight_decay`` or by hand.

    Shape: scores ``(N, C)`` or ``(C,)``, target ``(N,)`` or ``()`` int64.

    Example::

        >>> scores = torch.tensor([[3.2, 5.1, -1.7]])
        >>> round(MulticlassSVMLoss()(scores, torch.tensor([0])).item(), 1)
        2.9
    """

    __constants__ = ["margin", "reduction"]
    margin: float

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = margin

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        return F.multiclass_svm_loss(scores, target, self.margin, self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}" + (
            "" if self.reduction == "mean" else f", reduction={self.reduction!r}"
        )
