"""The slides' activation-statistics experiment (SLIDES.md section 9), all five cases.

``X = randn(1000, 500)`` through 10 hidden layers ``H = act(X @ W)`` (no bias) for tanh with
0.01·randn, tanh with randn, tanh with Xavier, ReLU with Xavier and ReLU with He weights:
every layer's std per case, one TensorBoard run per case, and (with matplotlib) the slides'
per-layer histograms as one PNG — the same as ``torchmanual init-stats --all``.

    python examples/init_statistics.py [--width 500] [--samples 1000] [--logdir runs/init-stats]
    tensorboard --logdir runs/init-stats
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from torchmanual.experiments import SLIDE_CASES, InitStats, format_comparison, init_stats

Histogram = tuple[torch.Tensor, torch.Tensor]  # (counts, bin edges)


def layer_histograms(result: InitStats, bins: int = 30) -> list[Histogram]:
    """Every hidden layer's histogram over the first layer's range (so a collapse to 0 shows
    as one spike, as in the slides' plots); the result needs ``keep_activations=True``."""
    if result.activations is None:
        raise ValueError("run init_stats with keep_activations=True to plot histograms")
    first = result.activations[0]
    lo, hi = first.min().item(), first.max().item()
    if hi <= lo:  # a constant first layer (zero init): any non-empty range will do
        lo, hi = lo - 1.0, hi + 1.0
    return [
        torch.histogram(h.flatten().double().clamp(lo, hi), bins=bins, range=(lo, hi))
        for h in result.activations
    ]


def plot_histograms(
    results: list[InitStats], histograms: list[list[Histogram]], path: Path
) -> Path | None:
    """One row per case, one histogram per layer (as the slides plot them); None without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    layers = len(results[0].layers)
    fig, axes = plt.subplots(
        len(results), layers, figsize=(1.6 * layers, 1.6 * len(results)), squeeze=False
    )
    for row, r, hists in zip(axes, results, histograms, strict=True):
        for ax, (counts, edges), stats in zip(row, hists, r.layers, strict=True):
            ax.stairs(counts.numpy(), edges.numpy(), fill=True)
            ax.set_yticks([])
            ax.tick_params(labelsize=6)
            ax.set_title(f"layer {stats.layer}, std {stats.std:.2g}", fontsize=7)
        row[0].set_ylabel(f"{r.activation}+{r.init}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[InitStats]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logdir", default="runs/init-stats", help="TensorBoard ('none': off)")
    parser.add_argument(
        "--outdir", type=Path, default=Path("runs/init-stats"), help="where the PNG goes"
    )
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    logdir = None if args.logdir.lower() == "none" else args.logdir
    settings = dict(layers=args.layers, width=args.width, samples=args.samples, seed=args.seed)
    results, histograms = [], []
    for activation, init in SLIDE_CASES:
        r = init_stats(activation, init, **settings, logdir=logdir, keep_activations=True)
        # Keep only the histograms: the activations are 20 MB per case at the slides' size.
        histograms.append(layer_histograms(r))
        r.activations = None
        results.append(r)
    print(format_comparison(results))
    if not args.no_plot:
        path = plot_histograms(results, histograms, args.outdir / "histograms.png")
        print(f"\nhistograms: {path}" if path else "\nmatplotlib not installed: no plot")
    if logdir is not None:
        print(f"TensorBoard: tensorboard --logdir {logdir}")
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)  # keep to one core on a shared machine
    main()
