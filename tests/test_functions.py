"""Registry-driven tests: every registered Function × every check, against torch's own ops.

Nothing here names a particular Function: registering one in ``torchmanual.autograd`` is
what puts it under all of these tests.
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch

import torchmanual.autograd as autograd
from torchmanual.autograd import REGISTRY, ManualFunction
from torchmanual.autograd.registry import Entry, Sample
from torchmanual.gradcheck import CHECKS, check_entry, relative_error

NAMES = sorted(REGISTRY)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
# (rtol, atol) per dtype for the comparison with torch; float32 may be loosened per entry.
TOLERANCES = {
    torch.float64: (1e-12, 1e-14),
    torch.float16: (2e-3, 1e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def test_every_function_is_registered():
    defined = {
        cls
        for cls in _all_subclasses(ManualFunction)
        if cls.__module__.startswith("torchmanual.autograd")
    }
    registered = {entry.function for entry in REGISTRY.values()}
    assert defined - registered == set(), "register these so the gradcheck suite covers them"
    assert len(REGISTRY) >= len(defined)


@pytest.mark.parametrize("name", NAMES)
def test_function_is_written_the_documented_way(name):
    fn = REGISTRY[name].function
    for method in ("forward", "setup_context", "backward", "jvp"):
        assert method in vars(fn), f"{name} must define its own {method}"
    assert fn.generate_vmap_rule is True
    assert fn.__doc__ and ">>>" in fn.__doc__, f"{name} needs a docstring with an example"
    source = inspect.getsource(fn)
    # torch's backward kernels (e.g. aten.sigmoid_backward) or autograd itself would make
    # the backward torch's, not the slide's formula.
    forbidden = re.search(r"(?<!save_for)_backward\(|autograd\.grad\(|torch\.ops\.aten", source)
    assert forbidden is None, f"{name}.backward must be the formula, not {forbidden.group()}"
    assert "ctx.saved_tensors = " not in source


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_family(name, check):
    result = check_entry(REGISTRY[name], checks=(check,))
    assert result.checks[check], result.errors.get(check)
    # The analytic gradient agrees with the slides' centred numerical gradient.
    assert result.max_rel_error < 1e-6, f"{name}: relative error {result.max_rel_error:.2e}"


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], grad_out: torch.Tensor):
    if not inputs or not out.requires_grad:
        return [None] * len(inputs)
    return torch.autograd.grad(out, inputs, grad_out, allow_unused=True)


def _assert_matches_torch(
    entry: Entry, sample: Sample, rtol: float, atol: float, grads: bool = True
) -> None:
    ours, theirs = sample.clone(), sample.clone()
    out = entry(*ours.args)
    expected = entry.reference(*theirs.args)
    where = f"{entry.name} [{sample.label}]"
    assert out.shape == expected.shape, f"{where}: shape {out.shape} != torch's {expected.shape}"
    assert out.dtype == expected.dtype, f"{where}: dtype {out.dtype} != torch's {expected.dtype}"
    torch.testing.assert_close(
        out, expected, rtol=rtol, atol=atol, equal_nan=True, msg=lambda m: f"{where} forward: {m}"
    )
    if not grads:
        return
    generator = torch.Generator().manual_seed(1)
    grad_out = torch.randn(expected.shape, generator=generator, dtype=torch.float64).to(expected)
    for i, (g, g_ref) in enumerate(
        zip(
            _grads(out, ours.differentiable, grad_out),
            _grads(expected, theirs.differentiable, grad_out),
            strict=True,
        )
    ):
        x = ours.differentiable[i]
        g = torch.zeros_like(x) if g is None else g
        g_ref = torch.zeros_like(x) if g_ref is None else g_ref
        assert g.shape == x.shape and g.dtype == x.dtype, f"{where}: gradient {i} shape/dtype"
        torch.testing.assert_close(
            g,
            g_ref,
            rtol=rtol,
            atol=atol,
            equal_nan=True,
            msg=lambda m, i=i, g=g, g_ref=g_ref: (
                f"{where} gradient of input {i}: {m} "
                f"(relative error {relative_error(g.nan_to_num(), g_ref.nan_to_num()):.2e})"
            ),
        )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_matches_torch(name, dtype, device):
    entry = REGISTRY[name]
    rtol, atol = TOLERANCES.get(dtype, entry.float32_tol)
    for sample in entry.samples(dtype, torch.device(device)):
        _assert_matches_torch(entry, sample, rtol, atol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].edge_samples])
def test_matches_torch_at_kinks_and_extremes(name, dtype, device):
    """Exactly 0, ±1000, tiny values, ±inf and nan: same values, same gradients, same nans."""
    entry = REGISTRY[name]
    rtol, atol = TOLERANCES.get(dtype, entry.float32_tol)
    for sample in entry.edge_samples(dtype, torch.device(device)):
        _assert_matches_torch(entry, sample, rtol, atol)


# Functions whose CPU values and gradients equal torch's to the last bit (float64, float32) on
# every sample and edge sample; VALUES_BIT_EXACT, values only. The other gradients differ in
# last bits where torch's kernel calls an exp/erf/tanh of its own (SLEEF or libm, where
# torch.exp is MKL's) — ELU, GELU, Softplus, the fused layers using them, Logistic,
# CrossEntropy, SiLU on a strided float32 input — or sums in another order (MulticlassSVM's
# value, BatchNorm).
BIT_EXACT = {
    "Add", "Mul", "Max", "Exp", "Reciprocal", "Scale", "Shift", "Linear", "Sigmoid", "Tanh",
    "ReLU", "LeakyReLU", "PReLU", "Step", "Maxout", "MSE", "Hinge", "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
}  # fmt: skip
VALUES_BIT_EXACT = BIT_EXACT | {
    "Logistic", "CrossEntropy", "ELU", "GELU", "SiLU", "Softplus", "LinearActivation",
    "LayeredNetwork", "BatchNorm",
}  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", sorted(VALUES_BIT_EXACT))
def test_bit_for_bit_with_torch(name, dtype):
    """Values (and, for BIT_EXACT, gradients under a random upstream) equal torch's exactly."""
    entry = REGISTRY[name]
    cpu = torch.device("cpu")
    edges = entry.edge_samples(dtype, cpu) if entry.edge_samples else []
    for sample in entry.samples(dtype, cpu) + edges:
        _assert_matches_torch(entry, sample, 0.0, 0.0, grads=name in BIT_EXACT)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_matches_torch(name, dtype):
    entry = REGISTRY[name]
    rtol, atol = TOLERANCES[dtype]
    for sample in entry.samples(dtype, torch.device("cpu")):
        _assert_matches_torch(entry, sample, rtol, atol)


