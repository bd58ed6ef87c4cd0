"""A whole MLP layer as one gate: the affine map and its activation, with one backward.

The slides draw a hidden layer as two gates, ``z = x Wᵀ + b`` then ``a = f(z)``; backprop
through it is ``dz = da · f'(z)`` (the activation's local gradient) followed by the affine
gate's ``dx = dz W``, ``dW = dzᵀ x``, ``db = Σ dz``. :class:`LinearActivation` is exactly
that chain, in one Function: the same formulas (it calls the per-gate Functions' own
forward, backward and jvp), but one autograd node instead of two, and ``z`` is not kept
when the activation's derivative is written with its output (ReLU, sigmoid, tanh).
``torchmanual.nn.MLP`` uses it; the per-gate path stays for teaching and the Tape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from torchmanual.autograd.activations import (
    ELU,
    GELU,
    LeakyReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
    _zero_where_not_positive,
)
from torchmanual.autograd.function import LOWER, ManualFunction, tangent
from torchmanual.autograd.gates import Linear
from torchmanual.autograd.registry import Sample, leaf, register, smooth_values


@dataclass(frozen=True)
class FusedActivation:
    """An activation Function as the fused layer uses it.

    ``params``: the names its backward reads from ``ctx`` (in ``forward``'s order after x);
    ``saves_output``: whether its derivative is written with its output ``f(z)`` (saved
    instead of ``z``); ``kinks``: points where the derivative jumps (samples avoid them).
    ``forward``/``backward``/``jvp`` are the Function's own, as plain functions.
    """

    function: type[ManualFunction]
    params: tuple[str, ...] = ()
    saves_output: bool = False
    kinks: tuple[float, ...] = ()
    # NOTE: plain function objects, because torch.compile (Dynamo) cannot trace
    # ``SomeFunction.backward(...)`` called through the class outside autograd.
    forward: Callable[..., Tensor] = field(init=False, repr=False)
    backward: Callable[..., Any] = field(init=False, repr=False)
    jvp: Callable[..., Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("forward", "backward", "jvp"):
            object.__setattr__(self, name, getattr(self.function, name))


FUSED_ACTIVATIONS: dict[str, FusedActivation] = {
    "relu": FusedActivation(ReLU, saves_output=True, kinks=(0.0,)),
    "leaky_relu": FusedActivation(LeakyReLU, ("negative_slope",), kinks=(0.0,)),
    "elu": FusedActivation(ELU, ("alpha",), kinks=(0.0,)),
    "sigmoid": FusedActivation(Sigmoid, saves_output=True),
    "tanh": FusedActivation(Tanh, saves_output=True),
    "gelu": FusedActivation(GELU, ("approximate",)),
    "silu": FusedActivation(SiLU),
    "softplus": FusedActivation(Softplus, ("beta", "threshold")),
}


class _ActivationContext:
    """What an activation's backward/jvp reads from its ctx: the saved tensor, its params."""

    def __init__(self, saved: Tensor, names: tuple[str, ...], params: tuple[Any, ...]) -> None:
        self.saved_tensors = (saved,)
        for name, value in zip(names, params, strict=True):
            setattr(self, name, value)


def _activation_times(
    spec: FusedActivation,
    saved: Tensor,
    params: tuple[Any, ...],
    t: Tensor,
    jvp: bool,
    overwrite: bool = False,
) -> Tensor:
    """``t · f'(z)``: the activation Function's own backward (or jvp) applied to ``t``.

    ``overwrite``: ``t`` is the caller's temporary, which ReLU's may reuse for the result.
    """
    if spec.function is ReLU:
        # NOTE: ReLU.backward's own formula, called without a context object; reusing t's
        # memory spares an allocation per layer.
        return _zero_where_not_positive(saved, t, overwrite and not jvp)
    ctx = _ActivationContext(saved, spec.params, params)
    if jvp:
        return spec.jvp(ctx, t, *(None,) * len(params))
    out = spec.backward(ctx, t)
    return out[0] if isinstance(out, tuple) else out


def _linear_activation_reference(
    x: Tensor, weight: Tensor, bias: Tensor | None, activation: str, params: tuple[Any, ...]
) -> Tensor:
    z = F.linear(x, weight, bias)
    if activation == "gelu":
        return F.gelu(z, approximate=params[0])
    return getattr(F, activation)(z, *params)


_VARIANTS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("relu", ()),
    ("leaky_relu", (0.2,)),
    ("elu", (0.5,)),
    ("sigmoid", ()),
    ("tanh", ()),
    ("gelu", ("none",)),
    ("gelu", ("tanh",)),
    ("silu", ()),
    ("softplus", (2.0, 1.0)),
)


