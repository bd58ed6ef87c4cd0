"""Mixed precision: every Function under ``torch.autocast``, against torch's own ops.

Each Function carries an autocast policy mirroring torch's autocast op lists (see
``ManualFunction``): matmul-like gates (Linear, Maxout, PReLU, the fused layers) run in the
autocast dtype, losses in float32, the rest in their inputs' dtype. The documented
tolerances (README, "Mixed precision"):

- against torch's reference under the same autocast: the same output dtype, and values and
  gradients within ``rtol=1.6e-2, atol=2e-2`` (bfloat16's ulp is 2⁻⁸ relative; the two
  sides may round intermediate results differently);
- against float32 without autocast: within ``rtol=atol=5e-2`` for the lower-precision
  gates (bfloat16 inputs to a matmul), and float32's own ``rtol=atol=1e-5`` for the rest,
  which compute in float32 when given float32 inputs.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as TF

import torchmanual.functional as F
import torchmanual.nn as tnn
from torchmanual.autograd import REGISTRY
from torchmanual.autograd.function import FLOAT32, FOLLOW, LOWER
from torchmanual.autograd.registry import Entry, Sample
from torchmanual.optim import SGD

NAMES = sorted(REGISTRY)
AUTOCAST_TOL = {"rtol": 1.6e-2, "atol": 2e-2}
LOWER_VS_FLOAT32_TOL = {"rtol": 5e-2, "atol": 5e-2}
FLOAT32_TOL = {"rtol": 1e-5, "atol": 1e-5}
LOSSES = (
    "MSE",
    "Hinge",
    "Logistic",
    "MulticlassSVM",
    "CrossEntropy",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
)


def _policy(name: str, device: str = "cpu") -> str:
    return REGISTRY[name].function._autocast_policy.get(device, FOLLOW)


def _outputs_and_grads(fn, sample: Sample, autocast: str | None, dtype=torch.bfloat16):
    """fn's output under autocast (or not) and its gradients for a fixed upstream gradient."""
    args = sample.clone().args
    if autocast is None:
        out = fn(*args)
    else:
        with torch.autocast(autocast, dtype=dtype):
            out = fn(*args)
    wrt = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    if not wrt or not out.requires_grad or out.numel() == 0:
        return out, []
    generator = torch.Generator().manual_seed(0)
    grad_out = torch.randn(out.shape, generator=generator).to(out)
    # NOTE: backward outside the autocast region, as torch recommends.
    return out, torch.autograd.grad(out, wrt, grad_out, allow_unused=True)


def _close(ours, theirs, where: str, **tol) -> None:
    torch.testing.assert_close(
        ours.float(), theirs.float(), equal_nan=True, msg=lambda m: f"{where}: {m}", **tol
    )


def _compare(entry: Entry, sample: Sample, ref_autocast: str | None, tol: dict) -> None:
    ours, our_grads = _outputs_and_grads(entry, sample, "cpu")
    theirs, their_grads = _outputs_and_grads(entry.reference, sample, ref_autocast)
    where = f"{entry.name} [{sample.label}]"
    if ref_autocast is not None:
        assert ours.dtype == theirs.dtype, f"{where}: {ours.dtype} != torch's {theirs.dtype}"
    _close(ours, theirs, f"{where} forward", **tol)
    # (Step's torch reference carries no graph at all: a zero gradient, as ours is.)
    for i, (g, h) in enumerate(itertools.zip_longest(our_grads, their_grads)):
        if g is None or h is None:
            assert (g is None or not g.any()) and (h is None or not h.any()), where
            continue
        assert g.dtype == h.dtype == torch.float32, f"{where}: gradient {i} dtype"
        _close(g, h, f"{where} gradient {i}", **tol)


