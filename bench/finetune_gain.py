#!/usr/bin/env python
"""Does "Improve with my corrections" help a user whose handwriting differs from MNIST?

A simulated user draws 300 digits: MNIST test digits 0-299 re-drawn with a thicker pen,
a slant and narrower (app/ml/styles.py), prepared as the app prepares a drawing.  Each is
predicted by the shipped model and logged, with its true label, through the real
database (an embedded PostgreSQL server in a temporary folder).  Then the same
fine-tuning the app runs reads them back and trains.  Accuracy is printed on the user's
held-out drawings (a fifth, never trained on) and on the MNIST test set, before and after.
MNIST accuracy is measured on test digits 300-9999, so no digit the user re-drew counts.

Last line: ``user_gain_pts=... mnist_drop_pts=...``.  Goal: gain >= 3, drop <= 0.2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import EmbeddedServer, PredictionRecord, PredictionRepository  # noqa: E402
from app.learn import array_to_png, improve, user_dataset  # noqa: E402
from app.ml import MNISTPredictor, data  # noqa: E402
from app.ml.data import MNISTSplit  # noqa: E402
from app.ml.styles import restyle  # noqa: E402
from app.settings import Settings  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--drawings", type=int, default=300)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--model-path", type=Path, default=None)
    args = p.parse_args()
    n = args.drawings
    mnist = data.load_or_fetch(Settings.load(), args.data_dir, progress=data.tqdm_progress())
    predictor = MNISTPredictor(args.model_path)
    user_images = restyle(mnist.test.images[:n])
    user_labels = mnist.test.labels[:n]
    mnist_eval = MNISTSplit(mnist.test.images[n:], mnist.test.labels[n:])

    with tempfile.TemporaryDirectory(prefix="finetune-bench-") as tmp:
        server = EmbeddedServer(Path(tmp) / "pgdata", cleanup_mode="delete")
        repo = PredictionRepository(server.start(), spool_dir=Path(tmp) / "spool")
        try:
            start = time.perf_counter()
            predictions = predictor.predict_batch(user_images)
            for i, (image, label, pred) in enumerate(zip(user_images, user_labels, predictions)):
                # Fixed ids make the held-out fifth (chosen by a hash of the id) the same every run.
                repo.log(PredictionRecord(uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-user-drawing-{i}")),
                                          predicted_digit=pred.digit, confidence=pred.confidence,
                                          probabilities=list(pred.probabilities), image_png=array_to_png(pred.image),
                                          source="canvas", true_label=int(label), model_version="shipped"))
            print(f"logged {n} labelled drawings in {time.perf_counter() - start:.1f} s; "
                  f"the shipped model got {sum(p.digit == l for p, l in zip(predictions, user_labels))}/{n} right")
            start = time.perf_counter()
            outcome = improve(predictor.loaded, user_dataset(repo), mnist, Path(tmp) / "models", mnist_eval=mnist_eval)
            r = outcome.report
            print(f"fine-tuned in {time.perf_counter() - start:.1f} s on {r.n_train} drawings "
                  f"(+ MNIST replay), held out {r.n_holdout}")
            print(f"user held-out accuracy: {r.user_before:.2f}% -> {r.user_after:.2f}%")
            print(f"MNIST test accuracy (digits {n}-9999): {r.mnist_before:.2f}% -> {r.mnist_after:.2f}%")
            print(r.reason)
        finally:
            repo.close()
            server.stop()
    print(f"user_gain_pts={r.user_gain:.2f} mnist_drop_pts={r.mnist_drop:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
