"""One whole digit, or not?  The number reader's second opinion on the pieces it cuts.

The digit network reads whatever it is shown as a digit, and it reads many a piece of a
digit with confidence: half a 0 as a 1, a 0 with a bit of the next digit as a 6.  When
digits touch, the reader (``app.ml.segment``) cuts them apart in several ways and so shows
the network such pieces all the time.  This small network (``PieceNet``, beside the digit
network, never instead of it) is trained on exactly those pieces:

1. strings of 2-4 MNIST **training** digits are composed as people write numbers, in
   every spacing class and some drawn less like MNIST (``app.ml.strings``);
2. the reader cuts each string into its candidate pieces, every unit cut, as it cuts
   drawings it is unsure of;
3. each piece is labelled from whose ink it holds: the digit when it holds nearly all of
   one digit's ink and little of any other (``WHOLE``), "not one whole digit" (class 10)
   when it holds a fragment, or much of two digits (``BROKEN``); pieces in between are
   left out.

The reader adds ``log P(one whole digit)`` to each piece's score, and reads a piece with a
cut through it by both networks (``segment.PIECE_VOTE``); a digit standing apart is read by
the digit network alone.  ``python run_model.py --mode pieces`` trains it; the shipped
``saved_models/mnist_pieces.pth`` was made that way.  No Qt here.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from app.ml import checkpoint, segment, strings
from app.ml.data import MEAN, STD, MNISTSplit
from app.ml.errors import ModelFileError, TrainingCancelled
from app.ml.model import PieceNet
from app.ml.preprocess import NothingDrawn, Prepared

log = logging.getLogger(__name__)

FORMAT = "mnist-classifier-pieces"
FORMAT_VERSION = 1
NOT_ONE_DIGIT = 10
#: A piece is one whole digit when it holds this share of one digit's ink, less than this
#: share of any other digit's ink, and this share of its own ink is that digit's ...
WHOLE = (0.85, 0.15, 0.75)
#: ... and broken when it holds less than this share of every digit's ink, or at least
#: this share of a second digit's ink (a 1 beside a 2 is a small part of the piece's ink,
#: but a digit all the same), or less than this share of its ink is one digit's.
BROKEN = (0.6, 0.3, 0.6)
#: Spacing classes of the composed strings, and how often each is drawn.
GAP_MIX = {"separated": 0.15, "close": 0.15, "touching": 0.35, "overlapping": 0.35}
#: Share of the strings drawn less like MNIST (``strings.compose(vary=True)``).
VARIED = 0.3
#: MNIST training images the validation strings are made of (the rest make training strings).
VALIDATION_DIGITS = 5000


# ---- the pieces ----------------------------------------------------------------------------
def label_pieces(layout: "segment.Layout", cands: Sequence["segment.Candidate"], own: np.ndarray,
                 digits: Sequence[int]) -> list[int | None]:
    """Each candidate's label from ``own`` (each digit's ink, (k, H, W), on the input's
    pixels): a digit, ``NOT_ONE_DIGIT``, or None when it is neither clearly."""
    lab = layout.fine_labels
    n = len(layout.atoms)
    size = (lab.shape[1], lab.shape[0])
    per_atom = np.zeros((len(own), n + 1))
    totals = np.zeros(len(own))
    for k, o in enumerate(own):
        fine = np.asarray(Image.fromarray(o).resize(size, Image.Resampling.BOX), dtype=np.float64)
        per_atom[k] = np.bincount(lab.ravel(), weights=fine.ravel(), minlength=n + 1)[:n + 1]
        totals[k] = fine.sum()
    out: list[int | None] = []
    for c in cands:
        held = per_atom[:, c.first + 1:c.last + 1].sum(axis=1)
        if held.sum() <= 0:
            out.append(None)
            continue
        cover = held / np.maximum(totals, 1e-9)
        k = int(held.argmax())
        share = held[k] / held.sum()
        second = float(np.delete(cover, k).max()) if len(cover) > 1 else 0.0
        if cover[k] >= WHOLE[0] and second < WHOLE[1] and share >= WHOLE[2]:
            out.append(int(digits[k]))
        elif cover[k] < BROKEN[0] or second >= BROKEN[1] or share < BROKEN[2]:
            out.append(NOT_ONE_DIGIT)
        else:
            out.append(None)
    return out


def run_exists(first: Sequence[int], last: Sequence[int], marks: Sequence[bool], fits: Sequence[Sequence[bool]],
               length: int) -> bool:
    """Whether a run of ``length`` candidates covers all the atoms (``marks``: each atom is a
    small mark that may be left out), candidate k covering atoms first[k]..last[k]-1, the
    m-th of them one with ``fits[k][m]``.  With ``fits`` from ``label_pieces`` (label k ==
    digit m): whether the cuts allow the right segmentation."""
    ok = {(0, 0)}  # (atoms covered, digits placed)
    for j in range(1, len(marks) + 1):
        if marks[j - 1]:
            ok |= {(j, m) for i, m in ok if i == j - 1}
        for k, (a, b) in enumerate(zip(first, last)):
            if b == j:
                ok |= {(j, m + 1) for i, m in list(ok) if i == a and m < length and fits[k][m]}
    return (len(marks), length) in ok


def spans(layout: "segment.Layout", cands: Sequence["segment.Candidate"]) -> tuple[list, list, list]:
    """``run_exists``'s first, last and marks for a layout's candidates."""
    return [c.first for c in cands], [c.last for c in cands], [a.mark for a in layout.atoms]


def owners_on(layout: "segment.Layout", own: np.ndarray) -> np.ndarray:
    """Each digit's ink (``strings.owners``) on the pixels of ``layout.ink``, which the size
    guard may have scaled down from the composed picture's."""
    if layout.ink.shape == own.shape[1:]:
        return own
    size = (layout.ink.shape[1], layout.ink.shape[0])
    return np.stack([np.asarray(Image.fromarray(o).resize(size, Image.Resampling.BOX)) for o in own])


