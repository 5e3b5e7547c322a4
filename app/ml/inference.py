"""``MNISTPredictor``: an image in, the digit, its confidence and all ten probabilities out."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from app import paths
from app.ml import calibration, checkpoint, pieces, segment
from app.ml.errors import ModelFileError
from app.ml.preprocess import NothingDrawn, Prepared, prepare

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """What the network reads in an image.

    ``digit`` is its best guess (also for something that is not a digit), ``confidence``
    the calibrated probability of that guess, ``probabilities`` all ten.  ``is_digit`` says
    whether the image looks like a digit at all (letters, shapes and scribbles do not);
    ``digit_score`` is the number behind it (higher: more like a digit).

    It also unpacks as the three values ``digit, confidence, probabilities``.
    """

    digit: int
    confidence: float
    probabilities: tuple[float, ...]  # 10 values summing to 1
    image: np.ndarray = field(repr=False)  # the 28x28 uint8 image the network saw
    is_digit: bool = True
    digit_score: float = float("nan")

    @property
    def runner_up(self) -> tuple[int, float]:
        """The second-best digit and its probability."""
        order = np.argsort(self.probabilities)[::-1]
        return int(order[1]), float(self.probabilities[order[1]])

    def __iter__(self):
        """``digit, confidence, probabilities = predictor.predict(image)``."""
        return iter((self.digit, self.confidence, self.probabilities))


class MNISTPredictor:
    """Recognise a digit in a PIL image, a numpy array or a torch tensor.

    >>> p = MNISTPredictor()            # the shipped weights
    >>> result = p.predict(image)       # PIL image, H x W (x 1/3/4) array, or tensor
    >>> result.digit, result.confidence, result.probabilities

    Raises ``ModelFileError`` if the weights file is missing or unusable, ``ValueError``
    for input it cannot read, and ``NothingDrawn`` (a ``ValueError``) for a blank image.
    Safe to call from several threads.  ``read_number`` also uses the piece network
    (``pieces_path``, by default the shipped ``saved_models/mnist_pieces.pth``; False: none)
    when it can load it.
    """

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu",
                 pieces_path: str | Path | None | bool = None):
        self.model_path = Path(model_path) if model_path is not None else paths.bundled_model_path()
        self._device = torch.device(device)
        self._loaded = checkpoint.load(self.model_path, self._device)
        # (checked by checkpoint.load: a file with unusable calibration data is refused)
        self._calibration = calibration.Calibration.from_metadata(self._loaded.metadata)
        self._lock = threading.Lock()
        self.pieces_path = None if pieces_path is False else (
            Path(pieces_path) if pieces_path is not None else paths.pieces_model_path())
        # False: not loaded yet; None: none to use
        self._pieces: pieces.PieceScorer | None | bool = False if self.pieces_path else None

    # ---- information -------------------------------------------------------
    @property
    def loaded(self) -> checkpoint.LoadedModel:
        return self._loaded

    @property
    def arch(self) -> str:
        return self._loaded.arch

    @property
    def metadata(self) -> dict:
        return dict(self._loaded.metadata)

    @property
    def model(self) -> torch.nn.Module:
        return self._loaded.model

    @property
    def calibration(self) -> calibration.Calibration:
        """Temperature and "is a digit" threshold from the weights file (defaults when the
        file has none: temperature 1, every image counts as a digit)."""
        return self._calibration

    @property
    def piece_scorer(self) -> pieces.PieceScorer | None:
        """The number reader's second opinion (``app.ml.pieces``), loaded on first use;
        None, with a warning in the log, when its file is missing or unusable: numbers
        are then read by the digit network alone."""
        with self._lock:
            if self._pieces is False:
                try:
                    self._pieces = pieces.PieceScorer.load(self.pieces_path)
                except ModelFileError as exc:
                    log.warning("%s Numbers are read without it.", exc)
                    self._pieces = None
            return self._pieces

    # ---- prediction ----------------------------------------------------------
    def predict(self, x) -> Prediction:
        return self._run([prepare(x)])[0]

    def predict_batch(self, xs) -> list[Prediction]:
        items = _split_batch(xs)
        return self._run([prepare(item) for item in items]) if items else []

    def explain(self, x, method: str = "gradient") -> tuple[Prediction, np.ndarray]:
        """The prediction and a (28, 28) map in [-1, 1] of the pixels that pushed the
        network towards it ("gradient": gradient x input; "occlusion": blanking patches)."""
        from app.ml import explain

        prepared = prepare(x)
        result = self._run([prepared])[0]
        fn = {"gradient": explain.gradient_x_input, "occlusion": explain.occlusion}.get(method)
        if fn is None:
            raise ValueError(f"unknown explanation method {method!r}; use 'gradient' or 'occlusion'")
        with self._lock:
            heat = fn(self._loaded.model, prepared.tensor_input, result.digit)
        return result, heat

    def read_number(self, x, strokes=None) -> segment.NumberReading:
        """Read a whole number: ``.text`` ("2025"), ``.digits`` (a ``Prediction`` each, left
        to right), ``.boxes`` ((x, y, w, h) of each digit in ``x``'s pixels) and
        ``.confidence`` (the product of the digits').  ``strokes``, when known, are the pen
        strokes in ``x``'s pixel coordinates (see ``app.ml.segment``).  Raises
        ``NothingDrawn`` for a blank input, like ``predict``."""
        return segment.read_number(self.predict_prepared, x, strokes, verify=self.piece_scorer)

    def predict_prepared(self, prepared: list[Prepared]) -> list[Prediction]:
        return self._run(list(prepared))

    def _run(self, prepared: list[Prepared]) -> list[Prediction]:
        batch = torch.from_numpy(np.stack([p.tensor_input for p in prepared])).to(self._device)
        with self._lock, torch.inference_mode():
            logits = self._loaded.model(batch).double().cpu().numpy()
        c = self._calibration
        probs = c.probabilities(logits)
        scores = calibration.digit_score(logits, c)
        results = []
        for p, row, score in zip(prepared, probs, scores):
            digit = int(row.argmax())
            is_digit = c.digit_threshold is None or bool(score >= c.digit_threshold)
            results.append(Prediction(digit=digit, confidence=float(row[digit]),
                                      probabilities=tuple(float(v) for v in row), image=p.as_uint8(),
                                      is_digit=is_digit, digit_score=float(score)))
        return results


def _split_batch(xs) -> list:
    if isinstance(xs, (list, tuple)):
        return list(xs)
    if isinstance(xs, np.ndarray) or type(xs).__module__.startswith("torch"):
        if xs.ndim not in (3, 4):
            raise ValueError(f"predict_batch takes a list of images or an N x H x W (x C) array; "
                             f"got an array of shape {tuple(xs.shape)}")
        return [xs[i] for i in range(xs.shape[0])]
    raise ValueError(f"predict_batch takes a list of images or an N x H x W array, got {type(xs).__name__}")


__all__ = ["MNISTPredictor", "Prediction", "NothingDrawn"]
