"""Figures for the command line: training history and test samples (matplotlib, Agg, no Qt)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from app.ml.train import EpochStats


def save_history(history: Sequence[EpochStats], path: Path) -> Path:
    """Loss and accuracy per epoch, train and test, as a PNG."""
    epochs = [h.epoch for h in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h.train_loss for h in history], "o-", label="train (augmented)")
    ax_loss.plot(epochs, [h.test_loss for h in history], "s-", label="test")
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    ax_acc.plot(epochs, [h.train_accuracy for h in history], "o-", label="train (augmented)")
    ax_acc.plot(epochs, [h.test_accuracy for h in history], "s-", label="test")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="%")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def save_samples(images: np.ndarray, labels: Sequence[int], probabilities: np.ndarray, path: Path) -> Path:
    """Each test digit with its true label, the prediction and a bar chart of the probabilities."""
    n = len(images)
    cols = min(n, 5)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(3.2 * cols, 2.0 * rows), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, cols * 2, width_ratios=[1, 1.3] * cols)
    for i in range(n):
        r, c = divmod(i, cols)
        pred = int(np.argmax(probabilities[i]))
        ok = pred == int(labels[i])
        ax_img = fig.add_subplot(grid[r, 2 * c])
        ax_img.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        ax_img.set_title(f"true {labels[i]} / pred {pred}", fontsize=9, color="green" if ok else "red")
        ax_img.axis("off")
        ax_bar = fig.add_subplot(grid[r, 2 * c + 1])
        colours = ["tab:green" if d == pred and ok else "tab:red" if d == pred else "tab:gray" for d in range(10)]
        ax_bar.bar(range(10), probabilities[i], color=colours)
        ax_bar.set_ylim(0, 1)
        ax_bar.set_xticks(range(10))
        ax_bar.tick_params(labelsize=7)
        ax_bar.set_title(f"p={probabilities[i][pred]:.3f}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
