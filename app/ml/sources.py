"""Where every training image comes from.

- **MNIST training images** (app.ml.data), less a fixed validation part: 5 000 images
  chosen by a seeded permutation, never trained on, used to fit the temperature and the
  "is a digit" threshold.  The MNIST test set is only ever evaluated.
- **Synthetic digits** (app.ml.synth): the allographs people write, in the hands of
  writers 0-99 999 (`synth.TRAIN_WRITERS`).
- **Things that are not digits** (app.ml.synth): hand-written letters and shapes by the
  same writers, letters typed in the fonts of ``resources/fonts`` and Pillow's default
  font, scribbles, crossed-out digits and two digits side by side.
- **Calibration images**: synthetic digits by writers 200 000-299 999, neither trained on
  nor in the development sets (writers 1 000 000 and up, `synth.DEV_WRITERS`).

The synthetic sets are generated once (a few minutes on two cores) and cached under the
data folder as ``.npz`` files named after the generator's version, the seed and the size.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from app import paths
from app.ml import synth
from app.ml.data import MNIST, MNISTSplit

log = logging.getLogger(__name__)

#: Bump when the generator's output changes: cached sets of another version are not used.
GENERATOR_VERSION = 2
VALIDATION_SIZE = 5000
VALIDATION_SEED = 20240229
CALIBRATION_WRITERS = range(200_000, 300_000)
CHUNK = 2000

ProgressFn = Callable[[str], None]


def training_fonts() -> list[Path]:
    """The fonts typed letters are drawn in for training (bundled, so that every machine
    makes the same images)."""
    folder = paths.resources_dir() / "fonts"
    return sorted(folder.glob("*.ttf"))


def split_validation(train: MNISTSplit, size: int = VALIDATION_SIZE,
                     seed: int = VALIDATION_SEED) -> tuple[MNISTSplit, MNISTSplit]:
    """MNIST's training images -> (images to train on, a fixed validation part)."""
    if size <= 0:
        return train, MNISTSplit(train.images[:0], train.labels[:0])
    order = np.random.default_rng(seed).permutation(len(train))
    val, rest = np.sort(order[:size]), np.sort(order[size:])
    return (MNISTSplit(train.images[rest], train.labels[rest]),
            MNISTSplit(train.images[val], train.labels[val]))


@dataclass(frozen=True)
class Bank:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64, -1 = not a digit

    def __len__(self) -> int:
        return len(self.labels)


def _make_chunk(kind: str, n: int, seed: int, chunk: int, writers: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    w = range(*writers)
    if kind == "digits":
        s = synth.digits(n, seed=seed * 100_003 + chunk, writers=w)
    else:
        s = synth.nondigits(n, seed=seed * 100_003 + chunk, writers=w, fonts=training_fonts() + ["<default>"])
    return s.images, s.labels


def bank(kind: str, n: int, seed: int, cache_dir: Path | None, writers: range = synth.TRAIN_WRITERS,
         progress: ProgressFn | None = None, workers: int | None = None) -> Bank:
    """``n`` synthetic images (``kind``: "digits" or "nondigits"), from the cache when there."""
    if kind not in ("digits", "nondigits"):
        raise ValueError(f"unknown synthetic set {kind!r}")
    name = f"{kind}-v{GENERATOR_VERSION}-s{seed}-w{writers.start}-{n}.npz"
    path = Path(cache_dir) / name if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as z:
                b = Bank(z["images"], z["labels"])
            if len(b) == n and b.images.shape[1:] == (28, 28):
                return b
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring a damaged synthetic set %s: %s", path, exc)
    if progress:
        progress(f"Drawing {n} synthetic {'digits' if kind == 'digits' else 'non-digits'} (once; cached)…")
    chunks = [(kind, min(CHUNK, n - i), seed, i // CHUNK, (writers.start, writers.stop)) for i in range(0, n, CHUNK)]
    parts = _run_chunks(chunks, workers, progress, kind)
    b = Bank(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    if path is not None:
        try:
            _save_atomic(path, b)
        except OSError as exc:
            log.warning("synthetic set not cached in %s: %s", path, exc)
    return b


def _run_chunks(chunks: list[tuple], workers: int | None, progress: ProgressFn | None, kind: str) -> list:
    workers = workers if workers is not None else min(len(chunks), os.cpu_count() or 1)
    done: list = [None] * len(chunks)
    if workers > 1 and len(chunks) > 1 and not multiprocessing.current_process().daemon:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        try:
            futures = [pool.submit(_make_chunk, *c) for c in chunks]
            for i, f in enumerate(futures):
                done[i] = f.result()
                if progress:  # (a progress function may raise to cancel)
                    progress(f"Drawing synthetic {kind}: {100 * (i + 1) // len(chunks)} %")
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return done
    for i, c in enumerate(chunks):
        done[i] = _make_chunk(*c)
        if progress:
            progress(f"Drawing synthetic {kind}: {100 * (i + 1) // len(chunks)} %")
    return done


def _save_atomic(path: Path, b: Bank) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, images=b.images, labels=b.labels)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class TrainingData:
    """Everything one training run uses, already split."""

    mnist_train: MNISTSplit
    mnist_validation: MNISTSplit
    mnist_test: MNISTSplit
    synthetic: Bank | None
    outliers: Bank | None
    calibration: Bank | None


def assemble(mnist: MNIST, synthetic: int, outliers: int, calibration: int, seed: int,
             cache_dir: Path | None, validation: int = VALIDATION_SIZE,
             progress: ProgressFn | None = None) -> TrainingData:
    train, val = split_validation(mnist.train, validation)
    syn = bank("digits", synthetic, seed, cache_dir, progress=progress) if synthetic else None
    out = bank("nondigits", outliers, seed, cache_dir, progress=progress) if outliers else None
    cal = bank("digits", calibration, seed, cache_dir, writers=CALIBRATION_WRITERS,
               progress=progress) if calibration else None
    return TrainingData(train, val, mnist.test, syn, out, cal)
