"""torch.compile: every registered Function traces, forward and backward, with no graph break.

``fullgraph=True`` turns any graph break into an error, so each test below proves that Dynamo
captured the whole call — the Function's forward and (Dynamo speculates it at trace time)
its hand-written backward — and the AOT backends then trace both into one joint graph.
The tests use the cheap ``aot_eager`` backend (no code generation); one test runs inductor.
"""

from __future__ import annotations

import pytest
import torch

import torchmanual.functional as F
import torchmanual.nn as tnn
from torchmanual.autograd import REGISTRY
from torchmanual.autograd.registry import Entry, Sample
from torchmanual.optim import SGD

NAMES = sorted(REGISTRY)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _first_sample(entry: Entry) -> Sample:
    """The first float32 sample whose tensors are non-empty and need a gradient."""
    for sample in entry.samples(torch.float32, torch.device("cpu")):
        tensors = [a for a in sample.args if isinstance(a, torch.Tensor)]
        if sample.differentiable and all(t.numel() for t in tensors):
            return sample
    raise AssertionError(f"{entry.name} has no non-empty differentiable sample")


def _traceable(entry: Entry, args: tuple):
    """``entry.function.call`` with the tensors as inputs and everything else as constants."""
    positions = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]

    def fn(*tensors):
        full = list(args)
        for i, t in zip(positions, tensors, strict=True):
            full[i] = t
        return entry.function.call(*full)

    return fn, [args[i] for i in positions]


@pytest.mark.parametrize("name", NAMES)
def test_function_traces_forward_and_backward_without_graph_break(name):
    entry = REGISTRY[name]
    sample = _first_sample(entry)
    eager_args, compiled_args = sample.clone().args, sample.clone().args
    fn, tensors = _traceable(entry, compiled_args)
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    out = compiled(*tensors)  # a graph break would raise here
    expected = entry(*eager_args)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    grad_out = torch.randn(expected.shape, generator=torch.Generator().manual_seed(0))
    wrt = [t for t in tensors if t.requires_grad]
    eager_wrt = [a for a in eager_args if isinstance(a, torch.Tensor) and a.requires_grad]
    grads = torch.autograd.grad(out, wrt, grad_out, allow_unused=True)
    expected_grads = torch.autograd.grad(expected, eager_wrt, grad_out, allow_unused=True)
    for g, e in zip(grads, expected_grads, strict=True):
        if e is None:
            assert g is None or not g.any()
        else:
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_explain_reports_one_graph_and_no_break():
    """torch._dynamo.explain on a per-gate network: one graph, zero breaks."""
    x = torch.randn(4, 3)
    w = torch.randn(5, 3, requires_grad=True)
    b = torch.randn(5, requires_grad=True)
    y = torch.tensor([0, 4, 2, 1])

    def loss(x, w, b):
        h = F.tanh(F.add(F.mul(F.linear(x, w, b), 2.0), 1.0))
        return F.cross_entropy(F.relu(h), y)

    explanation = torch._dynamo.explain(loss)(x, w, b)
    assert explanation.graph_count == 1
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: tnn.MLP([6, 16, 16, 3]), id="MLP fused"),
        # (hidden 8 × 1024 ≥ 4096 values: ReLU's backward takes its large-tensor path)
        pytest.param(lambda: tnn.MLP([6, 1024, 3]), id="MLP wide"),
        pytest.param(lambda: torch.nn.Sequential(tnn.Linear(6, 1024), tnn.ReLU()), id="ReLU wide"),
        pytest.param(lambda: tnn.MLP([6, 16, 3], activation="gelu"), id="MLP gelu"),
        pytest.param(lambda: tnn.MLP([6, 16, 3], batch_norm=True), id="MLP batch norm"),
        pytest.param(lambda: tnn.MLP([6, 16, 3], activation="maxout"), id="MLP maxout"),
        pytest.param(lambda: tnn.MLP([6, 16, 3], activation="prelu"), id="MLP prelu"),
    ],
)
def test_models_train_under_compile_like_eager(make):
    """A compiled training step (fullgraph forward + loss) gives eager's parameters."""
    torch.manual_seed(0)
    eager_model = make()
    compiled_model = make()
    compiled_model.load_state_dict(eager_model.state_dict())
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    y = torch.randint(3, (8,), generator=torch.Generator().manual_seed(2))
    eager_loss = lambda x, y: F.cross_entropy(eager_model(x), y)  # noqa: E731
    compiled_loss = torch.compile(
        lambda x, y: F.cross_entropy(compiled_model(x), y), fullgraph=True, backend="aot_eager"
    )
    for model, loss_fn in ((eager_model, eager_loss), (compiled_model, compiled_loss)):
        optimizer = SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            loss_fn(x, y).backward()
            optimizer.step()
    pairs = zip(eager_model.state_dict().items(), compiled_model.state_dict().values(), strict=True)
    for (name, p), q in pairs:
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)


def test_inductor_compiles_a_training_step():
    """The one inductor test: generated code for the fused MLP and the loss matches eager."""
    torch.manual_seed(0)
    model = tnn.MLP([6, 16, 3])
    x, y = torch.randn(8, 6), torch.randint(3, (8,))
    expected = F.cross_entropy(model(x), y)
    expected_grads = torch.autograd.grad(expected, list(model.parameters()))
    compiled = torch.compile(lambda x, y: F.cross_entropy(model(x), y), fullgraph=True)
    loss = compiled(x, y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
