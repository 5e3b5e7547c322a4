"""The training loop, shared by ``run_model.py``, the GUI's training dialog and fine-tuning.

The data sit in memory as uint8 tensors; each batch is sliced out, augmented as a whole
(small random affine transforms and stroke-thickness changes, so the model also reads
digits people draw) and normalised.  No per-item Dataset/DataLoader.  The loop reports
progress through a callback and checks a cancel flag between batches.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import app
from app.ml import checkpoint
from app.ml.data import MEAN, MNIST, STD, MNISTSplit
from app.ml.errors import TrainingCancelled
from app.ml.model import DEFAULT_ARCH, build_model

log = logging.getLogger(__name__)

#: Lighter dropout than the textbook 0.5: with augmentation the network needs less.
DEFAULT_ARCH_KWARGS = {"mnist_cnn": {"conv_dropout": 0.1, "fc_dropout": 0.25}, "wide": {}}


#: Fewer optimizer steps than this in all: no one-cycle schedule (``fit``).
MIN_ONECYCLE_STEPS = 8


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 128
    learning_rate: float = 0.006  # peak learning rate of the one-cycle schedule
    seed: int = 1
    arch: str = DEFAULT_ARCH
    arch_kwargs: dict | None = None  # None: DEFAULT_ARCH_KWARGS[arch]
    augment: bool = True
    schedule: str = "onecycle"  # or "constant"
    use_cuda: bool = True
    train_limit: int | None = None  # use only the first N training images
    test_limit: int | None = None
    target_accuracy: float | None = None  # stop after the first epoch that reaches it (percent)
    # Handwriting MNIST lacks, and what is not a digit (app/ml/sources.py says where from).
    synthetic: int = 0  # synthetic digits in the training mix (0: MNIST only)
    synthetic_share: float = 0.25  # of each batch, on top of the MNIST images
    outliers: int = 0  # non-digit drawings for outlier exposure (0: none)
    outlier_share: float = 0.25
    outlier_weight: float = 0.5  # weight of the outlier loss (cross-entropy to uniform)
    validation: int = 0  # MNIST training images held out to calibrate (0: none)
    calibration: int = 0  # synthetic digits by other writers, also to calibrate

    def resolved_arch_kwargs(self) -> dict:
        return dict(DEFAULT_ARCH_KWARGS.get(self.arch, {}) if self.arch_kwargs is None else self.arch_kwargs)

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if not (0 < self.learning_rate < 10) or not math.isfinite(self.learning_rate):
            raise ValueError("learning rate must be a positive number below 10")
        if self.schedule not in ("onecycle", "constant"):
            raise ValueError("schedule must be 'onecycle' or 'constant'")
        for name in ("synthetic", "outliers", "validation", "calibration"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("synthetic_share", "outlier_share", "outlier_weight"):
            if not (0 <= getattr(self, name) <= 4):
                raise ValueError(f"{name} must be between 0 and 4")


#: Named recipes, the one source for the command line and the training dialog.
#: "standard" makes the shipped product network (saved_models/mnist_classifier.pth): MNIST
#: less 5 000 held-out images, plus a tenth as many synthetic digits of the forms MNIST
#: lacks, calibrated on the held-out images and 5 000 synthetic digits by other writers.
#: "robust" makes the app's default network (saved_models/mnist_robust.pth): the wider
#: network, more synthetic digits, and outlier exposure (letters, shapes, scribbles) so it
#: can say "not a digit".  "quick" reaches about 99 % in two short epochs.
PRESETS: dict[str, dict] = {
    "standard": {"synthetic": 60000, "synthetic_share": 0.1, "validation": 5000, "calibration": 5000},
    "quick": {"epochs": 2, "batch_size": 256, "learning_rate": 0.01, "augment": False, "validation": 5000},
    "robust": {"arch": "wide", "synthetic": 60000, "synthetic_share": 0.15, "outliers": 40000,
               "outlier_share": 0.2, "validation": 5000, "calibration": 5000},
}
DEFAULT_PRESET = "standard"


@dataclass
class Extra:
    """Training images beside MNIST: synthetic digits (with labels) and outliers."""

    digits_x: torch.Tensor | None = None  # (N, 1, 28, 28) uint8
    digits_y: torch.Tensor | None = None
    outliers_x: torch.Tensor | None = None


def preset(name: str, **overrides) -> TrainConfig:
    try:
        values = dict(PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    values.update(overrides)
    return TrainConfig(**values)


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float  # percent, on augmented batches
    test_loss: float
    test_accuracy: float  # percent
    seconds: float  # since the start of training


@dataclass
class TrainProgress:
    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based within the epoch
    batches: int
    loss: float  # running mean over the epoch so far
    accuracy: float  # running percent over the epoch so far
    elapsed: float
    eta: float  # seconds left, estimated
    epoch_stats: EpochStats | None = None  # set on the last report of an epoch

    @property
    def fraction(self) -> float:
        return ((self.epoch - 1) * self.batches + self.batch) / (self.epochs * self.batches)


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    history: list[EpochStats]
    seconds: float
    device: str
    calibration: dict | None = None  # see calibrate()

    @property
    def test_accuracy(self) -> float:
        return self.history[-1].test_accuracy if self.history else float("nan")

    @property
    def test_loss(self) -> float:
        return self.history[-1].test_loss if self.history else float("nan")


ProgressFn = Callable[[TrainProgress], None]
CancelFn = Callable[[], bool]


def pick_device(use_cuda: bool = True) -> torch.device:
    return torch.device("cuda" if use_cuda and torch.cuda.is_available() else "cpu")


def to_tensors(images: np.ndarray, labels: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) images and labels -> device tensors (N, 1, 28, 28) uint8 and (N,) int64."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).to(device).unsqueeze(1)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    return x, y


def normalize(batch_uint8_or_float: torch.Tensor) -> torch.Tensor:
    x = batch_uint8_or_float
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    return (x - MEAN) / STD


def augment(x: torch.Tensor, gen: torch.Generator | None = None, strength: float = 1.0) -> torch.Tensor:
    """Random affine (rotation +-12 deg, scale +-12 %, shear +-0.15, shift +-2 px) and
    stroke thickness (30 % thicker, a third of them much thicker; 15 % thinner) on a float
    batch in 0..1."""
    n = x.shape[0]
    dev = x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, device=dev, generator=gen) * (hi - lo) + lo

    s = strength
    angle = uniform(-12, 12) * (math.pi / 180) * s
    scale = 1.0 + uniform(-0.12, 0.12) * s
    shear = uniform(-0.15, 0.15) * s
    shift = 2.0 * 2.0 / 28.0 * s  # 2 px in affine_grid's [-1, 1] coordinates
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    linear = torch.stack([torch.stack([cos, -sin + shear], 1), torch.stack([sin, cos], 1)], 1)
    offset = torch.stack([uniform(-shift, shift), uniform(-shift, shift)], 1)
    # The same as F.affine_grid, about twice as fast for small images.
    grid = torch.baddbmm(offset[:, None, :], _base_grid(x.shape[-2], x.shape[-1], dev).expand(n, -1, -1),
                         linear.transpose(1, 2)).view(n, x.shape[-2], x.shape[-1], 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Stroke thickness: a pen much thicker (10 %), thicker (20 %) or thinner (15 %) than MNIST's.
    pick = torch.rand(n, device=dev, generator=gen)
    much = torch.nonzero(pick < 0.1).squeeze(1)
    thick = torch.nonzero((pick >= 0.1) & (pick < 0.3)).squeeze(1)
    thin = torch.nonzero((pick >= 0.3) & (pick < 0.45)).squeeze(1)
    if len(much):
        xt = x[much]
        xt = torch.maximum(xt, 0.85 * F.max_pool2d(xt, 3, stride=1, padding=1))
        x[much] = torch.maximum(xt, 0.6 * F.max_pool2d(xt, 3, stride=1, padding=1))
    if len(thick):
        xt = x[thick]
        x[thick] = torch.maximum(xt, 0.7 * F.max_pool2d(xt, 3, stride=1, padding=1))
    if len(thin):
        xt = x[thin]
        x[thin] = 0.5 * (xt - F.max_pool2d(-xt, 3, stride=1, padding=1))  # blend with the eroded image
    return x.clamp_(0.0, 1.0)


_BASE_GRIDS: dict[tuple, torch.Tensor] = {}


def _base_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    key = (h, w, str(device))
    if key not in _BASE_GRIDS:
        eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], device=device)
        _BASE_GRIDS[key] = F.affine_grid(eye, [1, 1, h, w], align_corners=False).view(1, h * w, 2)
    return _BASE_GRIDS[key]


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 2000) -> tuple[float, int, int]:
    """Mean cross-entropy, number correct, number of images."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(labels), batch_size):
        out = model(normalize(images[i:i + batch_size]))
        y = labels[i:i + batch_size]
        total_loss += F.cross_entropy(out, y, reduction="sum").item()
        correct += int((out.argmax(1) == y).sum().item())
    model.train(was_training)
    n = len(labels)
    return total_loss / max(n, 1), correct, n


