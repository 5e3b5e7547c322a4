"""The values that go in and out of the database: a prediction, a history row, a model
version, a labelled sample, a status; and the checks of what goes in."""

from __future__ import annotations

import base64
import json
import math
import numbers
import struct
import uuid as uuid_module
from dataclasses import dataclass, field
from datetime import datetime, timezone
from os import PathLike
from typing import Any

SOURCES = ("canvas", "file", "cli")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_SIZE = 28
MAX_MODEL_VERSION_LEN = 200
# What model_versions.kind may be (a CHECK in sql/migrations/002_model_versions.sql).
MODEL_KINDS = ("trained", "fine-tuned", "shipped")
MAX_NAME_LEN = 200
# A number read digit by digit has at most this many + 1 digits (a CHECK in
# sql/migrations/004_readings.sql).
MAX_READING_POSITION = 99
# Softmax output sums to 1 up to float32 rounding; anything further off is not probabilities.
PROBABILITY_SUM_TOLERANCE = 1e-3


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _new_uuid() -> str:
    return str(uuid_module.uuid4())


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def check_uuid(value: Any) -> str:
    """The canonical text of a UUID, or ValueError."""
    try:
        return str(uuid_module.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"uuid {value!r} is not a UUID") from None


def check_label(label: Any) -> int | None:
    """A true label is None or an int 0-9 (bool refused); returns it or raises ValueError."""
    if label is None:
        return None
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or not 0 <= label <= 9:
        raise ValueError(f"true_label must be a digit 0-9 or None, not {label!r}")
    return int(label)