def test_registry_is_exported():
    assert autograd.REGISTRY is REGISTRY
    assert {"Add", "Mul", "Max", "Exp", "Reciprocal", "Scale", "Shift", "Linear"} <= set(REGISTRY)


def test_a_tensor_that_escaped_a_torch_func_transform_is_unwrapped_as_torch_does():
    """A tensor kept from inside ``torch.func.grad`` is a dead functorch wrapper afterwards;
    apply must hand forward the plain tensor underneath (torch's Function.apply does)."""
    from torch._C._functorch import is_functorch_wrapped_tensor

    from torchmanual.autograd.activations import Sigmoid

    escaped = []
    torch.func.grad(lambda x: escaped.append(x) or x.sum())(torch.tensor([0.5, -1.0]))
    (dead,) = escaped
    assert is_functorch_wrapped_tensor(dead)
    seen = []
    forward = Sigmoid.forward
    try:
        Sigmoid.forward = staticmethod(lambda x: seen.append(x) or forward(x))
        out = Sigmoid.apply(dead)
    finally:
        Sigmoid.forward = forward
    assert seen and not any(is_functorch_wrapped_tensor(x) for x in seen)
    assert not out.requires_grad
    assert torch.equal(out, torch.sigmoid(torch.tensor([0.5, -1.0])))
