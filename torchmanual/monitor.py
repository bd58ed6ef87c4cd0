"""Per-layer activation and gradient statistics, logged to TensorBoard while a model trains.

The slides diagnose bad initialisation and vanishing/exploding gradients by looking at each
layer's activation mean, std and histogram, and at how large each layer's gradients are.
:class:`ActivationStats` records exactly those numbers from a running model through forward
hooks and writes them with :class:`torch.utils.tensorboard.SummaryWriter`::

    with ActivationStats(model, "runs/spiral", every=50) as monitor:
        for x, y in batches:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            monitor.step(loss, optimizer)

then ``tensorboard --logdir runs``. ``torchmanual.train.fit(..., monitor=monitor)`` drives the
same object through :meth:`ActivationStats.on_step` and :meth:`ActivationStats.on_epoch`.

Tags written every ``every`` steps (``<layer>`` is a leaf module's qualified name such as
``fc1`` or ``act1``, ``<param>`` a parameter's qualified name such as ``fc1.weight``):

- ``activations/<layer>/mean`` and ``/std``: mean and population std of the layer's output;
  ``/saturated`` (Sigmoid, Tanh): fraction of outputs within 0.01 of a bound; ``/dead``
  (ReLU family): fraction of units that are ≤ 0 for the whole batch; and the histogram
  ``activations/<layer>``.
- ``gradients/<param>/norm`` and the histogram ``gradients/<param>``; ``updates/<param>/ratio``
  = ‖lr·g‖ / ‖w‖ (healthy training sits near 1e-3).
- ``loss/train`` and ``lr`` (first param group); at each epoch end ``loss/train_epoch``,
  ``loss/test``, ``accuracy/test`` and ``epoch``.

plus a custom-scalars layout ("layer mean", "layer std", "gradient norm", ...) and, when
``hparams`` is given, the run's hyper-parameters for TensorBoard's HPARAMS tab.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["DEAD_FAMILY", "SATURATING_BOUNDS", "ActivationStats"]

# Output bounds of the saturating activations, by class name so that torchmanual.nn's
# drop-in classes (which do not subclass torch.nn's) are recognised as well as torch's.
SATURATING_BOUNDS: dict[str, tuple[float, float]] = {"Sigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0)}
# Activations whose units can "die": output ≤ 0 for every input the layer sees.
DEAD_FAMILY: frozenset[str] = frozenset(
    {"ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "SiLU", "Softplus", "Step"}
    | {"ReLU6", "RReLU", "CELU", "SELU", "Mish", "Hardswish"}
)
SATURATION_MARGIN = 0.01
HISTOGRAM_BINS = 64


def _classify(module: nn.Module) -> tuple[str | None, tuple[float, float] | None]:
    """('saturating', bounds), ('dead', None) or (None, None), from the class names along
    the module's MRO (so subclasses of torch.nn.Tanh count as Tanh)."""
    for cls in type(module).__mro__:
        if cls.__name__ in SATURATING_BOUNDS:
            return "saturating", SATURATING_BOUNDS[cls.__name__]
        if cls.__name__ in DEAD_FAMILY:
            return "dead", None
    return None, None


def _histogram(x: Tensor, bins: int = HISTOGRAM_BINS) -> tuple[Tensor, Tensor]:
    """Equal-width histogram of ``x``, computed on x's device without a host sync.

    Returns ``(counts, stats)``: int64 counts of shape (bins,) and float32
    ``[min, max, sum, sum_of_squares]``. torch.histc needs the range as Python floats (a sync
    on CUDA, and it measured 5x slower on CPU), bincount syncs on CUDA to size its output, so
    the bucket index is computed from the on-device min/max and counted with index_add_.
    """
    x = x.reshape(-1)
    lo, hi = torch.aminmax(x)
    # A constant tensor has hi == lo; every value then lands in bucket 0.
    scale = bins / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)
    index = torch.addcmul(-lo * scale, x, scale).to(torch.int32).clamp_(0, bins - 1)
    ones = torch.ones((), dtype=torch.int64, device=x.device).expand(index.numel())
    counts = torch.zeros(bins, dtype=torch.int64, device=x.device).index_add_(0, index, ones)
    stats = torch.stack([lo, hi, x.sum(), torch.dot(x, x)]).float()
    return counts, stats


