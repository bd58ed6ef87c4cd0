"""The slides' example problems, a real data set, and the slides' preprocessing.

Every loader returns a :class:`Data`: two ``TensorDataset`` splits of ``(inputs, targets)``
plus what a model needs to know about them (task, feature and class counts). Inputs are
floating point (float32 unless ``dtype=`` says otherwise); classification targets are int64
class indices (what ``cross_entropy`` takes), regression targets are ``(n, 1)`` floats (what
``mse_loss`` takes against an ``(n, 1)`` output).

Randomness comes only from a ``torch.Generator`` seeded by ``seed=``, never from the global
RNG, so a data set is the same on every machine and loading one never disturbs a model's
initialisation.

>>> data = load("spiral", seed=0)
>>> data.train.tensors[0].shape, data.train.tensors[1].dtype, data.out_features
(torch.Size([900, 2]), torch.int64, 3)
>>> data, stats = preprocess(data, "standardize")
>>> bool(data.train.tensors[0].mean(0).abs().max() < 1e-6)
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = [
    "DATASETS",
    "PREPROCESSING",
    "REGRESSION_PROBLEMS",
    "Data",
    "Standardize",
    "Whiten",
    "and_",
    "circles",
    "digits",
    "load",
    "preprocess",
    "regression",
    "spiral",
    "standardize",
    "whiten",
    "xor",
]

Task = Literal["classification", "regression"]
Transform = Callable[[Tensor], Tensor]


@dataclass(frozen=True, repr=False)
class Data:
    """A data set: train and test splits and the facts a model is built from.

    ``train`` and ``test`` are ``TensorDataset(inputs, targets)``; inputs are ``(n,
    in_features)`` floats; targets are int64 class indices (classification) or ``(n, 1)``
    floats (regression). ``out_features`` is the number of outputs a model needs:
    ``num_classes`` for classification, 1 for regression.

    >>> data = xor()
    >>> data
    Data(name='xor', task='classification', train=4, test=4, in_features=2, out_features=2)
    >>> x, y = data.train.tensors
    >>> y.tolist()
    [0, 1, 1, 0]
    """

    name: str
    task: Task
    train: TensorDataset
    test: TensorDataset
    num_classes: int | None
    in_features: int
    out_features: int

    def __repr__(self) -> str:
        return (
            f"Data(name={self.name!r}, task={self.task!r}, train={len(self.train)}, "
            f"test={len(self.test)}, in_features={self.in_features}, "
            f"out_features={self.out_features})"
        )

    def map(self, transform: Transform) -> Data:
        """Apply ``transform`` to the inputs of both splits (targets untouched).

        Fit the transform on the training split first (see :func:`standardize`), so the
        test split is transformed with the training statistics, never its own.

        >>> data = circles(n=100)
        >>> stats = standardize(data.train.tensors[0])
        >>> data.map(stats).in_features
        2
        """
        train_x, train_y = self.train.tensors
        test_x, test_y = self.test.tensors
        new_train_x, new_test_x = transform(train_x), transform(test_x)
        return dataclasses.replace(
            self,
            train=TensorDataset(new_train_x, train_y),
            test=TensorDataset(new_test_x, test_y),
            in_features=new_train_x.shape[-1],
        )


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _classification(
    name: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], num_classes: int
) -> Data:
    return Data(
        name=name,
        task="classification",
        train=TensorDataset(*train),
        test=TensorDataset(*test),
        num_classes=num_classes,
        in_features=train[0].shape[1],
        out_features=num_classes,
    )


def _check_positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


# --- logic gates -----------------------------------------------------------------------------

_TRUTH_TABLE = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def _gate(name: str, targets: list[int], dtype: torch.dtype) -> Data:
    x = _TRUTH_TABLE.to(dtype)
    y = torch.tensor(targets, dtype=torch.int64)
    # The whole truth table is the problem: there is nothing else to test on.
    return _classification(name, (x, y), (x.clone(), y.clone()), num_classes=2)


def and_(*, seed: int = 0, dtype: torch.dtype = torch.float32) -> Data:
    """Logical AND: the 4 rows of the truth table, train = test (the slides' single neuron).

    ``seed`` is accepted so every loader has the same signature; the data has no randomness.

    >>> and_().train.tensors[1].tolist()
    [0, 0, 0, 1]
    """
    return _gate("and", [0, 0, 0, 1], dtype)


def xor(*, seed: int = 0, dtype: torch.dtype = torch.float32) -> Data:
    """Logical XOR: the 4 rows of the truth table, train = test.

    Not linearly separable, so a single perceptron cannot learn it; the slides solve it with
    one hidden layer of 2 units. ``seed`` is accepted for a uniform signature.

    >>> xor().train.tensors[1].tolist()
    [0, 1, 1, 0]
    """
    return _gate("xor", [0, 1, 1, 0], dtype)


# --- 2-D point clouds ------------------------------------------------------------------------


def _circles_draw(
    n: int, noise: float, factor: float, g: torch.Generator, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    n_outer = n // 2
    n_inner = n - n_outer
    angle = torch.rand(n, generator=g, dtype=torch.float64) * (2 * math.pi)
    radius = torch.cat(
        [torch.ones(n_outer, dtype=torch.float64), torch.full((n_inner,), float(factor))]
    )
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    x = x + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = torch.cat([torch.zeros(n_outer, dtype=torch.int64), torch.ones(n_inner, dtype=torch.int64)])
    return x.to(dtype), y


def circles(
    n: int = 400,
    *,
    noise: float = 0.1,
    factor: float = 0.5,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Data:
    """Two concentric circles (as scikit-learn's ``make_circles``): 2 classes, 2 features.

    ``n`` points per split: half on the unit circle (class 0), half on a circle of radius
    ``factor`` (class 1), at uniformly random angles, plus Gaussian noise of std ``noise``.
    The test split is an independent draw of the same size. The slides separate the two
    classes with one hidden layer of 4 units.

    >>> data = circles(n=10)
    >>> data.train.tensors[0].shape, data.train.tensors[1].tolist()
    (torch.Size([10, 2]), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    """
    _check_positive("n", n, minimum=2)
    _check_non_negative("noise", noise)
    if not (isinstance(factor, (int, float)) and 0 < factor < 1):
        raise ValueError(f"factor must be between 0 and 1 (exclusive), got {factor!r}")
    g = _generator(seed)
    train = _circles_draw(n, noise, factor, g, dtype)
    test = _circles_draw(n, noise, factor, g, dtype)
    return _classification("circles", train, test, num_classes=2)


def _spiral_draw(
    n: int, classes: int, noise: float, g: torch.Generator, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    xs, ys = [], []
    radius = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    for k in range(classes):
        # CS231n's spiral: each arm sweeps 4 radians of angle while its radius grows 0 -> 1.
        theta = torch.linspace(4.0 * k, 4.0 * (k + 1), n, dtype=torch.float64)
        theta = theta + noise * torch.randn(n, generator=g, dtype=torch.float64)
        xs.append(torch.stack([radius * torch.sin(theta), radius * torch.cos(theta)], dim=1))
        ys.append(torch.full((n,), k, dtype=torch.int64))
    return torch.cat(xs).to(dtype), torch.cat(ys)


def spiral(
    n: int = 300,
    classes: int = 3,
    *,
    noise: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Data:
    """The classic CS231n spiral: ``classes`` interleaved arms of ``n`` points each.

    Arm k has radius ``linspace(0, 1, n)`` and angle ``linspace(4k, 4(k+1), n)`` plus
    Gaussian noise of std ``noise`` (radians). Not linearly separable; a small MLP solves
    it. The test split is an independent draw (same radii, new angle noise).

    >>> data = spiral(n=100, classes=3)
    >>> len(data.train), data.num_classes
    (300, 3)
    """
    _check_positive("n", n)
    _check_positive("classes", classes, minimum=2)
    _check_non_negative("noise", noise)
    g = _generator(seed)
    train = _spiral_draw(n, classes, noise, g, dtype)
    test = _spiral_draw(n, classes, noise, g, dtype)
    return _classification("spiral", train, test, num_classes=classes)


# --- regression curves -----------------------------------------------------------------------

#: name -> (function, input interval) for the slides' three regression curves.
REGRESSION_PROBLEMS: dict[str, tuple[Callable[[Tensor], Tensor], tuple[float, float]]] = {
    "square": (torch.square, (-1.0, 1.0)),
    "reciprocal": (torch.reciprocal, (1.0, 100.0)),
    "sin": (torch.sin, (1.0, 2 * math.pi)),
}


def _regression_draw(
    name: str, n: int, noise: float, g: torch.Generator, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    fn, (low, high) = REGRESSION_PROBLEMS[name]
    x = low + (high - low) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    # NOTE: sorted so that plotting a split (or a model's predictions on it) draws the curve;
    # fit() shuffles every epoch, so the order costs training nothing.
    x = x.sort(dim=0).values
    y = fn(x) + noise * torch.randn(n, 1, generator=g, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def regression(
    name: str,
    n: int = 200,
    *,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Data:
    """One of the slides' regression curves, sampled at ``n`` uniformly random points.

    ``'square'``: x² on [-1, 1]; ``'reciprocal'``: 1/x on [1, 100]; ``'sin'``: sin x on
    [1, 2π]. Inputs and targets are ``(n, 1)``; ``noise`` adds Gaussian noise of that std to
    the targets. The test split is an independent draw. The inputs are raw (1/x's span
    [1, 100]); :func:`preprocess` standardises them.

    >>> data = regression("square", n=50)
    >>> data.task, data.train.tensors[1].shape
    ('regression', torch.Size([50, 1]))
    """
    if name not in REGRESSION_PROBLEMS:
        raise ValueError(
            f"unknown regression problem {name!r}; choose one of {', '.join(REGRESSION_PROBLEMS)}"
        )
    _check_positive("n", n)
    _check_non_negative("noise", noise)
    g = _generator(seed)
    train = _regression_draw(name, n, noise, g, dtype)
    test = _regression_draw(name, n, noise, g, dtype)
    return Data(
        name=name,
        task="regression",
        train=TensorDataset(*train),
        test=TensorDataset(*test),
        num_classes=None,
        in_features=1,
        out_features=1,
    )


# --- real data -------------------------------------------------------------------------------


def digits(*, seed: int = 0, dtype: torch.dtype = torch.float32) -> Data:
    """scikit-learn's 8×8 handwritten digits: 1,797 images, 64 features, 10 classes.

    Bundled with scikit-learn (no download). Split 80/20 stratified by class with
    ``train_test_split(..., test_size=0.2, stratify=y, random_state=seed)``: 1,437 training
    and 360 test images. Pixels (0..16 in the data) are divided by 16, so inputs lie in
    [0, 1]. Needs the ``data`` extra: ``pip install "torchmanual[data]"``.

    >>> data = digits()
    >>> len(data.train), len(data.test), data.in_features, data.num_classes
    (1437, 360, 64, 10)
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            'the digits data set needs scikit-learn: pip install "torchmanual[data]"'
        ) from error
    bunch = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=0.2, stratify=bunch.target, random_state=seed
    )
    # NOTE: /16 maps the 0..16 pixel counts into [0, 1]; the slides only centre images, and
    # this keeps the default inputs on the scale the initialisations assume.
    train = (torch.as_tensor(x_train / 16.0, dtype=dtype), torch.as_tensor(y_train).long())
    test = (torch.as_tensor(x_test / 16.0, dtype=dtype), torch.as_tensor(y_test).long())
    return _classification("digits", train, test, num_classes=10)


# --- by name ---------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[..., Data]] = {
    "and": and_,
    "xor": xor,
    "circles": circles,
    "spiral": spiral,
    "digits": digits,
}

