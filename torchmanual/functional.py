"""``torch.nn.functional``-style API: validate the arguments, then apply the Function.

Every function here has the name and signature of its ``torch.nn.functional`` (or
``torch``) counterpart where one exists, and returns the same values and gradients.
Arguments are checked before any Function runs: a wrong shape, dtype, target value or
option raises an error that names it. An option torch has but torchmanual does not
support raises ``NotImplementedError`` naming the option; nothing is silently ignored.

Checks that read tensor values (targets in {-1, 1}, class indices in range,
probabilities in [0, 1]) are skipped while ``torch.compile`` traces, so they cannot break
the graph; everything else is checked always.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from numbers import Real

import torch
from torch import Tensor

from torchmanual.autograd.activations import (
    ELU,
    GELU,
    LeakyReLU,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Step,
    Tanh,
)
from torchmanual.autograd.gates import Add, Exp, Linear, Max, Mul, Reciprocal, Scale, Shift
from torchmanual.autograd.layers import FUSED_ACTIVATIONS, LayeredNetwork, LinearActivation
from torchmanual.autograd.losses import (
    MSE,
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    CrossEntropy,
    Hinge,
    Logistic,
    MulticlassSVM,
)
from torchmanual.autograd.normalization import BatchNorm

REDUCTIONS = ("mean", "sum", "none")
GELU_APPROXIMATIONS = ("none", "tanh")


# ---------------------------------------------------------------------------------------
# Argument checks. Each names the function, the argument and the offending value.
# ---------------------------------------------------------------------------------------

# Opt-in check that float inputs hold no nan/inf (see check_finite); off by default.
_CHECK_FINITE: ContextVar[bool] = ContextVar("torchmanual_check_finite", default=False)


@contextlib.contextmanager
def check_finite(enabled: bool = True) -> Iterator[None]:
    """Within this context, every function here refuses float inputs holding nan or ±inf.

    Raises ``ValueError`` naming the function, the argument, the first non-finite value
    and its index, before any Function runs: a way to find where a nan enters a network
    (each ``torchmanual.nn`` layer calls these functions). Off by default, as the check
    reads every input (one reduction and a host sync per tensor); ``enabled=False`` turns
    it off inside an enclosing ``check_finite()``. Thread- and task-local (a ContextVar);
    usable as a decorator.

    >>> with check_finite():
    ...     relu(torch.tensor([1.0, float("nan")]))
    Traceback (most recent call last):
    ...
    ValueError: relu(): input contains nan at index (1,) (shape (2,)); check_finite() is on
    """
    token = _CHECK_FINITE.set(bool(enabled))
    try:
        yield
    finally:
        _CHECK_FINITE.reset(token)


def _checking_finite() -> bool:
    """Whether check_finite() is on; never while torch.compile traces (a ContextVar read is
    a graph break, and the check itself needs a host sync)."""
    return not torch.compiler.is_compiling() and _CHECK_FINITE.get()


def _check_finite_tensor(fn: str, arg: str, x: Tensor) -> None:
    if not _checking_values(x):
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        index = tuple(bad.nonzero()[0].tolist())
        raise ValueError(
            f"{fn}(): {arg} contains {x[index].item()} at index {index} "
            f"(shape {tuple(x.shape)}); check_finite() is on"
        )


def _float_tensor(fn: str, arg: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): {arg} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{fn}(): {arg} must be a floating-point tensor to be differentiated "
            f"(float16, bfloat16, float32 or float64), got dtype {x.dtype}"
        )
    if _checking_finite():
        _check_finite_tensor(fn, arg, x)
    return x


def _operand(fn: str, arg: str, y: object, like: Tensor) -> Tensor:
    """A second operand: a float tensor, or a Python number made into one (as torch does)."""
    if isinstance(y, Real) and not isinstance(y, bool):
        if _checking_finite() and not math.isfinite(y):
            raise ValueError(f"{fn}(): {arg} is {y}; check_finite() is on")
        return torch.tensor(y, dtype=like.dtype, device=like.device)
    return _float_tensor(fn, arg, y)


def _broadcastable(fn: str, x: Tensor, y: Tensor) -> None:
    if x.shape == y.shape:
        return  # NOTE: the common case, without torch.broadcast_shapes' Python-level work
    try:
        torch.broadcast_shapes(x.shape, y.shape)
    except RuntimeError:
        raise ValueError(
            f"{fn}(): shapes {tuple(x.shape)} and {tuple(y.shape)} cannot be broadcast together"
        ) from None


def _number(fn: str, arg: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{fn}(): {arg} must be a Python number, got {type(value).__name__}")
    return float(value)


def _reduction(fn: str, reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{fn}(): reduction={reduction!r} is not valid; choose one of {', '.join(REDUCTIONS)}"
        )
    return reduction


def _unsupported(fn: str, **options: object) -> None:
    """Reject torch options torchmanual does not implement, naming them."""
    for option, value in options.items():
        raise NotImplementedError(
            f"{fn}(): {option}={value!r} is not supported by torchmanual "
            f"(its Functions implement the slides' formula only)"
        )


def _same_shape(fn: str, input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        raise ValueError(
            f"{fn}(): target shape {tuple(target.shape)} does not match "
            f"input shape {tuple(input.shape)}"
        )


def _checking_values(*tensors: Tensor) -> bool:
    """Whether checks that read tensor values may run: they need a device-to-host sync.

    Not while ``torch.compile`` traces (a sync is a graph break) nor while a CUDA graph
    is being captured (a sync is an error there); everything else is checked always.
    """
    if torch.compiler.is_compiling():
        return False
    return not any(t.is_cuda for t in tensors) or not torch.cuda.is_current_stream_capturing()


def _plus_minus_one_target(fn: str, scores: Tensor, target: object) -> Tensor:
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}(): target must be a torch.Tensor, got {type(target).__name__}")
    _same_shape(fn, scores, target)
    if target.requires_grad:
        raise NotImplementedError(
            f"{fn}(): the gradient with respect to target is not defined (target ∈ {{-1, 1}} "
            "is a label); pass target.detach()"
        )
    if _checking_values(target):
        bad = target[(target != 1) & (target != -1)]
        if bad.numel():
            raise ValueError(f"{fn}(): target must be -1 or 1, found {bad.flatten()[0].item()}")
    return target.to(scores.dtype)


def _class_target(
    fn: str, input: Tensor, target: object, ignore_index: int | None = None
) -> Tensor:
    if input.dim() not in (1, 2):
        raise NotImplementedError(
            f"{fn}(): input of shape {tuple(input.shape)} is not supported; "
            f"use (N, C) scores with (N,) targets or (C,) scores with a 0-d target"
        )
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}(): target must be a torch.Tensor, got {type(target).__name__}")
    if target.is_floating_point():
        raise NotImplementedError(
            f"{fn}(): a floating-point target (class probabilities) is not supported; "
            f"pass class indices (int64), got dtype {target.dtype}"
        )
    if target.shape != input.shape[:-1]:
        raise ValueError(
            f"{fn}(): target shape {tuple(target.shape)} does not match input shape "
            f"{tuple(input.shape)}; expected target shape {tuple(input.shape[:-1])}"
        )
    classes = input.shape[-1]
    in_range = ignore_index is not None and 0 <= ignore_index < classes
    # NOTE: on the CPU the range check costs nothing: the Function's kernels (gather,
    # nll_loss) raise for an index outside 0..C-1, and _apply_class_loss turns that into
    # the error below. On a GPU an out-of-range index is a device-side assert, so the
    # indices are read first.
    if (target.is_cuda or in_range) and _checking_values(target):
        _check_class_indices(fn, target, classes, ignore_index)
    return target if target.dtype is torch.int64 else target.long()


def _check_class_indices(fn: str, target: Tensor, classes: int, ignore_index: int | None) -> None:
    """IndexError naming a class index outside 0..C-1; NotImplementedError for ignore_index."""
    if not target.numel():
        return
    # NOTE: one aminmax (one reduction, one sync) instead of a boolean-mask gather.
    low, high = (v.item() for v in torch.aminmax(target))
    if low < 0 or high >= classes:
        offending = low if low < 0 else high
        if offending == ignore_index:
            _unsupported(fn, ignore_index=ignore_index)
        raise IndexError(
            f"{fn}(): target contains class index {offending}, but input "
            f"has {classes} classes (valid indices are 0..{classes - 1})"
        )
    # torch skips targets equal to ignore_index; torchmanual does not, so say so.
    in_range = ignore_index is not None and 0 <= ignore_index < classes
    if in_range and bool((target == ignore_index).any()):
        _unsupported(fn, ignore_index=ignore_index)


def _apply_class_loss(
    fn: str, function: type, input: Tensor, target: Tensor, *args: object, ignore_index=None
) -> Tensor:
    """``function.call(input, target, *args)``; a kernel's index error becomes a clear one."""
    try:
        return function.call(input, target, *args)
    except (RuntimeError, IndexError):
        if _checking_values(target):
            _check_class_indices(fn, target, input.shape[-1], ignore_index)
        raise