def fit(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor,
        test_x: torch.Tensor, test_y: torch.Tensor, config: TrainConfig,
        progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
        report_every: int = 20, extra: Extra | None = None) -> list[EpochStats]:
    """Train ``model`` in place on uint8 tensors; evaluate on the test tensors after every epoch.

    With ``extra``, each batch of MNIST images also gets ``synthetic_share`` x batch size
    synthetic digits and ``outlier_share`` x batch size outliers, whose loss is the
    cross-entropy to equal probabilities (outlier exposure), weighted ``outlier_weight``.
    """
    config.validate()
    extra = extra or Extra()
    device = train_x.device
    gen = torch.Generator(device=device)
    gen.manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    n = len(train_y)
    batches = max(1, math.ceil(n / config.batch_size))
    scheduler = None
    # torch's one-cycle schedule divides by zero when its warm-up is one step (4 steps in
    # all); a run of so few batches trains at the constant rate instead.
    if config.schedule == "onecycle" and config.epochs * batches >= MIN_ONECYCLE_STEPS:
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.learning_rate, total_steps=config.epochs * batches, pct_start=0.25)
    history: list[EpochStats] = []
    syn = _Cycler(extra.digits_x, extra.digits_y, round(config.batch_size * config.synthetic_share), gen)
    outl = _Cycler(extra.outliers_x, None, round(config.batch_size * config.outlier_share), gen)
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(n, device=device, generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(batches):
            if should_cancel is not None and should_cancel():
                raise TrainingCancelled("training cancelled")
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            xs, ys = [train_x[idx]], [train_y[idx]]
            if syn:
                sx, sy = syn.next()
                xs.append(sx)
                ys.append(sy)
            n_digits = sum(len(v) for v in ys)
            if outl:
                xs.append(outl.next()[0])
            x = torch.cat(xs).float().div_(255.0)
            if config.augment:
                x = augment(x, gen)
            y = torch.cat(ys)
            out_all = model((x - MEAN) / STD)
            out = out_all[:n_digits]
            loss = F.cross_entropy(out, y)
            if n_digits < len(out_all):  # outlier exposure: equal probabilities
                loss = loss - config.outlier_weight * F.log_softmax(out_all[n_digits:], 1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.item() * len(y)
            correct += int((out.argmax(1) == y).sum().item())
            seen += len(y)
            last = b == batches - 1
            if progress is not None and (last or (b + 1) % report_every == 0):
                stats = None
                if last:
                    test_loss, test_correct, test_n = evaluate(model, test_x, test_y)
                    stats = EpochStats(epoch, loss_sum / seen, 100.0 * correct / seen, test_loss,
                                       100.0 * test_correct / max(test_n, 1), time.perf_counter() - start)
                    history.append(stats)
                progress(_progress(epoch, config.epochs, b + 1, batches, loss_sum / seen,
                                   100.0 * correct / seen, start, stats))
        if progress is None:
            test_loss, test_correct, test_n = evaluate(model, test_x, test_y)
            history.append(EpochStats(epoch, loss_sum / seen, 100.0 * correct / seen, test_loss,
                                      100.0 * test_correct / max(test_n, 1), time.perf_counter() - start))
        log.debug("epoch %d: train loss %.4f, test loss %.4f, test accuracy %.2f%%", epoch,
                 history[-1].train_loss, history[-1].test_loss, history[-1].test_accuracy)
        if config.target_accuracy is not None and history[-1].test_accuracy >= config.target_accuracy:
            break
    model.eval()
    return history


class _Cycler:
    """Batches of ``size`` from a tensor, reshuffled at each pass; falsy when empty."""

    def __init__(self, x: torch.Tensor | None, y: torch.Tensor | None, size: int, gen: torch.Generator):
        self.x, self.y, self.size, self.gen = x, y, size, gen
        self.order: torch.Tensor | None = None
        self.at = 0

    def __bool__(self) -> bool:
        return self.x is not None and len(self.x) > 0 and self.size > 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.order is None or self.at + self.size > len(self.order):
            self.order = torch.randperm(len(self.x), device=self.x.device, generator=self.gen)
            self.at = 0
        idx = self.order[self.at:self.at + self.size]
        self.at += self.size
        return self.x[idx], (self.y[idx] if self.y is not None else None)


def _progress(epoch: int, epochs: int, batch: int, batches: int, loss: float, acc: float,
              start: float, stats: EpochStats | None) -> TrainProgress:
    elapsed = time.perf_counter() - start
    done = ((epoch - 1) * batches + batch) / (epochs * batches)
    eta = elapsed * (1 - done) / done if done > 0 else float("nan")
    return TrainProgress(epoch, epochs, batch, batches, loss, acc, elapsed, eta, stats)


def train(config: TrainConfig, mnist: MNIST, progress: ProgressFn | None = None,
          should_cancel: CancelFn | None = None, initial: nn.Module | None = None,
          cache_dir: Path | None = None, status: Callable[[str], None] | None = None) -> TrainResult:
    """Train a network (new, or ``initial`` to fine-tune) on MNIST with ``config``.

    With ``config.synthetic`` / ``outliers`` / ``calibration`` the synthetic sets are made
    (or read from ``cache_dir``) first; ``status`` hears about that in words.  With a
    validation or calibration set, the finished network is calibrated (temperature and
    "is a digit" threshold: app/ml/calibration.py) and the result says how.
    """
    from app.ml import sources

    config.validate()
    torch.manual_seed(config.seed)
    device = pick_device(config.use_cuda)
    model = initial if initial is not None else build_model(config.arch, **config.resolved_arch_kwargs())
    model.to(device)
    data = sources.assemble(mnist, config.synthetic, config.outliers, config.calibration, config.seed,
                            cache_dir, validation=config.validation, progress=status, should_cancel=should_cancel)
    if should_cancel is not None and should_cancel():
        raise TrainingCancelled("training cancelled")
    train_split = data.mnist_train.subset(config.train_limit)
    test_split = mnist.test.subset(config.test_limit)
    train_x, train_y = to_tensors(train_split.images, train_split.labels, device)
    test_x, test_y = to_tensors(test_split.images, test_split.labels, device)
    extra = Extra()
    if data.synthetic is not None:
        extra.digits_x, extra.digits_y = to_tensors(data.synthetic.images, data.synthetic.labels, device)
    if data.outliers is not None:
        extra.outliers_x = to_tensors(data.outliers.images, data.outliers.labels, device)[0]
    start = time.perf_counter()
    history = fit(model, train_x, train_y, test_x, test_y, config, progress, should_cancel, extra=extra)
    model = model.cpu()
    calibration = None
    if len(data.mnist_validation) or data.calibration is not None:
        if status:
            status("Calibrating the confidence…")
        calibration = calibrate(model, data, mnist.test.subset(config.test_limit))
    return TrainResult(model=model, config=config, history=history,
                       seconds=time.perf_counter() - start, device=str(device), calibration=calibration)


@torch.inference_mode()
def logits_of(model: nn.Module, images: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """The network's logits for (N, 28, 28) uint8 images, as float64 numpy."""
    was = model.training
    model.eval()
    x = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).unsqueeze(1)
    out = [model(normalize(x[i:i + batch_size])).double() for i in range(0, len(x), batch_size)]
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, 10))