#: Every name :func:`load` accepts.
DATASETS: tuple[str, ...] = (*_LOADERS, *REGRESSION_PROBLEMS)


def load(name: str, **kwargs) -> Data:
    """Load a data set by name; ``kwargs`` go to its loader (``seed=``, ``dtype=``, ``n=``...).

    Names: ``'and', 'xor', 'circles', 'spiral', 'digits', 'square', 'reciprocal', 'sin'``
    (see :data:`DATASETS`).

    >>> load("sin", n=20).train.tensors[0].shape
    torch.Size([20, 1])
    """
    if name in REGRESSION_PROBLEMS:
        return regression(name, **kwargs)
    if name not in _LOADERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return _LOADERS[name](**kwargs)


# --- preprocessing ---------------------------------------------------------------------------


def _check_matrix(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 2 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} needs a 2-D floating-point tensor (n, features), got {shape}")
    if x.shape[0] < 2:
        raise ValueError(
            f"{name} needs at least 2 samples to estimate statistics, got {x.shape[0]}"
        )


def _check_features(name: str, x: Tensor, features: int) -> None:
    if x.shape[-1] != features:
        raise ValueError(
            f"{name} was fitted on {features} features but got input of shape {tuple(x.shape)}"
        )


@dataclass(frozen=True)
class Standardize:
    """Fitted zero-mean / unit-std statistics; calling it transforms ``(x - mean) / std``.

    Made by :func:`standardize`. ``mean`` and ``std`` have one entry per feature.
    """

    mean: Tensor
    std: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        _check_features("Standardize", x, self.mean.shape[0])
        return (x - self.mean.to(x)) / self.std.to(x)


