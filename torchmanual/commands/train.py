"""``torchmanual train``: an MLP of torchmanual Functions, hand-written SGD, TensorBoard."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from torchmanual import data as datasets
from torchmanual.init import SCHEMES
from torchmanual.nn import ACTIVATIONS, MLP, CrossEntropyLoss, MSELoss, MulticlassSVMLoss
from torchmanual.optim import SGD, param_groups
from torchmanual.train import CheckpointError, NonFiniteLossError, fit, resolve_device

HELP = "train an MLP on one of the slides' problems (or digits) and log it to TensorBoard"

LOSSES = {"cross_entropy": CrossEntropyLoss, "multiclass_svm": MulticlassSVMLoss, "mse": MSELoss}

# Hyper-parameters per data set, used where the command line does not say otherwise: each
# gives a good model in seconds on a laptop CPU (measured in tests/test_train_command.py).
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": dict(
        hidden=[256],
        lr=0.05,
        epochs=40,
        batch_size=32,
        weight_decay=1e-3,
        preprocess="standardize",
        batch_norm=True,
        schedule="cosine",
    ),
    "spiral": dict(hidden=[100, 100], lr=0.1, epochs=60, batch_size=32),
    "circles": dict(hidden=[4], lr=0.1, epochs=60, batch_size=16),
    "xor": dict(hidden=[2], lr=0.1, epochs=600, batch_size=4, activation="tanh", init="xavier"),
    "and": dict(hidden=[], lr=0.5, epochs=100, batch_size=4),
    "square": dict(hidden=[32, 32], lr=0.05, epochs=100, batch_size=32),
    "reciprocal": dict(
        hidden=[32, 32], lr=0.05, epochs=100, batch_size=32, preprocess="standardize"
    ),
    "sin": dict(hidden=[32, 32], lr=0.05, epochs=150, batch_size=32, preprocess="standardize"),
}
COMMON = dict(
    activation="relu",
    init="he",
    momentum=0.9,
    weight_decay=0.0,
    preprocess="none",
    schedule="constant",
    batch_norm=False,
)
SCHEDULES = ("constant", "cosine")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--dataset", default="spiral", choices=datasets.DATASETS)
    parser.add_argument(
        "--hidden",
        type=int,
        nargs="*",
        metavar="UNITS",
        help="hidden layer widths (default: per data set; none for a single layer)",
    )
    parser.add_argument("--activation", choices=list(ACTIVATIONS), help="default: relu")
    parser.add_argument(
        "--init",
        choices=["default", *sorted(SCHEMES)],
        help="weight initialisation ('default': torch.nn.Linear's own; "
        "default: he, or per data set)",
    )
    parser.add_argument(
        "--loss",
        choices=list(LOSSES),
        help="default: cross_entropy (classification), mse (regression)",
    )
    parser.add_argument(
        "--batch-norm",
        action=argparse.BooleanOptionalAction,
        help="BatchNorm1d after each hidden fc (default: per data set)",
    )
    parser.add_argument(
        "--preprocess",
        choices=datasets.PREPROCESSING,
        help="fit on the training split, apply to both",
    )
    parser.add_argument("--lr", type=float, help="learning rate (default: per data set)")
    parser.add_argument("--momentum", type=float, help="default: 0.9")
    parser.add_argument(
        "--weight-decay", type=float, help="L2 penalty on weights, not biases (the slides' rule)"
    )
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="learning rate per epoch: constant, or cosine annealing to 0",
    )
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--epochs", type=int, help="the run's total (also with --resume)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the initialisation and the shuffling (the data is fixed)",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--logdir",
        default="runs",
        help="TensorBoard folder; each run writes a subfolder ('none': off)",
    )
    parser.add_argument(
        "--every",
        type=int,
        default=50,
        help="log statistics every N steps (50 keeps the monitor under 5%% of a step)",
    )
    parser.add_argument("--checkpoint", type=Path, help="checkpoint file, written each epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms only (torch.use_deterministic_algorithms; CUDA: also "
        "CUBLAS_WORKSPACE_CONFIG=:4096:8). CPU runs are bit-reproducible without it",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The command line over the data set's defaults over the common ones."""
    settings = {**COMMON, **DEFAULTS[args.dataset]}
    for key in (
        "hidden",
        "activation",
        "init",
        "loss",
        "preprocess",
        "lr",
        "momentum",
        "weight_decay",
        "schedule",
        "batch_norm",
        "batch_size",
        "epochs",
    ):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    return settings


