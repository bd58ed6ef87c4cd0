"""The base class every torchmanual gate, activation and loss derives from.

Besides the slides' contract (``forward``, ``setup_context``, ``backward``, ``jvp``), the base
class carries what makes a hand-written Function cost no more than torch's own op:

- ``apply`` skips ``torch.autograd.Function.apply``'s per-call ``inspect.signature`` binding
  (our forwards take positional arguments only), which on a tiny network costs more than
  the arithmetic;
- ``call`` is ``apply`` that ``torch.compile`` can trace without a graph break (Dynamo
  refuses a Function with a custom ``jvp``, so under compilation ``call`` applies a
  jvp-free twin with the very same ``forward``/``setup_context``/``backward``);
- a class-level ``autocast`` policy, applied once here, decides what a Function does under
  ``torch.autocast`` — as torch's own autocast op lists do for the built-in ops.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch._C._functorch import is_functorch_wrapped_tensor
from torch._functorch.utils import unwrap_dead_wrappers
from torch.autograd import forward_ad
from torch.autograd.function import FunctionCtx, FunctionMeta

# A callable ``observer(function_class, args, output)`` per active torchmanual.Tape.
# NOTE: a plain list, so the hot path with no tape is one truthiness test.
_observers: list[Callable[[type[ManualFunction], tuple[Any, ...], Any], None]] = []

# Autocast policies, named after torch's autocast op lists (torch.amp docs):
FOLLOW = "follow"  # run in the inputs' dtype (elementwise ops, max, batch norm)
LOWER = "lower"  # cast to the autocast dtype (float16/bfloat16): matmuls (linear, maxout)
FLOAT32 = "float32"  # cast float16/bfloat16 to float32: losses, exp/log-sum-exp, softplus
AUTOCAST_POLICIES = (FOLLOW, LOWER, FLOAT32)
_HALF = (torch.float16, torch.bfloat16)


def _save_for_forward_in_dual_level(ctx: Any, *tensors: Tensor | None) -> None:
    """``ctx.save_for_forward``, skipped when no forward-AD dual level is active.

    A ``jvp`` only ever runs inside a dual level (``torch.autograd.forward_ad.dual_level``,
    which ``torch.func.jvp`` and gradcheck's forward-AD checks enter), so outside one the
    tensors would only be held, never read.
    """
    # NOTE: saves a Python-level loop per gate per step, and keeps nothing alive needlessly.
    if forward_ad._current_level >= 0:
        FunctionCtx.save_for_forward(ctx, *tensors)


def _unwrap_dead_wrappers(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """torch's ``unwrap_dead_wrappers`` (what Function.apply does before the C++ apply),
    building a new tuple only when an argument is a functorch wrapper at all.

    With no torch.func transform active every wrapper is dead (it escaped a finished
    transform), so plain tensors are all there is to pass through.
    """
    # NOTE: torch's rebuilds the tuple through a generator every call (~6 µs per apply here).
    for a in args:
        if isinstance(a, Tensor) and is_functorch_wrapped_tensor(a):
            return unwrap_dead_wrappers(args)
    return args


def _call_backward(ctx: Any, *grads: Any) -> Any:
    """What the autograd engine runs for a ManualFunction's node: its ``backward``."""
    return ctx._forward_cls.backward(ctx, *grads)


def _raw_attribute(cls: type, name: str) -> Any:
    """``cls``'s own or inherited class attribute ``name``, unbound (a staticmethod object)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    raise AttributeError(name)


def _policy_by_device(policy: str | dict[str, str]) -> dict[str, str]:
    """A class's ``autocast`` attribute as {device type: policy}; absent devices follow."""
    by_device = {"cpu": policy, "cuda": policy} if isinstance(policy, str) else dict(policy)
    for device, value in by_device.items():
        if value not in AUTOCAST_POLICIES:
            raise ValueError(
                f"autocast policy for {device!r} must be one of {AUTOCAST_POLICIES}, got {value!r}"
            )
    return by_device


def _autocast_device(args: tuple[Any, ...]) -> str | None:
    """The device type of the first tensor argument when autocast is on for it, else None."""
    for a in args:
        if isinstance(a, Tensor):
            device_type = a.device.type
            return device_type if torch.is_autocast_enabled(device_type) else None
    return None


def _autocast_cast(policy: str, device_type: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments cast as torch's autocast casts a built-in op's (float64 is never cast)."""
    if policy == LOWER:
        dtype = torch.get_autocast_dtype(device_type)
        eligible = (torch.float32, *_HALF)
    elif policy == FLOAT32:
        dtype, eligible = torch.float32, _HALF
    else:
        return args
    # NOTE: the casts are ordinary differentiable ops outside the Function, so the gradient
    # reaches a float32 parameter in float32, exactly as with torch's autocast casts.
    return tuple(
        a.to(dtype) if isinstance(a, Tensor) and a.dtype in eligible and a.dtype != dtype else a
        for a in args
    )


def _twin(cls: type, role: str, methods: tuple[str, ...]) -> type[torch.autograd.Function]:
    """A plain ``torch.autograd.Function`` sharing ``cls``'s own forward/backward/... .

    Not a ManualFunction (it is not a new gate; the Tape observes the original's ``apply``),
    so its ``apply`` is torch's own.
    """
    return type(
        cls.__name__,
        (torch.autograd.Function,),
        {
            **{method: _raw_attribute(cls, method) for method in methods},
            "generate_vmap_rule": True,
            "__module__": cls.__module__,
            "__qualname__": f"{cls.__qualname__}.{role}",
            "__doc__": f"{cls.__name__}'s formulas, {role} ({', '.join(methods)}).",
        },
    )


def _make_traceable_apply(
    cls: type, policy: dict[str, str], internal_outputs: bool
) -> Callable[..., Any]:
    """``apply`` for ``torch.compile``: a jvp-free twin of ``cls``, the autocast policy inlined.

    The twin shares ``cls``'s forward, setup_context and backward, so Dynamo traces the
    same formulas into the graph.
    """
    twin = _twin(cls, "traceable", ("forward", "setup_context", "backward"))

    def traceable_apply(*args: Any) -> Any:
        device_type = _autocast_device(args)
        if device_type is None:
            output = twin.apply(*args)
        else:
            cast = _autocast_cast(policy.get(device_type, FOLLOW), device_type, args)
            with torch.autocast(device_type, enabled=False):
                output = twin.apply(*cast)
        return output[0] if internal_outputs else output

    return traceable_apply


class _ManualFunctionMeta(FunctionMeta):
    """Per class, once: the fast ``apply``'s pieces, the compile twin, the autocast policy."""

    def __init__(cls, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> None:
        super().__init__(name, bases, attrs)
        # torch.autograd.Function.apply minus its inspect.signature() default binding: the
        # C++ apply, bound to this class.
        cls._base_apply = super(torch.autograd.Function, cls).apply
        forward = _raw_attribute(cls, "forward")
        parameters = inspect.signature(getattr(forward, "__func__", forward)).parameters.values()
        # NOTE: the shortcut is only exact when forward has no defaults to fill in.
        positional = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        cls._positional_only = all(
            p.default is p.empty and p.kind in positional for p in parameters
        )
        cls._backward_cls.save_for_forward = _save_for_forward_in_dual_level
        # NOTE: the engine calls ctx.apply(*grads) per backward; torch's generic one looks up
        # vjp/backward and a boxing flag each time. Ours define backward only: call it.
        cls._backward_cls.apply = _call_backward
        cls._autocast_policy = _policy_by_device(cls.autocast)
        if "forward" in vars(cls) or name != "ManualFunction":
            traceable = _make_traceable_apply(cls, cls._autocast_policy, cls.internal_outputs)
            cls._traceable_apply = staticmethod(traceable)
            if cls.internal_outputs:
                # NOTE: torch.func transforms re-enter ``apply`` at their lowest level and
                # need forward's whole tuple there; a twin's plain apply gives them that.
                methods = ("forward", "setup_context", "backward", "jvp")
                cls._functorch_twin = _twin(cls, "functorch", methods)


class ManualFunction(torch.autograd.Function, metaclass=_ManualFunctionMeta):
    """A ``torch.autograd.Function`` whose ``backward`` is a slide's formula written by hand.

    Subclasses define ``forward`` (compute only), ``setup_context`` (save what backward
    needs), ``backward`` (upstream gradient × local gradient, in differentiable tensor
    ops, so double backward works) and ``jvp`` (forward-mode AD). ``generate_vmap_rule``
    lets ``torch.func.vmap`` batch them.

    ``autocast`` says what the Function does under ``torch.autocast``, mirroring torch's
    autocast op lists: ``"follow"`` (default) runs in the inputs' dtype, ``"lower"`` casts
    float32 inputs to the autocast dtype (matmuls), ``"float32"`` casts float16/bfloat16
    inputs to float32 (losses, exp); a dict gives a policy per device type. The Function
    itself then runs with autocast off, so its backward sees one dtype throughout.

    ``internal_outputs = True``: ``forward`` returns ``(value, *internal)`` — tensors the
    backward reads that are not part of the gate's value (Maxout's winning pieces, a fused
    layer's pre-activation), returned rather than recomputed — and ``apply``/``call``
    return the value alone.

    Call ``Fn.call(*args)`` (what ``torchmanual.functional`` does) to be traceable by
    ``torch.compile``; ``Fn.apply(*args)`` is the same thing in eager mode.
    """

    generate_vmap_rule = True
    autocast: ClassVar[str | dict[str, str]] = FOLLOW
    internal_outputs: ClassVar[bool] = False

    @classmethod
    def apply(cls, *args: Any) -> Any:
        if torch._C._is_any_autocast_enabled():
            device_type = _autocast_device(args)
            if device_type is not None:
                policy = cls._autocast_policy.get(device_type, FOLLOW)
                cast = _autocast_cast(policy, device_type, args)
                with torch.autocast(device_type, enabled=False):
                    return cls.apply(*cast)
        if not torch._C._are_functorch_transforms_active():
            if cls._positional_only:
                # NOTE: what torch.autograd.Function.apply does, less its per-call
                # inspect.signature() binding (~3x the cost of a tiny gate's arithmetic).
                output = cls._base_apply(*_unwrap_dead_wrappers(args))
            else:
                output = super().apply(*args)
        elif cls.internal_outputs:
            output = cls._functorch_twin.apply(*args)
        else:
            output = super().apply(*args)
        if cls.internal_outputs:
            output = output[0]
        if _observers:
            for observe in _observers:
                observe(cls, args, output)
        return output

    @classmethod
    def call(cls, *args: Any) -> Any:
        """``apply``, in a form ``torch.compile(fullgraph=True)`` traces without a break.

        Eagerly this is ``apply`` (the Tape sees it). While Dynamo traces, it applies the
        class's jvp-free twin instead: Dynamo cannot trace a Function that defines ``jvp``.
        """
        if torch.compiler.is_compiling():
            return cls._traceable_apply(*args)
        return cls.apply(*args)


def opmath(t: Tensor | None) -> Tensor | None:
    """float16/bfloat16 as float32, the precision torch's own kernels compute them in."""
    # NOTE: a multi-op formula rounded to half after every op drifts (GELU'(x) by ~8% near
    # its zero; a variance summed in half loses the digits batch norm divides by);
    # computing in float32 and rounding once is what torch does.
    if t is not None and t.dtype in _HALF:
        return t.float()
    return t


def tangent(t: Tensor | None, like: Tensor) -> Tensor:
    """A jvp input tangent, with ``None`` (no tangent given) read as zeros."""
    return torch.zeros_like(like) if t is None else t


def sum_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum a gradient over the dimensions an input was broadcast along.

    The slides' rule at a branch: a value that fed several places receives the sum of
    all the flows that come back.
    """
    return grad if grad.shape == shape else grad.sum_to_size(shape)