def check_version_id(value: Any, what: str = "model_version_id") -> int | None:
    """A model version id is None or a positive int (bool refused); returns it or ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a model version id (an int >= 1) or None, "
                         f"not {value!r}")
    return int(value)


def check_sha256(value: Any) -> str:
    """The SHA-256 of a weights file as 64 lower-case hex digits, or ValueError."""
    text = value.lower() if isinstance(value, str) else None
    if text is None or len(text) != 64 or any(ch not in "0123456789abcdef" for ch in text):
        raise ValueError(f"sha256 must be 64 hex digits (hashlib.sha256(...).hexdigest()), "
                         f"not {value!r}")
    return text


def _short_text(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LEN:
        raise ValueError(f"{what} must be text of 1 to {MAX_NAME_LEN} characters"
                         + (" or None" if optional else "") + f", not {value!r}")
    return value


def _json_number(value: Any) -> Any:
    """json.dumps' fallback: numpy (or other numbers.Number) scalars, 0-d tensors' .item()."""
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON")


@dataclass(frozen=True)
class ModelVersionSpec:
    """The checked arguments of `register_model_version` (see there)."""

    sha256: str
    path: str
    arch: str
    metrics_json: str
    parent_id: int | None
    kind: str
    name: str | None

    @classmethod
    def check(cls, *, sha256: Any, path: Any, arch: Any, metrics: Any, parent_id: Any,
              kind: Any, name: Any) -> "ModelVersionSpec":
        """Raise ValueError naming the first bad argument; else the normalised values."""
        if isinstance(path, PathLike):
            path = path.__fspath__()
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be the weights file's path, not {path!r}")
        if not isinstance(metrics, dict):
            raise ValueError(f"metrics must be a dict, not {type(metrics).__name__}")
        try:
            metrics_json = json.dumps(metrics, allow_nan=False, default=_json_number)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metrics must be JSON (numbers, text, lists, dicts; no NaN): "
                             f"{exc}") from None
        if kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MODEL_KINDS)}, not {kind!r}")
        return cls(sha256=check_sha256(sha256), path=path, arch=_short_text(arch, "arch"),
                   metrics_json=metrics_json, parent_id=check_version_id(parent_id, "parent_id"),
                   kind=kind, name=_short_text(name, "name", optional=True))


@dataclass(frozen=True)
class VersionSpec:
    """A model version known by its weights: what `PredictionRepository.log` takes as
    ``version=`` when the version may not be registered yet (e.g. the database was
    offline when the model was loaded).  The database registers it the first time it
    sees it (also when a spooled prediction is replayed) and stores the prediction with
    the version's id.

    sha256: hex SHA-256 of the weights file (the version's identity); path, arch,
    metrics, kind, name: as `register_model_version` takes them; parent_sha256: the
    weights it was fine-tuned from (linked when that version is known), or None.
    """

    sha256: str
    path: str
    arch: str
    metrics: dict = field(default_factory=dict)
    kind: str = "trained"
    parent_sha256: str | None = None
    name: str | None = None

    def checked(self) -> "VersionSpec":
        """The normalised spec, or ValueError naming the first bad field."""
        base = ModelVersionSpec.check(sha256=self.sha256, path=self.path, arch=self.arch,
                                      metrics=self.metrics, parent_id=None, kind=self.kind,
                                      name=self.name)
        parent = None if self.parent_sha256 is None else check_sha256(self.parent_sha256)
        return VersionSpec(sha256=base.sha256, path=base.path, arch=base.arch,
                           metrics=json.loads(base.metrics_json), kind=base.kind,
                           parent_sha256=parent, name=base.name)

    def registration(self, parent_id: int | None) -> ModelVersionSpec:
        """The arguments of a registration, with the parent's id in this database."""
        return ModelVersionSpec.check(sha256=self.sha256, path=self.path, arch=self.arch,
                                      metrics=self.metrics, parent_id=parent_id,
                                      kind=self.kind, name=self.name)

    def to_json(self) -> dict:
        return {"sha256": self.sha256, "path": self.path, "arch": self.arch,
                "metrics": self.metrics, "kind": self.kind,
                "parent_sha256": self.parent_sha256, "name": self.name}

    @classmethod
    def from_json(cls, d: dict) -> "VersionSpec":
        return cls(sha256=d["sha256"], path=d["path"], arch=d["arch"],
                   metrics=d.get("metrics") or {}, kind=d.get("kind", "trained"),
                   parent_sha256=d.get("parent_sha256"), name=d.get("name")).checked()


@dataclass
class PredictionRecord:
    """One prediction, as the app logs it.  `validate()` before anything is sent or spooled.

    model_version is a free text label; model_version_id the id that
    `register_model_version` returned for the weights that made the prediction (None when
    it is not known, e.g. the database was offline when the model was loaded).  is_digit:
    whether the model judged the drawing to be a digit at all (False: a letter, a scribble);
    None when not judged.
    """

    predicted_digit: int
    confidence: float
    probabilities: list[float]
    image_png: bytes
    raw_png: bytes | None = None
    model_version: str | None = None
    source: str = "canvas"
    uuid: str = field(default_factory=_new_uuid)
    created_at: datetime = field(default_factory=_now)
    true_label: int | None = None
    model_version_id: int | None = None
    is_digit: bool | None = None
    reading_id: str | None = None  # a digit of a number read digit by digit: the reading's uuid
    reading_position: int | None = None  # and the digit's place in it, 0 = leftmost

    def validate(self) -> "PredictionRecord":
        """Raise ValueError naming the first bad field; return self when all is well.

        Also normalises the values (numpy numbers to Python ones, bytearray to bytes).
        """
        self.uuid = check_uuid(self.uuid)
        d = self.predicted_digit
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or not 0 <= d <= 9:
            raise ValueError(f"predicted_digit must be an int 0-9, not {d!r}")
        self.predicted_digit = int(d)
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not math.isfinite(c) \
                or not 0.0 <= c <= 1.0:
            raise ValueError(f"confidence must be a number between 0 and 1, not {c!r}")
        self.confidence = float(c)
        self._validate_probabilities()
        self.true_label = check_label(self.true_label)
        if not isinstance(self.image_png, (bytes, bytearray, memoryview)):
            raise ValueError(f"image_png must be PNG bytes, not {type(self.image_png).__name__}")
        size = png_size(bytes(self.image_png))
        if size is None:
            raise ValueError("image_png is not a PNG image")
        if size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"image_png must be {IMAGE_SIZE}x{IMAGE_SIZE} (the model input), "
                             f"not {size[0]}x{size[1]}")
        self.image_png = bytes(self.image_png)
        if self.raw_png is not None:
            if not isinstance(self.raw_png, (bytes, bytearray, memoryview)) \
                    or png_size(bytes(self.raw_png)) is None:
                raise ValueError("raw_png must be PNG bytes or None")
            self.raw_png = bytes(self.raw_png)
        if self.model_version is not None and (
                not isinstance(self.model_version, str)
                or len(self.model_version) > MAX_MODEL_VERSION_LEN):
            raise ValueError(f"model_version must be text of at most {MAX_MODEL_VERSION_LEN} "
                             f"characters or None")
        self.model_version_id = check_version_id(self.model_version_id)
        if self.is_digit is not None:
            v = self.is_digit
            if not (isinstance(v, bool) or getattr(getattr(v, "dtype", None), "kind", None) == "b"):
                raise ValueError(f"is_digit must be True, False or None, not {v!r}")
            self.is_digit = bool(v)  # (numpy's bool_ too)
        self._validate_reading()
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if not isinstance(self.created_at, datetime) or self.created_at.tzinfo is None \
                or self.created_at.utcoffset() is None:
            raise ValueError("created_at must be a datetime with a time zone "
                             "(e.g. datetime.now(timezone.utc))")
        return self

    def _validate_reading(self) -> None:
        if self.reading_id is None and self.reading_position is None:
            return
        if self.reading_id is None or self.reading_position is None:
            raise ValueError("reading_id and reading_position go together: give both (a digit of a "
                             "number) or neither (a single digit)")
        self.reading_id = check_uuid(self.reading_id)
        p = self.reading_position
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or not 0 <= p <= MAX_READING_POSITION:
            raise ValueError(f"reading_position must be an int 0-{MAX_READING_POSITION}, not {p!r}")
        self.reading_position = int(p)

    def _validate_probabilities(self) -> None:
        bad = ValueError("probabilities must be a sequence of 10 numbers")
        if isinstance(self.probabilities, (str, bytes)):
            raise bad
        try:
            items = list(self.probabilities)
        except TypeError:
            raise bad from None
        if len(items) != 10:
            raise ValueError(f"probabilities must have 10 values (one per digit), not {len(items)}")
        if any(isinstance(x, (str, bytes, bool)) for x in items):
            raise bad
        try:
            values = [float(x) for x in items]
        except (TypeError, ValueError):
            raise bad from None
        if not all(math.isfinite(x) and 0.0 <= x <= 1.0 for x in values):
            raise ValueError("every probability must be between 0 and 1")
        total = sum(values)
        if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
            raise ValueError(f"probabilities must sum to 1, not {total:.6g}")
        self.probabilities = values

    # ---- the spool's JSON form ------------------------------------------------
    def to_json(self) -> dict:
        return {
            "uuid": self.uuid,
            "created_at": self.created_at.isoformat(),
            "predicted_digit": self.predicted_digit,
            "confidence": self.confidence,
            "probabilities": list(self.probabilities),
            "true_label": self.true_label,
            "image_png": base64.b64encode(bytes(self.image_png)).decode("ascii"),
            "raw_png": None if self.raw_png is None
            else base64.b64encode(bytes(self.raw_png)).decode("ascii"),
            "model_version": self.model_version,
            "model_version_id": self.model_version_id,
            "source": self.source,
            "reading_id": self.reading_id,
            "reading_position": self.reading_position,
            "is_digit": self.is_digit,
        }

    @classmethod
    def from_json(cls, d: dict) -> "PredictionRecord":
        return cls(
            uuid=d["uuid"],
            created_at=datetime.fromisoformat(d["created_at"]),
            predicted_digit=d["predicted_digit"],
            confidence=d["confidence"],
            probabilities=d["probabilities"],
            true_label=d.get("true_label"),
            image_png=base64.b64decode(d["image_png"]),
            raw_png=None if d.get("raw_png") is None else base64.b64decode(d["raw_png"]),
            model_version=d.get("model_version"),
            model_version_id=d.get("model_version_id"),  # absent in older spool lines
            source=d["source"],
            reading_id=d.get("reading_id"),  # absent in older spool lines
            reading_position=d.get("reading_position"),
            is_digit=d.get("is_digit"),  # absent in older spool lines: not judged
        )


