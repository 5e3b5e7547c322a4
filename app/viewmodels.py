"""What the widgets show: plain values the controllers make and the widgets read.

No Qt and no core here (neither torch nor the database), so both sides import this
module: the controllers (app/controllers/) fill these records in their workers and hand
them over; the widgets (app/widgets/) only read them.  Pictures travel as numpy arrays
and are turned into QImages in the GUI thread, by the widgets.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app import paths

log = logging.getLogger(__name__)


# ---- messages ----------------------------------------------------------------------------------
class Problem(str):
    """A message for people: the text itself (whole: what happened and what to do), with
    the technical details behind it (``details``: an internal error quoted in full, the
    list of what was tried) that the widgets show behind "Details…", and the file it is
    about (``path``), if any.  A str, so it goes wherever a message's text goes."""

    details: str | None
    path: Path | None

    def __new__(cls, text: str, details: str | None = None, path: Path | None = None) -> "Problem":
        obj = super().__new__(cls, text)
        obj.details = details or None
        obj.path = Path(path) if path is not None else None
        return obj

    def __reduce__(self):
        return (Problem, (str(self), self.details, self.path))


# ---- the model ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MLInfo:
    """What training can offer, known once torch is loaded."""

    architectures: dict[str, str]  # name -> one line about it
    #: The named recipes of app.ml.train.PRESETS, every value filled in (epochs,
    #: batch_size, learning_rate, augment, arch): TrainConfig keyword arguments.
    presets: dict[str, dict]


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    arch: str
    sha256: str
    metadata: dict
    description: str = ""

    @property
    def test_accuracy(self) -> float | None:
        acc = self.metadata.get("test_accuracy")
        return float(acc) if acc is not None else None

    @property
    def created_at(self) -> str | None:
        return self.metadata.get("created_at")

    @property
    def version(self) -> str:
        """What the database stores as model_version."""
        return f"{self.arch}@{self.sha256[:12]}"

    @property
    def kind(self) -> str:
        """How the weights came about: "shipped", "trained" or "fine-tuned"."""
        kind = self.metadata.get("kind")
        if kind in ("trained", "fine-tuned", "shipped"):
            return kind
        try:
            if self.path.resolve() in [p.resolve() for p in paths.shipped_model_paths()]:
                return "shipped"
        except OSError:
            pass
        return "trained"

    def summary(self) -> str:
        acc = self.test_accuracy
        return f"{self.arch}" + (f" · {acc:.2f} % test accuracy" if acc is not None else "")

    @property
    def calibration(self) -> dict | None:
        """The weights file's calibration data (temperature, digit threshold, the
        reliability on the MNIST test set...), or None for an uncalibrated file."""
        c = self.metadata.get("calibration")
        return c if isinstance(c, dict) else None


@dataclass(frozen=True)
class WeightsVersion:
    """A model as the database is told about it: its weights and how they came about.

    Registered as a model version when the model comes into use, and sent with each
    drawing it predicts, so that a drawing saved while the database was away still gets
    its version when it is sent (app.db VersionSpec)."""

    sha256: str
    path: Path
    arch: str
    metadata: dict
    kind: str  # "shipped", "trained" or "fine-tuned"
    parent_sha256: str | None = None  # the weights it was fine-tuned from


@dataclass(frozen=True)
class VersionRow:
    """A model version as the widgets show it (from the database's model_versions)."""

    id: int
    parent_id: int | None
    created_at: dt.datetime
    arch: str
    kind: str
    name: str | None
    sha256: str
    path: str | None
    mnist_accuracy: float | None  # percent, MNIST test accuracy from its metrics
    predictions: int = 0
    labelled: int = 0
    correct: int = 0
    accuracy: float | None = None  # 0..1, on the user's labelled drawings
    file_missing: bool = False  # its weights file is not where the database says

    @property
    def title(self) -> str:
        """"#3 fine-tuned" (or its name)."""
        return f"#{self.id} {self.name or self.kind}"

    def describe(self) -> str:
        """One line for a combo box: "#3 fine-tuned · 26 Nov 14:05 · from #2"."""
        text = f"{self.title} · {self.created_at.astimezone():%d %b %H:%M}"
        if self.parent_id is not None and self.kind != "trained":  # (trained: from scratch)
            text += f" · from #{self.parent_id}"
        return text


