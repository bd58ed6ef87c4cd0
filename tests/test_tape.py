"""torchmanual.Tape: the slides' backward walkthrough recorded from real code."""

import gc
import json
import re
import weakref
from typing import Any

import pytest
import torch

import torchmanual.functional as F
from torchmanual.autograd import function
from torchmanual.autograd.function import ManualFunction
from torchmanual.tape import Tape, format_value


def scalars(*values: float) -> list[torch.Tensor]:
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]


def r2(t: torch.Tensor | None) -> float | None:
    """Two decimals, as the slides print every wire."""
    return None if t is None else round(t.item(), 2)


@pytest.fixture(autouse=True)
def no_tape_left_behind():
    """Every test starts and ends with no observer: a leaked one would record everywhere."""
    assert function._observers == []
    yield
    assert function._observers == []


def neuron_tape(one_sigmoid_gate: bool = False) -> tuple[Tape, dict[str, torch.Tensor]]:
    w0, x0, w1, x1, w2 = scalars(2.0, -1.0, -3.0, -2.0, -3.0)
    named = {"w0": w0, "x0": x0, "w1": w1, "x1": x1, "w2": w2}
    with Tape(names=named) as tape:
        dot = F.add(F.add(F.mul(w0, x0), F.mul(w1, x1)), w2)
        if one_sigmoid_gate:
            f = F.sigmoid(dot)
        else:
            f = F.reciprocal(F.shift(F.exp(F.scale(dot, -1.0)), 1.0))
    f.backward()
    return tape, named


# ---------------------------------------------------------------------------------------
# The slides' numbers, where the slides put them.
# ---------------------------------------------------------------------------------------


def test_add_mul_circuit():
    x, y, z = scalars(-2.0, 5.0, -4.0)
    with Tape() as tape:
        q = F.add(x, y)
        f = F.mul(q, z)
    f.backward()
    add, mul = tape.records
    assert (add.gate, mul.gate) == ("Add", "Mul")
    assert add.output.item() == 3.0 and mul.output.item() == -12.0
    assert mul.parents == [add.id, None]  # q came from the Add gate; z from outside
    assert mul.upstream.item() == 1.0
    assert [g.item() for g in mul.local] == [-4.0, 3.0]  # multiply switches: (z, q)
    assert [g.item() for g in mul.downstream] == [-4.0, 3.0]  # ∂f/∂q = z, ∂f/∂z = q
    assert add.upstream.item() == -4.0
    assert [g.item() for g in add.downstream] == [-4.0, -4.0]  # add distributes


def test_sigmoid_neuron_gate_by_gate_has_the_slides_numbers():
    tape, named = neuron_tape()
    mul0, mul1, add0, add1, negate, exp, plus1, inv = tape.records
    assert [r.gate for r in tape.records] == [
        "Mul",
        "Mul",
        "Add",
        "Add",
        "Scale",
        "Exp",
        "Shift",
        "Reciprocal",
    ]
    # Forward: dot = 1, output 0.73 (and 1.37 into 1/x).
    assert add1.output.item() == 1.0
    assert r2(plus1.output) == 1.37 and r2(inv.output) == 0.73
    # Backward, gate by gate, as the slides walk it.
    assert r2(inv.upstream) == 1.00
    assert r2(inv.local[0]) == -0.53 and r2(inv.downstream[0]) == -0.53  # (-1/1.37²)(1.00)
    assert r2(plus1.upstream) == -0.53 and r2(plus1.local[0]) == 1.00
    assert r2(plus1.downstream[0]) == -0.53  # +1: (1)(-0.53)
    assert plus1.downstream[1] is None  # the constant 1 gets no gradient
    assert r2(exp.local[0]) == 0.37 and r2(exp.downstream[0]) == -0.20  # (e^-1)(-0.53)
    assert negate.local[0].item() == -1.0 and r2(negate.downstream[0]) == 0.20  # (-1)(-0.20)
    assert [r2(g) for g in add1.downstream] == [0.20, 0.20]  # add distributes; w2 gets 0.20
    assert [r2(g) for g in add0.downstream] == [0.20, 0.20]
    assert [r2(g) for g in mul0.downstream] == [-0.20, 0.39]  # w0: [-1]×[0.2], x0: [2]×[0.2]
    assert [r2(g) for g in mul1.downstream] == [-0.39, -0.59]  # w1, x1
    assert {leaf.name: r2(leaf.grad) for leaf in tape.leaves} == {
        "w0": -0.20,
        "x0": 0.39,
        "w1": -0.39,
        "x1": -0.59,
        "w2": 0.20,
    }
    # The tape's gradients are the ones autograd delivered.
    for leaf in tape.leaves:
        assert leaf.grad.item() == named[leaf.name].grad.item()