def _float(x: Tensor) -> Tensor:
    """Detached view in a dtype good enough for statistics (half precision → float32)."""
    x = x.detach()
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _gather(tensors: list[Tensor]) -> list[Any]:
    """Read same-dtype tensors back to Python with one transfer per device.

    A 0-d tensor becomes a number, a 1-d tensor a list.
    """
    out: list[Any] = [None] * len(tensors)
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    for indices in by_device.values():
        flat = torch.cat([tensors[i].reshape(-1) for i in indices]).tolist()
        start = 0
        for i in indices:
            n = tensors[i].numel()
            out[i] = flat[start] if tensors[i].dim() == 0 else flat[start : start + n]
            start += n
    return out


def _histogram_proto(
    counts: list[int], lo: float, hi: float, total: float, squares: float
) -> Any | None:
    """TensorBoard's HistogramProto from equal-width counts; None if the range is not finite."""
    from tensorboard.compat.proto.summary_pb2 import HistogramProto

    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None  # NaN/inf values: the mean/std scalars already show the problem
    num = sum(counts)
    if hi <= lo:
        limits, counts = [hi], [num]
    else:
        # bucket_limit holds right edges; TensorBoard takes the first left edge from min.
        width = (hi - lo) / len(counts)
        limits = [lo + width * (i + 1) for i in range(len(counts))]
        limits[-1] = hi
    return HistogramProto(
        min=lo, max=hi, num=num, sum=total, sum_squares=squares, bucket_limit=limits, bucket=counts
    )


