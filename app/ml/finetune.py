"""Fine-tune a model on the user's corrected drawings, without forgetting MNIST.

The user's labelled drawings are split once and for all by a hash of their id: a fifth
is held out and never trained on.  The rest are oversampled and mixed with a replay of
MNIST training images, then the network is trained briefly at a low learning rate with
the usual batch augmentation.  Before and after, the model is measured on (a) the MNIST
test set and (b) the held-out drawings; the new model is kept only if (b) improves and
(a) falls by at most ``max_mnist_drop`` points.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from app.ml.data import MNIST, MNISTSplit
from app.ml.train import CancelFn, ProgressFn, TrainConfig, evaluate, fit, to_tensors

log = logging.getLogger(__name__)

MIN_SAMPLES = 20


@dataclass
class FinetuneConfig:
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 0.001  # peak of the one-cycle schedule, a sixth of training's
    replay: int = 12000  # MNIST training images mixed in, so the model does not forget
    user_share: float = 0.3  # the user's drawings' share of each epoch (by oversampling)
    seed: int = 1
    max_mnist_drop: float = 0.2  # points of MNIST test accuracy the new model may lose


@dataclass
class FinetuneReport:
    mnist_before: float
    mnist_after: float
    user_before: float
    user_after: float
    n_train: int
    n_holdout: int
    kept: bool
    reason: str
    model: nn.Module | None = None  # the fine-tuned network (also when not kept)

    @property
    def user_gain(self) -> float:
        return self.user_after - self.user_before

    @property
    def mnist_drop(self) -> float:
        return self.mnist_before - self.mnist_after

    def summary(self) -> str:
        return (f"MNIST test: {self.mnist_before:.2f}% -> {self.mnist_after:.2f}%; "
                f"your held-out drawings ({self.n_holdout}): {self.user_before:.1f}% -> {self.user_after:.1f}%")


def is_holdout(key: str) -> bool:
    """A fixed fifth of the drawings, chosen by a hash of their id (stable across runs)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 5 == 0


def split(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    mask = np.array([is_holdout(k) for k in keys], dtype=bool)
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    x, y = to_tensors(images, labels, torch.device("cpu"))
    _, correct, n = evaluate(model, x, y)
    return 100.0 * correct / n


def decide(mnist_before: float, mnist_after: float, user_before: float, user_after: float,
           max_drop: float) -> tuple[bool, str]:
    """The keep/reject rule, with the reason in words."""
    if not user_after > user_before:
        return False, (f"not kept: accuracy on your held-out drawings did not improve "
                       f"({user_before:.1f}% -> {user_after:.1f}%)")
    if mnist_before - mnist_after > max_drop:
        return False, (f"not kept: MNIST test accuracy fell by {mnist_before - mnist_after:.2f} points "
                       f"({mnist_before:.2f}% -> {mnist_after:.2f}%), more than the {max_drop} allowed")
    return True, (f"kept: your held-out drawings {user_before:.1f}% -> {user_after:.1f}%, "
                  f"MNIST test {mnist_before:.2f}% -> {mnist_after:.2f}%")


def finetune(base: nn.Module, images: np.ndarray, labels: np.ndarray, keys: list[str], mnist: MNIST,
             config: FinetuneConfig | None = None, progress: ProgressFn | None = None,
             should_cancel: CancelFn | None = None, mnist_eval: MNISTSplit | None = None) -> FinetuneReport:
    """Fine-tune a copy of ``base`` (left untouched) on the user's drawings.

    ``images``: (N, 28, 28) uint8 model inputs; ``labels``: (N,) true digits; ``keys``:
    their stable ids (the prediction UUIDs).  Raises ``ValueError`` if there are too few.
    Raises ``TrainingCancelled`` if ``should_cancel`` says so.
    """
    config = config or FinetuneConfig()
    images = np.asarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) < MIN_SAMPLES:
        raise ValueError(f"fine-tuning needs at least {MIN_SAMPLES} labelled drawings; there are {len(labels)}. "
                         f"Draw and label some more (Correct / Wrong...) first.")
    train_idx, hold_idx = split(list(keys))
    if len(hold_idx) == 0 or len(train_idx) == 0:
        raise ValueError("the labelled drawings could not be split into training and held-out sets; label a few more")
    eval_split = mnist_eval or mnist.test
    base = copy.deepcopy(base).cpu().eval()
    mnist_before = accuracy(base, eval_split.images, eval_split.labels)
    user_before = accuracy(base, images[hold_idx], labels[hold_idx])

    rng = np.random.default_rng(config.seed)
    replay = rng.choice(len(mnist.train), size=min(config.replay, len(mnist.train)), replace=False)
    repeats = max(1, int(round(config.user_share * len(replay) / ((1 - config.user_share) * len(train_idx)))))
    user_x = np.repeat(images[train_idx], repeats, axis=0)
    user_y = np.repeat(labels[train_idx], repeats, axis=0)
    train_images = np.concatenate([mnist.train.images[replay], user_x])
    train_labels = np.concatenate([mnist.train.labels[replay], user_y])

    model = copy.deepcopy(base)
    device = torch.device("cpu")
    tx, ty = to_tensors(train_images, train_labels, device)
    # Per-epoch reports use a slice of MNIST test (never the user's held-out drawings).
    vx, vy = to_tensors(eval_split.images[:2000], eval_split.labels[:2000], device)
    torch.manual_seed(config.seed)
    fit(model, tx, ty, vx, vy, TrainConfig(epochs=config.epochs, batch_size=config.batch_size,
                                           learning_rate=config.learning_rate, seed=config.seed),
        progress, should_cancel)
    model.eval()
    mnist_after = accuracy(model, eval_split.images, eval_split.labels)
    user_after = accuracy(model, images[hold_idx], labels[hold_idx])
    kept, reason = decide(mnist_before, mnist_after, user_before, user_after, config.max_mnist_drop)
    log.info("fine-tune %s", reason)
    return FinetuneReport(mnist_before, mnist_after, user_before, user_after, len(train_idx), len(hold_idx),
                          kept, reason, model)