def calibrate(model: nn.Module, data, test: MNISTSplit) -> dict:
    """Fit the temperature on the held-out digits (MNIST validation images and the
    calibration writers' synthetic digits), choose the "is a digit" threshold, and
    measure the calibration on the MNIST test set (for people; nothing is fitted on it)."""
    from app.ml import calibration as cal

    parts = []
    if len(data.mnist_validation):
        parts.append((data.mnist_validation.images, data.mnist_validation.labels))
    if data.calibration is not None:
        parts.append((data.calibration.images, data.calibration.labels))
    logits = [logits_of(model, x) for x, _ in parts]
    temperature = cal.fit_temperature(np.concatenate(logits), np.concatenate([y for _, y in parts]))
    c = cal.Calibration(temperature=temperature, score=cal.DEFAULT_SCORE)
    # The threshold accepts DIGIT_ACCEPT of the held-out MNIST digits (of the calibration
    # writers' digits when no MNIST image was held out).
    threshold = cal.threshold_for(cal.digit_score(logits[0], c), cal.DIGIT_ACCEPT)
    top_map = cal.fit_top_map(cal.softmax(np.concatenate(logits), temperature), np.concatenate([y for _, y in parts]))
    c = cal.Calibration(temperature=temperature, digit_threshold=threshold, score=c.score, top_map=top_map)
    test_logits = logits_of(model, test.images)
    probs = c.probabilities(test_logits)
    rel = cal.reliability(probs.max(1), probs.argmax(1) == test.labels)
    report = {**c.to_dict(),
              "validation_images": int(sum(len(y) for _, y in parts)),
              "test_ece": round(rel.ece, 6),
              "test_reliability": rel.to_dict(),
              "test_digit_accept": round(float((cal.digit_score(test_logits, c) >= threshold).mean()), 6)}
    if data.calibration is not None:
        report["calibration_digit_accept"] = round(float((cal.digit_score(logits[-1], c) >= threshold).mean()), 6)
    log.info("calibrated: temperature %.3f, test ECE %.2f%%", temperature, 100 * rel.ece)
    return report


