"""The fit loop: shuffled minibatch SGD, evaluation each epoch, progress, checkpoints.

:func:`fit` trains any ``torch.nn.Module`` with any loss and any ``torch.optim.Optimizer``
(torchmanual's or torch's) on a ``TensorDataset``, and returns a :class:`History`. It prints
nothing on stdout; its progress bar goes to stderr, and only when stderr is a terminal. Its
failures are typed and say what to do in one line, so a command line can drive it:

- :class:`CheckpointError` — a checkpoint to resume from is missing, corrupt, or foreign.
- :class:`NonFiniteLossError` — the loss became inf/nan; training stopped before the
  broken step was applied, and the last good checkpoint was left as it was.

Monitor protocol
----------------
``fit(..., monitor=m)`` calls, when ``m`` has them (both are optional):

``m.on_step(step: int, loss: float, optimizer: torch.optim.Optimizer) -> None``
    after every optimizer step. ``step`` is the global step count, 1 for the first step of
    the run (it carries on across a resume). ``loss`` is that minibatch's loss, a Python
    float, computed before the step. The parameters' ``.grad`` still hold that step's
    gradients (they are cleared just before the next backward), so a monitor can compute
    gradient norms and the update-to-weight ratio ``lr·‖g‖ / ‖w‖`` from
    ``optimizer.param_groups``.
``m.on_epoch(epoch: int, history: History) -> None``
    after each epoch's evaluation. ``epoch`` counts completed epochs (1 for the first);
    ``history`` holds every epoch so far, so ``history.test_loss[-1]`` is this epoch's.

Forward and backward statistics are the monitor's own business (module hooks); ``fit`` only
tells it when steps and epochs happen.

Checkpoints
-----------
With ``checkpoint=PATH`` every epoch ends by atomically replacing PATH (a temp file in the
same directory, flushed and fsync'ed, then ``os.replace``) with a dict of tensors and plain
Python values — model and optimizer ``state_dict``, scheduler state, epoch, global step, the
RNG states and the history — that ``torch.load(PATH, weights_only=True)`` reads. A process
killed at any moment leaves the previous complete checkpoint (and at worst its temp file,
which the next save on that host removes). ``epochs`` is the run's total:
``resume=True`` with the same arguments continues from the checkpoint's epoch to ``epochs``
and ends, on CPU, bit for bit where an uninterrupted run would have.

Distributed training
--------------------
When a ``torch.distributed`` process group is initialised (torchrun, or the caller's own
``init_process_group``), ``fit`` trains data-parallel: it wraps ``model`` in
``DistributedDataParallel`` (unless it already is one), and ``batch_size`` is the *global*
batch. Every rank draws the same shuffle and keeps every ``world_size``-th sample of each
global batch (``DistributedSampler``'s interleaving, without its padding); a rank's mean
loss is weighted by its share, so the all-reduced gradient is exactly the global batch's and
``N`` ranks take the steps one process would (to float rounding). The logged loss is the
global batch's, the same on every rank, so a non-finite loss stops every rank at the same
step. Only rank 0 shows progress, calls the monitor and writes checkpoints (the bare
model's ``state_dict``, so a checkpoint resumes in any world size); on resume rank 0 reads
the file and broadcasts it. Each rank evaluates the whole test split with rank 0's buffers.
BatchNorm normalises with each rank's own batch statistics, as ``torch.nn.BatchNorm1d``
does under DDP.

>>> import torch
>>> from torchmanual import data
>>> xor = data.xor()
>>> _ = torch.manual_seed(0)
>>> model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
>>> history = fit(model, torch.nn.CrossEntropyLoss(), optimizer, xor.train, xor.test,
...               epochs=100, batch_size=4, progress=False)
>>> history.test_accuracy[-1]
1.0
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import re
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)
from tqdm import tqdm

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "History",
    "Monitor",
    "NonFiniteLossError",
    "evaluate",
    "fit",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
]

#: The marker every torchmanual checkpoint carries under the key ``"format"``.
CHECKPOINT_FORMAT = "torchmanual.checkpoint"
#: The checkpoint layout this version writes (and the newest it reads).
CHECKPOINT_VERSION = 1

_REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "epoch": int,
    "step": int,
    "model": dict,
    "optimizer": dict,
    "rng": dict,
    "history": dict,
}

# NOTE: evaluation runs in chunks this large only to bound memory; for a 'mean' loss the
# size-weighted mean of chunk means is the mean over the whole split.
_EVAL_CHUNK = 8192

Task = Literal["classification", "regression"]
DatasetLike = TensorDataset | tuple[Tensor, Tensor] | Dataset
LossFn = Callable[[Tensor, Tensor], Tensor]


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, corrupt, foreign, or not for this model.

    ``str(error)`` is one line naming the path and the reason; ``error.path`` and
    ``error.reason`` hold them separately.

    >>> str(CheckpointError("run.pt", "file does not exist"))
    'cannot use checkpoint run.pt: file does not exist'
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line, whatever the cause said
        super().__init__(f"cannot use checkpoint {self.path}: {self.reason}")


class NonFiniteLossError(RuntimeError):
    """The training loss became inf or nan; ``epoch``, ``step`` and ``loss`` say where.

    Raised before the broken step updates the weights and before that epoch's checkpoint,
    so the last checkpoint on disk is the last good one.
    """

    def __init__(self, epoch: int, step: int, loss: float, checkpoint: str | None = None) -> None:
        self.epoch, self.step, self.loss = epoch, step, loss
        kept = f"; the last good checkpoint is kept at {checkpoint}" if checkpoint else ""
        super().__init__(
            f"training loss became {loss} at epoch {epoch}, step {step}: the learning rate is "
            "probably too high or the gradients are exploding; try a lower learning rate "
            f"(--lr) or gradient clipping{kept}"
        )


@runtime_checkable
class Monitor(Protocol):
    """What :func:`fit` calls on ``monitor=`` (see the module docstring). Both are optional."""

    def on_step(self, step: int, loss: float, optimizer: torch.optim.Optimizer) -> None: ...

    def on_epoch(self, epoch: int, history: History) -> None: ...


@dataclass
class History:
    """Per-epoch results of :func:`fit`; index ``[-1]`` is the latest epoch.

    ``train_loss``: the mean minibatch loss over the epoch (weighted by batch size, taken as
    the weights changed). ``test_loss``/``test_accuracy``: on the test split after the
    epoch (``None`` without a test split; accuracy ``None`` for regression). ``seconds``:
    wall time of the epoch, training and evaluation. ``step``: optimizer steps so far.

    >>> h = History(task="regression")
    >>> h.to_dict()["train_loss"], h.epochs
    ([], 0)
    """

    task: Task = "classification"
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float | None] = field(default_factory=list)
    test_accuracy: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    step: int = 0

    @property
    def epochs(self) -> int:
        """The number of completed epochs."""
        return len(self.train_loss)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-ready, and what a checkpoint stores)."""
        return {
            "task": self.task,
            "train_loss": list(self.train_loss),
            "test_loss": list(self.test_loss),
            "test_accuracy": list(self.test_accuracy),
            "seconds": list(self.seconds),
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> History:
        """The inverse of :meth:`to_dict`."""
        return cls(
            task=state["task"],
            train_loss=list(state["train_loss"]),
            test_loss=list(state["test_loss"]),
            test_accuracy=list(state["test_accuracy"]),
            seconds=list(state["seconds"]),
            step=int(state["step"]),
        )


# --- checkpoints -----------------------------------------------------------------------------


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format marker) to ``path`` atomically.

    The data goes to a temp file next to ``path``, is flushed and fsync'ed, and then
    replaces ``path`` in one ``os.replace``: a reader, or a crash at any moment, sees either
    the old complete file or the new complete file. On failure the temp file is removed and
    the old file is untouched. ``state`` must hold only tensors and plain Python values so
    that :func:`load_checkpoint` (``weights_only=True``) can read it.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "run.pt"
    >>> save_checkpoint(path, {"epoch": 0, "step": 0, "model": {}, "optimizer": {},
    ...                        "rng": {}, "history": {}})
    >>> load_checkpoint(path)["format"]
    'torchmanual.checkpoint'
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    payload = {**state, "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION}
    # A unique hidden name in the same directory: os.replace is atomic only within one
    # file system, and two writers must not share a temp file.
    temp = directory / f".{path.name}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    # os.open with 0o666 lets the umask decide the permissions, as a plain open() would.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)
    _remove_stale_temp_files(directory, path.name)


_HOST = socket.gethostname().replace("/", "_") or "host"


def _remove_stale_temp_files(directory: Path, name: str) -> None:
    """Delete temp files of ``name`` left by writers on this host that no longer run.

    A process killed mid-write (SIGKILL, power loss) leaves its temp file behind; the
    checkpoint itself is whole. Only files naming this host and a dead process id go, so a
    live writer's file, or another machine's on a shared file system, is never touched.
    """
    prefix = f".{name}.{_HOST}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
                continue
            pid_text = entry.name[len(prefix) :].split(".", 1)[0]
            if pid_text.isdigit() and not _process_exists(int(pid_text)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _process_exists(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # (Windows' os.kill would terminate it)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or we cannot tell: leave its file alone
    return True


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`fit` or :func:`save_checkpoint`.

    Loads with ``torch.load(path, weights_only=True, map_location='cpu')`` (so no code in
    the file runs, and a GPU checkpoint loads anywhere). Raises :class:`CheckpointError`
    with a one-line reason if the file is missing, unreadable, corrupt (truncated, garbage),
    foreign (a torch file without torchmanual's format marker), from a newer torchmanual, or
    missing a field.

    >>> load_checkpoint("no/such/run.pt")
    Traceback (most recent call last):
    ...
    torchmanual.train.CheckpointError: cannot use checkpoint no/such/run.pt: file does not exist
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "file does not exist")
    if not path.is_file():
        raise CheckpointError(path, "not a regular file")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL\s+([\w.]+)", str(error))
        if refused is not None:
            # A pickle that imports a Python object: foreign at best, malicious at worst.
            # weights_only refused it before anything in the file ran.
            raise CheckpointError(
                path,
                f"not a torchmanual checkpoint: it holds Python objects ({refused.group(1)}) "
                "that torch.load(weights_only=True) refuses to load; nothing in it was run",
            ) from error
        if "weights only" in str(error).lower() or "weightsunpickler" in str(error).lower():
            raise CheckpointError(
                path, "corrupt or truncated file (not a pickle weights_only can read)"
            ) from error
        raise CheckpointError(path, f"corrupt file ({_first_line(error)})") from error
    except PermissionError as error:
        raise CheckpointError(path, f"cannot read it ({error.strerror})") from error
    except Exception as error:
        # Garbage reaching the unpickler can fail in any way (IndexError, KeyError, EOFError,
        # zipfile.BadZipFile...); whatever the exception, the file is not a usable checkpoint.
        raise CheckpointError(path, f"corrupt or truncated file ({_describe(error)})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            path, f"not a torchmanual checkpoint (no {CHECKPOINT_FORMAT!r} format marker)"
        )
    version = state.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(path, f"unknown checkpoint version {version!r}")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(
            path,
            f"written by a newer torchmanual (checkpoint version {version}; "
            f"this one reads up to {CHECKPOINT_VERSION})",
        )
    for key, kind in _REQUIRED_KEYS.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(path, f"damaged: field {key!r} is missing or malformed")
    return state


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    name = type(error).__name__
    return f"{name}: {_first_line(error)}" if text else name


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def _check_model_state(path: Path, model: torch.nn.Module, saved: dict[str, Any]) -> None:
    # load_state_dict's own error is a multi-line dump; name the first mismatch instead.
    own = model.state_dict()
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        raise CheckpointError(path, f"does not fit this model: {'; '.join(parts)}")
    for key, value in own.items():
        other = saved[key]
        if isinstance(value, Tensor) and (
            not isinstance(other, Tensor) or other.shape != value.shape
        ):
            theirs = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
            raise CheckpointError(
                path,
                f"does not fit this model: {key!r} is {theirs} in the checkpoint "
                f"but {tuple(value.shape)} in the model",
            )


def _few(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# --- data ------------------------------------------------------------------------------------


def _as_tensors(dataset: DatasetLike, name: str) -> tuple[Tensor, Tensor] | None:
    """The (inputs, targets) tensors of an in-memory dataset, or None for a generic one."""
    if isinstance(dataset, TensorDataset):
        tensors = dataset.tensors
    elif isinstance(dataset, tuple) and all(isinstance(t, Tensor) for t in dataset):
        tensors = dataset
    elif isinstance(dataset, Dataset):
        return None
    else:
        raise TypeError(
            f"{name} must be a TensorDataset, an (inputs, targets) tuple of tensors, or a "
            f"torch Dataset, got {type(dataset).__name__}"
        )
    if len(tensors) != 2:
        raise ValueError(f"{name} must hold exactly (inputs, targets), got {len(tensors)} tensors")
    if tensors[0].shape[0] != tensors[1].shape[0]:
        raise ValueError(
            f"{name} inputs and targets differ in length: "
            f"{tensors[0].shape[0]} vs {tensors[1].shape[0]}"
        )
    return tensors[0], tensors[1]


def _batches(
    dataset: DatasetLike,
    tensors: tuple[Tensor, Tensor] | None,
    batch_size: int,
    device: torch.device,
    generator: torch.Generator | None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Minibatches on ``device``, shuffled by ``generator`` (None: in order)."""
    for xb, yb, _, _ in _shards(dataset, tensors, batch_size, device, generator, 0, 1):
        yield xb, yb


def _shards(
    dataset: DatasetLike,
    tensors: tuple[Tensor, Tensor] | None,
    batch_size: int,
    device: torch.device,
    generator: torch.Generator | None,
    rank: int,
    world_size: int,
) -> Iterator[tuple[Tensor, Tensor, int, int]]:
    """``(inputs, targets, local_n, global_n)``: this rank's share of every global batch.

    Every rank draws the same global minibatches of ``batch_size`` (the same shuffle: the
    generators are seeded alike) and keeps positions ``rank, rank + world_size, ...`` of
    each, as ``DistributedSampler`` interleaves; so ``world_size`` ranks together see
    exactly the batches one process sees. A rank whose share of a short last batch is
    empty gets the whole global batch with ``local_n == 0``: it still runs forward and
    backward (DDP needs every rank in the gradient all-reduce) with a zero loss weight.
    With ``world_size == 1`` these are the single-process minibatches.
    """
    if tensors is not None:
        x, y = tensors
        n = x.shape[0]
        # NOTE: one randperm per epoch from the seeded generator, then slicing: the same
        # minibatches a DataLoader(shuffle=True) gives, without per-sample collation.
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            local_n = len(range(start + rank, stop, world_size))
            step = world_size if local_n else 1
            first = start + rank if local_n else start
            if order is None:
                index: slice | Tensor = slice(first, stop, step)
            else:
                index = order[first:stop:step].to(x.device)
            yield x[index], y[index], local_n, stop - start
        return
    if world_size == 1:
        loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=generator is not None, generator=generator
        )
        for xb, yb in loader:
            n_batch = xb.shape[0]
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            yield xb, yb, n_batch, n_batch
        return
    # NOTE: the single-process loader's own sampler and generator draws (its iterator takes
    # a base seed from the generator, then RandomSampler a permutation), so a sharded run
    # shuffles exactly as a single one.
    sampler = (
        RandomSampler(dataset, generator=generator)
        if generator is not None
        else SequentialSampler(dataset)
    )
    sizes: list[tuple[int, int]] = []

    def shards() -> Iterator[list[int]]:
        for batch in BatchSampler(sampler, batch_size, drop_last=False):
            mine = batch[rank::world_size]
            sizes.append((len(mine), len(batch)))
            yield mine or batch

    loader = DataLoader(dataset, batch_sampler=_Reiterable(shards), generator=generator)
    for xb, yb in loader:
        local_n, global_n = sizes.pop(0)
        yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True), local_n, global_n


class _Reiterable:
    """An iterable (what ``batch_sampler`` takes) over a generator function's output."""

    def __init__(self, make: Callable[[], Iterator[list[int]]]) -> None:
        self.make = make

    def __iter__(self) -> Iterator[list[int]]:
        return self.make()


def _sample_targets(dataset: DatasetLike, tensors: tuple[Tensor, Tensor] | None) -> Tensor:
    if tensors is not None:
        return tensors[1]
    if len(dataset) == 0:
        raise ValueError("train is empty")
    return torch.as_tensor(dataset[0][1])


def _detect_task(targets: Tensor, task: str | None) -> Task:
    if task is not None:
        if task not in ("classification", "regression"):
            raise ValueError(
                f"task must be 'classification', 'regression' or None (detect), got {task!r}"
            )
        return task  # type: ignore[return-value]
    # Integer targets are class indices (what cross_entropy takes); float targets are values.
    return "regression" if targets.is_floating_point() else "classification"


def resolve_device(device: str | torch.device) -> torch.device:
    """``'auto'`` → CUDA if available, else CPU; any other name is checked and returned.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} was asked for but CUDA is not available; use 'cpu' or 'auto'"
        )
    return resolved


@contextlib.contextmanager
def _mode(model: torch.nn.Module, training: bool) -> Iterator[None]:
    """Put ``model`` in train/eval mode, then restore every submodule's own mode."""
    saved = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, was_training in saved:
            module.training = was_training


def evaluate(
    model: torch.nn.Module,
    loss_fn: LossFn,
    dataset: DatasetLike,
    *,
    task: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[float, float | None]:
    """The mean loss and (for classification) accuracy of ``model`` on ``dataset``.

    Runs in eval mode under ``torch.no_grad`` and restores the model's modes afterwards.
    Accuracy is the fraction of ``argmax(output, dim=-1) == target``; ``None`` for
    regression (detected from float targets unless ``task`` says).

    >>> import torch
    >>> model = torch.nn.Linear(2, 2)
    >>> loss, accuracy = evaluate(model, torch.nn.CrossEntropyLoss(),
    ...                           (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)))
    >>> 0.0 <= accuracy <= 1.0
    True
    """
    device = resolve_device(device)
    tensors = _as_tensors(dataset, "dataset")
    if tensors is not None:
        tensors = (tensors[0].to(device), tensors[1].to(device))
    kind = _detect_task(_sample_targets(dataset, tensors), task)
    return _evaluate(model, loss_fn, dataset, tensors, kind, device)


def _evaluate(
    model: torch.nn.Module,
    loss_fn: LossFn,
    dataset: DatasetLike,
    tensors: tuple[Tensor, Tensor] | None,
    task: Task,
    device: torch.device,
) -> tuple[float, float | None]:
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = targets = 0
    with _mode(model, False), torch.no_grad():
        for xb, yb in _batches(dataset, tensors, _EVAL_CHUNK, device, None):
            output = model(xb)
            total_loss += loss_fn(output, yb).double() * xb.shape[0]
            count += xb.shape[0]
            if task == "classification":
                correct += (output.argmax(dim=-1) == yb).sum()
                targets += yb.numel()
    if count == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    accuracy = correct.item() / targets if task == "classification" else None
    return total_loss.item() / count, accuracy


# --- the loop --------------------------------------------------------------------------------


def _rng_state(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "shuffle": generator.get_state(), "cuda": cuda}


def _restore(
    path: Path,
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
) -> None:
    _check_model_state(path, model, state["model"])
    model.load_state_dict(state["model"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(
            path, f"its optimizer state does not fit this optimizer ({_first_line(error)})"
        ) from error
    saved_scheduler = state.get("scheduler")
    if (scheduler is None) != (saved_scheduler is None):
        had = "with" if saved_scheduler is not None else "without"
        raise CheckpointError(
            path, f"it was written {had} a learning-rate scheduler; resume with the same setup"
        )
    if scheduler is not None:
        scheduler.load_state_dict(saved_scheduler)
    rng = state["rng"]
    try:
        generator.set_state(rng["shuffle"])
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            if len(rng["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(rng["cuda"])
            else:
                warnings.warn(
                    f"checkpoint {path} saved {len(rng['cuda'])} CUDA RNG states but this "
                    f"machine has {torch.cuda.device_count()} GPUs; CUDA RNG not restored",
                    stacklevel=3,
                )
    except (KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(path, f"damaged RNG state ({_first_line(error)})") from error


def _resume(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[History, int]:
    """Load ``path`` into the training state; return the history so far and its epoch.

    In a process group only rank 0 reads the file, and every rank gets rank 0's state (or
    its error) by broadcast: the ranks resume from one and the same checkpoint, which only
    rank 0's machine needs to hold.
    """
    state = _load_on_rank0(path, rank, world_size)
    _restore(path, state, model, optimizer, scheduler, generator)
    try:
        history = History.from_dict(state["history"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(path, "damaged: malformed history") from error
    history.step = state["step"]
    config = state.get("config", {})
    for name, value in (("batch_size", batch_size), ("seed", seed)):
        if rank == 0 and name in config and config[name] != value:
            warnings.warn(
                f"resuming {path} with {name}={value}, but it was written with "
                f"{name}={config[name]}; the run will differ from an uninterrupted one",
                stacklevel=3,
            )
    return history, state["epoch"]


# --- distributed -----------------------------------------------------------------------------


def _process_group(distributed: bool | None) -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group fit trains in; ``(0, 1)`` alone."""
    initialised = dist.is_available() and dist.is_initialized()
    if distributed is None:
        distributed = initialised
    if not distributed:
        return 0, 1
    if not initialised:
        raise ValueError(
            "distributed=True needs an initialised process group; call "
            "torch.distributed.init_process_group() first (torchrun provides its environment)"
        )
    return dist.get_rank(), dist.get_world_size()


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module a ``DistributedDataParallel`` wraps (what checkpoints and evaluation use)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def _broadcast_from_rank0(value: Any) -> Any:
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _load_on_rank0(path: Path, rank: int, world_size: int) -> dict[str, Any]:
    if world_size == 1:
        return load_checkpoint(path)
    outcome: tuple[str, Any] | None = None
    if rank == 0:
        try:
            outcome = ("state", load_checkpoint(path))
        except CheckpointError as error:
            outcome = ("error", error.reason)
    kind, value = _broadcast_from_rank0(outcome)
    if kind == "error":
        raise CheckpointError(path, value)
    return value


def _save_on_rank0(
    path: Path, state: Callable[[], dict[str, Any]], rank: int, world_size: int
) -> None:
    """Rank 0 writes the checkpoint; every rank learns whether it did (and fails if not)."""
    failure: BaseException | None = None
    if rank == 0:
        try:
            save_checkpoint(path, state())
        except Exception as error:
            failure = error
    if world_size > 1:
        reason = _broadcast_from_rank0(None if failure is None else _describe(failure))
        if reason is not None and rank != 0:
            raise RuntimeError(f"rank 0 could not write the checkpoint {path}: {reason}")
    if failure is not None:
        raise failure


def _data_parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` as given if it is already a ``DistributedDataParallel``, else wrapped in one."""
    if isinstance(model, DistributedDataParallel):
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _global_mean(loss: Tensor, local_n: int, global_n: int, device: torch.device) -> float:
    """The mean of per-rank mean losses weighted by their shares, summed over the ranks."""
    if local_n:
        total = loss.detach().to(torch.float64) * local_n
    else:
        total = torch.zeros((), dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.item() / global_n


def _sync_buffers(module: torch.nn.Module) -> None:
    # NOTE: DDP broadcasts rank 0's buffers (BatchNorm's running statistics) before each
    # forward, so after an epoch's last step every rank holds its own; evaluation and the
    # checkpoint use rank 0's, as the next forward would.
    for buffer in module.buffers():
        dist.broadcast(buffer, 0)


def _scheduler_step(scheduler: Any, history: History) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        # It needs a metric: the test loss, or without a test split the training loss.
        metric = history.test_loss[-1]
        scheduler.step(metric if metric is not None else history.train_loss[-1])
    else:
        scheduler.step()


def _check_positive_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    train: DatasetLike,
    test: DatasetLike | None = None,
    *,
    epochs: int,
    batch_size: int,
    device: str | torch.device = "cpu",
    monitor: Monitor | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    seed: int = 0,
    scheduler: Any = None,
    task: str | None = None,
    distributed: bool | None = None,
) -> History:
    """Train ``model`` with minibatch SGD for ``epochs`` epochs; return the :class:`History`.

    Each epoch draws a new shuffle of ``train`` from a ``torch.Generator`` seeded by
    ``seed`` (the global RNG is left to the model, e.g. dropout), takes one
    ``optimizer.step()`` per minibatch of ``batch_size`` (the last one may be smaller),
    evaluates on ``test`` (loss, and accuracy for classification), steps ``scheduler``
    (``ReduceLROnPlateau`` gets the test loss, or the train loss without a test split),
    and writes ``checkpoint``.

    Args:
        model, loss_fn, optimizer: any ``nn.Module``, a ``loss_fn(output, target)`` with
            ``reduction='mean'``, and any ``torch.optim.Optimizer`` over the model's
            parameters. ``model`` (and ``loss_fn`` if a module) is moved to ``device``.
        train, test: ``TensorDataset(inputs, targets)`` (fast path: kept on ``device``
            whole, sliced per batch), an ``(inputs, targets)`` tuple, or any map-style
            ``Dataset`` (loaded by a ``DataLoader``).
        epochs: the run's total number of epochs (with ``resume``, the target to reach).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``..., or ``'auto'`` (CUDA if available).
        monitor: an object with ``on_step`` / ``on_epoch`` (see the module docstring).
        checkpoint: a path written atomically after every epoch.
        resume: continue from ``checkpoint`` (which must exist) instead of starting over.
            Restores model, optimizer, scheduler, the shuffle generator and the global
            torch (and CUDA) RNG, so dropout draws what it would have drawn.
        progress: show a tqdm bar on stderr (only when stderr is a terminal).
        task: ``'classification'`` or ``'regression'``; ``None`` detects it from the
            targets (integer → classification).
        distributed: ``None`` (default): data-parallel when a ``torch.distributed``
            process group is initialised; ``True`` requires one, ``False`` ignores it.
            Then ``batch_size`` is the global batch: each rank trains on its share of it
            (see "Distributed training" in the module docstring).

    Raises:
        CheckpointError: ``resume`` with a missing, corrupt or foreign checkpoint, or one
            for a different model/optimizer.
        NonFiniteLossError: the loss became inf/nan (before that step is applied).

    >>> import torch
    >>> from torchmanual import data
    >>> spiral = data.spiral()
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(),
    ...                             torch.nn.Linear(64, 64), torch.nn.ReLU(),
    ...                             torch.nn.Linear(64, 3))
    >>> history = fit(model, torch.nn.CrossEntropyLoss(),
    ...               torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
    ...               spiral.train, spiral.test, epochs=15, batch_size=32, progress=False)
    >>> history.step, history.test_accuracy[-1] >= 0.95
    (435, True)
    """
    _check_positive_int("epochs", epochs, 0)
    _check_positive_int("batch_size", batch_size, 1)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH to resume from")
    device = resolve_device(device)
    checkpoint_path = Path(checkpoint) if checkpoint is not None else None
    rank, world_size = _process_group(distributed)
    if world_size > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())

    train_tensors = _as_tensors(train, "train")
    test_tensors = _as_tensors(test, "test") if test is not None else None
    if train_tensors is not None:
        if train_tensors[0].shape[0] == 0:
            raise ValueError("train is empty")
        # NOTE: the in-memory splits move to the device once, not per batch: the toy data
        # sets are tiny next to a GPU's memory, and host-to-device copies dominate otherwise.
        train_tensors = (train_tensors[0].to(device), train_tensors[1].to(device))
    if test_tensors is not None:
        test_tensors = (test_tensors[0].to(device), test_tensors[1].to(device))
    kind = _detect_task(_sample_targets(train, train_tensors), task)

    model.to(device)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(device)
    # ``net`` is what trains (DDP all-reduces its gradients); ``module`` is what is saved,
    # restored and evaluated, so a checkpoint fits the bare model in any world size.
    net = _data_parallel(model, device) if world_size > 1 else model
    module = _unwrap(model)
    generator = torch.Generator().manual_seed(seed)
    history = History(task=kind)
    start_epoch = 0

    if resume:
        assert checkpoint_path is not None
        history, start_epoch = _resume(
            checkpoint_path,
            module,
            optimizer,
            scheduler,
            generator,
            batch_size,
            seed,
            rank,
            world_size,
        )

    # Only a checkpoint this run resumed from or wrote is known to be good.
    has_good_checkpoint = resume
    steps_per_epoch = (
        math.ceil(train_tensors[0].shape[0] / batch_size)
        if train_tensors is not None
        else math.ceil(len(train) / batch_size)
    )
    # Progress, the monitor and checkpoints are rank 0's business.
    on_step = getattr(monitor, "on_step", None) if rank == 0 else None
    on_epoch = getattr(monitor, "on_epoch", None) if rank == 0 else None
    bar = tqdm(
        total=max(epochs - start_epoch, 0) * steps_per_epoch,
        desc=f"epoch {min(start_epoch + 1, epochs)}/{epochs}",
        disable=not (progress and rank == 0 and _stderr_is_terminal()),
        file=sys.stderr,
        unit="step",
        leave=True,
        dynamic_ncols=True,
    )
    try:
        with _mode(net, True):
            for epoch in range(start_epoch + 1, epochs + 1):
                bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)
                began = time.perf_counter()
                loss_sum, seen = 0.0, 0
                for xb, yb, local_n, global_n in _shards(
                    train, train_tensors, batch_size, device, generator, rank, world_size
                ):
                    output = net(xb)
                    loss = loss_fn(output, yb)
                    # One host sync per step: it is what lets a bad step be refused before it
                    # touches the weights, and the progress bar needs the number anyway.
                    if world_size == 1:
                        value = loss.item()
                    else:
                        # The global batch's mean loss, the same number on every rank, so
                        # every rank refuses a non-finite step together.
                        value = _global_mean(loss, local_n, global_n, device)
                        if local_n * world_size != global_n:
                            # DDP averages gradients over ranks: weigh each rank's mean by
                            # its share so the average is the global batch's mean gradient.
                            loss = loss * (local_n * world_size / global_n)
                    if not math.isfinite(value):
                        raise NonFiniteLossError(
                            epoch,
                            history.step + 1,
                            value,
                            str(checkpoint_path) if has_good_checkpoint else None,
                        )
                    # Gradients are cleared here, not after step(), so monitor.on_step sees them.
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    history.step += 1
                    loss_sum += value * global_n
                    seen += global_n
                    if on_step is not None:
                        on_step(history.step, value, optimizer)
                    bar.update()
                    bar.set_postfix(_postfix(loss_sum / seen, history), refresh=False)

                if world_size > 1:
                    _sync_buffers(module)
                if test is not None:
                    test_loss, accuracy = _evaluate(
                        module, loss_fn, test, test_tensors, kind, device
                    )
                else:
                    test_loss, accuracy = None, None
                history.train_loss.append(loss_sum / seen)
                history.test_loss.append(test_loss)
                history.test_accuracy.append(accuracy)
                history.seconds.append(time.perf_counter() - began)
                bar.set_postfix(_postfix(history.train_loss[-1], history), refresh=False)
                if on_epoch is not None:
                    on_epoch(epoch, history)
                if scheduler is not None:
                    _scheduler_step(scheduler, history)
                if checkpoint_path is not None:
                    _save_on_rank0(
                        checkpoint_path,
                        lambda epoch=epoch: {
                            "epoch": epoch,
                            "step": history.step,
                            "model": module.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict() if scheduler is not None else None,
                            "rng": _rng_state(generator, device),
                            "history": history.to_dict(),
                            "config": {"epochs": epochs, "batch_size": batch_size, "seed": seed},
                        },
                        rank,
                        world_size,
                    )
                    has_good_checkpoint = True
    finally:
        bar.close()
    return history


def _postfix(train_loss: float, history: History) -> dict[str, str]:
    postfix = {"loss": f"{train_loss:.4g}"}
    if history.test_loss and history.test_loss[-1] is not None:
        postfix["test_loss"] = f"{history.test_loss[-1]:.4g}"
    if history.test_accuracy and history.test_accuracy[-1] is not None:
        postfix["acc"] = f"{history.test_accuracy[-1]:.3f}"
    return postfix