@pytest.mark.parametrize("name", NAMES)
def test_matches_torch_under_cpu_bfloat16_autocast(name):
    """Same output dtype as torch's op under the same autocast; values and gradients close."""
    entry = REGISTRY[name]
    for sample in entry.samples(torch.float32, torch.device("cpu")):
        _compare(entry, sample, "cpu", AUTOCAST_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_within_documented_tolerance_of_float32(name):
    entry = REGISTRY[name]
    tol = LOWER_VS_FLOAT32_TOL if _policy(name) == LOWER else FLOAT32_TOL
    for sample in entry.samples(torch.float32, torch.device("cpu")):
        _compare(entry, sample, None, tol)


def test_policies_mirror_torchs_autocast_lists():
    lower = {n for n in NAMES if _policy(n) == LOWER}
    float32 = {n for n in NAMES if _policy(n) == FLOAT32}
    assert lower == {"Linear", "Maxout", "PReLU", "LinearActivation", "LayeredNetwork"}
    assert float32 == set(LOSSES)
    cuda_float32 = {n for n in NAMES if _policy(n, "cuda") == FLOAT32}
    assert cuda_float32 == set(LOSSES) | {"Exp", "Reciprocal", "Softplus"}


@pytest.mark.parametrize("name", LOSSES)
def test_losses_are_computed_in_float32_from_half_inputs(name):
    """A bfloat16 input (say, logits from a bfloat16 layer) gives a float32 loss."""
    entry = REGISTRY[name]
    for sample in entry.samples(torch.bfloat16, torch.device("cpu")):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = entry(*sample.clone().args)
        assert out.dtype == torch.float32, f"{name} [{sample.label}]: {out.dtype}"
        upcast = Sample(tuple(_float(a) for a in sample.args), sample.label)
        expected = entry(*upcast.clone().args)
        _close(out, expected, f"{name} [{sample.label}]", rtol=1e-6, atol=1e-6)


def _float(a):
    if isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16:
        return a.detach().float().requires_grad_(a.requires_grad)
    return a


def test_float64_is_never_cast():
    x = torch.randn(4, 3, dtype=torch.float64)
    w = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.linear(x, w).dtype == torch.float64
        assert F.cross_entropy(x, torch.tensor([0, 1, 2, 0])).dtype == torch.float64


def _torch_twin(model: tnn.MLP) -> torch.nn.Sequential:
    layers = OrderedDict()
    for name, module in model.named_children():
        if isinstance(module, tnn.Linear):
            layers[name] = torch.nn.Linear(module.in_features, module.out_features)
        elif isinstance(module, tnn.BatchNorm1d):
            layers[name] = torch.nn.BatchNorm1d(module.num_features)
        else:
            layers[name] = torch.nn.ReLU()
    twin = torch.nn.Sequential(layers)
    twin.load_state_dict(model.state_dict())
    return twin


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch norm"])
def test_mlp_training_step_under_autocast_tracks_torch(batch_norm):
    """Three SGD steps of an MLP under CPU bfloat16 autocast, torchmanual and torch.nn alike."""
    torch.manual_seed(0)
    ours = tnn.MLP([6, 32, 32, 4], batch_norm=batch_norm)
    theirs = _torch_twin(ours)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 6, generator=g), torch.randint(4, (16,), generator=g)
    losses = {}
    for side, model, loss_fn, optimizer in (
        ("ours", ours, F.cross_entropy, SGD(ours.parameters(), lr=0.1)),
        ("torch", theirs, TF.cross_entropy, torch.optim.SGD(theirs.parameters(), lr=0.1)),
    ):
        for _ in range(3):
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(x)
                loss = loss_fn(logits, y)
            assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
            loss.backward()
            optimizer.step()
        losses[side] = loss.item()
        assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(losses["ours"], losses["torch"], rtol=1e-2, atol=1e-2)
    for (name, p), q in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=2e-2, atol=2e-2, msg=name)


def test_fused_and_per_gate_mlp_agree_under_autocast():
    torch.manual_seed(0)
    fused = tnn.MLP([5, 16, 3], activation="tanh")
    per_gate = tnn.MLP([5, 16, 3], activation="tanh")
    per_gate.load_state_dict(fused.state_dict())
    per_gate.fuse = False
    x = torch.randn(7, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = fused(x), per_gate(x)
    assert a.dtype == b.dtype == torch.bfloat16
    torch.testing.assert_close(a, b, **AUTOCAST_TOL)


# --- CUDA: float16 and bfloat16 (skipped without a GPU) ----------------------------------

CUDA_DTYPES = [torch.float16, torch.bfloat16]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", CUDA_DTYPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_matches_torch_under_cuda_autocast(name, dtype):
    entry = REGISTRY[name]
    for sample in entry.samples(torch.float32, torch.device("cuda")):
        ours, our_grads = _outputs_and_grads(entry, sample, "cuda", dtype)
        try:
            theirs, their_grads = _outputs_and_grads(entry.reference, sample, "cuda", dtype)
        except RuntimeError:
            # torch refuses binary_cross_entropy under CUDA autocast ("unsafe to autocast");
            # torchmanual computes it in float32: compare with float32.
            theirs, their_grads = _outputs_and_grads(entry.reference, sample, None)
        where = f"{name} [{sample.label}] {dtype}"
        assert ours.dtype == theirs.dtype, f"{where}: {ours.dtype} != {theirs.dtype}"
        _close(ours, theirs, where, rtol=2e-2, atol=2e-2)
        for g, h in itertools.zip_longest(our_grads, their_grads):
            if g is not None and h is not None:
                _close(g, h, f"{where} gradient", rtol=2e-2, atol=2e-2)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", CUDA_DTYPES, ids=str)
def test_mlp_training_step_under_cuda_autocast(dtype):
    torch.manual_seed(0)
    model = tnn.MLP([6, 32, 4]).cuda()
    x, y = torch.randn(16, 6, device="cuda"), torch.randint(4, (16,), device="cuda")
    optimizer = SGD(model.parameters(), lr=0.1)
    with torch.autocast("cuda", dtype=dtype):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    assert logits.dtype == dtype and loss.dtype == torch.float32
    loss.backward()
    optimizer.step()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())