def standardize(train_x: Tensor, eps: float = 1e-8) -> Standardize:
    """Fit the slides' zero-centre-and-normalise step on the training inputs.

    ``X -= mean(X, axis=0); X /= std(X, axis=0)``, with the population std (numpy's
    default, as the slides' code). Apply the result to train and test alike.

    >>> x = torch.tensor([[1.0, 10.0], [3.0, 10.0]])
    >>> stats = standardize(x)
    >>> stats(x).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """
    _check_matrix("standardize", train_x)
    mean = train_x.mean(dim=0)
    std = train_x.std(dim=0, correction=0)
    # NOTE: a constant feature (std < eps; digits has always-blank pixels) is only centred,
    # as scikit-learn's StandardScaler does: dividing by ~0 would blow up any test value.
    std = torch.where(std < eps, torch.ones_like(std), std)
    return Standardize(mean=mean, std=std)


@dataclass(frozen=True)
class Whiten:
    """Fitted PCA whitening; calling it transforms ``(x - mean) @ matrix``.

    Made by :func:`whiten`. ``matrix`` is ``(features, features)``: its columns are the
    principal directions divided by the square root of their variance (plus ``eps``), so the
    transformed training inputs are decorrelated with unit variance.
    """

    mean: Tensor
    matrix: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        _check_features("Whiten", x, self.mean.shape[0])
        return (x - self.mean.to(x)) @ self.matrix.to(x)