# ---------------------------------------------------------------------------------------
# Gates (slides section 7).
# ---------------------------------------------------------------------------------------


def add(x: Tensor, y: Tensor | float) -> Tensor:
    """``x + y`` through the Add gate (the gradient distributor). Broadcasts like torch.add."""
    x = _float_tensor("add", "x", x)
    y = _operand("add", "y", y, x)
    _broadcastable("add", x, y)
    return Add.call(x, y)


def mul(x: Tensor, y: Tensor | float) -> Tensor:
    """``x · y`` through the Mul gate (the gradient switcher). Broadcasts like torch.mul."""
    x = _float_tensor("mul", "x", x)
    y = _operand("mul", "y", y, x)
    _broadcastable("mul", x, y)
    return Mul.call(x, y)


def maximum(x: Tensor, y: Tensor | float) -> Tensor:
    """Elementwise ``max(x, y)`` through the Max gate (the gradient router), as torch.maximum."""
    x = _float_tensor("maximum", "x", x)
    y = _operand("maximum", "y", y, x)
    _broadcastable("maximum", x, y)
    return Max.call(x, y)


def exp(x: Tensor) -> Tensor:
    """``eˣ`` through the Exp gate, as torch.exp."""
    return Exp.call(_float_tensor("exp", "x", x))


