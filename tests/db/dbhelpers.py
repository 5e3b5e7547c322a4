"""Helpers for the database tests: real PNGs and valid records."""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone

import numpy as np
import psycopg2
from PIL import Image

from app.db import DatabaseUnavailable
from app.db.records import PredictionRecord


def make_png(seed: int = 0, size: tuple[int, int] = (28, 28)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size[1], size[0])) > 0.8).astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


_PNG_CACHE: dict[int, bytes] = {}


def probabilities_for(digit: int, confidence: float) -> list[float]:
    rest = (1.0 - confidence) / 9
    return [confidence if d == digit else rest for d in range(10)]


def make_record(digit: int = 3, confidence: float = 0.9, *, label: int | None = None,
                seed: int = 0, created_at: datetime | None = None, **fields) -> PredictionRecord:
    png = _PNG_CACHE.get(seed % 16)
    if png is None:
        png = _PNG_CACHE[seed % 16] = make_png(seed % 16)
    kwargs = dict(predicted_digit=digit, confidence=confidence,
                  probabilities=probabilities_for(digit, confidence), image_png=png,
                  model_version="test-1", source="canvas", true_label=label)
    if created_at is not None:
        kwargs["created_at"] = created_at
    kwargs.update(fields)
    return PredictionRecord(**kwargs)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def fetch(url: str, query: str, params=None) -> list[tuple]:
    """Rows of one query on a fresh connection (closed afterwards)."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    finally:
        conn.close()


class Switch:
    """A connect function for a repository that fails while ``down`` is set: the
    database "goes away" and comes back without stopping the server."""

    def __init__(self, url: str):
        self.url = url
        self.down = False

    def __call__(self):
        if self.down:
            raise DatabaseUnavailable("switched off")
        return psycopg2.connect(self.url)