def test_sigmoid_as_one_gate_gives_0_20_in_one_step():
    tape, _ = neuron_tape(one_sigmoid_gate=True)
    sigmoid = tape.records[-1]
    assert sigmoid.gate == "Sigmoid" and r2(sigmoid.output) == 0.73
    assert r2(sigmoid.local[0]) == 0.20  # σ(1 − σ) = (0.73)(0.27)
    assert r2(sigmoid.downstream[0]) == 0.20
    gates, _ = neuron_tape()
    assert {leaf.name: r2(leaf.grad) for leaf in tape.leaves} == {
        leaf.name: r2(leaf.grad) for leaf in gates.leaves
    }


def test_table_walks_backward_with_the_slides_numbers():
    tape, _ = neuron_tape()
    text = str(tape)
    gate_rows = [line.split()[1] for line in text.splitlines() if re.match(r"#\d", line)]
    assert gate_rows == ["Reciprocal", "Shift", "Exp", "Scale", "Add", "Add", "Mul", "Mul"]
    reciprocal_row = next(line for line in text.splitlines() if "Reciprocal" in line)
    assert reciprocal_row.split()[-4:] == ["0.73", "1.00", "-0.53", "-0.53"]
    exp_row = next(line for line in text.splitlines() if " Exp " in line)
    assert exp_row.split()[-3:] == ["-0.53", "0.37", "-0.20"]
    assert "x0 = -1.00" in text and "grad 0.39" in text and "grad -0.59" in text


# ---------------------------------------------------------------------------------------
# Local derivatives.
# ---------------------------------------------------------------------------------------


def test_downstream_is_local_times_upstream_for_elementwise_gates():
    g = torch.Generator().manual_seed(1)
    a, b = (torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True) for _ in "ab")
    with Tape() as tape:
        out = F.tanh(F.maximum(F.relu(F.mul(a, b)), F.leaky_relu(F.add(a, b), 0.1)))
        out = F.exp(F.scale(F.softplus(out), 0.5))
    out.sum().backward()
    assert len(tape.records) == 9
    for record in tape.records:
        assert record.local is not None, record.gate
        for i, x in enumerate(record.inputs):
            if isinstance(x, torch.Tensor):
                expected = record.local[i] * record.upstream
                torch.testing.assert_close(record.downstream[i], expected, rtol=1e-12, atol=0)


def test_local_derivatives_are_the_gates_patterns():
    x, y = (torch.tensor([4.0, 1.0, -2.0], requires_grad=True) for _ in "xy")
    with torch.no_grad():
        y.copy_(torch.tensor([2.0, 3.0, -2.0]))
    with Tape() as tape:
        F.maximum(x, y)
        F.mul(x, y)
        F.relu(torch.tensor([-1.0, 0.0, 2.0]))
    max_, mul, relu = tape.records
    assert max_.local[0].tolist() == [1.0, 0.0, 0.5]  # max routes (a tie splits, as torch)
    assert max_.local[1].tolist() == [0.0, 1.0, 0.5]
    assert mul.local[0].tolist() == y.tolist()  # multiply switches
    assert mul.local[1].tolist() == x.tolist()
    assert relu.local[0].tolist() == [0.0, 0.0, 1.0]  # ReLU'(0) = 0


class _WrongOnPurpose(ManualFunction):
    """2x forward with a backward that says 3: the tape must report the Function's own 3."""

    elementwise = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return 2 * x

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return 3 * grad


def test_local_derivative_comes_from_the_functions_own_backward():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with Tape() as tape:
        _WrongOnPurpose.apply(x)
    assert tape.records[0].local[0].tolist() == [3.0, 3.0]
    assert len(tape.records) == 1  # the replay that computed it was not recorded


def test_no_local_for_broadcast_inputs_or_matrix_gates():
    x = torch.randn(3, 2, requires_grad=True)
    b = torch.tensor(0.5, requires_grad=True)
    w = torch.randn(4, 2, requires_grad=True)
    with Tape() as tape:
        h = F.add(x, b)
        y = F.linear(h, w)
    y.sum().backward()
    add, linear = tape.records
    assert add.local[0].shape == (3, 2) and add.local[1] is None  # b was broadcast
    assert add.downstream[1].shape == ()  # b fed every element: it gets the sum of the flows
    torch.testing.assert_close(add.downstream[1], add.upstream.sum())
    assert linear.local is None
    assert linear.downstream[2] is None and linear.inputs[2] is None  # no bias