def _hparam_value(value: Any) -> bool | int | float | str:
    """TensorBoard's hparams accept bool/int/float/str; anything else is shown as text."""
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class ActivationStats:
    """Log per-layer activation and gradient statistics to TensorBoard every ``every`` steps.

    A context manager in the spirit of fastai's ``ActivationStats``: forward hooks on every
    leaf submodule of ``model`` are registered at construction and always removed on exit
    (also when the body raises) or by :meth:`close`. The monitor never changes what it
    watches: hooks return ``None``, nothing is modified in place, gradients are only read.

    On a step that is not logged each hook returns after one attribute test; on a logged
    step it computes its statistics with a few fused ops and keeps them on the model's device
    until the step is written, when everything is read back with one transfer per device.
    The statistics of a logged step are those of the last forward pass before
    :meth:`on_step`/:meth:`step` is called; gradients are read from ``param.grad`` at that
    moment. Logged are the first step and then every step whose number is a multiple of
    ``every`` (50, 100, ... whether the loop counts from 0 or, like ``fit``, from 1); if the
    loop's step numbers skip, at least every ``every``-th call is logged.

    Args:
        model: the module to watch (e.g. a ``torchmanual.nn.MLP`` or a ``torch.nn.Sequential``).
        writer_or_logdir: a ``SummaryWriter`` (left open on close) or a log directory (a
            writer is created there and closed on close).
        every: log every this many steps (≥ 1).
        histograms: also write histograms of activations (and gradients).
        gradients: also log gradient norms, gradient histograms and update ratios.
        hparams: the run's hyper-parameters, written for the HPARAMS tab at close together
            with the last epoch's metrics.

    Example:
        >>> import tempfile, torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(),
        ...                             torch.nn.Linear(4, 1))
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> with tempfile.TemporaryDirectory() as logdir:
        ...     with ActivationStats(model, logdir, every=1) as monitor:
        ...         loss = model(torch.randn(8, 2)).square().mean()
        ...         loss.backward()
        ...         opt.step()
        ...         monitor.on_step(0, loss, opt)
        ...     monitor.layer_names
        ['0', '1', '2']
    """

    def __init__(
        self,
        model: nn.Module,
        writer_or_logdir: SummaryWriter | str | os.PathLike[str],
        every: int = 50,
        histograms: bool = True,
        gradients: bool = True,
        hparams: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int):
            raise TypeError(f"every must be an int, got {every!r}")
        if every < 1:
            raise ValueError(f"every must be >= 1 (log every N steps), got every={every}")
        if hparams is not None and not isinstance(hparams, Mapping):
            raise TypeError(f"hparams must be a dict or None, got {type(hparams).__name__}")

        self.model = model
        self.every = every
        self.histograms = bool(histograms)
        self.gradients = bool(gradients)
        self.hparams = dict(hparams) if hparams is not None else None
        self.writer, self._owns_writer = self._open_writer(writer_or_logdir)

        # The hooks fire before the step's number is known, so whether a step is logged is
        # decided at the end of the previous one, predicting its number from the last stride.
        self._count = 0  # calls so far (the step number of monitor.step())
        self._since_logged = 0  # calls since the last logged one
        self._recording = True  # log the first step; this is the flag every hook tests
        self._last_step: int | None = None
        self._last_lr_step: int | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._closed = False
        self._metrics_logged: set[str] = set()
        # layer name -> {stat name -> 0-d tensor}; histogram pieces kept apart.
        self._act_stats: dict[str, dict[str, Tensor]] = {}
        self._act_hists: dict[str, tuple[Tensor, Tensor]] = {}

        self.layer_names: list[str] = []
        self.param_names: list[str] = [n for n, p in model.named_parameters() if p.requires_grad]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        try:
            leaves = [
                (name or "model", module)
                for name, module in model.named_modules()
                if next(module.children(), None) is None
            ]
            self._write_layout([name for name, _ in leaves])
            for name, module in leaves:
                self._handles.append(
                    module.register_forward_hook(self._make_hook(name, *_classify(module)))
                )
                self.layer_names.append(name)
        except BaseException:
            self._remove_hooks()
            if self._owns_writer:
                self.writer.close()
            raise

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _open_writer(target: Any) -> tuple[Any, bool]:
        if isinstance(target, (str, os.PathLike)):
            from torch.utils.tensorboard import SummaryWriter

            path = os.fspath(target)
            try:
                os.makedirs(path, exist_ok=True)
                if not os.access(path, os.W_OK | os.X_OK):
                    raise PermissionError(f"no write permission for {path!r}")
                return SummaryWriter(log_dir=path), True
            except OSError as error:
                raise OSError(
                    f"cannot write TensorBoard logs to {path!r}: {error.strerror or error}"
                ) from error
        if callable(getattr(target, "add_scalar", None)):
            return target, False
        raise TypeError(
            "writer_or_logdir must be a SummaryWriter or a directory path, "
            f"got {type(target).__name__}"
        )

    def _write_layout(self, layers: list[str]) -> None:
        # Multiline charts take regexes; anchor and escape so 'fc1' does not match 'fc10'.
        def tags(fmt: str, names: list[str]) -> list[str]:
            return ["^" + re.escape(fmt.format(n)) + "$" for n in names]

        params = self.param_names
        layout = {
            "activations": {
                "layer mean": ["Multiline", tags("activations/{}/mean", layers)],
                "layer std": ["Multiline", tags("activations/{}/std", layers)],
            },
            "training": {
                "loss": ["Multiline", tags("{}", ["loss/train", "loss/train_epoch", "loss/test"])],
            },
        }
        if self.gradients and params:
            layout["gradients"] = {
                "gradient norm": ["Multiline", tags("gradients/{}/norm", params)],
                "update / weight ratio": ["Multiline", tags("updates/{}/ratio", params)],
            }
        self.writer.add_custom_scalars(layout)

    def _make_hook(
        self, name: str, kind: str | None, bounds: tuple[float, float] | None
    ) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not self._recording:  # not a logged step: do nothing at all
                return None
            if isinstance(output, Tensor) and output.is_floating_point() and output.numel():
                self._record_activation(name, kind, bounds, output)
            return None

        return hook

    # ------------------------------------------------------------------ recording
    def _record_activation(
        self, name: str, kind: str | None, bounds: tuple[float, float] | None, output: Tensor
    ) -> None:
        y = _float(output)
        # Population std (np.std, as in the slides) by the two-pass formula: as robust as
        # torch.std_mean and, measured on CPU, 15-30x faster (std_mean's Welford loop is slow).
        mean = y.mean()
        std = torch.linalg.vector_norm(y - mean) / math.sqrt(y.numel())
        stats = {"mean": mean, "std": std}
        if kind == "saturating" and bounds is not None:
            lo, hi = bounds
            half = (hi - lo) / 2
            # |y - centre| >= half-range - margin  <=>  within margin of either bound.
            near = (y - (lo + half)).abs_() >= half - SATURATION_MARGIN
            stats["saturated"] = near.float().mean()
        elif kind == "dead":
            # A unit is one output feature; dim 0 is the batch. Dead: never > 0 in the batch.
            units = y.flatten(1).amax(dim=0) if y.dim() >= 2 else y
            stats["dead"] = (units <= 0).float().mean()
        self._act_stats[name] = stats
        if self.histograms:
            self._act_hists[name] = _histogram(y)

    def _lr_of(self, optimizer: Any) -> dict[int, float]:
        lrs: dict[int, float] = {}
        for group in getattr(optimizer, "param_groups", ()):
            lr = float(group["lr"])
            for p in group["params"]:
                lrs[id(p)] = lr
        return lrs

    # ------------------------------------------------------------------ protocol
    def on_step(self, step: int, loss: Tensor | float | None, optimizer: Any = None) -> None:
        """Called by the fit loop after each optimizer step; logs every ``every`` steps.

        ``step`` is the global step used as TensorBoard's x-axis; ``loss`` the step's loss;
        ``optimizer`` supplies the learning rates for ``lr`` and the update ratios.
        """
        self._check_open()
        if optimizer is not None:
            self._optimizer = optimizer
        if self._recording:
            try:
                self._write_step(int(step), loss, self._optimizer)
            finally:
                self._act_stats.clear()
                self._act_hists.clear()
            self._since_logged = 0
        previous, self._last_step = self._last_step, int(step)
        stride = self._last_step - previous if previous is not None else 1
        upcoming = self._last_step + (stride if stride > 0 else 1)
        self._count += 1
        self._since_logged += 1
        self._recording = upcoming % self.every == 0 or self._since_logged >= self.every

    def step(self, loss: Tensor | float | None = None, optimizer: Any = None) -> None:
        """Advance the step counter in a hand-written loop (call after ``optimizer.step()``).

        Same as ``on_step(n, loss, optimizer)`` with ``n`` the number of steps before this
        one, so steps 0, every, 2·every, ... are logged.
        """
        self.on_step(self._count, loss, optimizer)

    def on_epoch(self, epoch: int, history: Any) -> None:
        """Called by the fit loop after each evaluation; logs the epoch's metrics.

        ``history.to_dict()`` (or ``history`` itself, if a mapping) holds lists
        ``train_loss``, ``test_loss`` and ``test_accuracy``; the last entry of each is
        written (``None`` entries, e.g. accuracy for regression, are skipped) at the current
        global step, so epoch and step curves share one x-axis; ``epoch`` is logged too.
        """
        self._check_open()
        record = history.to_dict() if hasattr(history, "to_dict") else dict(history)
        step = self._last_step if self._last_step is not None else 0
        for key, tag in (
            ("train_loss", "loss/train_epoch"),
            ("test_loss", "loss/test"),
            ("test_accuracy", "accuracy/test"),
        ):
            values = record.get(key) or []
            if values and values[-1] is not None:
                self.writer.add_scalar(tag, float(values[-1]), step)
                self._metrics_logged.add(tag)
        self.writer.add_scalar("epoch", int(epoch), step)
        if self._optimizer is not None and self._last_lr_step != step:
            self._log_lr(self._optimizer, step)
        self.writer.flush()  # epochs are rare; let a running TensorBoard see them now

    # ------------------------------------------------------------------ writing
    def _log_lr(self, optimizer: Any, step: int) -> None:
        groups = getattr(optimizer, "param_groups", None)
        if groups:
            self.writer.add_scalar("lr", float(groups[0]["lr"]), step)
            self._last_lr_step = step

    def _write_step(self, step: int, loss: Any, optimizer: Any) -> None:
        tags: list[str] = []
        values: list[Tensor] = []
        hist_tags: list[str] = []
        hists: list[tuple[Tensor, Tensor]] = []

        if loss is not None:
            loss_t = loss.detach() if isinstance(loss, Tensor) else torch.tensor(float(loss))
            tags.append("loss/train")
            values.append(loss_t.float().mean())
        for name in self.layer_names:
            for stat, value in self._act_stats.get(name, {}).items():
                tags.append(f"activations/{name}/{stat}")
                values.append(value)
            if name in self._act_hists:
                hist_tags.append(f"activations/{name}")
                hists.append(self._act_hists[name])

        if self.gradients:
            lrs = self._lr_of(optimizer) if optimizer is not None else {}
            for name, p in self.model.named_parameters():
                if p.grad is None or not p.requires_grad:
                    continue
                g = _float(p.grad)
                g_norm = torch.linalg.vector_norm(g)
                tags.append(f"gradients/{name}/norm")
                values.append(g_norm)
                if id(p) in lrs:
                    w_norm = torch.linalg.vector_norm(_float(p))
                    tags.append(f"updates/{name}/ratio")
                    values.append(lrs[id(p)] * g_norm / w_norm)
                if self.histograms and g.numel():
                    hist_tags.append(f"gradients/{name}")
                    hists.append(_histogram(g))

        # The only host reads of the step: one per device for the floats (scalars and the
        # histograms' min/max/sum/sum of squares), one for the histogram counts.
        floats = _gather([v.float() for v in values] + [s for _, s in hists])
        counts = _gather([c for c, _ in hists]) if hists else []
        scalars = list(zip(tags, floats[: len(tags)], strict=True))
        if optimizer is not None and getattr(optimizer, "param_groups", None):
            scalars.append(("lr", float(optimizer.param_groups[0]["lr"])))
            self._last_lr_step = step
        histos = []
        for tag, bucket_counts, stats in zip(hist_tags, counts, floats[len(tags) :], strict=True):
            histo = _histogram_proto(bucket_counts, *stats)
            if histo is not None:
                histos.append((tag, histo))
        self._emit(scalars, histos, step)

    def _emit(
        self, scalars: list[tuple[str, float]], histos: list[tuple[str, Any]], step: int
    ) -> None:
        """Write a logged step's values as ONE event: add_scalar queues one event per value
        for the writer thread, measured at ~0.5 ms apiece (lock contention) on a busy CPU."""
        get_file_writer = getattr(self.writer, "_get_file_writer", None)
        if get_file_writer is None:  # not torch's SummaryWriter: use only the public API
            for tag, value in scalars:
                self.writer.add_scalar(tag, value, step)
            for tag, h in histos:
                self.writer.add_histogram_raw(
                    tag, h.min, h.max, h.num, h.sum, h.sum_squares,
                    list(h.bucket_limit), list(h.bucket), global_step=step,
                )  # fmt: skip
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=tag, simple_value=value) for tag, value in scalars]
        values += [Summary.Value(tag=tag, histo=h) for tag, h in histos]
        get_file_writer().add_summary(Summary(value=values), step)

    def _write_hparams(self) -> None:
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        hp = {str(k): _hparam_value(v) for k, v in self.hparams.items() if v is not None}
        # Metrics name scalar tags already in this run; TensorBoard shows their last value.
        metrics = sorted(self._metrics_logged) or ["loss/train"]
        experiment, start, end = hparams_summary(hp, dict.fromkeys(metrics, 0.0))
        # SummaryWriter.add_hparams would write into a new sub-run; write into this run.
        get_file_writer = getattr(self.writer, "_get_file_writer", None)
        file_writer = get_file_writer() if get_file_writer else self.writer.file_writer
        for summary in (experiment, start, end):
            file_writer.add_summary(summary)

    # ------------------------------------------------------------------ lifetime
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this ActivationStats monitor is closed; create a new one")

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def close(self) -> None:
        """Remove every hook, write the hyper-parameters, flush, and close an owned writer.

        Safe to call more than once.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._remove_hooks()
            self._act_stats.clear()
            self._act_hists.clear()
            if self.hparams is not None:
                self._write_hparams()
        finally:
            if self._owns_writer:
                self.writer.close()
            else:
                self.writer.flush()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run (hooks removed, writer flushed)."""
        return self._closed

    def __enter__(self) -> ActivationStats:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._handles)} hooks"
        return f"ActivationStats(every={self.every}, layers={len(self.layer_names)}, {state})"
