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


def save_reliability(rel: dict, path: Path, title: str = "Reliability on the MNIST test set") -> Path:
    """The reliability diagram (app.ml.calibration.Reliability.to_dict()) as a PNG: per
    confidence bin, how often the answer was right, against the diagonal of perfect
    calibration; the bars' shade shows how many answers fell in the bin."""
    edges = np.asarray(rel["edges"], float)
    counts = np.asarray(rel["counts"], float)
    acc = np.array([np.nan if v is None else v for v in rel["accuracy"]], float)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = Figure(figsize=(4.6, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    share = counts / max(counts.sum(), 1)
    colours = [(0.18, 0.44, 0.87, 0.25 + 0.75 * min(1.0, s * 5)) for s in share]
    ax.bar(centres, np.nan_to_num(acc), width=edges[1] - edges[0], color=colours, edgecolor="white",
           label="accuracy in the bin")
    ax.plot([0, 1], [0, 1], "--", color="0.4", label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="share right",
           title=f"{title}\nexpected calibration error {100 * rel['ece']:.2f} %")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