def make_pieces(split: MNISTSplit, n_strings: int, seed: int,
                progress: Callable[[int, int], None] | None = None,
                should_cancel: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labelled pieces cut from ``n_strings`` strings of ``split``'s digits:
    (N x 28 x 28 uint8 images, N labels 0-10)."""
    rng = np.random.default_rng(seed)
    gaps, weights = list(GAP_MIX), np.array(list(GAP_MIX.values()))
    images: list[np.ndarray] = []
    labels: list[int] = []
    for s in range(n_strings):
        if should_cancel is not None and should_cancel():
            raise TrainingCancelled("training cancelled")
        gap = gaps[int(rng.choice(len(gaps), p=weights / weights.sum()))]
        vary = bool(rng.random() < VARIED)
        idx = rng.integers(0, len(split), size=int(rng.integers(2, 5)))
        inks = [strings.digit_ink(split.images[i], rng, vary) for i in idx]
        ink, _, placed = strings.compose(inks, gap, rng, vary)
        picture = (ink * 255 + 0.5).astype(np.uint8)
        try:
            layout = segment.analyse(picture)  # without a classifier every unit is cut
        except NothingDrawn:
            continue
        own = owners_on(layout, strings.owners(inks, placed, ink.shape))
        cands = layout.candidates()
        for c, label in zip(cands, label_pieces(layout, cands, own, [int(split.labels[i]) for i in idx])):
            if label is not None:
                images.append(c.prepared.as_uint8())
                labels.append(label)
        if progress is not None and (s + 1) % 100 == 0:
            progress(s + 1, n_strings)
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    return np.stack(images), np.array(labels, np.int64)


# ---- the network's file ------------------------------------------------------------------------
def save(path: Path, model: PieceNet, metadata: dict) -> str:
    """Write the weights atomically (temp file, fsync, rename); return the file's sha256."""
    return checkpoint.write_payload(path, {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "width": model.body.features[0][0].out_channels, "metadata": dict(metadata),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}})


