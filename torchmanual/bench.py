"""Side-by-side benchmark: a torchmanual training step against the same step in torch.nn.

One training step is forward, loss, backward and an SGD step. The torchmanual side is
``torchmanual.nn.MLP`` + ``torchmanual.functional.cross_entropy`` + ``torchmanual.optim.SGD``;
the torch side is the same network as a ``torch.nn.Sequential`` of ``torch.nn.Linear`` and
``torch.nn.ReLU`` + ``torch.nn.functional.cross_entropy`` + ``torch.optim.SGD``, starting from
identical weights (one ``state_dict``), on identical data, doing identical math.

How it measures (what makes a ratio trustworthy on a busy machine):

- warm-up first (allocator, caches, lazy initialisation; compilation for the compiled
  variant), then ``rounds`` rounds; each round times ``steps`` consecutive steps of one side
  and then of the other, the order alternating between rounds (A B, B A, ...), so slow
  drifts of the machine's load hit both sides alike;
- it reports the median step time of each side and the **median of the per-round
  ratios** torchmanual / torch.nn — a ratio taken within one round compares two
  measurements seconds apart, and the median discards rounds hit by a burst of load;
- ``torch.cuda.synchronize()`` brackets every timed stretch on a GPU.

Besides the step times it reports the FLOP rate of each step as a fraction of the machine's
matrix-multiply throughput (``torch.mm`` on the large layer's shapes, measured in the same
run), the bytes each side keeps for backward per step (``saved_tensors_hooks``; a tensor's
storage counted once), eager and ``torch.compile`` variants, CUDA rows (eager, compiled and
CUDA-graph replay) when a GPU is present, and the slides' numpy two-layer loop (SLIDES.md
section 2) against its torchmanual twin in float64.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import platform
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF

import torchmanual.functional as F
import torchmanual.nn as tnn
from torchmanual.optim import SGD

# name -> (layer sizes [in, hidden..., out], batch size): the four networks.
SIZES: dict[str, tuple[tuple[int, ...], int]] = {
    "tiny": ((2, 8, 2), 4),
    "small": ((64, 256, 256, 10), 64),
    "medium": ((784, 512, 512, 10), 128),
    "large": ((1024, 4096, 4096, 10), 512),
}
# The targets for the median ratio torchmanual / torch.nn of the eager CPU step.
TARGETS: dict[str, float] = {"tiny": 1.5, "small": 1.15, "medium": 1.03, "large": 1.02}
VARIANTS = ("eager", "compile")
LEARNING_RATE = 0.01


@dataclass
class Timing:
    """Interleaved A/B timings: per-round seconds per step of each side, and their ratios."""

    ours: list[float]
    theirs: list[float]

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.ours, self.theirs, strict=True)]

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def theirs_median(self) -> float:
        return statistics.median(self.theirs)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


@dataclass
class Row:
    """One line of the table: a size × variant × device, both sides."""

    size: str
    variant: str
    device: str
    layers: list[int]
    batch: int
    ours_ms: float
    torch_ms: float
    ratio: float  # median of the per-round ratios torchmanual / torch.nn
    ratio_min: float
    ratio_max: float
    rounds: int
    steps_per_round: int
    gflop_per_step: float
    ours_saved_bytes: int
    torch_saved_bytes: int
    ours_saved_tensors: int
    torch_saved_tensors: int
    # step GFLOP/s ÷ the matmul GFLOP/s measured in the same run (filled in by ``run``)
    ours_matmul_fraction: float | None = None
    torch_matmul_fraction: float | None = None
    target: float | None = None
    meets_target: bool | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# The two sides
# ---------------------------------------------------------------------------------------


def make_models(
    layers: Sequence[int], device: torch.device, dtype: torch.dtype, seed: int = 0
) -> tuple[tnn.MLP, torch.nn.Sequential]:
    """A ReLU ``torchmanual.nn.MLP`` and its ``torch.nn`` twin holding the same weights."""
    torch.manual_seed(seed)
    ours = tnn.MLP(list(layers), activation="relu", device=device, dtype=dtype)
    modules: OrderedDict[str, torch.nn.Module] = OrderedDict()
    for i in range(1, len(layers)):
        modules[f"fc{i}"] = torch.nn.Linear(layers[i - 1], layers[i], device=device, dtype=dtype)
        if i < len(layers) - 1:
            modules[f"act{i}"] = torch.nn.ReLU()
    theirs = torch.nn.Sequential(modules)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def make_data(
    layers: Sequence[int], batch: int, device: torch.device, dtype: torch.dtype, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, layers[0], generator=g, dtype=dtype).to(device)
    y = torch.randint(layers[-1], (batch,), generator=g).to(device)
    return x, y


def ours_loss(model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, y: F.cross_entropy(model(x), y)


def torch_loss(model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, y: TF.cross_entropy(model(x), y)


def training_step(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
) -> Callable[[], None]:
    """One step: zero the gradients, forward + loss, backward, update. Nothing is read back."""

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(x, y).backward()
        optimizer.step()

    return step


def compiled(
    loss_fn: Callable[..., torch.Tensor], backend: str, fullgraph: bool
) -> Callable[..., torch.Tensor]:
    # NOTE: the forward + loss is compiled (AOTAutograd compiles its backward too); the
    # optimizer step stays eager on both sides.
    return torch.compile(loss_fn, backend=backend, fullgraph=fullgraph)


# ---------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(step: Callable[[], None], steps: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def steps_for(step: Callable[[], None], seconds: float, device: torch.device) -> int:
    """How many steps make a timed stretch of about ``seconds`` (at least 1)."""
    one = seconds_per_step(step, 1, device)
    if one >= seconds:
        return 1
    few = max(1, min(50, int(0.02 / max(one, 1e-7))))
    per_step = seconds_per_step(step, few, device)
    return max(1, round(seconds / max(per_step, 1e-9)))


def interleaved(
    ours: Callable[[], None],
    theirs: Callable[[], None],
    rounds: int,
    steps: int,
    device: torch.device,
) -> Timing:
    """``rounds`` rounds of ``steps`` steps per side, the order alternating each round."""
    timing = Timing([], [])
    for r in range(rounds):
        if r % 2 == 0:
            a = seconds_per_step(ours, steps, device)
            b = seconds_per_step(theirs, steps, device)
        else:
            b = seconds_per_step(theirs, steps, device)
            a = seconds_per_step(ours, steps, device)
        timing.ours.append(a)
        timing.theirs.append(b)
    return timing


def warm_up(steps: Sequence[Callable[[], None]], seconds: float, device: torch.device) -> None:
    """Run each step at least twice and for about ``seconds`` in total, alternating."""
    deadline = time.perf_counter() + seconds
    n = 0
    while n < 2 or time.perf_counter() < deadline:
        for step in steps:
            step()
        n += 1
    _sync(device)


def saved_for_backward(forward: Callable[[], torch.Tensor]) -> tuple[int, int]:
    """(bytes, tensors) that one forward keeps for its backward.

    Every tensor autograd saves passes ``saved_tensors_hooks``' pack hook; bytes are summed
    over distinct storages, so a tensor saved twice (or a view of a saved one) counts once.
    Parameters saved for backward count too, on both sides alike.
    """
    storages: dict[int, int] = {}
    count = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal count
        count += 1
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    del loss
    return sum(storages.values()), count


def matmul_gflops(
    m: int, k: int, n: int, device: torch.device, dtype: torch.dtype, repeats: int = 5
) -> float:
    """``torch.mm`` throughput in GFLOP/s on an (m×k)·(k×n) product: the median of repeats."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g, dtype=dtype).to(device)
    b = torch.randn(k, n, generator=g, dtype=dtype).to(device)
    torch.mm(a, b)
    timings = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        timings.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(timings) / 1e9


