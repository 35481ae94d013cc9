"""Training curves and sample grids as PNGs (matplotlib, the optional extra ``plot``)."""
from __future__ import annotations

import os
from typing import Any, Mapping

INSTALL_HINT = "plotting needs matplotlib: pip install 'nkernels[plot]'"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return plt


def check_plot_path(path: str | os.PathLike) -> None:
    """Fail now, with a clear error, if the curves could not be written to ``path`` later.

    Checks that matplotlib is installed and that the name ends in ``.png``, and creates the
    missing parent directories (as :func:`nkernels.save` does).
    """
    _pyplot()
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"the plot is written as a PNG; give a path ending in .png, got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)


def plot_history(history: Mapping[str, list], path: str | os.PathLike) -> None:
    """Write the loss and accuracy curves (train and validation, per epoch) of ``history`` to ``path`` as a PNG.

    Raises ImportError with the install command when matplotlib is missing.
    """
    plt = _pyplot()
    panels = [("loss", ["loss", "val_loss"]), ("accuracy", ["accuracy", "val_accuracy"])]
    panels = [(title, [k for k in keys if k in history]) for title, keys in panels]
    panels = [(title, keys) for title, keys in panels if keys]
    if not panels:
        raise ValueError("the history holds neither loss nor accuracy to plot")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for key in keys:
            values = [v for v in history[key]]
            ax.plot(range(1, len(values) + 1), values, marker=".", label=key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def plot_samples(samples, path: str | os.PathLike, image_shape: tuple[int, ...], columns: int = 10) -> None:
    """Write ``samples`` (one per row) as a grid of grayscale images of ``image_shape`` to ``path`` as a PNG.

    ``image_shape`` is (H, W) or (1, H, W); ``columns`` images per row of the grid. Raises
    ImportError with the install command when matplotlib is missing.
    """
    import numpy as np

    plt = _pyplot()
    shape = tuple(image_shape)[-2:]
    if len(image_shape) not in (2, 3) or (len(image_shape) == 3 and image_shape[0] != 1):
        raise ValueError(f"a sample grid shows grayscale images (H, W) or (1, H, W), got samples of shape "
                         f"{tuple(image_shape)}")
    images = np.asarray(samples, dtype=np.float64).reshape((-1,) + shape)
    rows = -(-len(images) // columns)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.8), squeeze=False)
    low, high = float(images.min()), float(images.max())
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image in zip(axes.ravel(), images):
        ax.imshow(image, cmap="gray_r", vmin=low, vmax=high, interpolation="nearest")
    fig.tight_layout(pad=0.2)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def plot_comparison(comparison: Any, path: str | os.PathLike) -> None:
    """Draw held-out accuracy against training time for every row of a
    :class:`~nkernels.leaderboard.Comparison` in one PNG at ``path``, with the target as a line.

    Rows without a curve (errors) are left out; a row scored once (an extractor with its head)
    is one point. Raises ImportError with the install command when matplotlib is missing.
    """
    plt = _pyplot()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.get_cmap("tab10").colors
    drawn = [row for row in comparison.ranked() if row.curve]
    for i, row in enumerate(drawn):
        seconds, accuracy = zip(*row.curve)
        # ten colours, then again dashed (or as squares), so that no two rows look alike
        style = {"color": colors[i % 10], "linestyle": "-" if i < 10 else "--",
                 "marker": ("." if i < 10 else "x") if len(seconds) > 1 else ("o" if i < 10 else "s")}
        ax.plot(seconds, [100 * a for a in accuracy], label=row.name, **style)
    ax.axhline(100 * comparison.target, color="grey", linestyle="--", linewidth=1,
               label=f"target {100 * comparison.target:g}%")
    ax.set_xscale("log")  # the schemes' times differ by orders of magnitude
    ax.set_xlabel("training time after warm-up (s, log scale)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(f"{comparison.model} on {comparison.data}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