@dataclass(frozen=True)
class World:
    """This process's place in a torchrun job: ``rank`` of ``world_size`` processes, the
    ``local_rank`` on its machine. A plain run is ``World()``: rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process prints, logs and checkpoints (rank 0)."""
        return self.rank == 0


def torchrun_world(environ: dict[str, str] | None = None) -> World:
    """The :class:`World` torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)
    describes; ``World()`` without one, or for a world of one process.

    >>> torchrun_world({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    World(rank=1, world_size=2, local_rank=1)
    >>> torchrun_world({})
    World(rank=0, world_size=1, local_rank=0)
    """
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return World()
    values = {}
    for name, default in (("WORLD_SIZE", None), ("RANK", None), ("LOCAL_RANK", "0")):
        text = environ.get(name, default)
        problem = " is not set" if text is None else f"={text!r} is not an integer"
        try:
            values[name] = int(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(
                f"the environment variable {name}{problem}; launch distributed runs "
                "with torchrun (it sets RANK, WORLD_SIZE and LOCAL_RANK)"
            ) from None
    rank, world_size, local_rank = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, "
            f"LOCAL_RANK={local_rank}"
        )
    return World(rank, world_size, local_rank)


def _fail(message: str, status: int, world: World | None = None) -> int:
    # NOTE: every rank fails the same way (same arguments, or an outcome broadcast from
    # rank 0), so only rank 0 says it: one message, not one per process.
    if world is None:
        world = _environment_world()
    if world.main:
        print(f"torchmanual train: error: {message}", file=sys.stderr)
    return status


def _environment_world() -> World:
    try:
        return torchrun_world()
    except ValueError:
        return World()


def run(args: argparse.Namespace) -> int:
    """Train; under torchrun (``WORLD_SIZE`` > 1) as one rank of a DDP job."""
    try:
        world = torchrun_world()
    except ValueError as error:
        print(f"torchmanual train: error: {error}", file=sys.stderr)
        return 2
    if dist.is_available() and dist.is_initialized():
        # A caller that set up its own process group (e.g. main() called from a worker).
        world = World(dist.get_rank(), dist.get_world_size(), world.local_rank)
        return _train(args, world, own_group=False)
    if world.world_size == 1:
        return _train(args, world, own_group=False)
    if not dist.is_available():
        return _fail("this torch build has no torch.distributed; run a single process", 2, world)
    return _train(args, world, own_group=True)


def _distributed_device(args: argparse.Namespace, world: World) -> torch.device:
    """``--device`` for one rank: CUDA means the GPU numbered ``LOCAL_RANK``."""
    device = resolve_device(args.device)
    if device.type != "cuda" or world.world_size == 1:
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK={world.local_rank} but this machine has {torch.cuda.device_count()} "
            "GPU(s); start at most one process per GPU (--nproc-per-node) or use --device cpu"
        )
    device = torch.device("cuda", world.local_rank)
    torch.cuda.set_device(device)
    return device