def gflop_per_step(layers: Sequence[int], batch: int) -> float:
    """Matrix-multiply GFLOP of one training step (forward + backward; no dx for the input)."""
    flop = 0
    for i, (n_in, n_out) in enumerate(itertools.pairwise(layers)):
        products = 3 if i > 0 else 2  # y = x Wᵀ, dW = dyᵀ x, dx = dy W (not for the data)
        flop += products * 2 * batch * n_in * n_out
    return flop / 1e9


# ---------------------------------------------------------------------------------------
# The rows
# ---------------------------------------------------------------------------------------


@dataclass
class Settings:
    sizes: list[str]
    rounds: int = 11
    round_seconds: float = 0.25
    warmup_seconds: float = 0.5
    variants: tuple[str, ...] = VARIANTS
    compile_backend: str = "inductor"
    devices: tuple[str, ...] = ("cpu",)
    dtype: torch.dtype = torch.float32
    two_layer: bool = True
    seed: int = 0


def bench_size(size: str, variant: str, device: torch.device, settings: Settings) -> Row:
    """One row: both sides' steps, interleaved, and what each saves for backward."""
    layers, batch = SIZES[size]
    ours, theirs = make_models(layers, device, settings.dtype, settings.seed)
    x, y = make_data(layers, batch, device, settings.dtype)
    ours_fn, theirs_fn = ours_loss(ours), torch_loss(theirs)
    notes = []
    if variant == "compile":
        ours_fn = compiled(ours_fn, settings.compile_backend, fullgraph=True)
        theirs_fn = compiled(theirs_fn, settings.compile_backend, fullgraph=True)
        notes.append(f"torch.compile(backend={settings.compile_backend!r}, fullgraph=True)")
    ours_step = training_step(ours_fn, SGD(ours.parameters(), lr=LEARNING_RATE), x, y)
    theirs_step = training_step(
        theirs_fn, torch.optim.SGD(theirs.parameters(), lr=LEARNING_RATE), x, y
    )
    if variant == "graph":
        ours_step = cuda_graphed(ours_step, device)
        theirs_step = cuda_graphed(theirs_step, device)
        notes.append("CUDA graph replay of the whole step")
    warm_up([ours_step, theirs_step], settings.warmup_seconds, device)
    steps = steps_for(theirs_step, settings.round_seconds, device)
    timing = interleaved(ours_step, theirs_step, settings.rounds, steps, device)
    ours_bytes, ours_count = saved_for_backward(lambda: ours_fn(x, y))
    theirs_bytes, theirs_count = saved_for_backward(lambda: theirs_fn(x, y))
    target = TARGETS.get(size) if (variant == "eager" and device.type == "cpu") else None
    return Row(
        size=size,
        variant=variant,
        device=device.type,
        layers=list(layers),
        batch=batch,
        ours_ms=timing.ours_median * 1e3,
        torch_ms=timing.theirs_median * 1e3,
        ratio=timing.ratio,
        ratio_min=min(timing.ratios),
        ratio_max=max(timing.ratios),
        rounds=settings.rounds,
        steps_per_round=steps,
        gflop_per_step=gflop_per_step(layers, batch),
        ours_saved_bytes=ours_bytes,
        torch_saved_bytes=theirs_bytes,
        ours_saved_tensors=ours_count,
        torch_saved_tensors=theirs_count,
        target=target,
        meets_target=None if target is None else timing.ratio <= target,
        notes=notes,
    )