# ---------------------------------------------------------------------------------------
# Branches: the flows coming back into a value are summed.
# ---------------------------------------------------------------------------------------


def test_flows_into_a_leaf_are_summed():
    (x,) = scalars(3.0)
    with Tape() as tape:
        tape.name(x=x)
        f = F.add(F.mul(x, x), x)  # x feeds the Mul twice and the Add once
    f.backward()
    (leaf,) = tape.leaves
    per_consumer: dict[int, float] = {}
    for flow in leaf.flows:
        per_consumer[flow.consumer] = per_consumer.get(flow.consumer, 0.0) + flow.gradient.item()
    assert per_consumer == {0: 2 * 3.0, 1: 1.0}  # d(x·x)/dx = 2x, d(+x)/dx = 1
    assert [(f.consumer, f.input) for f in leaf.flows] == [(0, 0), (0, 1), (1, 1)]
    assert leaf.grad.item() == 7.0 == x.grad.item()


def test_flows_into_a_gate_output_sum_to_its_upstream():
    (x,) = scalars(3.0)
    with Tape() as tape:
        q = F.shift(x, 0.0)
        f = F.add(F.mul(q, q), q)
    f.backward()
    producer = tape.records[0]
    assert [f.gradient.item() for f in producer.flows] == [3.0, 3.0, 1.0]
    assert sum(f.gradient.item() for f in producer.flows) == producer.upstream.item() == 7.0
    assert "↳ upstream 7.00 = 3.00 from #1 Mul + 3.00 from #1 Mul + 1.00 from #2 Add" in str(tape)


# ---------------------------------------------------------------------------------------
# Matrix networks, autograd.grad, repeated passes.
# ---------------------------------------------------------------------------------------


