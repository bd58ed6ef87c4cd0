"""A tape that records each gate's forward values and what flows back through it.

The slides teach backpropagation by walking a circuit gate by gate: every gate receives an
*upstream* gradient at its output, multiplies it by its *local* derivative and sends the
*downstream* gradient to each input ("[local gradient] × [gradient]"); add distributes,
max routes, multiply switches, and where a value feeds several gates the flows coming back
are summed. :class:`Tape` shows exactly that for real code::

    >>> import torch, torchmanual.functional as F
    >>> from torchmanual.tape import Tape
    >>> x, y, z = (torch.tensor(v, requires_grad=True) for v in (-2.0, 5.0, -4.0))
    >>> with Tape() as tape:
    ...     tape.name(x=x, y=y, z=z)
    ...     q = F.add(x, y)
    ...     f = F.mul(q, z)
    >>> f.backward()
    >>> [r.gate for r in tape.records], f"{tape.records[0].upstream.item():g}"
    (['Add', 'Mul'], '-4')
    >>> [f"{g.item():g}" for g in tape.records[1].downstream]  # ∂f/∂q = z, ∂f/∂z = q
    ['-4', '3']

How it works. :class:`~torchmanual.autograd.function.ManualFunction` calls every observer in
``torchmanual.autograd.function._observers`` after each application; an active tape is one
such observer, so with no tape the only cost is one truthiness test of an empty list. For
each application the tape keeps detached copies of the inputs and the output, and registers
a hook on the output's ``grad_fn`` — the Function's own backward node — that copies the
gradients torch hands to and gets back from that node. Hence it works with ``.backward()``
and ``torch.autograd.grad``, inside or after the ``with`` block. The tape only watches: the
hooks return nothing, so gradients are exactly what they would be without it.

Repeated backward passes: **the last pass that reaches a gate wins** — each record holds the
gradients of the most recent backward pass through it (``Record.backward_pass`` says which),
never a sum over passes. Call :meth:`Tape.close` to stop listening for backward passes.

Memory: the tape stores detached copies only, so it keeps no autograd graph and no caller
tensor alive; the hooks hold the tape through a weak reference, so dropping the tape frees
everything it recorded even while the graph lives on.
"""

from __future__ import annotations

import functools
import html
import inspect
import math
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from torchmanual.autograd.function import ManualFunction, _observers

__all__ = ["ELEMENTWISE", "Flow", "Leaf", "Record", "Tape", "format_value"]

