"""Training curves as a PNG (matplotlib, the optional extra ``plot``)."""
from __future__ import annotations

import os
from typing import Mapping


def plot_history(history: Mapping[str, list], path: str | os.PathLike) -> None:
    """Write the loss and accuracy curves (train and validation, per epoch) of ``history`` to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'nkernels[plot]'") from None
    panels = [("loss", ["loss", "val_loss"]), ("accuracy", ["accuracy", "val_accuracy"])]
    panels = [(title, [k for k in keys if k in history]) for title, keys in panels]
    panels = [(title, keys) for title, keys in panels if keys]
    if not panels:
        raise ValueError("the history holds neither loss nor accuracy to plot")
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
    fig.savefig(os.fspath(path), format="png", dpi=100)
    plt.close(fig)