class PieceScorer:
    """Loaded piece network: ``scorer(prepared)`` -> each piece's probabilities (N x 11) of
    being each digit, whole, and of being no one whole digit (the reader's ``verify``)."""

    def __init__(self, model: PieceNet, metadata: dict, path: Path | None = None):
        self.model = model.eval()
        self.metadata = metadata
        self.path = path

    @classmethod
    def load(cls, path: Path) -> "PieceScorer":
        """Raises ``ModelFileError`` naming the file and what to do for any problem."""
        path = Path(path)
        again = "Train it again with `python run_model.py --mode pieces`."
        if not path.is_file():
            raise ModelFileError(f"Piece model file not found: {path}. {again}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelFileError(f"Piece model file {path} is corrupt or not a weights file ({exc}). {again}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ModelFileError(f"{path} is not a piece model file (the number reader's second opinion). {again}")
        if payload.get("format_version", 1) > FORMAT_VERSION:
            raise ModelFileError(f"Piece model file {path} was written by a newer version of this program.")
        width = payload.get("width")
        if not (isinstance(width, int) and 1 <= width <= 64):
            raise ModelFileError(f"Piece model file {path} gives the network width {width!r}: the file is damaged. {again}")
        model = PieceNet(width=width)
        try:
            model.load_state_dict(payload["state_dict"])
        except Exception as exc:
            raise ModelFileError(f"Piece model file {path} does not match its network ({exc}). {again}") from exc
        if not all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point()):
            raise ModelFileError(f"Piece model file {path} holds NaN or infinite weights. {again}")
        metadata = payload.get("metadata")
        return cls(model, metadata if isinstance(metadata, dict) else {}, path)

    @torch.inference_mode()
    def probabilities(self, prepared: Sequence[Prepared]) -> np.ndarray:
        """(N, 11): the digits 0-9 as whole digits, and "not one whole digit"."""
        batch = torch.from_numpy(np.stack([p.tensor_input for p in prepared]))
        return torch.softmax(self.model(batch).double(), 1).numpy()

    def whole(self, prepared: Sequence[Prepared]) -> np.ndarray:
        """Each piece's probability of being one whole digit."""
        return 1.0 - self.probabilities(prepared)[:, NOT_ONE_DIGIT]

    __call__ = probabilities  # the reader's ``verify``


# ---- training --------------------------------------------------------------------------------------
@dataclass
class PieceTraining:
    strings: int = 8000  # training strings (validation: a tenth as many, of other digits)
    epochs: int = 6
    batch_size: int = 256
    learning_rate: float = 0.004
    seed: int = 1
    width: int = 8


def train(split: MNISTSplit, config: PieceTraining, status: Callable[[str], None] | None = None,
          progress=None, should_cancel=None) -> tuple[PieceNet, dict]:
    """Make the pieces and train ``PieceNet`` on them; returns the network and its metadata."""
    from app.ml.train import TrainConfig, fit, to_tensors

    say = status or (lambda text: None)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    cut = len(split) - VALIDATION_DIGITS
    train_digits = MNISTSplit(split.images[:cut], split.labels[:cut])
    held_digits = MNISTSplit(split.images[cut:], split.labels[cut:])
    say(f"Cutting pieces from {config.strings} strings of MNIST training digits…")
    x, y = make_pieces(train_digits, config.strings, config.seed,
                       progress=lambda k, n: say(f"Cut pieces from {k} of {n} strings"), should_cancel=should_cancel)
    vx, vy = make_pieces(held_digits, max(1, config.strings // 10), config.seed + 1, should_cancel=should_cancel)
    say(f"{len(y)} pieces to learn from ({100 * np.mean(y == NOT_ONE_DIGIT):.0f} % not one whole digit), "
        f"{len(vy)} held out ({time.perf_counter() - start:.0f} s)")
    model = PieceNet(width=config.width)
    tc = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                     seed=config.seed, use_cuda=False)
    dev = torch.device("cpu")
    (tx, ty), (hx, hy) = to_tensors(x, y, dev), to_tensors(vx, vy, dev)
    history = fit(model, tx, ty, hx, hy, tc, progress=progress, should_cancel=should_cancel)
    model.eval()
    with torch.inference_mode():
        out = torch.cat([model((hx[i:i + 2000].float() / 255.0 - MEAN) / STD) for i in range(0, len(hx), 2000)])
    broken = (out.argmax(1) == NOT_ONE_DIGIT).numpy()
    truth = vy == NOT_ONE_DIGIT
    metadata = {
        "pieces": int(len(y)), "held_out_pieces": int(len(vy)), "strings": config.strings,
        "epochs": config.epochs, "seed": config.seed, "width": config.width,
        "held_out_accuracy": float(history[-1].test_accuracy),
        "held_out_whole_kept": float(100 * np.mean(~broken[~truth])) if (~truth).any() else math.nan,
        "held_out_broken_caught": float(100 * np.mean(broken[truth])) if truth.any() else math.nan,
        "seconds": round(time.perf_counter() - start, 1),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return model, metadata