def cuda_graphed(step: Callable[[], None], device: torch.device) -> Callable[[], None]:
    """``step`` captured in a CUDA graph (after warm-up on a side stream), replayed per call.

    The step's tensors are static (the same x, y and parameters every call) and nothing in
    it syncs with the host, as capture requires (torchmanual skips its value checks while
    a graph is captured).
    """
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


# ---------------------------------------------------------------------------------------
# The slides' two-layer loop: numpy against its torchmanual twin
# ---------------------------------------------------------------------------------------

TWO_LAYER = {"N": 64, "D_in": 1000, "H": 100, "D_out": 10, "lr": 1e-4}


def _two_layer_arrays(seed: int) -> tuple[np.ndarray, ...]:
    """x, y, W1, W2 of the slides' two-layer loop (numpy's layout: W1 (D_in, H))."""
    n, d_in, h, d_out = (TWO_LAYER[k] for k in ("N", "D_in", "H", "D_out"))
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, d_in)), rng.standard_normal((n, d_out))
    return x, y, rng.standard_normal((d_in, h)), rng.standard_normal((h, d_out))


def two_layer_pair(seed: int = 0) -> tuple[Callable[[], None], Callable[[], None]]:
    """The slides' numpy step and the same step in torchmanual (float64, same arrays)."""
    lr = TWO_LAYER["lr"]
    x, y, w1, w2 = _two_layer_arrays(seed)
    np_w1, np_w2 = w1.copy(), w2.copy()

    def numpy_step() -> None:  # SLIDES.md section 2, verbatim
        h_ = 1 / (1 + np.exp(-x.dot(np_w1)))
        y_pred = h_.dot(np_w2)
        loss = np.square(y_pred - y).sum()  # noqa: F841  (the slides compute it each step)
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_.T.dot(grad_y_pred)
        grad_h = grad_y_pred.dot(np_w2.T)
        grad_w1 = x.T.dot(grad_h * h_ * (1 - h_))
        np_w1[...] -= lr * grad_w1
        np_w2[...] -= lr * grad_w2

    numpy_step.weights = lambda: (np_w1, np_w2)  # type: ignore[attr-defined]

    sizes = [w1.shape[0], w1.shape[1], w2.shape[1]]
    model = tnn.MLP(sizes, activation="sigmoid", bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.fc1.weight.copy_(torch.from_numpy(w1.T))
        model.fc2.weight.copy_(torch.from_numpy(w2.T))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = SGD(model.parameters(), lr=lr)

    def torchmanual_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.mse_loss(model(tx), ty, reduction="sum").backward()  # the slides' Σ (ŷ − y)²
        optimizer.step()

    torchmanual_step.weights = lambda: _numpy_layout(model.fc1, model.fc2)  # type: ignore[attr-defined]
    return numpy_step, torchmanual_step


def _numpy_layout(*layers: torch.nn.Module) -> tuple[np.ndarray, ...]:
    """Each layer's weight as the slides' numpy loop holds it: ``(in, out)``."""
    return tuple(layer.weight.detach().numpy().T for layer in layers)


def two_layer_torch_step(seed: int = 0) -> Callable[[], None]:
    """The same step in plain torch (torch.nn, autograd, torch.optim.SGD): the reference for
    what autograd itself costs against the slides' hand-written numpy loop."""
    x, y, w1, w2 = _two_layer_arrays(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(w1.shape[0], w1.shape[1], bias=False, dtype=torch.float64),
        torch.nn.Sigmoid(),
        torch.nn.Linear(w2.shape[0], w2.shape[1], bias=False, dtype=torch.float64),
    )
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w1.T))
        model[2].weight.copy_(torch.from_numpy(w2.T))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.SGD(model.parameters(), lr=TWO_LAYER["lr"])

    def torch_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        TF.mse_loss(model(tx), ty, reduction="sum").backward()
        optimizer.step()

    torch_step.weights = lambda: _numpy_layout(model[0], model[2])  # type: ignore[attr-defined]
    return torch_step


