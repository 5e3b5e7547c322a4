#!/usr/bin/env python
"""GUI responsiveness of the desktop app, measured on the real window (offscreen by default).

(a) stroke end -> bars updated: 200 strokes drawn with QTest at a person's pace (so live
    predictions run mid-stroke too); from the mouse release to the bars showing the
    prediction of the finished stroke.  p50 and p99.
(b) the longest event-loop stall: the worst gap between ticks of a 10 ms QTimer while a
    training run (Model > Train..., in its child process) and 1 000 database writes go on.
    Before it, (b0) measures the same timer with the app idle: what the machine adds.
(c) window shown: from starting a new Python process to the main window's first paint
    (median of 3 starts).

Goals: stroke p99 <= 16 ms, no stall > 17 ms (one frame at 60 Hz), window <= 1000 ms.
Last line: ``stroke_p99_ms=... max_stall_ms=... window_ms=...``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

STROKE_GOAL_MS = 16.0
STALL_GOAL_MS = 17.0
WINDOW_GOAL_MS = 1000.0

_WINDOW_CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from app import application
def painted():
    print("PAINTED", time.time(), flush=True)
    QTimer.singleShot(0, QApplication.quit)
sys.exit(application.run(["main.py"], first_paint_hook=painted))
"""


def window_ms(env: dict, runs: int = 3) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.time()
        out = subprocess.run([sys.executable, "-c", _WINDOW_CHILD.format(repo=str(REPO))], env=env,
                             capture_output=True, text=True, timeout=180)
        painted = [line for line in out.stdout.splitlines() if line.startswith("PAINTED")]
        if not painted:
            raise RuntimeError("the window was never painted:\n" + out.stdout[-2000:] + out.stderr[-2000:])
        times.append((float(painted[0].split()[1]) - start) * 1000)
    return times


def pump(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)


def wait(app, condition, timeout: float, what: str) -> None:
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.001)