def whiten(train_x: Tensor, eps: float = 1e-5) -> Whiten:
    """Fit the slides' decorrelate-and-whiten step (PCA whitening) on the training inputs.

    Centre, rotate onto the eigenvectors of the covariance ``Xᵀ X / n`` (decorrelation), and
    divide each direction by ``sqrt(eigenvalue + eps)`` (whitening): the transformed
    training inputs have covariance ≈ identity. ``eps`` keeps near-zero-variance directions
    from being amplified into noise.

    >>> x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0)) @ torch.tensor(
    ...     [[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.5, 0.5]])
    >>> z = whiten(x)(x)
    >>> bool(torch.allclose(z.T @ z / len(z), torch.eye(3), atol=1e-3))
    True
    """
    _check_matrix("whiten", train_x)
    # NOTE: the covariance and its eigendecomposition are computed in float64; in float32 the
    # small eigenvalues (the ones whitening divides by) lose most of their digits.
    x = train_x.double()
    mean = x.mean(dim=0)
    centred = x - mean
    covariance = centred.T @ centred / x.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    # Round-off can make a zero eigenvalue slightly negative; it is a variance, so >= 0.
    eigenvalues = eigenvalues.clamp_min(0.0)
    matrix = eigenvectors / torch.sqrt(eigenvalues + eps)
    return Whiten(mean=mean.to(train_x.dtype), matrix=matrix.to(train_x.dtype))


#: Methods :func:`preprocess` accepts.
PREPROCESSING: tuple[str, ...] = ("none", "standardize", "whiten")


def preprocess(
    data: Data, method: str | None, **kwargs
) -> tuple[Data, Standardize | Whiten | None]:
    """Fit ``method`` on ``data``'s training inputs and apply it to both splits.

    ``method`` is ``'standardize'``, ``'whiten'``, or ``None``/``'none'`` (no change);
    ``kwargs`` (``eps=``) go to the fitting function. Returns the new data and the fitted
    transform (``None`` for no preprocessing), which transforms any new inputs the same way.

    >>> data, stats = preprocess(regression("reciprocal"), "standardize")
    >>> round(float(stats.mean[0]))  # the training inputs' mean, on [1, 100]
    50
    """
    if method is None or method == "none":
        return data, None
    fitters: dict[str, Callable[..., Standardize | Whiten]] = {
        "standardize": standardize,
        "whiten": whiten,
    }
    if method not in fitters:
        raise ValueError(
            f"unknown preprocessing {method!r}; choose one of {', '.join(PREPROCESSING)}"
        )
    transform = fitters[method](data.train.tensors[0], **kwargs)
    return data.map(transform), transform