def two_layer() -> tuple[Tape, torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
    w1, b1 = torch.randn(4, 3, generator=g), torch.randn(4, generator=g)
    w2, b2 = torch.randn(2, 4, generator=g), torch.randn(2, generator=g)
    params = [p.requires_grad_() for p in (w1, b1, w2, b2)]
    with Tape() as tape:
        h = F.sigmoid(F.linear(x, w1, b1))
        loss = F.mse_loss(F.linear(h, w2, b2), y)
    return tape, loss, params


def test_matrix_network_records_have_the_right_shapes():
    tape, loss, params = two_layer()
    loss.backward()
    assert [r.gate for r in tape.records] == ["Linear", "Sigmoid", "Linear", "MSE"]
    expected_outputs = [(5, 4), (5, 4), (5, 2), ()]
    for record, shape in zip(tape.records, expected_outputs, strict=True):
        assert tuple(record.output.shape) == shape
        assert record.upstream.shape == record.output.shape
        for x, grad in zip(record.inputs, record.downstream, strict=True):
            if grad is not None:
                assert grad.shape == x.shape
    assert tape.records[0].downstream[0] is None  # x needs no gradient
    assert tape.records[1].local[0].shape == (5, 4)
    grads = {leaf.id: leaf.grad for leaf in tape.leaves if leaf.grad is not None}
    assert len(grads) == 4
    for p in params:
        leaf = next(
            leaf
            for leaf in tape.leaves
            if leaf.grad is not None
            and leaf.value.shape == p.shape
            and torch.equal(leaf.value, p.detach())
        )
        torch.testing.assert_close(leaf.grad, p.grad, rtol=0, atol=0)
    assert "(5, 4) mean=" in str(tape)


def test_autograd_grad_is_recorded_too():
    tape, loss, params = two_layer()
    grads = torch.autograd.grad(loss, params)
    assert all(p.grad is None for p in params)
    linear2 = tape.records[2]
    torch.testing.assert_close(linear2.downstream[1], grads[2], rtol=0, atol=0)
    torch.testing.assert_close(linear2.downstream[2], grads[3], rtol=0, atol=0)


def test_backward_inside_the_block():
    (x,) = scalars(2.0)
    with Tape() as tape:
        y = F.exp(x)
        y.backward()
        assert tape.records[0].downstream[0].item() == pytest.approx(2.0**0 * y.item())


def test_the_tape_does_not_change_gradients():
    _, loss, params = two_layer()
    loss.backward()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
    w1, b1 = torch.randn(4, 3, generator=g), torch.randn(4, generator=g)
    w2, b2 = torch.randn(2, 4, generator=g), torch.randn(2, generator=g)
    plain = [p.requires_grad_() for p in (w1, b1, w2, b2)]
    F.mse_loss(F.linear(F.sigmoid(F.linear(x, w1, b1)), w2, b2), y).backward()
    for a, b in zip(params, plain, strict=True):
        assert torch.equal(a.grad, b.grad)


def test_repeated_backward_passes_last_one_wins():
    (x,) = scalars(3.0)
    with Tape() as tape:
        y = F.mul(x, x)
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    assert x.grad.item() == 12.0  # torch accumulates into .grad ...
    assert tape.records[0].backward_pass == 2
    assert tape.leaves[0].grad.item() == 6.0  # ... the tape shows the last pass
    torch.autograd.grad(3 * y, [x])
    assert tape.records[0].upstream.item() == 3.0 and tape.leaves[0].grad.item() == 18.0


def test_a_later_pass_through_one_branch_replaces_the_flows():
    (x,) = scalars(2.0)
    with Tape() as tape:
        a = F.exp(x)
        b = F.scale(x, 5.0)
    a.backward()
    assert [f.consumer for f in tape.leaves[0].flows] == [0]
    b.backward()
    assert [f.consumer for f in tape.leaves[0].flows] == [1]  # not a mix of both passes
    assert tape.leaves[0].grad.item() == 5.0


def test_close_stops_listening_for_backward():
    (x,) = scalars(2.0)
    with Tape() as tape:
        y = F.exp(x)
    tape.close()
    y.backward()
    assert tape.records[0].upstream is None and x.grad is not None


# ---------------------------------------------------------------------------------------
# Recording: only inside the block; copies, not references.
# ---------------------------------------------------------------------------------------


def test_observer_removed_on_exit_even_when_the_block_raises():
    (x,) = scalars(1.0)
    with pytest.raises(ValueError, match="boom"), Tape() as tape:
        F.exp(x)
        assert function._observers == [tape._observer]
        raise ValueError("boom")
    assert function._observers == [] and not tape.active
    F.exp(x)
    assert len(tape.records) == 1


def test_nothing_recorded_after_exit_or_without_a_tape():
    (x,) = scalars(1.0)
    F.exp(x)  # no tape: nothing to record into, and no observer registered
    assert function._observers == []
    with Tape() as tape:
        F.exp(x)
    F.mul(x, x)
    assert [r.gate for r in tape.records] == ["Exp"]


def test_nested_tapes_both_record():
    (x,) = scalars(1.0)
    with Tape() as outer:
        F.exp(x)
        with Tape() as inner:
            y = F.scale(x, 2.0)
    y.backward()
    assert [r.gate for r in outer.records] == ["Exp", "Scale"]
    assert [r.gate for r in inner.records] == ["Scale"]
    assert inner.records[0].downstream[0].item() == outer.records[1].downstream[0].item() == 2.0


def test_a_tape_cannot_be_entered_twice_at_once():
    tape = Tape()
    with tape, pytest.raises(RuntimeError, match="already recording"), tape:
        pass


def test_inputs_are_copies_taken_at_forward_time():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    with Tape() as tape:
        y = F.mul(w, w)
    with torch.no_grad():
        w.sub_(10.0)  # an optimizer step after the forward pass
    assert tape.records[0].inputs[0].tolist() == [1.0, 2.0]
    assert tape.records[0].output.tolist() == [1.0, 4.0]
    assert not tape.records[0].output.requires_grad and y.requires_grad


def test_no_grad_forward_is_recorded_without_gradients():
    with torch.no_grad(), Tape() as tape:
        F.sigmoid(torch.zeros(2, requires_grad=True))
    (record,) = tape.records
    assert record.upstream is None and record.downstream is None
    assert record.local[0].tolist() == [0.25, 0.25]
    assert "no backward pass yet" in str(tape)


def test_names_label_leaves_and_gate_outputs():
    x, y, z = scalars(-2.0, 5.0, -4.0)
    with Tape(names={"x": x}) as tape:
        q = F.add(x, y)
        tape.name(q=q, y=y)
        F.mul(q, z)
    assert tape.records[0].name == "q"
    assert [leaf.label for leaf in tape.leaves] == ["x", "y", "in2"]
    assert "q = 3.00" in str(tape)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        tape.name(k=3.0)


def test_losses_and_maxout_are_recorded():
    scores = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(6, 4, requires_grad=True)
    with Tape() as tape:
        loss = F.cross_entropy(F.maxout(scores, w, None, pieces=2), torch.tensor([0, 2, 1]))
    loss.backward()
    maxout, ce = tape.records
    assert (maxout.gate, ce.gate) == ("Maxout", "CrossEntropy")
    assert ce.parents[0] == maxout.id and maxout.output.shape == (3, 3)
    assert maxout.upstream.shape == (3, 3) and maxout.downstream[1].shape == (6, 4)
    assert maxout.inputs[3] == 2 and maxout.arg_names == ["input", "weight", "bias", "pieces"]


# ---------------------------------------------------------------------------------------
# Memory: the tape keeps no graph alive, and the graph does not keep the tape alive.
# ---------------------------------------------------------------------------------------


def test_dropped_tape_and_tensors_are_freed():
    big = torch.randn(1000, 1000, requires_grad=True)
    with Tape() as tape:
        out = F.mul(big, big)
    out.sum().backward()
    tape.close()
    refs = [weakref.ref(t) for t in (tape, big, out, tape.records[0].output)]
    del tape, big, out
    gc.collect()
    assert [r() for r in refs] == [None] * 4


def test_the_tape_does_not_keep_the_graph_alive():
    big = torch.randn(1000, 1000, requires_grad=True)
    with Tape() as tape:
        out = F.exp(big)
    refs = [weakref.ref(big), weakref.ref(out)]
    del big, out
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert tape.records[0].output.shape == (1000, 1000)  # the tape's own copy lives on


def test_the_graph_does_not_keep_the_tape_alive():
    x = torch.randn(100, requires_grad=True)
    with Tape() as tape:
        out = F.exp(x)
    ref = weakref.ref(tape)
    del tape  # not closed: its hook is still on out.grad_fn
    gc.collect()
    assert ref() is None
    out.sum().backward()  # the orphaned hook does nothing
    torch.testing.assert_close(x.grad, out.detach())


# ---------------------------------------------------------------------------------------
# Output formats.
# ---------------------------------------------------------------------------------------


def test_to_dot_draws_every_wire_with_its_value_and_gradient():
    tape, _ = neuron_tape()
    dot = tape.to_dot()
    assert dot.startswith("digraph tape {") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    wires = sum(isinstance(a, torch.Tensor) for r in tape.records for a in r.inputs)
    assert len(re.findall(r"^\s+\w+ -> \w+ \[", dot, flags=re.M)) == wires + 1  # + the output
    assert re.search(r'gate7 \[label="1/x"', dot) and re.search(r'gate4 \[label="\*-1"', dot)
    # Into 1/x: value 1.37 above, gradient -0.53 below.
    assert re.search(r"gate6 -> gate7 \[label=<.*1\.37.*<br/>.*-0\.53", dot)
    assert 'leaf0 [label="w0"' in dot


def test_to_dict_is_json():
    tape, _, _ = two_layer()
    data = json.loads(json.dumps(tape.to_dict(), allow_nan=False))
    assert [r["gate"] for r in data["records"]] == ["Linear", "Sigmoid", "Linear", "MSE"]
    assert data["records"][0]["upstream"] is None  # no backward yet
    assert len(data["records"][0]["output"]) == 5 and len(data["records"][0]["output"][0]) == 4
    neuron, _ = neuron_tape()
    records = neuron.to_dict()["records"]
    assert [round(g, 2) for g in records[0]["downstream"]] == [-0.20, 0.39]
    assert records[4]["inputs"][1] == -1.0 and records[4]["arg_names"] == ["x", "a"]


def test_to_dict_writes_non_finite_values_as_strings():
    with Tape() as tape:
        F.exp(torch.tensor([1000.0, float("nan")]))
    data = json.loads(json.dumps(tape.to_dict(), allow_nan=False))
    assert data["records"][0]["output"] == ["inf", "nan"]


def test_format_value():
    assert format_value(torch.tensor(-0.5344)) == "-0.53"
    assert format_value(torch.tensor(-0.0)) == "0.00"
    assert format_value(torch.tensor(3e-6)) == "3.00e-06"  # small gradients stay visible
    assert format_value(torch.zeros(2, 3)) == "(2, 3) mean=0.00 norm=0.00"
    assert format_value(None) == "—" and format_value(2) == "2"
    assert str(Tape()) == "Tape: nothing recorded"