def stroke_points(digit: int, size: int, jitter: np.random.Generator):
    from PySide6.QtCore import QPoint

    from tests.ml.drawing import STROKES

    pts = []
    stroke = STROKES[digit][0]
    scale = size / 280.0
    for (ax, ay), (bx, by) in zip(stroke, stroke[1:]):
        n = max(2, int(np.hypot(bx - ax, by - ay) * scale / 8))
        for i in range(n):
            t = i / n
            pts.append(QPoint(int((ax + (bx - ax) * t) * scale + jitter.integers(-2, 3)),
                              int((ay + (by - ay) * t) * scale + jitter.integers(-2, 3))))
    pts.append(QPoint(int(stroke[-1][0] * scale), int(stroke[-1][1] * scale)))
    return pts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strokes", type=int, default=200)
    p.add_argument("--writes", type=int, default=1000)
    p.add_argument("--model-path", type=Path, default=None)
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the MNIST files (default: MNIST_DIR, else <data folder>/mnist, downloaded when missing)")
    p.add_argument("--train-images", type=int, default=12000,
                   help="training images for the run of (b) (one epoch)")
    p.add_argument("--idle-seconds", type=float, default=5.0,
                   help="how long to measure the timer with the app idle before (b)")
    args = p.parse_args()

    from PySide6.QtCore import QSettings, Qt, QTimer
    from PySide6.QtTest import QTest

    from app.application import make_application
    from app.controllers import Controller
    from app.controllers.feedback import LogEntry
    from app.settings import Settings
    from app.widgets.main_window import MainWindow
    from app.widgets.training import TrainingDialog

    tmp = Path(tempfile.mkdtemp(prefix="gui-bench-"))
    tmp.chmod(0o711)  # as root, the embedded server's user must traverse it to reach tmp/home
    base = Settings.load()
    from app.ml import data

    data_dir = data.find_or_fetch(base, args.data_dir, progress=data.tqdm_progress())  # before the clock starts
    settings = base.with_(data_home=tmp / "home", model_path=args.model_path or base.model_path,
                          mnist_dir=data_dir, database_url=None, db_params={})  # embedded, as `make run`
    app = make_application(["gui_latency"])
    qs = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    controller = Controller(settings, qs)
    window = MainWindow(controller, qs)
    window.resize(1080, 720)
    window.show()
    wait(app, lambda: controller.models.model_ready, 120, "the model")
    wait(app, lambda: controller.database.state.online, 120, "the database")
    canvas = window.canvas
    size = min(canvas.width(), canvas.height())

    # ---- (a) stroke end -> bars updated -------------------------------------------------
    shown: list[tuple[object, float]] = []
    window.predictionShown.connect(lambda r, t: shown.append((r, t)))
    rng = np.random.default_rng(0)
    digits = [1, 7, 0, 4, 3]
    latencies = []
    for i in range(args.strokes + 5):
        pts = stroke_points(digits[i % len(digits)], size, rng)
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[0])
        for pt in pts[1:]:
            QTest.mouseMove(canvas, pt)
            pump(app, 0.004)  # ~ a person's pointer rate; live predictions run meanwhile
        shown.clear()
        t0 = time.perf_counter()
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[-1])
        final_seq = controller.prediction.latest_seq
        wait(app, lambda: any(r.seq == final_seq for r, _ in shown), 10, "the prediction")
        t1 = next(t for r, t in shown if r.seq == final_seq)
        if i >= 5:  # warm-up strokes
            latencies.append((t1 - t0) * 1000)
        canvas.undo()  # empty again: nothing is logged
        pump(app, 0.01)
    lat = np.array(latencies)
    p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    print(f"(a) stroke end -> bars updated over {len(lat)} strokes: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {lat.max():.1f} ms")

    # ---- (b) event-loop stall during training + writes ---------------------------------------
    gaps = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(tick)
    # The floor: the same timer while the app is idle (what the machine itself adds).
    canvas.clear()
    last[0] = time.perf_counter()
    timer.start()
    pump(app, args.idle_seconds)
    timer.stop()
    idle = np.array(gaps)
    gaps.clear()
    print(f"(b0) the same timer for {args.idle_seconds:.0f} s with the app idle: worst gap {idle.max():.1f} ms, "
          f"p99 {np.percentile(idle, 99):.1f} ms, gaps > {STALL_GOAL_MS:.0f} ms: {int((idle > STALL_GOAL_MS).sum())} "
          f"(what the machine adds)")
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255
    raw = np.full((280, 280), 255, np.uint8)
    raw[40:240, 130:150] = 0
    probs = [0.01] * 10
    probs[1] = 0.91
    written = [0]

    def write_some() -> None:
        for _ in range(20):
            if written[0] >= args.writes:
                writer.stop()
                return
            controller.feedback.log_prediction(LogEntry(
                uuid=str(uuid.uuid4()), created_at=datetime.now(timezone.utc), predicted_digit=1, confidence=0.91,
                probabilities=probs, true_label=1 if written[0] % 2 else None, image=image, raw=raw,
                model_version="bench", source="canvas"))
            written[0] += 1

    writer = QTimer()
    writer.setInterval(20)
    writer.timeout.connect(write_some)
    finished = []
    controller.learning.trainingFinished.connect(lambda o: finished.append(o))
    # A model that is not clearly better waits for the person's choice: training is over.
    controller.learning.trainingChoice.connect(lambda c: finished.append(c))
    controller.learning.trainingFailed.connect(lambda t: finished.append(t))
    # As a person does: Model > Train..., set the fields, Start.
    canvas.clear()
    wait(app, window.act_train.isEnabled, 60, "the training menu")
    window.act_train.trigger()
    dialog = window.dialogs.get(TrainingDialog)
    # The quick recipe: the standard one would first draw its synthetic digits (minutes, once
    # per data folder) and this measures the app beside a training process, not that.
    dialog.preset.setCurrentIndex(dialog.preset.findData("quick"))
    dialog.epochs.setValue(1)
    dialog.train_images.setValue(args.train_images)
    pump(app, 0.5)
    last[0] = time.perf_counter()
    timer.start()
    t_start = time.perf_counter()
    dialog.start_button.click()
    writer.start()
    wait(app, lambda: finished and written[0] >= args.writes and not controller.database.worker.busy, 600,
         "training and the writes")
    timer.stop()
    seconds = time.perf_counter() - t_start
    gaps_ms = np.array(gaps)
    stall = float(gaps_ms.max())
    print(f"(b) {len(gaps_ms)} ticks of a 10 ms timer over {seconds:.1f} s of training "
          f"({args.train_images} images, 1 epoch, augmented; the dialog's curves updating) and "
          f"{written[0]} writes: worst gap {stall:.1f} ms, "
          f"p99 {np.percentile(gaps_ms, 99):.1f} ms, gaps > {STALL_GOAL_MS:.0f} ms: "
          f"{int((gaps_ms > STALL_GOAL_MS).sum())}")
    if isinstance(finished[0], str):
        print("training failed, so (b) is not valid:", finished[0], file=sys.stderr)
        return 1

    window.close()
    import shiboken6

    shiboken6.delete(window)
    shiboken6.delete(controller)

    # ---- (c) window shown -------------------------------------------------------------------------
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               MNIST_DATA_HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "config"))
    env.pop("DATABASE_URL", None)
    env.pop("DB_HOST", None)
    if args.model_path:
        env["MNIST_MODEL_PATH"] = str(args.model_path)
    starts = window_ms(env)
    w_ms = statistics.median(starts)
    print(f"(c) window painted after {', '.join(f'{t:.0f}' for t in starts)} ms (median {w_ms:.0f} ms)")
    ok = p99 <= STROKE_GOAL_MS and stall <= STALL_GOAL_MS and w_ms <= WINDOW_GOAL_MS
    print(f"goals (p99 <= {STROKE_GOAL_MS:.0f} ms, stall <= {STALL_GOAL_MS:.0f} ms, window <= "
          f"{WINDOW_GOAL_MS:.0f} ms): {'met' if ok else 'NOT met'}")
    print(f"stroke_p99_ms={p99:.1f} max_stall_ms={stall:.1f} window_ms={w_ms:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