# ---- predictions -------------------------------------------------------------------------------
@dataclass
class PredictionResult:
    """A prediction for the drawing (or image file) of ``epoch``; ``seq`` orders requests."""

    digit: int
    confidence: float
    probabilities: tuple[float, ...]
    image: np.ndarray  # the 28x28 uint8 network input
    runner_up: tuple[int, float]
    seq: int
    epoch: int
    source: str  # "canvas" or "file"
    seconds: float  # preprocessing + inference in the worker
    requested_at: float  # perf_counter() when requested (latency measurements)
    model_sha256: str = ""  # the weights that made it
    #: Whether the drawing looks like a digit at all (False: a letter, a scribble, ...),
    #: and the score behind it (app.ml Prediction.is_digit, digit_score).  An
    #: uncalibrated weights file takes everything for a digit.
    is_digit: bool = True
    digit_score: float = float("nan")
    #: "Why this digit?": (28, 28) float32 in [-1, 1], gradient x input for ``digit``.
    heat: np.ndarray | None = None
    #: Where the 28x28 field lies on the drawing (x, y, w, h as fractions of its size),
    #: to lay the heat map over the canvas; None when unknown.
    heat_rect: tuple[float, float, float, float] | None = None


# ---- the database ------------------------------------------------------------------------------
@dataclass
class DatabaseState:
    text: str
    tooltip: str
    online: bool
    pending: int = 0
    starting: bool = False
    #: A problem that does not stop the database (offline drawings cannot be kept), or None.
    warning: str | None = None


@dataclass
class HistoryItem:
    uuid: str
    created_at: dt.datetime
    predicted: int
    confidence: float
    true_label: int | None
    image: np.ndarray | None  # the 28x28 uint8 network input, decoded off the GUI thread
    source: str = "canvas"
    model_version: str | None = None
    model_version_id: int | None = None
    is_digit: bool | None = None  # None: not judged


@dataclass
class StatsSnapshot:
    """Everything the statistics tab shows; read by a worker of the controller."""

    total: int = 0
    labelled: int = 0
    correct: int = 0
    accuracy: float | None = None
    confusion: list[list[int]] = field(default_factory=lambda: [[0] * 10 for _ in range(10)])
    per_day: list[dict] = field(default_factory=list)  # repository.accuracy_per_day()
    recent: list[HistoryItem] = field(default_factory=list)
    versions: list[VersionRow] = field(default_factory=list)  # newest first
    version_id: int | None = None  # the version these numbers are of (None: all)
    #: Of the drawings judged digit or not, how many were not a digit.
    judged: int = 0
    not_digit: int = 0
    #: Numbers read in Number mode (all versions): how many, labelled, read right.
    readings: int = 0
    readings_labelled: int = 0
    readings_correct: int = 0


# ---- learning ----------------------------------------------------------------------------------
@dataclass
class TrainingOutcome:
    """A training run that finished: its model is in use now."""

    info: ModelInfo
    test_accuracy: float
    seconds: float
    epochs: int


@dataclass(frozen=True)
class TrainingChoice:
    """A training run finished: its model and the one in use, measured on the same test
    images, for the user to choose between (neither is swapped in before).  The new
    weights are saved in ``path`` either way."""

    path: Path
    new_accuracy: float  # percent
    current_accuracy: float | None  # percent; None when the model in use could not be measured
    current_summary: str  # the model in use, in words
    test_images: int
    seconds: float
    epochs: int

    @property
    def new_is_better(self) -> bool:
        """The default answer: the new model only when it is measurably better."""
        return self.current_accuracy is None or self.new_accuracy > self.current_accuracy


@dataclass
class ImproveResult:
    """The outcome of Improve with my corrections: the numbers before and after, and
    whether the new model was kept (then it is in use: ``info``, ``version_id``)."""

    kept: bool
    reason: str
    mnist_before: float
    mnist_after: float
    user_before: float
    user_after: float
    n_train: int
    n_holdout: int
    seconds: float
    base_sha256: str
    info: ModelInfo | None = None
    version_id: int | None = None