def metadata_for(result: TrainResult, mnist: MNIST, **extra) -> dict:
    cfg = result.config
    meta = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": app.__version__,
        "epochs": len(result.history),
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "schedule": cfg.schedule,
        "augment": cfg.augment,
        "seed": cfg.seed,
        "device": result.device,
        "train_samples": min(len(mnist.train) - cfg.validation, cfg.train_limit or len(mnist.train)),
        "test_samples": len(mnist.test.subset(cfg.test_limit)),
        "test_accuracy": round(result.test_accuracy, 4),
        "test_loss": round(result.test_loss, 6),
        "train_seconds": round(result.seconds, 2),
        "data_md5": dict(mnist.md5s),
        "history": [asdict(h) for h in result.history],
    }
    if cfg.synthetic or cfg.outliers:
        meta["training_data"] = {"mnist_train": len(mnist.train) - cfg.validation, "synthetic_digits": cfg.synthetic,
                                 "non_digits": cfg.outliers, "validation": cfg.validation,
                                 "calibration_digits": cfg.calibration}
    if result.calibration is not None:
        meta["calibration"] = dict(result.calibration)
    meta.update(extra)
    return meta


def save_result(result: TrainResult, mnist: MNIST, path: Path, **extra) -> str:
    """Save the trained weights atomically with their metadata; returns the sha256."""
    return checkpoint.save(path, result.model, result.config.arch, result.config.resolved_arch_kwargs(),
                           metadata_for(result, mnist, **extra))
