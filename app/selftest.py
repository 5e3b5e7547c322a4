"""``--self-test``: check that a build (or a checkout) really works, then exit.

Loads the model, predicts bundled MNIST test digits, trains one short epoch in a training
process (as the app does), starts an embedded PostgreSQL server in a temporary folder,
writes and reads one row, stops it, and checks that Qt can make a window.  Prints
``self-test ok`` and returns 0, or the reason and 1.

It needs no screen: with no display (neither ``DISPLAY`` nor ``WAYLAND_DISPLAY``) and no
``QT_QPA_PLATFORM`` chosen, Qt is started on its offscreen platform, where its default
would abort the process.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

from app import paths


def run_self_test(model_path: Path | None = None, out: Callable[[str], None] = print,
                  environ: Mapping[str, str] | None = None, pieces_path: Path | None = None) -> int:
    """Run every check; ``environ`` (default: the process environment) tells whether there is a display."""
    environ = os.environ if environ is None else environ
    steps = [("model", lambda: _check_model(model_path, pieces_path)), ("training", _check_training),
             ("database", _check_database), ("qt", lambda: _check_qt(qt_platform_args(environ)))]
    for name, step in steps:
        start = time.perf_counter()
        try:
            detail = step()
        except Exception as exc:  # noqa: BLE001 - the reason is the point of a self-test
            out(f"self-test FAILED at {name}: {exc}")
            return 1
        out(f"  {name}: {detail} ({time.perf_counter() - start:.2f} s)")
    out("self-test ok")
    return 0


def _check_model(model_path: Path | None, pieces_path: Path | None = None) -> str:
    import numpy as np

    from app.ml import MNISTPredictor

    predictor = MNISTPredictor(model_path, pieces_path=pieces_path)
    sample = np.load(paths.resources_dir() / "selftest_digits.npz")
    results = predictor.predict_batch(sample["images"])
    right = sum(int(r.digit == int(label)) for r, label in zip(results, sample["labels"]))
    if right < len(results) - 1:
        raise RuntimeError(f"the model recognised only {right} of {len(results)} bundled MNIST digits")
    if predictor.piece_scorer is None:
        raise RuntimeError(f"the number reader's piece network {predictor.pieces_path} is missing or unusable")
    labels = [int(v) for v in sample["labels"]]
    pair = [labels.index(4), labels.index(2)]
    reading = predictor.read_number(np.hstack([sample["images"][k] for k in pair]))
    if reading.text != "42":
        raise RuntimeError(f"a bundled 4 and 2 side by side were read as {reading.text!r}, not '42'")
    return (f"{predictor.model_path.name}: {right}/{len(results)} bundled digits right; "
            f"{predictor.pieces_path.name} loaded, a bundled 4 and 2 side by side read as {reading.text}")


def _check_training() -> str:
    """One short epoch of the real training loop, in a training process as the app runs it
    (a child process: in the package, this executable again; an optimiser step imports
    much of torch)."""
    import math

    import numpy as np

    from app import trainer
    from app.ml import checkpoint
    from app.ml.data import MNIST, MNISTSplit

    sample = np.load(paths.resources_dir() / "selftest_digits.npz")
    digits = MNISTSplit(sample["images"], sample["labels"].astype(np.int64))
    with tempfile.TemporaryDirectory(prefix="mnist-selftest-") as tmp:
        out = Path(tmp) / "selftest.pth"
        request = trainer.TrainRequest(config={"epochs": 1, "batch_size": 10}, out=out,
                                       mnist=MNIST(train=digits, test=digits, md5s={}))
        result = trainer.run_in_child(trainer.train_model, request)
        if not math.isfinite(result.test_accuracy) or checkpoint.load(out).sha256 != result.sha256:
            raise RuntimeError("the training process did not save usable weights")
    return f"one epoch on {len(digits)} digits in a training process"


def _check_database() -> str:
    from PIL import Image

    from app.db import EmbeddedServer, PredictionRecord, PredictionRepository

    with tempfile.TemporaryDirectory(prefix="mnist-selftest-") as tmp:
        server = EmbeddedServer(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            url = server.start()
            repo = PredictionRepository(url, spool_dir=None)
            try:
                png = io.BytesIO()
                Image.new("L", (28, 28), 0).save(png, format="PNG")
                probs = [0.01] * 10
                probs[3] = 0.91
                uid = repo.log(PredictionRecord(predicted_digit=3, confidence=0.91, probabilities=probs,
                                                image_png=png.getvalue(), source="cli", true_label=3,
                                                model_version="self-test"))
                rows = repo.recent(limit=5)
                if [r.uuid for r in rows] != [uid] or rows[0].true_label != 3:
                    raise RuntimeError("the row read back is not the row written")
            finally:
                repo.close()
        finally:
            server.stop()
    return "embedded PostgreSQL started, one row written and read, stopped"


def qt_platform_args(environ: Mapping[str, str]) -> list[str]:
    """``-platform offscreen`` when there is no display and no platform was chosen, else nothing."""
    if environ.get("QT_QPA_PLATFORM") or environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return []
    return ["-platform", "offscreen"]


def _check_qt(platform_args: list[str]) -> str:
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication(["self-test", *platform_args])
    label = QLabel("self-test")
    label.resize(120, 40)
    image = label.grab().toImage()
    if image.isNull():
        raise RuntimeError("Qt could not render a widget")
    why = " (no display found)" if platform_args else ""
    return f"Qt {app.platformName()} platform renders widgets{why}"
