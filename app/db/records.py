"""The values that go in and out of the database: a prediction, a history row, a status."""

from __future__ import annotations

import base64
import math
import numbers
import struct
import uuid as uuid_module
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

SOURCES = ("canvas", "file", "cli")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_SIZE = 28
MAX_MODEL_VERSION_LEN = 200
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


@dataclass
class PredictionRecord:
    """One prediction, as the app logs it.  `validate()` before anything is sent or spooled."""

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
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if not isinstance(self.created_at, datetime) or self.created_at.tzinfo is None \
                or self.created_at.utcoffset() is None:
            raise ValueError("created_at must be a datetime with a time zone "
                             "(e.g. datetime.now(timezone.utc))")
        return self

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
            "source": self.source,
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
            source=d["source"],
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


@dataclass(frozen=True)
class DbStatus:
    """What the GUI shows: "online" or "offline, N waiting", and where the data goes.

    where: "embedded", "host:port" or "local socket ...".  message: why it is offline (a
    sentence naming the setting to fix), or None when online.
    """

    online: bool
    pending: int
    where: str
    message: str | None = None

    def __str__(self) -> str:
        state = "online" if self.online else "offline"
        text = f"{state} ({self.where})"
        if self.pending:
            text += f", {self.pending} waiting"
        return text