def _numpy_blas_threads(threads: int) -> tuple[contextlib.AbstractContextManager, int | None]:
    """A context limiting numpy's BLAS to ``threads`` threads (via threadpoolctl, if present).

    The comparison is then thread for thread: torch with its intra-op threads, numpy with as
    many BLAS threads. Without threadpoolctl numpy keeps its BLAS's default.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional dependency
        return contextlib.nullcontext(), None
    return threadpool_limits(limits=threads, user_api="blas"), threads


def bench_two_layer(settings: Settings) -> dict[str, Any]:
    numpy_step, torchmanual_step = two_layer_pair(settings.seed)
    torch_step = two_layer_torch_step(settings.seed)
    cpu = torch.device("cpu")
    limit, numpy_threads = _numpy_blas_threads(torch.get_num_threads())
    with limit:
        warm_up([torchmanual_step, numpy_step, torch_step], settings.warmup_seconds, cpu)
        steps = steps_for(numpy_step, settings.round_seconds, cpu)
        timing = interleaved(torchmanual_step, numpy_step, settings.rounds, steps, cpu)
        # The same loop in plain torch, against numpy the same way: autograd's own cost.
        reference = interleaved(torch_step, numpy_step, settings.rounds, steps, cpu)
    return {
        "numpy_blas_threads": numpy_threads,  # None: numpy's BLAS default
        "torch_threads": torch.get_num_threads(),
        "network": dict(TWO_LAYER),
        "dtype": "float64",
        "torchmanual_ms": timing.ours_median * 1e3,
        "numpy_ms": timing.theirs_median * 1e3,
        "ratio": timing.ratio,  # torchmanual / numpy
        "ratio_min": min(timing.ratios),
        "ratio_max": max(timing.ratios),
        "torch_ms": reference.ours_median * 1e3,
        "torch_ratio": reference.ratio,  # plain torch (autograd) / numpy
        "rounds": settings.rounds,
        "steps_per_round": steps,
        "meets_target": timing.ratio <= 1.0,
    }


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average": None if load is None else [round(v, 2) for v in load],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def run(settings: Settings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every requested row, the matmul throughput and the two-layer comparison, as a dict."""
    say = progress or (lambda message: None)
    result: dict[str, Any] = {"machine": machine(), "rows": [], "matmul": {}}
    for device_name in settings.devices:
        device = torch.device(device_name)
        # The large layer's own product (batch × 4096 × 4096), or a square one without it.
        shape = (512, 4096, 4096) if "large" in settings.sizes else (1024, 1024, 1024)
        say(f"matmul throughput on {device_name} {shape} ...")
        gflops = matmul_gflops(*shape, device, settings.dtype)
        result["matmul"][device_name] = {"shape": list(shape), "gflops_before": gflops}
        variants = list(settings.variants)
        if device.type == "cuda" and "graph" not in variants:
            variants.append("graph")
        for size in settings.sizes:
            for variant in variants:
                if variant == "graph" and device.type != "cuda":
                    continue
                say(f"{size} {variant} on {device_name} ...")
                row = bench_size(size, variant, device, settings)
                result["rows"].append(asdict(row))
        after = matmul_gflops(*shape, device, settings.dtype)
        # NOTE: the median of the measurements before and after the rows, so a load change
        # during the run moves the reference less.
        result["matmul"][device_name].update(
            gflops_after=after, gflops=statistics.median([gflops, after])
        )
        for row in result["rows"]:
            if row["device"] == device_name:
                reference = result["matmul"][device_name]["gflops"]
                for side, ms in (("ours", row["ours_ms"]), ("torch", row["torch_ms"])):
                    row[f"{side}_matmul_fraction"] = row["gflop_per_step"] / (ms / 1e3) / reference
    if settings.two_layer:
        say("the slides' two-layer loop: numpy vs torchmanual ...")
        result["two_layer"] = bench_two_layer(settings)
    result["machine"]["load_average_after"] = machine()["load_average"]
    result["settings"] = {
        "sizes": settings.sizes,
        "rounds": settings.rounds,
        "round_seconds": settings.round_seconds,
        "variants": list(settings.variants),
        "compile_backend": settings.compile_backend,
        "dtype": str(settings.dtype).removeprefix("torch."),
        "learning_rate": LEARNING_RATE,
    }
    return result


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def format_table(result: dict[str, Any]) -> str:
    """The result as the README's table (plus the two-layer line and the machine)."""
    header = (
        "| size | network, batch | variant | device | torchmanual ms | torch.nn ms | ratio "
        "(min–max) | target | matmul fraction (tm / nn) | saved for backward (tm / nn) |"
    )
    lines = [header, "|" + "---|" * 10]
    for r in result["rows"]:
        network = "-".join(map(str, r["layers"])) + f", {r['batch']}"
        target = (
            ""
            if r["target"] is None
            else f"≤ {r['target']:g} " + ("✓" if r["meets_target"] else "✗")
        )
        fraction = (
            "–"
            if r["ours_matmul_fraction"] is None
            else f"{r['ours_matmul_fraction']:.0%} / {r['torch_matmul_fraction']:.0%}"
        )
        saved = f"{_bytes(r['ours_saved_bytes'])} / {_bytes(r['torch_saved_bytes'])}"
        lines.append(
            f"| {r['size']} | {network} | {r['variant']} | {r['device']} | {r['ours_ms']:.3f} | "
            f"{r['torch_ms']:.3f} | {r['ratio']:.3f} ({r['ratio_min']:.2f}–{r['ratio_max']:.2f})"
            f" | {target} | {fraction} | {saved} |"
        )
    lines.append("")
    for device, mm in result["matmul"].items():
        lines.append(
            f"matmul throughput ({device}, {'×'.join(map(str, mm['shape']))}): "
            f"{mm['gflops']:.1f} GFLOP/s (before {mm['gflops_before']:.1f}, "
            f"after {mm['gflops_after']:.1f})"
        )
    if "two_layer" in result:
        t = result["two_layer"]
        net = t["network"]
        blas = t["numpy_blas_threads"] or "default"
        lines.append(
            f"slides' two-layer loop (N={net['N']}, {net['D_in']}-{net['H']}-{net['D_out']}, "
            f"float64; {t['torch_threads']} torch / {blas} numpy BLAS threads): "
            f"torchmanual {t['torchmanual_ms']:.3f} ms, numpy {t['numpy_ms']:.3f} ms "
            f"per step, ratio {t['ratio']:.3f} ({t['ratio_min']:.2f}–{t['ratio_max']:.2f}) "
            + ("✓ no slower" if t["meets_target"] else "✗ slower")
            + f"; plain torch (torch.nn, autograd, torch.optim) {t['torch_ms']:.3f} ms, "
            f"ratio {t['torch_ratio']:.3f}"
        )
    m = result["machine"]
    lines.append(
        f"machine: {m['processor']}, {m['cpu_count']} CPUs, torch {m['torch']} "
        f"({m['torch_threads']} threads, {m['cpu_capability']}), load average "
        f"{m['load_average']} → {m.get('load_average_after')}"
        + (f", CUDA {m['cuda']}" if m["cuda"] else "")
    )
    return "\n".join(lines)


def default_devices() -> tuple[str, ...]:
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


__all__ = [
    "SIZES",
    "TARGETS",
    "Row",
    "Settings",
    "Timing",
    "format_table",
    "gflop_per_step",
    "make_models",
    "matmul_gflops",
    "run",
    "saved_for_backward",
    "two_layer_pair",
    "two_layer_torch_step",
]
