"""``BatchNorm1d``: standardise, then shift and scale (the slides' section 10)."""

from __future__ import annotations

import torch
from torch import Tensor

from torchmanual import functional as F


class BatchNorm1d(torch.nn.BatchNorm1d):
    r"""Batch normalisation over a 2-D or 3-D input, a drop-in for ``torch.nn.BatchNorm1d``.

    ``y = γ (x − E[x]) / √(Var[x] + ε) + β`` per channel, with the batch's statistics in
    training and the running ones in evaluation; running statistics, ``momentum`` (``None``
    for a cumulative average), ``num_batches_tracked``, parameters, buffers and
    ``state_dict`` exactly as torch.nn.BatchNorm1d. The backward is the closed-form
    batch-norm gradient, not autograd through the forward's operations.

    Shape:
        - Input: ``(N, C)`` or ``(N, C, L)``
        - Output: same shape as the input.

    Example::

        >>> bn = BatchNorm1d(3)
        >>> bn(torch.randn(8, 3)).mean(0).abs().max().item() < 1e-6
        True
    """

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        # The momentum bookkeeping below is torch.nn.modules.batchnorm._BatchNorm's, so the
        # running statistics and num_batches_tracked evolve identically.
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
        )