@dataclass(frozen=True)
class HistoryRow:
    """One line of the history list (newest first)."""

    uuid: str
    created_at: datetime
    predicted_digit: int
    confidence: float
    true_label: int | None
    image_png: bytes
    model_version: str | None
    source: str
    model_version_id: int | None = None
    is_digit: bool | None = None  # None: not judged (made before the app judged drawings)


@dataclass(frozen=True)
class ModelVersion:
    """A trained, fine-tuned or shipped model, and how its predictions did.

    parent_id: the version it was fine-tuned from (None for one trained from scratch or
    shipped).  metrics: what training reported (e.g. {"test_accuracy": 0.995}).
    predictions / labelled / correct: counts of the predictions it made; accuracy =
    correct / labelled, None when none of them is labelled.
    """

    id: int
    parent_id: int | None
    created_at: datetime
    arch: str
    metrics: dict
    sha256: str
    path: str | None
    kind: str
    name: str | None
    predictions: int = 0
    labelled: int = 0
    correct: int = 0
    accuracy: float | None = None


@dataclass(frozen=True)
class LabelledSample:
    """A prediction the user labelled: the 28x28 image the network saw and the true digit."""

    uuid: str
    image_png: bytes
    true_label: int
    created_at: datetime


@dataclass(frozen=True)
class DbStatus:
    """What the GUI shows: "online" or "offline, N waiting", and where the data goes.

    where: "embedded", "host:port" or "local socket ...".  message: why it is offline (a
    sentence naming the setting to fix), or None when online.  drawings_sent: how many
    drawings (predictions, not label changes) waiting in the spool have been sent to the
    database since the repository was opened; it only grows, so a change between two
    statuses is the number just sent ("3 drawings sent").  warning: a problem that does
    not stop the database, e.g. that the offline spool cannot be used (offline writes
    would then be lost), or None.
    """

    online: bool
    pending: int
    where: str
    message: str | None = None
    drawings_sent: int = 0
    warning: str | None = None

    def __str__(self) -> str:
        state = "online" if self.online else "offline"
        text = f"{state} ({self.where})"
        if self.pending:
            text += f", {self.pending} waiting"
        return text
