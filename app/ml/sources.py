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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from app import paths
from app.ml import synth
from app.ml.data import MNIST, MNISTSplit
from app.ml.errors import TrainingCancelled

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


def _make_chunk(kind: str, n: int, seed: int, chunk: int, writers: tuple[int, int],
                stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    w = range(*writers)
    if kind == "digits":
        s = synth.digits(n, seed=seed * 100_003 + chunk, writers=w, stop=stop)
    else:
        s = synth.nondigits(n, seed=seed * 100_003 + chunk, writers=w, fonts=training_fonts() + ["<default>"],
                            stop=stop)
    return s.images, s.labels


def bank(kind: str, n: int, seed: int, cache_dir: Path | None, writers: range = synth.TRAIN_WRITERS,
         progress: ProgressFn | None = None, workers: int | None = None,
         should_cancel: Callable[[], bool] | None = None) -> Bank:
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
    parts = _run_chunks(chunks, workers, progress, kind, should_cancel)
    b = Bank(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    if path is not None:
        try:
            _save_atomic(path, b)
        except OSError as exc:
            log.warning("synthetic set not cached in %s: %s", path, exc)
    return b


def _run_chunks(chunks: list[tuple], workers: int | None, progress: ProgressFn | None, kind: str,
                should_cancel: Callable[[], bool] | None = None) -> list:
    """Make the chunks, in worker processes when there are several cores.  ``progress``
    hears after each chunk; ``should_cancel`` is asked several times a second, and a True
    stops the workers at once (raises ``TrainingCancelled``)."""
    workers = workers if workers is not None else min(len(chunks), os.cpu_count() or 1)
    done: list = [None] * len(chunks)

    def cancelled() -> bool:
        return should_cancel is not None and should_cancel()

    if workers > 1 and len(chunks) > 1 and not multiprocessing.current_process().daemon:
        pool = multiprocessing.get_context("spawn").Pool(workers)
        try:
            pending = [pool.apply_async(_make_chunk, c) for c in chunks]
            for i, r in enumerate(pending):
                while not r.ready():
                    if cancelled():
                        raise TrainingCancelled("training cancelled")
                    r.wait(0.2)
                done[i] = r.get()
                if progress:
                    progress(f"Drawing synthetic {kind}: {100 * (i + 1) // len(chunks)} %")
        except BaseException:
            pool.terminate()  # the workers stop now, mid-chunk
            raise
        finally:
            pool.close()
            pool.join()
        return done
    for i, c in enumerate(chunks):
        done[i] = _make_chunk(*c, stop=should_cancel)  # (asked every few dozen drawings)
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
             progress: ProgressFn | None = None, should_cancel: Callable[[], bool] | None = None) -> TrainingData:
    train, val = split_validation(mnist.train, validation)
    kw = dict(progress=progress, should_cancel=should_cancel)
    syn = bank("digits", synthetic, seed, cache_dir, **kw) if synthetic else None
    out = bank("nondigits", outliers, seed, cache_dir, **kw) if outliers else None
    cal = bank("digits", calibration, seed, cache_dir, writers=CALIBRATION_WRITERS, **kw) if calibration else None
    return TrainingData(train, val, mnist.test, syn, out, cal)