def reciprocal(x: Tensor) -> Tensor:
    """``1/x`` through the Reciprocal gate, as torch.reciprocal."""
    return Reciprocal.call(_float_tensor("reciprocal", "x", x))


def scale(x: Tensor, a: float) -> Tensor:
    """``a·x`` for a Python number ``a`` (the slides' "*a" gate)."""
    return Scale.call(_float_tensor("scale", "x", x), _number("scale", "a", a))


def shift(x: Tensor, c: float) -> Tensor:
    """``c + x`` for a Python number ``c`` (the slides' "+c" gate)."""
    return Shift.call(_float_tensor("shift", "x", x), _number("shift", "c", c))


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The affine gate ``input Wᵀ + b``, as torch.nn.functional.linear.

    Shape: input ``(*, in)``, weight ``(out, in)``, bias ``(out,)`` → ``(*, out)``; as in
    torch, a 0-d bias is added to every output. (torch's 1-D weight form is refused.)
    """
    input = _float_tensor("linear", "input", input)
    weight = _float_tensor("linear", "weight", weight)
    if isinstance(bias, Tensor) and bias.dim() == 0 and weight.dim() == 2:
        bias = bias.expand(weight.shape[0])  # a 0-d bias is added to every output, as torch
    _check_affine("linear", input, weight, bias, rows=weight.shape[0] if weight.dim() else 0)
    return Linear.call(input, weight, bias)


def _check_affine(fn: str, input: Tensor, weight: Tensor, bias: Tensor | None, rows: int) -> None:
    if weight.dim() != 2:
        raise ValueError(f"{fn}(): weight must be 2-D (out, in), got shape {tuple(weight.shape)}")
    if input.dim() == 0:
        raise ValueError(f"{fn}(): input must have at least 1 dimension, got a 0-d tensor")
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"{fn}(): input has {input.shape[-1]} features (shape {tuple(input.shape)}) but "
            f"weight expects {weight.shape[1]} (weight shape {tuple(weight.shape)})"
        )
    if bias is not None:
        bias = _float_tensor(fn, "bias", bias)
        if bias.shape != (rows,):
            raise ValueError(
                f"{fn}(): bias must have shape ({rows},) to match weight "
                f"{tuple(weight.shape)}, got {tuple(bias.shape)}"
            )
    mixed = weight.dtype != input.dtype or (bias is not None and bias.dtype != input.dtype)
    # NOTE: under torch.autocast mixed dtypes are expected (a bfloat16 activation meets a
    # float32 weight); the Function's autocast policy casts them, as torch's linear does.
    if mixed and not torch.is_autocast_enabled(input.device.type):
        raise TypeError(
            f"{fn}(): input, weight and bias must share one dtype, got "
            f"input {input.dtype}, weight {weight.dtype}"
            + (f", bias {bias.dtype}" if bias is not None else "")
        )


# ---------------------------------------------------------------------------------------
# Activations (slides section 3).
# ---------------------------------------------------------------------------------------


def _no_inplace(fn: str, inplace: bool) -> None:
    if inplace:
        _unsupported(fn, inplace=inplace)


def sigmoid(input: Tensor) -> Tensor:
    """``σ(x) = 1 / (1 + e⁻ˣ)``; backward ``σ(1 − σ)``."""
    return Sigmoid.call(_float_tensor("sigmoid", "input", input))


def tanh(input: Tensor) -> Tensor:
    """``tanh(x)``; backward ``1 − tanh²(x)``."""
    return Tanh.call(_float_tensor("tanh", "input", input))


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(0, x)``; gradient 1 for x > 0, 0 otherwise (0 at x = 0, as torch)."""
    _no_inplace("relu", inplace)
    return ReLU.call(_float_tensor("relu", "input", input))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``max(negative_slope·x, x)``; gradient ``negative_slope`` for x ≤ 0, 1 for x > 0."""
    _no_inplace("leaky_relu", inplace)
    input = _float_tensor("leaky_relu", "input", input)
    return LeakyReLU.call(input, _number("leaky_relu", "negative_slope", negative_slope))


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``max(αx, x)`` with a learned α (one, or one per channel = dim 1), as F.prelu."""
    input = _float_tensor("prelu", "input", input)
    weight = _float_tensor("prelu", "weight", weight)
    channels = input.shape[1] if input.dim() >= 2 else 1
    if weight.dim() > 1 or weight.numel() not in (1, channels):
        raise ValueError(
            f"prelu(): weight must have 1 or {channels} elements (the channels of input shape "
            f"{tuple(input.shape)}), got shape {tuple(weight.shape)}"
        )
    return PReLU.call(input, weight)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` if x > 0 else ``α(eˣ − 1)``; gradient 1, or ``α eˣ = f(x) + α`` for x ≤ 0."""
    _no_inplace("elu", inplace)
    return ELU.call(_float_tensor("elu", "input", input), _number("elu", "alpha", alpha))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x Φ(x)`` (``approximate='tanh'``: the tanh approximation), as F.gelu."""
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(
            f"gelu(): approximate={approximate!r} is not valid; choose one of "
            f"{', '.join(map(repr, GELU_APPROXIMATIONS))}"
        )
    return GELU.call(_float_tensor("gelu", "input", input), approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """The sigmoid linear unit ``x σ(x)``."""
    _no_inplace("silu", inplace)
    return SiLU.call(_float_tensor("silu", "input", input))


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + e^(βx)) / β``, linear where ``βx > threshold``, as F.softplus."""
    beta = _number("softplus", "beta", beta)
    if beta == 0:
        raise ValueError("softplus(): beta must be non-zero, got beta=0")
    input = _float_tensor("softplus", "input", input)
    return Softplus.call(input, beta, _number("softplus", "threshold", threshold))


def step(input: Tensor) -> Tensor:
    """The perceptron's step: 1 where x > 0 else 0; its gradient is 0 everywhere."""
    return Step.call(_float_tensor("step", "input", input))


def maxout(input: Tensor, weight: Tensor, bias: Tensor | None = None, pieces: int = 2) -> Tensor:
    """``max_k (W_k x + b_k)`` over ``pieces`` affine maps (the slides' Maxout).

    Shape: input ``(*, in)``, weight ``(out·pieces, in)`` (rows ``o·pieces + k`` are piece
    ``k`` of unit ``o``), bias ``(out·pieces,)`` → ``(*, out)``.
    """
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
        raise ValueError(f"maxout(): pieces must be a positive int, got {pieces!r}")
    input = _float_tensor("maxout", "input", input)
    weight = _float_tensor("maxout", "weight", weight)
    rows = weight.shape[0] if weight.dim() else 0
    _check_affine("maxout", input, weight, bias, rows=rows)
    if rows % pieces:
        raise ValueError(f"maxout(): weight has {rows} rows, not a multiple of pieces={pieces}")
    return Maxout.call(input, weight, bias, pieces)


def linear_activation(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    activation: str = "relu",
    *params: float | str,
) -> Tensor:
    """``activation(input Wᵀ + b)`` as one gate: an MLP layer with a single backward.

    The same values and gradients as ``relu(linear(input, weight, bias))`` (and so on for
    each activation), with one autograd node instead of two. ``activation`` is one of
    ``relu, leaky_relu, elu, sigmoid, tanh, gelu, silu, softplus``; ``params`` its
    arguments after the input, e.g. ``linear_activation(x, W, b, "leaky_relu", 0.2)``,
    ``(..., "gelu", "tanh")``, ``(..., "softplus", beta, threshold)``.

    Shape: input ``(*, in)``, weight ``(out, in)``, bias ``(out,)`` → ``(*, out)``.
    """
    fn = "linear_activation"
    params = _activation_params(fn, activation, params)
    input = _float_tensor(fn, "input", input)
    weight = _float_tensor(fn, "weight", weight)
    _check_affine(fn, input, weight, bias, rows=weight.shape[0] if weight.dim() else 0)
    return LinearActivation.call(input, weight, bias, activation, params)


def mlp(
    input: Tensor,
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None] | None = None,
    activation: str = "relu",
    *params: float | str,
) -> Tensor:
    """A whole multilayer perceptron as one gate: ``W_L f(… f(W₁ x + b₁) …) + b_L``.

    ``activation`` (one of relu, leaky_relu, elu, sigmoid, tanh, gelu, silu, softplus, with
    its ``params`` as in :func:`linear_activation`) follows every layer but the last. The
    same values and gradients as the chain of ``linear`` and activation calls, in one
    autograd node whose backward is the slides' layer-by-layer δ recursion (section 8).

    Shape: input ``(*, in)``; ``weights[l]`` ``(n_{l+1}, n_l)`` chaining from ``in`` to the
    output size; ``biases[l]`` ``(n_{l+1},)`` or None (``biases=None``: no biases).
    """
    fn = "mlp"
    params = _activation_params(fn, activation, params)
    input = _float_tensor(fn, "input", input)
    weights = list(weights)
    biases = [None] * len(weights) if biases is None else list(biases)
    if not weights or len(biases) != len(weights):
        raise ValueError(
            f"{fn}(): expected at least one weight and one bias (or None) per weight, got "
            f"{len(weights)} weight(s) and {len(biases)} bias(es)"
        )
    layers: list[Tensor | None] = []
    for i, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        weight = _float_tensor(fn, f"weights[{i}]", weight)
        rows = weight.shape[0] if weight.dim() else 0
        if i == 0:
            _check_affine(fn, input, weight, bias, rows=rows)
        else:
            _check_next_layer(fn, i, input, layers[-2], weight, bias)
        layers += [weight, bias]
    return LayeredNetwork.call(input, activation, params, *layers)


def _mlp_of_module(
    input: Tensor, layers: list[Tensor | None], activation: str, params: tuple
) -> Tensor:
    """``mlp`` for ``torchmanual.nn.MLP``: its own layers are consistent by construction, so
    only the input is checked (with ``mlp``'s messages)."""
    input = _float_tensor("mlp", "input", input)
    first = layers[0]
    mismatch = input.dim() == 0 or input.shape[-1] != first.shape[1]
    mixed = input.dtype != first.dtype and not torch.is_autocast_enabled(input.device.type)
    if mismatch or mixed:
        _check_affine("mlp", input, first, layers[1], rows=first.shape[0])
    return LayeredNetwork.call(input, activation, params, *layers)


def _check_next_layer(
    fn: str, i: int, input: Tensor, previous: Tensor, weight: Tensor, bias: Tensor | None
) -> None:
    """Layer i ≥ 1 of a network: 2-D, fed by the previous layer's outputs, input's dtype."""
    if weight.dim() != 2:
        raise ValueError(
            f"{fn}(): weights[{i}] must be 2-D (out, in), got shape {tuple(weight.shape)}"
        )
    if weight.shape[1] != previous.shape[0]:
        raise ValueError(
            f"{fn}(): weights[{i}] {tuple(weight.shape)} expects {weight.shape[1]} features "
            f"but layer {i - 1} (weight {tuple(previous.shape)}) gives {previous.shape[0]}"
        )
    if bias is not None and _float_tensor(fn, f"biases[{i}]", bias).shape != weight.shape[:1]:
        raise ValueError(
            f"{fn}(): biases[{i}] must have shape ({weight.shape[0]},) to match weights[{i}] "
            f"{tuple(weight.shape)}, got {tuple(bias.shape)}"
        )
    mixed = weight.dtype != input.dtype or (bias is not None and bias.dtype != input.dtype)
    if mixed and not torch.is_autocast_enabled(input.device.type):
        raise TypeError(
            f"{fn}(): every weight and bias must share the input's dtype {input.dtype}, got "
            f"weights[{i}] {weight.dtype}"
            + (f", biases[{i}] {bias.dtype}" if bias is not None else "")
        )


def _activation_params(fn: str, activation: str, params: tuple) -> tuple:
    """A fused layer's activation and its parameters, checked (numbers made floats)."""
    spec = FUSED_ACTIVATIONS.get(activation)
    if spec is not None and not params and not spec.params:
        return ()
    if spec is None:
        raise ValueError(
            f"{fn}(): activation={activation!r} is not valid; choose one of "
            f"{', '.join(FUSED_ACTIVATIONS)}"
        )
    if len(params) != len(spec.params):
        expected = ", ".join(spec.params) or "none"
        raise TypeError(
            f"{fn}(): {activation} takes {len(spec.params)} parameter(s) ({expected}), "
            f"got {len(params)}: {params!r}"
        )
    if activation == "gelu":
        if params[0] not in GELU_APPROXIMATIONS:
            raise ValueError(
                f"{fn}(): approximate={params[0]!r} is not valid; choose one of "
                f"{', '.join(map(repr, GELU_APPROXIMATIONS))}"
            )
        return tuple(params)
    params = tuple(_number(fn, name, p) for name, p in zip(spec.params, params, strict=True))
    if activation == "softplus" and params[0] == 0:
        raise ValueError(f"{fn}(): beta must be non-zero, got beta=0")
    return params


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation per channel (dim 1), as torch.nn.functional.batch_norm.

    Training: normalise with the batch's mean and (biased) variance, and update the running
    statistics in place with ``momentum`` (the running variance uses the unbiased one, as
    torch). Evaluation: normalise with ``running_mean`` and ``running_var``.

    Shape: input ``(N, C)`` or ``(N, C, L)``; every vector ``(C,)``.
    """
    fn = "batch_norm"
    input = _float_tensor(fn, "input", input)
    if input.dim() not in (2, 3):
        raise ValueError(
            f"{fn}(): expected input of shape (N, C) or (N, C, L), got {tuple(input.shape)}"
        )
    channels = input.shape[1]
    vectors = {
        "running_mean": running_mean,
        "running_var": running_var,
        "weight": weight,
        "bias": bias,
    }
    for arg, vector in vectors.items():
        if vector is not None and _float_tensor(fn, arg, vector).shape != (channels,):
            raise ValueError(
                f"{fn}(): {arg} must have shape ({channels},) for input of shape "
                f"{tuple(input.shape)}, got {tuple(vector.shape)}"
            )
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError(
                f"{fn}(): evaluation (training=False) needs running_mean and running_var"
            )
        return BatchNorm.call(input, weight, bias, running_mean, running_var, eps)
    per_channel = input.numel() // max(channels, 1)
    if per_channel <= 1:
        raise ValueError(
            f"{fn}(): expected more than 1 value per channel when training, "
            f"got input of shape {tuple(input.shape)}"
        )
    output = BatchNorm.call(input, weight, bias, None, None, eps)
    if running_mean is not None or running_var is not None:
        with torch.no_grad():
            dims = (0,) if input.dim() == 2 else (0, 2)
            # NOTE: float16/bfloat16 statistics in float32, as torch keeps its running ones.
            stats_input = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
            var, mean = torch.var_mean(stats_input, dim=dims, unbiased=True)
            # NOTE: momentum·new + (1 − momentum)·old, torch's order, for identical statistics.
            if running_mean is not None:
                running_mean.copy_(momentum * mean + (1 - momentum) * running_mean)
            if running_var is not None:
                running_var.copy_(momentum * var + (1 - momentum) * running_var)
    return output


# ---------------------------------------------------------------------------------------
# Losses (slides section 4).
# ---------------------------------------------------------------------------------------


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """The mean squared error ``1/N Σ (ŷ − y)²`` ('sum': no 1/N; 'none': per element)."""
    input = _float_tensor("mse_loss", "input", input)
    target = _float_tensor("mse_loss", "target", target)
    _same_shape("mse_loss", input, target)
    return MSE.call(input, target, _reduction("mse_loss", reduction))


def hinge_loss(scores: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """The slides' hinge loss ``max(0, 1 − y f(x))`` with ``y ∈ {−1, 1}``."""
    scores = _float_tensor("hinge_loss", "scores", scores)
    target = _plus_minus_one_target("hinge_loss", scores, target)
    return Hinge.call(scores, target, _reduction("hinge_loss", reduction))


def logistic_loss(scores: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """The slides' logistic loss ``log(1 + exp(−y f(x)))`` with ``y ∈ {−1, 1}``.

    The same as ``torch.nn.functional.soft_margin_loss``.
    """
    scores = _float_tensor("logistic_loss", "scores", scores)
    target = _plus_minus_one_target("logistic_loss", scores, target)
    return Logistic.call(scores, target, _reduction("logistic_loss", reduction))


def multiclass_svm_loss(
    scores: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """The slides' ``L_i = Σ_{j≠y_i} max(0, s_j − s_{y_i} + margin)``.

    Not divided by the number of classes (torch's ``multi_margin_loss`` is, by C).
    """
    scores = _float_tensor("multiclass_svm_loss", "scores", scores)
    target = _class_target("multiclass_svm_loss", scores, target)
    margin = _number("multiclass_svm_loss", "margin", margin)
    reduction = _reduction("multiclass_svm_loss", reduction)
    return _apply_class_loss(
        "multiclass_svm_loss", MulticlassSVM, scores, target, margin, reduction
    )


def cross_entropy(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy with class indices, as F.cross_entropy; backward ``softmax − onehot``.

    ``weight``, ``label_smoothing`` and targets equal to ``ignore_index`` are torch
    features torchmanual does not implement: using them raises NotImplementedError.
    """
    if weight is not None:
        _unsupported("cross_entropy", weight="<tensor>")
    if label_smoothing != 0.0:
        _unsupported("cross_entropy", label_smoothing=label_smoothing)
    input = _float_tensor("cross_entropy", "input", input)
    target = _class_target("cross_entropy", input, target, ignore_index)
    reduction = _reduction("cross_entropy", reduction)
    return _apply_class_loss(
        "cross_entropy", CrossEntropy, input, target, reduction, ignore_index=ignore_index
    )


def binary_cross_entropy(
    input: Tensor, target: Tensor, reduction: str = "mean", *, weight: Tensor | None = None
) -> Tensor:
    """``−[y log p + (1 − y) log(1 − p)]`` on probabilities p, as F.binary_cross_entropy.

    Each log is clamped at −100 as torch does, so p = 0 or 1 gives a finite loss.
    """
    if weight is not None:
        _unsupported("binary_cross_entropy", weight="<tensor>")
    input = _float_tensor("binary_cross_entropy", "input", input)
    target = _float_tensor("binary_cross_entropy", "target", target)
    _same_shape("binary_cross_entropy", input, target)
    if _checking_values(input):
        bad = input[~((input >= 0) & (input <= 1))]
        if bad.numel():
            raise ValueError(
                "binary_cross_entropy(): input must be probabilities in [0, 1], "
                f"found {bad.flatten()[0].item()} (use binary_cross_entropy_with_logits for scores)"
            )
        # torch refuses these too ("all elements of target should be between 0 and 1").
        bad = target[~((target >= 0) & (target <= 1))]
        if bad.numel():
            raise ValueError(
                f"binary_cross_entropy(): target must be in [0, 1], found {bad.flatten()[0].item()}"
            )
    return BinaryCrossEntropy.call(input, target, _reduction("binary_cross_entropy", reduction))


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    *,
    weight: Tensor | None = None,
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Binary cross-entropy on logits z, stable for any z; backward ``σ(z) − y``.

    The slides' output error ``δ = a − y`` (section 8): sigmoid outputs with cross-entropy.
    """
    fn = "binary_cross_entropy_with_logits"
    if weight is not None:
        _unsupported(fn, weight="<tensor>")
    if pos_weight is not None:
        _unsupported(fn, pos_weight="<tensor>")
    input = _float_tensor(fn, "input", input)
    target = _float_tensor(fn, "target", target)
    _same_shape(fn, input, target)
    return BinaryCrossEntropyWithLogits.call(input, target, _reduction(fn, reduction))


__all__ = [
    "add",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "check_finite",
    "cross_entropy",
    "elu",
    "exp",
    "gelu",
    "hinge_loss",
    "leaky_relu",
    "linear",
    "linear_activation",
    "logistic_loss",
    "maximum",
    "maxout",
    "mlp",
    "mse_loss",
    "mul",
    "multiclass_svm_loss",
    "prelu",
    "reciprocal",
    "relu",
    "scale",
    "shift",
    "sigmoid",
    "silu",
    "softplus",
    "step",
    "tanh",
]