def _checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written as a checkpoint, or None (creates its folder)."""
    if path.is_dir():
        return f"cannot write the checkpoint {path}: it is a directory"
    for ancestor in (path.parent, *path.parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"cannot write the checkpoint {path}: {ancestor} is not a directory"
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        return f"cannot write the checkpoint {path}: {reason} ({error.filename or path.parent})"
    return None


def _agree(ok: bool, device: torch.device) -> bool:
    """Whether every rank is ``ok`` (one all-reduce), so all go on or all stop together."""
    flag = torch.tensor([1 if ok else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _train(args: argparse.Namespace, world: World, own_group: bool) -> int:
    settings = _settings(args)
    if args.resume and args.checkpoint is None:
        return _fail("--resume needs --checkpoint PATH", 2, world)
    for key in ("lr", "batch_size", "epochs"):
        if settings[key] <= 0:
            return _fail(
                f"--{key.replace('_', '-')} must be positive, got {settings[key]}", 2, world
            )
    if getattr(args, "deterministic", False):
        # NOTE: before any CUDA work: cuBLAS reads the variable when it creates its handle.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        device = _distributed_device(args, world)
    except (RuntimeError, ValueError) as error:
        return _fail(str(error), 2, world)
    if own_group:
        # gloo on CPU, NCCL on CUDA; torchrun's MASTER_ADDR/MASTER_PORT say where to meet.
        cuda = device.type == "cuda"
        dist.init_process_group(
            backend="nccl" if cuda else "gloo",
            init_method="env://",
            rank=world.rank,
            world_size=world.world_size,
            device_id=device if cuda else None,
        )
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    try:
        if getattr(args, "deterministic", False):
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        return _run(args, settings, world, device)
    finally:
        # Restored, so main() called in a process leaves torch's global modes as it found them.
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.backends.cudnn.benchmark = deterministic[2]
        if own_group:
            dist.destroy_process_group()


def _run(
    args: argparse.Namespace, settings: dict[str, Any], world: World, device: torch.device
) -> int:
    distributed = world.world_size > 1

    # NOTE: the data set is fixed (seed 0: digits' fixed split); --seed drives init and shuffling.
    problem = datasets.load(args.dataset, seed=0)
    problem, _ = datasets.preprocess(problem, settings["preprocess"])
    classification = problem.task == "classification"
    loss_name = settings.get("loss") or ("cross_entropy" if classification else "mse")
    if classification == (loss_name == "mse"):
        valid = "cross_entropy, multiclass_svm" if classification else "mse"
        return _fail(
            f"--loss {loss_name} does not fit the {problem.task} data set "
            f"{args.dataset!r}; choose {valid}",
            2,
            world,
        )

    torch.manual_seed(args.seed)
    sizes = [problem.in_features, *settings["hidden"], problem.out_features]
    model = MLP(
        sizes,
        activation=settings["activation"],
        init=settings["init"],
        batch_norm=settings["batch_norm"],
    )
    optimizer = SGD(
        param_groups(model, settings["weight_decay"]),
        lr=settings["lr"],
        momentum=settings["momentum"],
    )
    loss_fn = LOSSES[loss_name]()
    scheduler = None
    if settings["schedule"] == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings["epochs"])

    if distributed:
        # Every rank built the same model from the same seed; DDP checks that and from now
        # on all-reduces the gradients. The optimizer keeps the same parameter objects.
        model.to(device)
        net: torch.nn.Module = DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None
        )
    else:
        net = model

    logdir = None
    monitor = None
    # Where rank 0 will write must be writable before any training time is spent.
    log_error = _checkpoint_problem(args.checkpoint) if world.main and args.checkpoint else None
    if args.logdir.lower() != "none":
        run_name = f"{args.dataset}-{settings['activation']}-{settings['init']}-s{args.seed}"
        logdir = str(Path(args.logdir) / run_name)
        from torchmanual.monitor import ActivationStats

        hparams = {
            k: (",".join(map(str, v)) if isinstance(v, list) else v)
            for k, v in {**settings, "loss": loss_name, "seed": args.seed}.items()
        }
        if world.main and log_error is None:  # TensorBoard logs are rank 0's
            try:
                monitor = ActivationStats(model, logdir, every=args.every, hparams=hparams)
            except (OSError, ValueError) as error:
                log_error = f"cannot log to {logdir}: {error}"
    if distributed and not _agree(log_error is None, device):
        return _fail(log_error or "rank 0 could not set up its output files", 1, world)
    if log_error is not None:
        return _fail(log_error, 1, world)

    start = time.perf_counter()
    try:
        # The monitor's hooks are removed when the block ends, also on an exception.
        with monitor if monitor is not None else contextlib.nullcontext():
            history = _fit(
                args, settings, net, loss_fn, optimizer, scheduler, problem, device, monitor
            )
    except CheckpointError as error:
        return _fail(str(error).splitlines()[0], 1, world)
    except NonFiniteLossError as error:
        return _fail(str(error), 1, world)
    except OSError as error:
        # E.g. the disk filled up: the checkpoint write is atomic, so the last one is whole.
        where = error.filename or args.checkpoint
        return _fail(f"cannot write {where}: {error.strerror or error}", 1, world)
    seconds = time.perf_counter() - start

    result = {
        "dataset": args.dataset,
        "task": problem.task,
        "epochs": history.epochs,
        "train_loss": history.train_loss[-1] if history.train_loss else None,
        "test_loss": history.test_loss[-1] if history.test_loss else None,
        "seconds": round(seconds, 3),
        "logdir": logdir,
        "device": str(device),
        "world_size": world.world_size,
    }
    if classification:
        result["test_accuracy"] = history.test_accuracy[-1] if history.test_accuracy else None
    if not world.main:
        return 0
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value:.6g}" if isinstance(value, float) else f"{key:>14}: {value}")
    return 0


def _fit(args, settings, model, loss_fn, optimizer, scheduler, problem, device, monitor):
    return fit(
        model,
        loss_fn,
        optimizer,
        problem.train,
        problem.test,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        device=device,
        monitor=monitor,
        checkpoint=args.checkpoint,
        resume=args.resume,
        progress=not (args.quiet or args.json),
        seed=args.seed,
        scheduler=scheduler,
    )
