"""The slides' experiments (SLIDES.md sections 9 and 10), reproducible and logged to TensorBoard.

Two experiments, each a function that returns its numbers and, given a ``logdir``, writes one
TensorBoard run per case so the cases can be compared side by side:

- :func:`init_stats` — the activation-statistics experiment of section 9: ``X = randn(samples,
  width)`` pushed through ``layers`` hidden layers ``H = act(X @ W)`` (no bias) with weights
  drawn by one of the slides' initialisations; the mean and std of every layer, and the weight
  gradients of one backward pass from the unit-gradient loss ``L = Σ H_last``.
  :data:`SLIDE_CASES` are the five cases the slides show (:func:`init_stats_all`).
- :func:`gradient_flow` — vanishing and exploding gradients (section 10): deep MLPs trained
  for a few hundred SGD steps (:data:`FLOW_CASES`: sigmoid with small init, ReLU with weights
  above 1, the same with gradient clipping, ReLU with He init, and with BatchNorm1d), with the
  ratio of the first layer's weight-gradient norm to the last layer's.

Every forward and backward runs through torchmanual's Functions (``functional.linear``,
``functional.tanh``, ``nn.MLP``, ...), so the numbers are those of the slides' hand-written
backward passes. Randomness comes from a ``torch.Generator`` seeded by ``seed``; the global RNG
is left as it was.

>>> result = init_stats("relu", "he", layers=3, width=50, samples=200)
>>> [layer.layer for layer in result.layers]
[1, 2, 3]
>>> sorted(result.to_dict())
['activation', 'init', 'input', 'layers']
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import torchmanual.functional as F
from torchmanual import data as datasets
from torchmanual.init import SCHEMES, apply_
from torchmanual.nn import MLP, CrossEntropyLoss
from torchmanual.optim import SGD, clip_grad_norm_

__all__ = [
    "ACTIVATIONS",
    "FLOW_CASES",
    "SLIDE_CASES",
    "FlowCase",
    "FlowResult",
    "InitStats",
    "LayerStats",
    "format_comparison",
    "format_flow_table",
    "gradient_flow",
    "init_stats",
    "init_stats_all",
]

# ---------------------------------------------------------------------------------------------
# Activation statistics across initialisations (section 9)
# ---------------------------------------------------------------------------------------------


def _identity(x: Tensor) -> Tensor:
    return x


#: Activation name -> torchmanual functional activation, for :func:`init_stats`. ``'linear'``
#: (no activation) is the case Xavier's initialisation was derived for.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": F.tanh,
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
    "softplus": F.softplus,
    "linear": _identity,
}

#: The five (activation, init) cases the slides show, in the slides' order.
SLIDE_CASES: tuple[tuple[str, str], ...] = (
    ("tanh", "small"),
    ("tanh", "unit"),
    ("tanh", "xavier"),
    ("relu", "xavier"),
    ("relu", "he"),
)

# Output bounds of the saturating activations: a unit within SATURATION_MARGIN of a bound is
# saturated (its derivative is < 0.02 for tanh), the same margin torchmanual.monitor uses.
_BOUNDS: dict[str, tuple[float, float]] = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}
SATURATION_MARGIN = 0.01


@dataclass(frozen=True)
class LayerStats:
    """One row of the slides' table: a layer's activation statistics.

    ``layer`` is 0 for the input and 1.. for the hidden layers. ``std`` is the population std
    (``np.std``, as the slides print). ``saturated`` is the fraction of units within 0.01 of
    a bound for tanh/sigmoid (``None`` for other activations and for the input).
    ``grad_norm`` is ``‖∂L/∂W‖`` of that layer's weight for ``L = Σ H_last`` (``None`` for the
    input, or when gradients were not computed).
    """

    layer: int
    mean: float
    std: float
    saturated: float | None = None
    grad_norm: float | None = None


@dataclass
class InitStats:
    """What :func:`init_stats` measured: the input's and every hidden layer's statistics."""

    activation: str
    init: str
    width: int
    samples: int
    seed: int
    input: LayerStats
    layers: list[LayerStats]
    logdir: str | None = None
    #: Every hidden layer's activations (only with ``keep_activations=True``), for plotting.
    activations: list[Tensor] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """``'<activation>-<init>'``, the run's folder name under the log directory."""
        return f"{self.activation}-{self.init}"

    @property
    def stds(self) -> list[float]:
        """The hidden layers' stds, first to last."""
        return [layer.std for layer in self.layers]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: ``{"activation", "init", "input": {"mean", "std"},
        "layers": [{"layer": 1, "mean": ..., "std": ...}, ...]}``."""
        return {
            "activation": self.activation,
            "init": self.init,
            "input": {"mean": self.input.mean, "std": self.input.std},
            "layers": [{"layer": s.layer, "mean": s.mean, "std": s.std} for s in self.layers],
        }

    def format_table(self) -> str:
        """The slides' table: input and every layer's mean and std (plus saturation and the
        weight-gradient norm where measured)."""
        with_saturation = self.layers and self.layers[0].saturated is not None
        with_grads = self.layers and self.layers[0].grad_norm is not None
        header = f"{'layer':<6}{'mean':>12}{'std':>12}"
        if with_saturation:
            header += f"{'saturated':>11}"
        if with_grads:
            header += f"{'‖∂L/∂W‖':>12}"
        lines = [
            f"{self.activation} + {self.init}: {len(self.layers)} layers of {self.width} units, "
            f"{self.samples} samples, seed {self.seed}",
            header,
            f"{'input':<6}{self.input.mean:>12.3g}{self.input.std:>12.3g}",
        ]
        for s in self.layers:
            row = f"{s.layer:<6}{s.mean:>12.3g}{s.std:>12.3g}"
            if with_saturation:
                row += f"{s.saturated:>11.1%}"
            if with_grads:
                row += f"{s.grad_norm:>12.3g}"
            lines.append(row)
        return "\n".join(lines)


def _check_choice(what: str, value: str, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _population_stats(h: Tensor) -> tuple[float, float]:
    # NOTE: float64 accumulation: with small init the last layers' stds are ~1e-7 and the
    # mean of 500k float32 values would otherwise carry rounding of the same size.
    h64 = h.detach().double()
    return h64.mean().item(), h64.std(correction=0).item()


def _saturated_fraction(activation: str, h: Tensor) -> float | None:
    if activation not in _BOUNDS:
        return None
    lo, hi = _BOUNDS[activation]
    h = h.detach()
    return ((h <= lo + SATURATION_MARGIN) | (h >= hi - SATURATION_MARGIN)).double().mean().item()


def _writer(run_dir: Path):
    from torch.utils.tensorboard import SummaryWriter

    run_dir.mkdir(parents=True, exist_ok=True)
    # NOTE: purge_step=0 marks everything an earlier run wrote into the same folder as
    # superseded, so rerunning a case replaces its curves in TensorBoard instead of doubling
    # them; no file is deleted.
    return SummaryWriter(log_dir=str(run_dir), purge_step=0)


def init_stats(
    activation: str = "tanh",
    init: str = "xavier",
    *,
    layers: int = 10,
    width: int = 500,
    samples: int = 1000,
    seed: int = 0,
    logdir: str | os.PathLike[str] | None = None,
    gradients: bool = True,
    keep_activations: bool = False,
    dtype: torch.dtype = torch.float32,
) -> InitStats:
    """The slides' activation-statistics experiment (section 9) for one activation and init.

    ``X = randn(samples, width)``; then ``layers`` times ``H = act(X @ W)`` with no bias and
    ``W`` a ``width × width`` weight drawn by ``torchmanual.init.SCHEMES[init]`` (``small``:
    ``0.01·randn``, ``unit``: ``randn``, ``xavier``: ``randn/√fan_in``, ``he``:
    ``randn/√(fan_in/2)``, ``glorot``, ``zeros``). Every layer's mean and (population) std is
    recorded, and for tanh/sigmoid the fraction of saturated units. With ``gradients`` one
    backward pass from ``L = Σ H_last`` (upstream gradient 1 for every unit of the last layer)
    gives each layer's weight-gradient norm — the slides' "what do the gradients look like?".

    What the slides' table shows at their size (10 layers × 500 units, 1000 samples):
    tanh+small's std shrinks by 0.01·√500 ≈ 0.22 per layer to 3e-7, and its weight gradients
    are ~0.02 against ~3.5e3 for tanh+xavier; tanh+unit saturates 90% of the units; ReLU+Xavier
    halves the variance per layer (std 0.58 → 0.024); ReLU+He stays at 0.83-0.73.
    Note that with tanh+unit the local gradients 1 − h² are ~0 but the weight gradients of
    ``L = Σ H_last`` are not: every step back multiplies by Wᵀ, whose gain is ≈ √width with
    N(0, 1) weights, so they grow toward the input (≈ 2e8 at layer 1 at the slides' size).

    With ``logdir``, the run is written to ``<logdir>/<activation>-<init>`` for TensorBoard,
    with the layer index as the step: scalars ``activations/mean``, ``activations/std``,
    ``activations/saturated`` and ``gradients/weight_norm``, histograms ``activations`` and
    ``gradients`` (the Histograms/Distributions tabs then show the layers one behind the other,
    the slides' per-layer histograms), and the table as text.

    Args:
        activation: a name in :data:`ACTIVATIONS`.
        init: a scheme name in ``torchmanual.init.SCHEMES``.
        layers, width, samples: depth, units per layer, rows of ``X`` (the slides: 10, 500,
            1000).
        seed: seeds the generator that draws ``X`` and then every ``W``, in that order.
        keep_activations: keep every layer's output in the result (for plotting).

    >>> small = init_stats("tanh", "small", layers=4, width=100, samples=100)
    >>> [round(s, 4) for s in small.stds]  # each layer ≈ 0.01·√100 = 0.1 times the last
    [0.1, 0.0096, 0.001, 0.0001]
    """
    _check_choice("activation", activation, ACTIVATIONS)
    _check_choice("init", init, SCHEMES)
    for name, value in (("layers", layers), ("width", width), ("samples", samples)):
        _check_positive(name, value)
    act = ACTIVATIONS[activation]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, width, generator=g, dtype=dtype)
    # NOTE: torch's (out, in) layout with F.linear computes X @ Wᵀ, the slides' X @ W for
    # W = randn(fan_in, fan_out); the weights are square, and the init functions read
    # fan_in = shape[1] = width, so std(xavier) = 1/√width as in the slides.
    weights = [
        SCHEMES[init](torch.empty(width, width, dtype=dtype), generator=g).requires_grad_(gradients)
        for _ in range(layers)
    ]
    hidden: list[Tensor] = []
    with torch.set_grad_enabled(gradients):
        h = x
        for w in weights:
            h = act(F.linear(h, w))
            hidden.append(h)
        if gradients and h.requires_grad:
            # L = Σ H_last: ∂L/∂H_last is 1 everywhere, passed straight to backward.
            h.backward(torch.ones_like(h))

    in_mean, in_std = _population_stats(x)
    stats = []
    for i, (h, w) in enumerate(zip(hidden, weights, strict=True), start=1):
        mean, std = _population_stats(h)
        grad_norm = None
        if gradients:
            grad_norm = 0.0 if w.grad is None else torch.linalg.vector_norm(w.grad).item()
        stats.append(LayerStats(i, mean, std, _saturated_fraction(activation, h), grad_norm))
    result = InitStats(
        activation=activation,
        init=init,
        width=width,
        samples=samples,
        seed=seed,
        input=LayerStats(0, in_mean, in_std),
        layers=stats,
        activations=[h.detach() for h in hidden] if keep_activations else None,
    )
    if logdir is not None:
        result.logdir = str(Path(logdir) / result.name)
        _log_init_stats(result, x, hidden, weights)
    return result


def _markdown_table(result: InitStats) -> str:
    rows = ["| layer | mean | std | saturated | ‖∂L/∂W‖ |", "|---|---|---|---|---|"]
    for s in [result.input, *result.layers]:
        saturated = "" if s.saturated is None else f"{s.saturated:.1%}"
        grad = "" if s.grad_norm is None else f"{s.grad_norm:.3g}"
        rows.append(f"| {s.layer or 'input'} | {s.mean:.3g} | {s.std:.3g} | {saturated} | {grad} |")
    return "\n".join(rows)


def _log_init_stats(
    result: InitStats, x: Tensor, hidden: list[Tensor], weights: list[Tensor]
) -> None:
    assert result.logdir is not None
    writer = _writer(Path(result.logdir))
    try:
        for s, h in zip([result.input, *result.layers], [x, *hidden], strict=True):
            # The step is the layer index: TensorBoard draws depth on the x-axis.
            writer.add_scalar("activations/mean", s.mean, s.layer)
            writer.add_scalar("activations/std", s.std, s.layer)
            if s.saturated is not None:
                writer.add_scalar("activations/saturated", s.saturated, s.layer)
            writer.add_histogram("activations", h.detach(), s.layer)
        for s, w in zip(result.layers, weights, strict=True):
            if s.grad_norm is not None:
                writer.add_scalar("gradients/weight_norm", s.grad_norm, s.layer)
                if w.grad is not None:
                    writer.add_histogram("gradients", w.grad, s.layer)
        writer.add_text("table", _markdown_table(result))
    finally:
        writer.close()


def init_stats_all(
    cases: Sequence[tuple[str, str]] = SLIDE_CASES, **kwargs: Any
) -> list[InitStats]:
    """Run :func:`init_stats` for every ``(activation, init)`` in ``cases`` (by default the
    slides' five); ``kwargs`` (``layers``, ``width``, ``logdir``, ...) go to each run, so with
    ``logdir`` every case is one run in the same folder.

    >>> [r.name for r in init_stats_all(layers=2, width=20, samples=50)]
    ['tanh-small', 'tanh-unit', 'tanh-xavier', 'relu-xavier', 'relu-he']
    """
    return [init_stats(activation, init, **kwargs) for activation, init in cases]


def format_comparison(results: Sequence[InitStats]) -> str:
    """A compact table: every layer's std, one column per case, then the share of saturated
    units in the last layer and the first layer's weight-gradient norm.

    >>> print(format_comparison(init_stats_all(layers=2, width=20, samples=50)).splitlines()[0])
    std per layer (2 layers of 20 units, 50 samples, seed 0)
    """
    if not results:
        return ""
    first = results[0]
    names = [f"{r.activation}+{r.init}" for r in results]
    col = max(11, *(len(n) + 2 for n in names))
    label = 20
    lines = [
        f"std per layer ({len(first.layers)} layers of {first.width} units, "
        f"{first.samples} samples, seed {first.seed})",
        f"{'layer':<{label}}" + "".join(f"{n:>{col}}" for n in names),
        f"{'input':<{label}}" + "".join(f"{r.input.std:>{col}.3g}" for r in results),
    ]
    for i in range(max(len(r.layers) for r in results)):
        cells = "".join(
            f"{r.layers[i].std:>{col}.3g}" if i < len(r.layers) else " " * col for r in results
        )
        lines.append(f"{i + 1:<{label}}" + cells)

    def cell(value: float | None, spec: str) -> str:
        return f"{'-':>{col}}" if value is None else f"{value:>{col}{spec}}"

    lines.append(
        f"{'saturated (last)':<{label}}"
        + "".join(cell(r.layers[-1].saturated, ".1%") for r in results)
    )
    lines.append(
        f"{'‖∂L/∂W‖ layer 1':<{label}}"
        + "".join(cell(r.layers[0].grad_norm, ".3g") for r in results)
    )
    lines.append(
        f"{'‖∂L/∂W‖ last':<{label}}" + "".join(cell(r.layers[-1].grad_norm, ".3g") for r in results)
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Vanishing and exploding gradients (section 10)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowCase:
    """One deep MLP of :func:`gradient_flow`: its activation, init, BatchNorm and clipping."""

    activation: str
    init: str
    batch_norm: bool = False
    #: Clip the gradients' joint norm to this value before every step (None: no clipping).
    clip: float | None = None
    description: str = ""


#: The slides' cases (section 10), by run name.
FLOW_CASES: dict[str, FlowCase] = {
    "sigmoid-small": FlowCase("sigmoid", "small", description="vanishing: σ' ≤ 0.25, |W| ≪ 1"),
    "relu-unit": FlowCase("relu", "unit", description="exploding: weights N(0, 1), above 1"),
    "relu-unit-clip": FlowCase(
        "relu", "unit", clip=1.0, description="exploding, gradient norm clipped to 1"
    ),
    "relu-he": FlowCase("relu", "he", description="He init keeps the variance"),
    "relu-he-bn": FlowCase("relu", "he", batch_norm=True, description="He init + BatchNorm1d"),
}


@dataclass
class FlowResult:
    """What :func:`gradient_flow` measured for one case.

    ``initial_norms`` / ``final_norms``: every Linear layer's weight-gradient norm (first to
    last) at the first step and at the last step whose loss was finite. ``ratio_initial`` /
    ``ratio_final``: the first layer's norm over the last layer's at those steps.
    ``nonfinite_step``: the step at which the loss became inf/NaN (training stops there), or
    None. ``test_accuracy``: after training (None if it diverged).
    """

    name: str
    case: FlowCase
    steps: int
    initial_norms: list[float]
    final_norms: list[float]
    ratio_initial: float
    ratio_final: float
    loss_initial: float
    loss_final: float
    nonfinite_step: int | None
    test_accuracy: float | None
    logdir: str | None = None

    @property
    def diverged(self) -> bool:
        """True when the loss went inf/NaN."""
        return self.nonfinite_step is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "activation": self.case.activation,
            "init": self.case.init,
            "batch_norm": self.case.batch_norm,
            "clip": self.case.clip,
            "steps": self.steps,
            "initial_norms": self.initial_norms,
            "final_norms": self.final_norms,
            "ratio_initial": self.ratio_initial,
            "ratio_final": self.ratio_final,
            "loss_initial": self.loss_initial,
            "loss_final": self.loss_final,
            "nonfinite_step": self.nonfinite_step,
            "test_accuracy": self.test_accuracy,
            "logdir": self.logdir,
        }


def _linear_weights(model: torch.nn.Module) -> list[tuple[str, Tensor]]:
    # Linear weights are 2-D; BatchNorm's weight (its scale γ) is 1-D and not a layer.
    return [(n, p) for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2]


def _ratio(norms: list[float]) -> float:
    # NOTE: a zero last-layer norm (nothing reaches the output) gives inf, not an error.
    first, last = norms[0], norms[-1]
    if last == 0.0:
        return math.inf if first > 0.0 else math.nan
    return first / last


def _accuracy(model: torch.nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    try:
        with torch.no_grad():
            return (model(x).argmax(dim=1) == y).double().mean().item()
    finally:
        model.train()


def _train_case(
    name: str,
    case: FlowCase,
    problem: datasets.Data,
    *,
    depth: int,
    width: int,
    steps: int,
    lr: float,
    momentum: float,
    batch_size: int,
    seed: int,
    logdir: str | os.PathLike[str] | None,
    log_every: int,
) -> FlowResult:
    sizes = [problem.in_features, *([width] * depth), problem.out_features]
    g = torch.Generator().manual_seed(seed)
    # NOTE: MLP's default (torch) initialisation draws from the global RNG; fork it so the
    # experiment leaves the caller's RNG alone, then draw the case's init from the seeded g.
    with torch.random.fork_rng(devices=[]):
        model = MLP(sizes, activation=case.activation, batch_norm=case.batch_norm)
    apply_(model, case.init, generator=g)
    weights = _linear_weights(model)
    loss_fn = CrossEntropyLoss()
    optimizer = SGD(model.parameters(), lr=lr, momentum=momentum)
    x_train, y_train = problem.train.tensors
    x_test, y_test = problem.test.tensors

    writer = monitor = None
    run_dir = None
    if logdir is not None:
        from torchmanual.monitor import ActivationStats

        run_dir = Path(logdir) / name
        writer = _writer(run_dir)
        monitor = ActivationStats(model, writer, every=log_every)

    initial: list[float] = []
    final: list[float] = []
    losses: list[float] = []
    nonfinite_step = None
    try:
        for step in range(1, steps + 1):
            index = torch.randint(0, x_train.shape[0], (batch_size,), generator=g)
            loss = loss_fn(model(x_train[index]), y_train[index])
            value = loss.item()
            if not math.isfinite(value):
                nonfinite_step = step
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Norms before clipping: the gradient backprop produced is what the slides ask about.
            norms_t = torch.stack([torch.linalg.vector_norm(p.grad) for _, p in weights])
            norms = norms_t.tolist()
            if not all(math.isfinite(n) for n in norms):
                nonfinite_step = step
                break
            if case.clip is not None:
                clip_grad_norm_(model.parameters(), case.clip)
            optimizer.step()
            losses.append(value)
            if not initial:
                initial = norms
            final = norms
            if writer is not None:
                writer.add_scalar("gradient_flow/first_over_last", _ratio(norms), step)
                writer.add_scalar("gradient_flow/first_norm", norms[0], step)
                writer.add_scalar("gradient_flow/last_norm", norms[-1], step)
            if monitor is not None:
                monitor.on_step(step, value, optimizer)
        accuracy = None if nonfinite_step is not None else _accuracy(model, x_test, y_test)
        if writer is not None:
            # Norm by layer (the step is the layer index): the flow's profile through depth.
            for i, (a, b) in enumerate(zip(initial, final, strict=True), start=1):
                writer.add_scalar("gradient_flow/by_layer_initial", a, i)
                writer.add_scalar("gradient_flow/by_layer_final", b, i)
            if accuracy is not None:
                writer.add_scalar("accuracy/test", accuracy, len(losses))
    finally:
        if monitor is not None:
            monitor.close()
        if writer is not None:
            writer.close()
    nan = math.nan
    return FlowResult(
        name=name,
        case=case,
        steps=len(losses),
        initial_norms=initial,
        final_norms=final,
        ratio_initial=_ratio(initial) if initial else nan,
        ratio_final=_ratio(final) if final else nan,
        loss_initial=losses[0] if losses else nan,
        loss_final=losses[-1] if losses else nan,
        nonfinite_step=nonfinite_step,
        test_accuracy=accuracy,
        logdir=str(run_dir) if run_dir is not None else None,
    )


def gradient_flow(
    cases: Iterable[str] | None = None,
    *,
    depth: int = 10,
    width: int = 64,
    steps: int = 300,
    lr: float = 0.01,
    momentum: float = 0.9,
    batch_size: int = 64,
    dataset: str = "spiral",
    seed: int = 0,
    logdir: str | os.PathLike[str] | None = None,
    log_every: int = 10,
) -> list[FlowResult]:
    """Vanishing and exploding gradients (section 10): train deep MLPs and watch each layer's
    weight-gradient norm.

    Each case of :data:`FLOW_CASES` (all, or those named in ``cases``) is an ``MLP`` with
    ``depth`` hidden layers of ``width`` units (``depth + 1`` Linear layers), trained for
    ``steps`` minibatch steps of torchmanual SGD on ``dataset`` with cross-entropy, from the
    same seed. Before each update the weight-gradient norm of every Linear layer is recorded
    (before clipping); a step whose loss or gradients are inf/NaN ends that case. The summary
    number is ``‖∂L/∂W_first‖ / ‖∂L/∂W_last‖``: orders of magnitude below 1 when the
    gradient vanishes on its way back.

    With ``logdir``, each case is a run ``<logdir>/<case>``: ``torchmanual.monitor``'s
    per-layer activation and gradient statistics every ``log_every`` steps, plus
    ``gradient_flow/first_over_last`` per step and ``gradient_flow/by_layer_initial|final``
    with the layer index as the step.

    >>> [r.ratio_initial < 1e-3 for r in gradient_flow(["sigmoid-small", "relu-he"], steps=5)]
    [True, False]
    """
    names = list(FLOW_CASES) if cases is None else list(cases)
    for name in names:
        _check_choice("gradient-flow case", name, FLOW_CASES)
    positive = {"depth": depth, "width": width, "steps": steps, "batch_size": batch_size}
    for arg, value in {**positive, "log_every": log_every}.items():
        _check_positive(arg, value)
    problem = datasets.load(dataset, seed=seed)
    if problem.task != "classification":
        raise ValueError(f"gradient_flow trains a classifier; {dataset!r} is a regression set")
    return [
        _train_case(
            name,
            FLOW_CASES[name],
            problem,
            depth=depth,
            width=width,
            steps=steps,
            lr=lr,
            momentum=momentum,
            batch_size=batch_size,
            seed=seed,
            logdir=logdir,
            log_every=log_every,
        )
        for name in names
    ]


def format_flow_table(results: Sequence[FlowResult]) -> str:
    """One row per case: the first/last gradient-norm ratio at the start and at the end, the
    largest layer's gradient norm at the start (the explosion), the loss at the start and the
    end, and the test accuracy (or the step where the loss went non-finite)."""
    name_width = max(len("case"), *(len(r.name) for r in results)) if results else 4
    lines = [
        f"{'case':<{name_width}}  {'‖∇W₁‖/‖∇W_last‖':>16}  {'(at end)':>9}  {'max ‖∇W‖':>9}  "
        f"{'loss start':>10}  {'loss end':>9}  {'test acc':>8}  note"
    ]
    for r in results:
        outcome = (
            f"loss non-finite at step {r.nonfinite_step}" if r.diverged else r.case.description
        )
        accuracy = "-" if r.test_accuracy is None else f"{r.test_accuracy:.1%}"
        largest = max(r.initial_norms) if r.initial_norms else math.nan
        lines.append(
            f"{r.name:<{name_width}}  {r.ratio_initial:>16.3g}  {r.ratio_final:>9.3g}  "
            f"{largest:>9.3g}  {r.loss_initial:>10.4g}  {r.loss_final:>9.4g}  {accuracy:>8}  "
            f"{outcome}"
        )
    return "\n".join(lines)