def _layer_inputs(
    dtype: torch.dtype,
    device: torch.device,
    shape: tuple[int, ...],
    out: int,
    bias: bool,
    kinks: tuple[float, ...],
    seed: int,
    contiguous: bool = True,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """x, W, b whose affine map stays ≥ 0.05 from every kink (so finite differences never
    straddle one, and half-precision rounding cannot flip a side)."""

    def values(shape: tuple[int, ...], seed: int, contiguous: bool = True) -> Tensor:
        return smooth_values(shape, dtype, device, low=-1, high=1, seed=seed, contiguous=contiguous)

    while True:
        x = values(shape, seed, contiguous)
        w = values((out, shape[-1]), seed + 1)
        b = values((out,), seed + 2) if bias else None
        z = F.linear(x.double(), w.double(), None if b is None else b.double())
        if all(z.numel() == 0 or (z - k).abs().min() >= 0.05 for k in kinks):
            return leaf(x), leaf(w), None if b is None else leaf(b)
        seed += 1000


def _linear_activation_samples(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    samples = []
    for i, (activation, params) in enumerate(_VARIANTS):
        kinks = FUSED_ACTIVATIONS[activation].kinks
        if activation == "softplus":
            kinks = (params[1] / params[0],)  # the threshold β·z = t, where the value jumps
        cases = [("batch", (4, 3), True, True)]
        if activation in ("relu", "tanh"):
            cases += [
                ("one example", (3,), True, True),
                ("3-d input", (2, 4, 3), True, True),
                ("no bias", (4, 3), False, True),
                ("non-contiguous", (4, 3), True, False),
                ("empty batch", (0, 3), True, True),
            ]
        for j, (label, shape, bias, contiguous) in enumerate(cases):
            x, w, b = _layer_inputs(
                dtype, device, shape, 5, bias, kinks, 100 * i + 10 * j, contiguous
            )
            samples.append(Sample((x, w, b, activation, params), f"{activation}{params}, {label}"))
    return samples


def _linear_activation_edges(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    def t(rows: list[list[float]] | list[float]) -> Tensor:
        return leaf(torch.tensor(rows, dtype=dtype, device=device))

    inf, nan = float("inf"), float("nan")
    # Row 0 gives z = b exactly (0 for unit 0: the kink), rows 1-3 extremes, inf and nan.
    x = [[0.0, 0.0, 0.0], [1.0, -1.0, 1000.0], [-20.0, 1e-300, 1.0], [inf, 0.5, nan]]
    w = [[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0], [0.5, 0.5, 0.5]]
    b = [0.0, 0.5, -1.0]
    return [
        Sample((t(x), t(w), t(b), activation, params), f"{activation}{params}, edges")
        for activation, params in _VARIANTS
    ]


@register(
    _linear_activation_reference,
    _linear_activation_samples,
    _linear_activation_edges,
    float32_tol=(1e-5, 1e-5),
)
class LinearActivation(ManualFunction):
    """One MLP layer as one gate: ``a = f(x Wᵀ + b)`` for an activation ``f`` by name.

    ``forward`` returns ``(a, z)``, the affine map ``z`` being an internal output (backward
    reads it, and as an output it stays differentiable for double backward); ``apply``
    returns ``a``. Backward is the slides' chain through the layer: ``dz = da · f'(z)`` —
    the activation Function's own
    backward, from the saved output for ReLU/sigmoid/tanh, else from the saved z — then the
    affine gate's ``dx = dz W``, ``dW = dzᵀ x``, ``db = Σ_batch dz``.

    ``activation`` is one of ``FUSED_ACTIVATIONS`` (relu, leaky_relu, elu, sigmoid, tanh,
    gelu, silu, softplus); ``params`` its arguments after the input, as a tuple (e.g.
    ``(0.01,)`` for leaky_relu's slope, ``("tanh",)`` for gelu, ``(1.0, 20.0)`` softplus).
    Shapes as :class:`Linear`: ``x (*, in)``, ``W (out, in)``, ``b (out)`` → ``(*, out)``.

    >>> x = torch.tensor([[1.0, 2.0]])
    >>> w = torch.tensor([[-1.0, -1.0], [1.0, 0.0]], requires_grad=True)
    >>> a = LinearActivation.apply(x, w, None, "relu", ()); a.tolist()
    [[0.0, 1.0]]
    >>> a.sum().backward(); w.grad.tolist()  # the dead unit (z = -3) gets no gradient
    [[0.0, 0.0], [1.0, 2.0]]
    """

    # NOTE: a matmul layer runs in the autocast dtype, as torch's linear (and then its
    # elementwise activation) would.
    autocast = LOWER
    internal_outputs = True

    @staticmethod
    def forward(
        x: Tensor, weight: Tensor, bias: Tensor | None, activation: str, params: tuple[Any, ...]
    ) -> tuple[Tensor, Tensor]:
        z = Linear.forward(x, weight, bias)
        return FUSED_ACTIVATIONS[activation].forward(z, *params), z

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
        x, weight, _, ctx.activation, ctx.params = inputs
        need_x, need_w, _, _, _ = ctx.needs_input_grad
        # NOTE: z is an output, not a hidden intermediate, so a backward that reads it
        # stays differentiable in x, W and b (double backward through f'(z) is exact).
        a, z = output
        saved = a if FUSED_ACTIVATIONS[ctx.activation].saves_output else z
        # Only what backward will read: f(z) or z, W for dx, x for dW.
        ctx.save_for_backward(x if need_w else None, weight if need_x else None, saved)
        ctx.save_for_forward(x, weight, saved)
        # NOTE: unused outputs' gradients stay None (z's almost always is): no zeros made.
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(
        ctx: Any, grad_a: Tensor | None, grad_z: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        x, weight, saved = ctx.saved_tensors
        need_x, need_w, need_b, _, _ = ctx.needs_input_grad
        if grad_a is not None:
            spec = FUSED_ACTIVATIONS[ctx.activation]
            through_f = _activation_times(spec, saved, ctx.params, grad_a, jvp=False)
            grad_z = through_f if grad_z is None else through_f + grad_z
        if grad_z is None:
            return None, None, None, None, None
        grad_x = grad_z.matmul(weight) if need_x else None
        grad_w = grad_b = None
        if need_w or need_b:
            rows = grad_z.reshape(-1, grad_z.shape[-1])  # every example is a branch of W, b
            if need_w:
                grad_w = rows.t().mm(x.reshape(-1, x.shape[-1]))
            if need_b:
                grad_b = rows.sum(0)
        return grad_x, grad_w, grad_b, None, None

    @staticmethod
    def jvp(
        ctx: Any, tx: Tensor | None, tw: Tensor | None, tb: Tensor | None, _a: None, _p: None
    ) -> tuple[Tensor, Tensor]:
        x, weight, saved = ctx.saved_tensors
        tz = tangent(tx, x).matmul(weight.t())
        if tw is not None:
            tz = tz + x.matmul(tw.t())
        if tb is not None:
            tz = tz + tb
        spec = FUSED_ACTIVATIONS[ctx.activation]
        return _activation_times(spec, saved, ctx.params, tz, jvp=True), tz


# ---------------------------------------------------------------------------------------
# The whole layered network as one gate (the slides' section 8)
# ---------------------------------------------------------------------------------------


def _network_reference(
    x: Tensor, activation: str, params: tuple[Any, ...], *layers: Tensor | None
) -> Tensor:
    a = x
    for i in range(0, len(layers), 2):
        a = F.linear(a, layers[i], layers[i + 1])
        if i + 2 < len(layers):
            a = (
                F.gelu(a, approximate=params[0])
                if activation == "gelu"
                else getattr(F, activation)(a, *params)
            )
    return a


def _network_inputs(
    dtype: torch.dtype,
    device: torch.device,
    shape: tuple[int, ...],
    sizes: tuple[int, ...],
    bias: bool,
    kinks: tuple[float, ...],
    seed: int,
    contiguous: bool = True,
) -> tuple[Tensor, list[Tensor | None]]:
    """x and (W, b) per layer with every hidden pre-activation ≥ 0.05 from every kink."""

    def values(shape: tuple[int, ...], seed: int, contiguous: bool = True) -> Tensor:
        return smooth_values(shape, dtype, device, low=-1, high=1, seed=seed, contiguous=contiguous)

    while True:
        x = values(shape, seed, contiguous)
        layers: list[Tensor | None] = []
        a, ok = x.double(), True
        for i, n_out in enumerate(sizes[1:]):
            w = values((n_out, sizes[i]), seed + 2 * i + 1)
            b = values((n_out,), seed + 2 * i + 2) if bias else None
            layers += [w, b]
            z = F.linear(a, w.double(), None if b is None else b.double())
            if i + 2 < len(sizes):
                ok = ok and all(z.numel() == 0 or (z - k).abs().min() >= 0.05 for k in kinks)
                a = torch.tanh(z)  # any smooth squashing: only the kinks matter here
        if ok:
            return leaf(x), [None if t is None else leaf(t) for t in layers]
        seed += 1000


def _network_samples(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    cases = [
        # label, activation, params, input shape, sizes, bias, contiguous
        ("2 hidden", "relu", (), (4, 3), (3, 5, 4, 2), True, True),
        ("1 hidden", "tanh", (), (4, 3), (3, 5, 2), True, True),
        ("sigmoid", "sigmoid", (), (4, 3), (3, 4, 2), True, True),
        ("gelu", "gelu", ("tanh",), (4, 3), (3, 4, 2), True, True),
        ("leaky", "leaky_relu", (0.2,), (4, 3), (3, 4, 2), True, True),
        ("no hidden", "relu", (), (4, 3), (3, 2), True, True),
        ("no bias", "relu", (), (4, 3), (3, 4, 2), False, True),
        ("one example", "relu", (), (3,), (3, 4, 2), True, True),
        ("3-d input", "elu", (1.0,), (2, 4, 3), (3, 4, 2), True, True),
        ("non-contiguous", "silu", (), (4, 3), (3, 4, 2), True, False),
        ("empty batch", "relu", (), (0, 3), (3, 4, 2), True, True),
    ]
    samples = []
    for i, (label, activation, params, shape, sizes, bias, contiguous) in enumerate(cases):
        kinks = FUSED_ACTIVATIONS[activation].kinks
        x, layers = _network_inputs(dtype, device, shape, sizes, bias, kinks, 50 * i, contiguous)
        samples.append(Sample((x, activation, params, *layers), f"{label} ({activation})"))
    return samples


def _network_edges(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    def t(rows: list[list[float]] | list[float]) -> Tensor:
        return leaf(torch.tensor(rows, dtype=dtype, device=device))

    inf, nan = float("inf"), float("nan")
    # Hidden unit 0 is exactly 0 on row 0 (the kink), rows 1-3 extremes, inf and nan.
    x = [[0.0, 0.0, 0.0], [1.0, -1.0, 1000.0], [-20.0, 1e-300, 1.0], [inf, 0.5, nan]]
    w1, b1 = [[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0], [0.5, 0.5, 0.5]], [0.0, 0.5, -1.0]
    w2, b2 = [[1.0, -1.0, 0.5], [0.0, 2.0, -2.0]], [0.25, 0.0]
    return [
        Sample((t(x), activation, params, t(w1), t(b1), t(w2), t(b2)), f"{activation}, edges")
        for activation, params in (("relu", ()), ("tanh", ()), ("softplus", (1.0, 20.0)))
    ]


@register(_network_reference, _network_samples, _network_edges, float32_tol=(1e-5, 1e-5))
class LayeredNetwork(ManualFunction):
    """A whole MLP as one gate: ``f(…f(x W₁ᵀ + b₁)…) W_Lᵀ + b_L``, no activation at the end.

    The slides' backpropagation in a layered network (section 8), vectorised: the output
    layer's error ``δ(L)`` is the upstream gradient; going down, each layer gives
    ``dW(l) = δ(l)ᵀ a(l-1)``, ``db(l) = Σ_batch δ(l)`` and passes
    ``δ(l-1) = (δ(l) W(l)) ⊙ f'(z(l-1))`` — the activation Function's own backward, from the
    saved output for ReLU/sigmoid/tanh (the slides' ``a(l) .* (1 - a(l))``), else from z.

    Arguments: ``x (*, in)``, the activation's name (one of ``FUSED_ACTIVATIONS``) and its
    parameters as a tuple, then ``W₁, b₁, …, W_L, b_L`` (``W (out, in)``; a bias may be
    None). ``forward`` also returns each hidden layer's output (and z where the derivative
    needs it) as internal outputs, so double backward through them is exact; ``apply``
    returns the network's output ``(*, out_L)``.

    >>> x = torch.tensor([[1.0, 2.0]])
    >>> w1 = torch.tensor([[-1.0, -1.0], [1.0, 0.0]], requires_grad=True)
    >>> w2 = torch.tensor([[1.0, 1.0]], requires_grad=True)
    >>> y = LayeredNetwork.apply(x, "relu", (), w1, None, w2, None); y.tolist()
    [[1.0]]
    >>> y.backward(); w1.grad.tolist()  # the dead hidden unit (z = -3) gets no gradient
    [[0.0, 0.0], [1.0, 2.0]]
    """

    # NOTE: matmul layers run in the autocast dtype, as torch's linear layers would.
    autocast = LOWER
    internal_outputs = True

    @staticmethod
    def forward(x: Tensor, activation: str, params: tuple[Any, ...], *layers: Tensor | None):
        spec = FUSED_ACTIVATIONS[activation]
        a, hidden = x, []
        last = len(layers) - 2
        for i in range(0, last, 2):
            z = Linear.forward(a, layers[i], layers[i + 1])
            a = spec.forward(z, *params)
            hidden += [a] if spec.saves_output else [a, z]
        return (Linear.forward(a, layers[last], layers[last + 1]), *hidden)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple[Tensor, ...]) -> None:
        x, ctx.activation, ctx.params, *layers = inputs
        needs = ctx.needs_input_grad
        weights = layers[0::2]
        # Only what backward reads: x for dW₁, W₁ for dx, every later W to pass δ down,
        # and the hidden outputs (a, and z where f' needs it).
        ctx.save_for_backward(
            x if needs[3] else None,
            weights[0] if needs[0] else None,
            *weights[1:],
            *output[1:],
        )
        ctx.save_for_forward(x, *weights, *output[1:])
        ctx.set_materialize_grads(False)  # the hidden outputs' gradients are almost always None

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None, *grad_hidden: Tensor | None):
        spec = FUSED_ACTIVATIONS[ctx.activation]
        saved = ctx.saved_tensors
        needs = ctx.needs_input_grad
        n = (len(needs) - 3) // 2  # layers
        x, weights, hidden = saved[0], saved[1 : 1 + n], saved[1 + n :]
        per = 1 if spec.saves_output else 2  # hidden outputs per layer: a, or a and z
        grads: list[Tensor | None] = [None] * len(needs)
        delta = grad  # δ(l): the gradient at layer l's pre-activation (the output's for l = L)
        for l in reversed(range(n)):
            a_in = x if l == 0 else hidden[per * (l - 1)]  # what fed layer l
            if delta is not None:
                rows = _rows(delta)  # every example is a branch of W and b
                if needs[3 + 2 * l]:
                    grads[3 + 2 * l] = rows.t().mm(_rows(a_in))
                if needs[4 + 2 * l]:
                    grads[4 + 2 * l] = rows.sum(0)
            if not (needs[0] or any(needs[3 : 3 + 2 * l])):
                break  # nothing below this layer wants a gradient
            through = None if delta is None else _times(delta, weights[l])
            if l == 0:
                grads[0] = through
                break
            # δ(l-1) = (δ(l) W(l)) ⊙ f'(z(l-1)), plus whatever reached the hidden outputs.
            k = per * (l - 1)
            grad_a = _sum(through, grad_hidden[k])
            act = hidden[k] if spec.saves_output else hidden[k + 1]
            # (grad_a is this backward's own temporary unless it is grad_hidden's alone)
            fresh = through is not None
            delta = (
                None
                if grad_a is None
                else _activation_times(spec, act, ctx.params, grad_a, False, overwrite=fresh)
            )
            if not spec.saves_output:
                delta = _sum(delta, grad_hidden[k + 1])
        return tuple(grads)

    @staticmethod
    def jvp(ctx: Any, tx: Tensor | None, _a: None, _p: None, *tlayers: Tensor | None):
        spec = FUSED_ACTIVATIONS[ctx.activation]
        saved = ctx.saved_tensors
        n = len(tlayers) // 2
        x, weights, hidden = saved[0], saved[1 : 1 + n], saved[1 + n :]
        per = 1 if spec.saves_output else 2
        a, ta, t_hidden = x, tangent(tx, x), []
        for l in range(n):
            tz = ta.matmul(weights[l].t())
            if tlayers[2 * l] is not None:
                tz = tz + a.matmul(tlayers[2 * l].t())
            if tlayers[2 * l + 1] is not None:
                tz = tz + tlayers[2 * l + 1]
            if l == n - 1:
                return (tz, *t_hidden)
            k = per * l
            a = hidden[k]
            act = a if spec.saves_output else hidden[k + 1]
            ta = _activation_times(spec, act, ctx.params, tz, jvp=True)
            t_hidden += [ta] if spec.saves_output else [ta, tz]
        raise AssertionError("unreachable: a network has at least one layer")


def _rows(t: Tensor) -> Tensor:
    """``t`` as a matrix of rows (examples × features); a matrix is returned as it is."""
    # NOTE: skipping a no-op reshape saves a dispatch per use on the tiny networks.
    return t if t.dim() == 2 else t.reshape(-1, t.shape[-1])


def _times(t: Tensor, weight: Tensor) -> Tensor:
    """``t W``: mm for a matrix (matmul's dispatch costs more), matmul otherwise."""
    return t.mm(weight) if t.dim() == 2 else t.matmul(weight)


def _sum(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """a + b, where None is a gradient that did not arrive."""
    if a is None:
        return b
    return a if b is None else a + b