# Gates whose output element i depends only on element i of each input, so the local
# derivative is a tensor of the input's shape (the Jacobian's diagonal). A Function can
# also declare ``elementwise = True`` as a class attribute.
ELEMENTWISE: frozenset[str] = frozenset(
    {"Add", "Mul", "Max", "Exp", "Reciprocal", "Scale", "Shift"}
    | {"Sigmoid", "Tanh", "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "SiLU", "Softplus", "Step"}
)

# How the slides draw each gate in a circuit; other Functions are drawn by name.
_SYMBOLS: dict[str, Callable[[list[Any]], str]] = {
    "Add": lambda args: "+",
    "Mul": lambda args: "*",
    "Max": lambda args: "max",
    "Exp": lambda args: "exp",
    "Reciprocal": lambda args: "1/x",
    "Scale": lambda args: f"*{args[1]:g}",
    "Shift": lambda args: f"+{args[1]:g}",
}


# ---------------------------------------------------------------------------------------
# What the tape stores.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """One gradient flowing back into a value: ``consumer``'s downstream for its input ``input``.

    ``backward_pass`` is the tape's number of the backward pass that sent it.
    """

    consumer: int
    input: int
    gradient: Tensor
    backward_pass: int


@dataclass(eq=False)
class _Node:
    """What records and leaves share: the flows that came back into their value."""

    _flows: dict[tuple[int, int], Flow] = field(default_factory=dict, repr=False, init=False)

    def _latest_pass(self) -> int | None:
        return max((f.backward_pass for f in self._flows.values()), default=None)

    @property
    def flows(self) -> list[Flow]:
        """The gradients that came back into this value, one per consuming gate input, from
        the latest backward pass. Their sum is what the value received (the slides' rule at
        a branch)."""
        latest = self._latest_pass()
        return sorted(
            (f for f in self._flows.values() if f.backward_pass == latest),
            key=lambda f: (f.consumer, f.input),
        )


@dataclass(eq=False)
class Leaf(_Node):
    """A value that entered the recorded circuit from outside: an input, a weight, a constant.

    ``grad`` is the sum of the flows into it (its gradient as far as the tape saw it).
    """

    id: int = 0
    value: Tensor | None = None
    name: str | None = None
    requires_grad: bool = False

    @property
    def grad(self) -> Tensor | None:
        flows = self.flows
        return _total(flows) if flows else None

    @property
    def label(self) -> str:
        return self.name or f"in{self.id}"


@dataclass(eq=False)
class Record(_Node):
    """One gate application: forward values and, once backward reaches it, the gradients.

    - ``id``: position in ``tape.records`` (forward order).
    - ``gate``: the Function's class name, e.g. ``'Mul'``.
    - ``inputs``: the arguments — detached copies of tensors, plain numbers as they were,
      ``None`` as ``None``; ``arg_names`` the Function's parameter names for them.
    - ``parents`` / ``leaves``: per input, the id of the record that produced it, or the id
      of the :class:`Leaf` it is (``None`` otherwise, e.g. for numbers).
    - ``output``: a detached copy of the result. ``name``: set by :meth:`Tape.name`.
    - ``upstream``: the gradient that arrived at the output (the sum of all flows into it).
    - ``local``: per input, the gate's local derivative ∂output/∂input, for elementwise gates
      and inputs of the output's shape (from the Function's own backward); else ``None``.
    - ``downstream``: per input, the gradient the gate sent back (``None`` where none was
      needed); for elementwise gates ``downstream == local × upstream``.
    - ``flows``: the per-consumer gradients whose sum is ``upstream`` (see :class:`Flow`).
    - ``backward_pass``: the tape's number of the backward pass these gradients come from.
    """

    id: int = 0
    gate: str = ""
    inputs: list[Any] = field(default_factory=list)
    arg_names: list[str] = field(default_factory=list)
    parents: list[int | None] = field(default_factory=list)
    leaves: list[int | None] = field(default_factory=list)
    output: Tensor | None = None
    name: str | None = None
    upstream: Tensor | None = None
    local: list[Tensor | None] | None = None
    downstream: list[Tensor | None] | None = None
    backward_pass: int | None = None
    symbol: str = ""

    @property
    def flows(self) -> list[Flow]:
        # Only flows of the pass that also produced ``upstream``, so they add up to it.
        return sorted(
            (f for f in self._flows.values() if f.backward_pass == self.backward_pass),
            key=lambda f: (f.consumer, f.input),
        )


def _copy(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, Tensor) else value


def _total(flows: list[Flow]) -> Tensor:
    return functools.reduce(torch.add, (f.gradient for f in flows))


@functools.cache
def _arg_names(cls: type) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(cls.forward).parameters)
    except (TypeError, ValueError):
        return ()


def _is_elementwise(cls: type) -> bool:
    return bool(getattr(cls, "elementwise", cls.__name__ in ELEMENTWISE))


def _local_derivatives(cls: type, args: tuple[Any, ...], output: Tensor) -> list[Tensor | None]:
    """∂output/∂input per input of an elementwise gate, from the Function's own backward.

    A fresh application to detached inputs, differentiated with an upstream of ones: for an
    elementwise gate and an input of the output's shape, that is exactly the local
    derivative (the diagonal of the Jacobian) — the slide's formula, not torch's.
    """
    wanted = [
        isinstance(a, Tensor) and a.is_floating_point() and a.shape == output.shape for a in args
    ]
    if not any(wanted):
        return [None] * len(args)
    with torch.enable_grad():
        fresh = [
            a.detach().requires_grad_(w) if isinstance(a, Tensor) else a
            for a, w in zip(args, wanted, strict=True)
        ]
        # NOTE: Function.apply itself, not cls.apply: no observer sees this replay.
        out = super(ManualFunction, cls).apply(*fresh)
        if isinstance(out, tuple):
            out = out[0]
        targets = [a for a, w in zip(fresh, wanted, strict=True) if w]
        grads = iter(torch.autograd.grad(out, targets, torch.ones_like(out), allow_unused=True))
    return [next(grads) if w else None for w in wanted]


# ---------------------------------------------------------------------------------------
# Formatting.
# ---------------------------------------------------------------------------------------


def _number(v: float | int) -> str:
    if isinstance(v, int):  # bool too
        return str(v)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0.00"  # also -0.0: the sign of a zero tells a student nothing here
    if 0.01 <= abs(v) < 1e5:
        return f"{v:.2f}"  # two decimals, as the slides write every wire
    return f"{v:.2e}"


def format_value(value: Any, full: int = 4) -> str:
    """A value the way the tape prints it: numbers with two decimals as the slides do,
    short vectors (at most ``full`` elements) in full, other tensors as shape, mean and norm.

    >>> format_value(torch.tensor(-0.5344)), format_value(torch.tensor([1.0, -2.0]))
    ('-0.53', '[1.00, -2.00]')
    >>> format_value(torch.ones(4, 3))
    '(4, 3) mean=1.00 norm=3.46'
    """
    if value is None:
        return "—"
    if isinstance(value, Tensor):
        if value.dim() == 0:
            return _number(value.item())
        if value.dim() == 1 and value.numel() <= full:
            return _nested(value.tolist())
        shape = "(" + ", ".join(map(str, value.shape)) + ")"
        if not value.is_floating_point():
            return f"{shape} {value.dtype}".replace("torch.", "")
        v = value.detach().double()
        return f"{shape} mean={_number(v.mean().item())} norm={_number(v.norm().item())}"
    if isinstance(value, float | int):
        return _number(value)
    return str(value)


def _nested(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_nested(x) for x in v) + "]"
    return _number(v)


def _jsonable(value: Any) -> Any:
    """Numbers, nested lists, strings or None; non-finite floats as strings ('nan', 'inf')
    so the result is strict JSON."""
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _flows_dict(flows: list[Flow]) -> list[dict[str, Any]]:
    return [
        {"consumer": f.consumer, "input": f.input, "gradient": _jsonable(f.gradient)} for f in flows
    ]


# ---------------------------------------------------------------------------------------
# The tape.
# ---------------------------------------------------------------------------------------


class Tape:
    """Records every torchmanual Function applied inside a ``with`` block, and what flows
    back through each when a backward pass runs (inside the block or after it).

    ``tape.records`` (forward order) holds one :class:`Record` per gate application and
    ``tape.leaves`` one :class:`Leaf` per value that came from outside. ``print(tape)``
    shows the slides' walkthrough, one row per gate in backward order; :meth:`to_dot`
    draws the circuit for Graphviz, :meth:`to_dict` gives the same as JSON-able data.

    >>> import torch, torchmanual.functional as F
    >>> x = torch.tensor(3.0, requires_grad=True)
    >>> with Tape() as tape:
    ...     tape.name(x=x)
    ...     f = F.add(F.mul(x, x), x)  # x feeds two gates: a branch
    >>> f.backward()
    >>> [f"{flow.gradient.item():g}" for flow in tape.leaves[0].flows], tape.leaves[0].grad.item()
    (['3', '3', '1'], 7.0)

    Args:
        names: optional ``{name: tensor}`` labels, as :meth:`name` takes them.
    """

    def __init__(self, names: Mapping[str, Tensor] | None = None) -> None:
        self.records: list[Record] = []
        self.leaves: list[Leaf] = []
        self._active = False
        # Tensors seen while recording, by id(); the weakref proves that the object with
        # this id is still the one we saw (ids are reused once a tensor is freed), and
        # holds nothing alive.
        self._produced: dict[int, tuple[weakref.ref[Tensor], int]] = {}
        self._leaf_of: dict[int, tuple[weakref.ref[Tensor], int]] = {}
        self._pending_names: dict[int, tuple[weakref.ref[Tensor], str]] = {}
        self._handles: list[Any] = []
        self._passes: dict[int, int] = {}  # torch graph-task id -> our pass number
        self._observer = self._observe  # one bound method, so exit removes exactly it
        if names:
            self.name(**names)

    # --- recording --------------------------------------------------------------------

    def __enter__(self) -> Tape:
        if self._active:
            raise RuntimeError("this Tape is already recording")
        self._active = True
        _observers.append(self._observer)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop_recording()

    def _stop_recording(self) -> None:
        if self._active:
            self._active = False
            _observers.remove(self._observer)

    def close(self) -> None:
        """Stop recording and stop listening for backward passes (removes every hook).

        What was recorded stays readable.
        """
        self._stop_recording()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def active(self) -> bool:
        """Whether the tape is recording gate applications now."""
        return self._active

    def name(self, **tensors: Tensor) -> None:
        """Label values for the table and the drawing: ``tape.name(w0=w0, x0=x0, q=q)``.

        A name given to a gate's output names its record; any other tensor becomes a named
        leaf (now, or when a gate first uses it).
        """
        for label, t in tensors.items():
            if not isinstance(t, Tensor):
                raise TypeError(f"Tape.name(): {label} must be a torch.Tensor, got {type(t)}")
            if (record := self._lookup(self._produced, t)) is not None:
                self.records[record].name = label
            elif (leaf := self._lookup(self._leaf_of, t)) is not None:
                self.leaves[leaf].name = label
            else:
                self._pending_names[id(t)] = (weakref.ref(t), label)

    @staticmethod
    def _lookup(table: dict[int, tuple[weakref.ref[Tensor], Any]], t: Tensor) -> Any:
        entry = table.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        return None

    def _leaf(self, t: Tensor) -> int:
        found = self._lookup(self._leaf_of, t)
        if found is not None:
            return found
        pending = self._lookup(self._pending_names, t)
        leaf = Leaf(
            id=len(self.leaves), value=_copy(t), name=pending, requires_grad=t.requires_grad
        )
        self.leaves.append(leaf)
        self._leaf_of[id(t)] = (weakref.ref(t), leaf.id)
        return leaf.id

    def _observe(self, cls: type[ManualFunction], args: tuple[Any, ...], output: Any) -> None:
        """The observer ManualFunction.apply calls: one Record per gate application."""
        out = output[0] if isinstance(output, tuple) else output
        if not isinstance(out, Tensor):
            return
        record_id = len(self.records)
        parents: list[int | None] = []
        leaves: list[int | None] = []
        for a in args:
            parent = self._lookup(self._produced, a) if isinstance(a, Tensor) else None
            parents.append(parent)
            leaves.append(self._leaf(a) if isinstance(a, Tensor) and parent is None else None)
        names = list(_arg_names(cls))
        names += [f"arg{i}" for i in range(len(names), len(args))]
        local = None
        if _is_elementwise(cls):
            try:
                local = _local_derivatives(cls, args, out)
            except RuntimeError:
                local = None  # e.g. inference-mode tensors: no autograd, no local derivative
        symbol_of = _SYMBOLS.get(cls.__name__)
        record = Record(
            id=record_id,
            gate=cls.__name__,
            inputs=[_copy(a) for a in args],
            arg_names=names[: len(args)],
            parents=parents,
            leaves=leaves,
            output=_copy(out),
            name=self._lookup(self._pending_names, out),
            local=local,
            symbol=symbol_of(list(args)) if symbol_of else cls.__name__,
        )
        self.records.append(record)
        self._produced[id(out)] = (weakref.ref(out), record_id)
        node = out.grad_fn
        if node is not None:
            tensor_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
            hook = _make_hook(weakref.ref(self), record_id, len(args), tensor_positions)
            self._handles.append(node.register_hook(hook))

    # --- backward ---------------------------------------------------------------------

    def _backward_pass(self) -> int:
        # NOTE: torch numbers each backward()/autograd.grad call (a graph task); several
        # gates reached by one call share one of our pass numbers.
        task = torch._C._current_graph_task_id()
        if task not in self._passes:
            self._passes[task] = len(self._passes) + 1
        return self._passes[task]

    def _on_backward(
        self,
        record_id: int,
        n_args: int,
        tensor_positions: list[int],
        grad_inputs: tuple[Tensor | None, ...],
        grad_outputs: tuple[Tensor | None, ...],
    ) -> None:
        record = self.records[record_id]
        backward_pass = self._backward_pass()
        record.backward_pass = backward_pass
        record.upstream = _copy(grad_outputs[0])
        downstream: list[Tensor | None] = [None] * n_args
        for position, grad in zip(tensor_positions, grad_inputs, strict=False):
            downstream[position] = _copy(grad)
        record.downstream = downstream
        for i, grad in enumerate(downstream):
            if grad is None:
                continue
            if (parent := record.parents[i]) is not None:
                target: _Node = self.records[parent]
            elif (leaf := record.leaves[i]) is not None:
                target = self.leaves[leaf]
            else:
                continue
            target._flows[(record_id, i)] = Flow(record_id, i, grad, backward_pass)

    # --- reading ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"<Tape: {len(self.records)} records, {len(self.leaves)} leaves>"

    def _source(self, record: Record, i: int) -> str | None:
        if record.parents[i] is not None:
            parent = self.records[record.parents[i]]
            return parent.name or f"#{parent.id}"
        if record.leaves[i] is not None:
            return self.leaves[record.leaves[i]].label
        return record.arg_names[i]  # a plain number: show which argument it is

    def __str__(self) -> str:
        return self.table()

    def table(self) -> str:
        """The slides' backward walkthrough: one row per gate in backward order (last gate
        first), with the value on each input, the output, the upstream gradient, the local
        derivative and the downstream gradient (one line per input); then the leaves with
        their gradients. Where a value fed several gates, a line shows the flows summed."""
        if not self.records:
            return "Tape: nothing recorded"
        passes = len(self._passes)
        header = (
            f"Tape: {len(self.records)} gates, "
            + (
                f"{passes} backward pass{'es' if passes > 1 else ''}"
                if passes
                else "no backward pass yet"
            )
            + " — downstream = local × upstream"
        )
        columns = ["#", "gate", "input", "output", "upstream", "local", "downstream"]
        rows: list[list[str] | str] = []
        for record in reversed(self.records):
            shown = [i for i, a in enumerate(record.inputs) if a is not None]
            for line, i in enumerate(shown or [None]):
                cells = ["", "", "", "", "", "", ""]
                if line == 0:
                    out = format_value(record.output)
                    cells[:2] = [f"#{record.id}", record.gate]
                    cells[3] = f"{record.name} = {out}" if record.name else out
                    cells[4] = format_value(record.upstream) if record.upstream is not None else ""
                if i is not None:
                    source = self._source(record, i)
                    value = format_value(record.inputs[i])
                    cells[2] = f"{source} = {value}" if source else value
                    if isinstance(record.inputs[i], Tensor):
                        local = record.local[i] if record.local is not None else None
                        cells[5] = format_value(local)
                        if record.downstream is not None:
                            cells[6] = format_value(record.downstream[i])
                rows.append(cells)
            flows = record.flows
            if len(flows) > 1:
                rows.append(
                    f"      ↳ upstream {format_value(record.upstream)} = " + self._flow_sum(flows)
                )
        widths = [
            max(len(c), *(len(r[k]) for r in rows if isinstance(r, list)))
            for k, c in enumerate(columns)
        ]
        lines = [
            header,
            "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
        ]
        for r in rows:
            if isinstance(r, str):
                lines.append(r)
            else:
                lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if self.leaves:
            lines.append("")
            lines.append("Leaves: value, gradient (the sum of the flows into each)")
            width = max(len(leaf.label) for leaf in self.leaves)
            values = [format_value(leaf.value) for leaf in self.leaves]
            value_width = max(map(len, values))
            for leaf, value in zip(self.leaves, values, strict=True):
                line = f"  {leaf.label.ljust(width)}  {value.ljust(value_width)}"
                if (grad := leaf.grad) is not None:
                    line += f"  grad {format_value(grad)}"
                    if len(leaf.flows) > 1:
                        line += " = " + self._flow_sum(leaf.flows)
                lines.append(line.rstrip())
        return "\n".join(lines)

    def _flow_sum(self, flows: list[Flow]) -> str:
        return " + ".join(
            f"{format_value(f.gradient)} from #{f.consumer} {self.records[f.consumer].gate}"
            for f in flows
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything recorded, as JSON-able data (numbers and nested lists; no tensors).

        >>> import json, torch, torchmanual.functional as F
        >>> with Tape() as tape:
        ...     y = F.exp(torch.tensor(0.0, requires_grad=True))
        >>> y.backward(); json.dumps(tape.to_dict()["records"][0]["downstream"])
        '[1.0]'
        """
        records = []
        for r in self.records:
            records.append(
                {
                    "id": r.id,
                    "gate": r.gate,
                    "name": r.name,
                    "arg_names": r.arg_names,
                    "inputs": [_jsonable(a) for a in r.inputs],
                    "parents": r.parents,
                    "leaves": r.leaves,
                    "output": _jsonable(r.output),
                    "shape": list(r.output.shape),
                    "upstream": _jsonable(r.upstream),
                    "local": None if r.local is None else [_jsonable(g) for g in r.local],
                    "downstream": (
                        None if r.downstream is None else [_jsonable(g) for g in r.downstream]
                    ),
                    "flows": _flows_dict(r.flows),
                    "backward_pass": r.backward_pass,
                }
            )
        leaves = [
            {
                "id": leaf.id,
                "name": leaf.name,
                "value": _jsonable(leaf.value),
                "requires_grad": leaf.requires_grad,
                "grad": _jsonable(leaf.grad),
                "flows": _flows_dict(leaf.flows),
            }
            for leaf in self.leaves
        ]
        return {"records": records, "leaves": leaves}

    def to_dot(self) -> str:
        """The circuit as Graphviz DOT text, drawn as the slides draw it: leaves on the left,
        one node per gate, and on each wire its value above (green) and its gradient below
        (red). Render with ``dot -Tsvg``.

        >>> import torch, torchmanual.functional as F
        >>> with Tape() as tape:
        ...     y = F.scale(torch.tensor(2.0), -1.0)
        >>> print(tape.to_dot().splitlines()[0])
        digraph tape {
        """
        lines = [
            "digraph tape {",
            "  rankdir=LR;",
            '  node [fontname="Helvetica"]; edge [fontname="Helvetica", fontsize=10];',
        ]
        for leaf in self.leaves:
            lines.append(f'  leaf{leaf.id} [label="{_dot_text(leaf.label)}", shape=plaintext];')
        consumed: set[int] = set()
        for r in self.records:
            label = _dot_text(r.symbol)
            shape = "circle" if len(r.symbol) <= 3 else "box"  # "*", "+", "1/x" fit a circle
            lines.append(f'  gate{r.id} [label="{label}", xlabel="#{r.id}", shape={shape}];')
            for i, a in enumerate(r.inputs):
                if not isinstance(a, Tensor):
                    continue
                if r.parents[i] is not None:
                    source = f"gate{r.parents[i]}"
                    consumed.add(r.parents[i])
                else:
                    source = f"leaf{r.leaves[i]}"
                grad = r.downstream[i] if r.downstream is not None else None
                lines.append(f"  {source} -> gate{r.id} [label={_wire(a, grad)}];")
        for r in self.records:
            if r.id not in consumed:  # a result the circuit hands out: draw its wire too
                lines.append(
                    f'  out{r.id} [label="{_dot_text(r.name or "out")}", shape=plaintext];'
                )
                lines.append(f"  gate{r.id} -> out{r.id} [label={_wire(r.output, r.upstream)}];")
        lines.append("}")
        return "\n".join(lines)


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _wire(value: Any, grad: Tensor | None) -> str:
    """An HTML-like DOT label: the value above, the gradient below, the slides' colours."""
    top = f'<font color="darkgreen">{html.escape(format_value(value))}</font>'
    if grad is None:
        return f"<{top}>"
    return f'<{top}<br/><font color="red">{html.escape(format_value(grad))}</font>>'


def _make_hook(
    tape_ref: weakref.ref[Tape], record_id: int, n_args: int, tensor_positions: list[int]
) -> Callable[[tuple[Tensor | None, ...], tuple[Tensor | None, ...]], None]:
    """A grad_fn hook that reports to the tape if the tape still exists.

    NOTE: it holds the tape weakly (the graph may outlive the tape) and nothing else of
    the graph, so it never keeps tensors alive.
    """

    def hook(grad_inputs: tuple[Tensor | None, ...], grad_outputs: tuple[Tensor | None, ...]):
        tape = tape_ref()
        if tape is not None:
            tape._on_backward(record_id, n_args, tensor_positions, grad_inputs, grad_outputs)

    return hook
