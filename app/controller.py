"""The app's logic between the widgets and the core (app.ml, app.db): no widgets here.

The ``Controller`` lives in the GUI thread.  It owns three worker threads (app/workers.py):

- ``inference``: imports torch (after the first paint), loads weights, preprocesses and
  predicts.  Live prediction requests share one key, so a request that has not started is
  dropped for a newer one: stale requests never queue up.
- ``database``: opens the database (and starts the embedded server), logs drawings, sets
  labels, reads the statistics, exports CSV; one job at a time, in order.
- ``training``: the training loop of run_model.py, cancellable, saving atomically.

Widgets call its methods and listen to its signals.  A *drawing* is what is on the canvas
between two clears: it gets predictions while it changes, and is logged exactly once:
with a true label on ✓ Correct / ✗ Wrong…, or unlabelled when it is cleared without
feedback.  A later correction (statistics tab) updates its row.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import time
import uuid as uuid_module
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtGui import QImage

from app import paths
from app.settings import Settings
from app.workers import WorkerThread

log = logging.getLogger(__name__)

#: QSettings key of the weights file in use (set by Load weights… and training).
MODEL_PATH_KEY = "model/path"
#: How often the database thread checks the connection and sends what waits.
DB_POLL_MS = 4000
#: Rows of the history table.
HISTORY_ROWS = 60
#: Largest side of the drawing stored as raw_png.
RAW_PNG_MAX = 280


# ---- values handed to the widgets ------------------------------------------------------------
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

    def summary(self) -> str:
        acc = self.test_accuracy
        return f"{self.arch}" + (f" · {acc:.2f} % test accuracy" if acc is not None else "")


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


@dataclass
class DatabaseState:
    text: str
    tooltip: str
    online: bool
    pending: int = 0
    starting: bool = False


@dataclass
class _Drawing:
    epoch: int
    source: str = "canvas"
    raw: np.ndarray | None = None  # the picture the last prediction was made from
    prediction: PredictionResult | None = None
    uuid: str | None = None  # set once logged
    label: int | None = None


@dataclass
class _Feedback:
    label: int | None
    confirm: bool


@dataclass
class TrainingOutcome:
    info: ModelInfo
    predictor: Any
    test_accuracy: float
    seconds: float
    epochs: int


def settle_heap() -> None:
    """Tell Python's cyclic garbage collector to leave the objects that exist now alone.

    torch, pyqtgraph and Qt's wrappers make a few hundred thousand long-lived objects; a
    full collection walks them all and holds the GIL for 80-200 ms (measured), which
    freezes the window whatever thread triggered it.  ``gc.freeze()`` moves them to the
    permanent generation: later collections only see new objects.  O(1); called after
    start-up and after each model swap.
    """
    gc.collect(0)  # short-lived garbage out first
    gc.freeze()


def initial_model_path(settings: Settings, qsettings: QSettings) -> Path:
    """MNIST_MODEL_PATH when set; else the weights last used (Load weights…, training)
    if that file still exists; else the shipped weights."""
    if Path(settings.model_path) != paths.bundled_model_path():
        return Path(settings.model_path)
    remembered = qsettings.value(MODEL_PATH_KEY, "", type=str)
    if remembered and Path(remembered).is_file():
        return Path(remembered)
    return Path(settings.model_path)


class Controller(QObject):
    # ML and model
    mlReady = Signal(dict)  # {"architectures": {name: description}, "presets": {...}}
    modelLoading = Signal(str)
    modelReady = Signal(object)  # ModelInfo
    modelFailed = Signal(str)
    # predictions
    predictionReady = Signal(object)  # PredictionResult
    predictionCleared = Signal()
    predictionFailed = Signal(str)
    imageOpened = Signal(QImage, str)  # the picture and a caption for the canvas
    #: The drawing got its feedback and was logged: the canvas may be cleared.
    drawingDone = Signal(str, object)  # uuid, label
    # database
    databaseState = Signal(object)  # DatabaseState
    logged = Signal(str, object)  # uuid, label: the database (or its spool) has it
    labelSaved = Signal(str, object)
    statsReady = Signal(object)  # StatsSnapshot
    statsFailed = Signal(str)
    exportDone = Signal(str, int)
    exportFailed = Signal(str)
    # training
    trainingStarted = Signal()
    trainingStatus = Signal(str)
    trainingProgress = Signal(object)  # app.ml.train.TrainProgress
    trainingFinished = Signal(object)  # TrainingOutcome
    trainingFailed = Signal(str)
    trainingCancelled = Signal()
    # messages for people
    notify = Signal(str)  # a passing status-bar message
    problem = Signal(str, str)  # title, text: worth a dialog

    def __init__(self, settings: Settings, qsettings: QSettings | None = None,
                 parent: QObject | None = None, use_database: bool = True):
        super().__init__(parent)
        self.settings = settings
        self.qsettings = qsettings if qsettings is not None else QSettings()
        self.inference = WorkerThread("inference", self)
        self.database = WorkerThread("database", self)
        self.training = WorkerThread("training", self)
        for w in (self.inference, self.database, self.training):
            w.errorOccurred.connect(self._worker_error)
        self.predictor = None  # app.ml.MNISTPredictor, used only inside inference jobs
        self.model_info: ModelInfo | None = None
        self.ml_info: dict | None = None
        self.model_path = initial_model_path(settings, self.qsettings)
        self._use_database = use_database
        self._repo = None  # PredictionRepository, used only inside database jobs
        self._server = None
        self._db_opened = False
        self._stats_wanted = False
        self._db_state = DatabaseState("Database: starting…", "Connecting to the database",
                                       online=False, starting=True)
        self._epoch = 0
        self._seq = 0
        self._latest_seq = 0  # the newest prediction request
        self._delivered_seq = 0  # the newest request whose answer (or error) has arrived
        self._drawing = _Drawing(epoch=0)
        self._feedback: _Feedback | None = None
        self._mnist = None  # MNIST data, cached by the training thread
        self._training_job = None
        self._shut_down = False
        self._poll = QTimer(self)
        self._poll.setInterval(DB_POLL_MS)
        self._poll.timeout.connect(self._poll_database)

    # ==== start-up ================================================================================
    def start(self) -> None:
        """Begin the slow work: torch and the model, and the database.  Call after the
        window has been painted once."""
        self.inference.submit(_import_ml, on_result=self._ml_imported, on_error=self._ml_import_failed)
        self.load_model(self.model_path, remember=False)
        if self._use_database:
            self.database.submit(_open_database, self, on_result=self._database_opened,
                                 on_error=self._database_open_failed)
            self.databaseState.emit(self._db_state)
        else:
            self._set_db_state(DatabaseState("Database: off", "Not logging predictions", online=False))

    def _ml_imported(self, info: dict) -> None:
        settle_heap()
        self.ml_info = info
        self.training.submit(_warm_up, on_result=lambda _: settle_heap(),
                             on_error=lambda e: log.warning("warm-up failed: %s", e))
        self.mlReady.emit(info)

    def _ml_import_failed(self, exc: BaseException) -> None:
        log.error("PyTorch could not be loaded", exc_info=exc)
        self.problem.emit("PyTorch could not be loaded",
                          f"{exc}\n\nReinstall the requirements (make venv) and start again.")

    # ==== the model ===============================================================================
    def load_model(self, path: str | os.PathLike, remember: bool = True) -> None:
        """Load weights in the worker; the current model stays until the new one works."""
        path = Path(path)
        self.modelLoading.emit(str(path))
        self.inference.submit(_load_predictor, path,
                              on_result=lambda r: self._model_loaded(r, remember),
                              on_error=lambda e: self._model_failed(e, path))

    def _model_loaded(self, result: tuple, remember: bool) -> None:
        predictor, info = result
        self._swap_model(predictor, info, remember)
        log.info("model loaded: %s (%s)", info.summary(), info.path)
        self.notify.emit(f"Model loaded: {info.summary()}")

    def _swap_model(self, predictor, info: ModelInfo, remember: bool) -> None:
        settle_heap()
        self.predictor = predictor
        self.model_info = info
        self.model_path = info.path
        if remember:
            self.qsettings.setValue(MODEL_PATH_KEY, str(info.path))
        self.modelReady.emit(info)

    def _model_failed(self, exc: BaseException, path: Path) -> None:
        text = str(exc) if _is_model_error(exc) else f"Could not load {path}: {exc}"
        log.warning("model not loaded: %s", text)
        if self.predictor is not None:
            text += f"\n\nThe current model ({self.model_info.summary()}) stays in use."
        self.modelFailed.emit(text)

    @property
    def model_ready(self) -> bool:
        return self.predictor is not None

    # ==== predictions =============================================================================
    def request_prediction(self, picture: np.ndarray) -> int | None:
        """Predict the canvas picture (H x W uint8, black on white) in the worker.

        A request still waiting is replaced by this one.  Returns its sequence number, or
        None when no model is loaded yet."""
        if self.predictor is None:
            return None
        self._seq += 1
        seq = self._seq
        self._latest_seq = seq
        epoch = self._epoch
        self.inference.submit(_predict, self.predictor, picture, seq, epoch, "canvas",
                              time.perf_counter(), key="predict",
                              on_result=self._predicted, on_error=lambda e: self._predict_failed(e, seq, epoch))
        return seq

    def _predicted(self, result: tuple) -> None:
        r, picture = result
        self._delivered_seq = max(self._delivered_seq, r.seq)
        if r.epoch != self._epoch:
            return  # the drawing was cleared meanwhile
        d = self._drawing
        if d.prediction is not None and d.prediction.seq > r.seq:
            return
        if d.uuid is not None:
            return  # already logged; the canvas is about to be cleared
        d.prediction, d.raw, d.source = r, picture, r.source
        self.predictionReady.emit(r)
        if r.seq == self._latest_seq and self._feedback is not None:
            fb, self._feedback = self._feedback, None
            self._give_feedback(fb)

    def _predict_failed(self, exc: BaseException, seq: int, epoch: int) -> None:
        self._delivered_seq = max(self._delivered_seq, seq)
        if epoch != self._epoch or seq != self._latest_seq:
            return
        self._feedback = None
        if _is_nothing_drawn(exc):
            self._drawing.prediction = None
            self.predictionCleared.emit()
        else:
            log.error("prediction failed", exc_info=exc)
            self.predictionFailed.emit(str(exc))

    def canvas_emptied(self) -> None:
        """The canvas became empty without a clear (e.g. everything undone): nothing to log."""
        self._new_drawing()
        self.predictionCleared.emit()

    def _new_drawing(self) -> None:
        self._epoch += 1
        self._feedback = None
        self._drawing = _Drawing(epoch=self._epoch)

    def open_image(self, path: str | os.PathLike) -> None:
        """Read an image file and predict it (both in the worker)."""
        path = Path(path)
        self.discard()
        epoch = self._epoch
        self._seq += 1
        seq = self._latest_seq = self._seq
        self.inference.submit(_open_image, self.predictor, path, seq, epoch, time.perf_counter(),
                              key="predict", on_result=lambda r: self._image_opened(r, seq, epoch),
                              on_error=lambda e: self._image_failed(e, path, seq))

    def _image_opened(self, result: tuple, seq: int, epoch: int) -> None:
        qimage, caption, r, picture, error = result
        if epoch != self._epoch:
            self._delivered_seq = max(self._delivered_seq, seq)
            return
        self.imageOpened.emit(qimage, caption)
        if r is not None:
            self._drawing = _Drawing(epoch=self._epoch, source="file")
            self._predicted((r, picture))
        else:
            self._delivered_seq = max(self._delivered_seq, seq)
            if error:
                self.predictionFailed.emit(error)

    def _image_failed(self, exc: BaseException, path: Path, seq: int) -> None:
        self._delivered_seq = max(self._delivered_seq, seq)
        self.problem.emit("Cannot open the image", f"{path}: {exc}")

    # ==== feedback ==============================================================================
    @property
    def has_prediction(self) -> bool:
        return self._drawing.prediction is not None and self._drawing.uuid is None

    @property
    def current_prediction(self) -> PredictionResult | None:
        return self._drawing.prediction

    def confirm(self) -> bool:
        """✓ Correct: log the drawing with its prediction as the true label."""
        return self._request_feedback(_Feedback(label=None, confirm=True))

    def correct_to(self, label: int) -> bool:
        """✗ Wrong…: log the drawing with the digit the user picked."""
        return self._request_feedback(_Feedback(label=int(label), confirm=False))

    def _request_feedback(self, fb: _Feedback) -> bool:
        d = self._drawing
        if d.uuid is not None:
            return False
        if self._latest_seq > self._delivered_seq:
            self._feedback = fb  # given when the newest prediction arrives
            return True
        if d.prediction is None:
            return False
        self._give_feedback(fb)
        return True

    def _give_feedback(self, fb: _Feedback) -> None:
        d = self._drawing
        label = d.prediction.digit if fb.confirm else fb.label
        uid = self._log_drawing(d, label)
        self.drawingDone.emit(uid, label)

    def discard(self) -> None:
        """The drawing is cleared: log it without a label if it had a prediction and no
        feedback yet; then start a new drawing."""
        d = self._drawing
        if d.prediction is not None and d.uuid is None:
            self._log_drawing(d, None)
        self._new_drawing()
        self.predictionCleared.emit()

    def _log_drawing(self, d: _Drawing, label: int | None) -> str:
        d.uuid = str(uuid_module.uuid4())
        d.label = label
        p = d.prediction
        version = self.model_info.version if self.model_info else None
        item = dict(uuid=d.uuid, created_at=datetime.now(timezone.utc), predicted_digit=p.digit,
                    confidence=p.confidence, probabilities=list(p.probabilities), true_label=label,
                    image=p.image, raw=d.raw, model_version=version, source=d.source)
        self.log_prediction(item)
        return d.uuid

    def log_prediction(self, item: dict) -> None:
        """Write one prediction (fields of PredictionRecord; ``image``/``raw`` as arrays)."""
        if not self._use_database:
            return
        self.database.submit(_log, self, item, on_result=self._logged_ok,
                             on_error=lambda e: self._log_failed(e, item["uuid"]))

    def _logged_ok(self, result: tuple) -> None:
        uid, label, status = result
        self._db_status(status)
        self.logged.emit(uid, label)

    def _log_failed(self, exc: BaseException, uid: str) -> None:
        log.error("logging %s failed", uid, exc_info=exc)
        self.problem.emit("The prediction was not saved", str(exc))

    def set_label(self, uid: str, label: int | None) -> None:
        """Correct the true label of a logged prediction (statistics tab)."""
        if not self._use_database:
            return
        if self._drawing.uuid == uid:
            self._drawing.label = label
        self.database.submit(_set_label, self, uid, label,
                             on_result=lambda status: self._label_saved(uid, label, status),
                             on_error=lambda e: self.problem.emit("The label was not saved", str(e)))

    def _label_saved(self, uid: str, label, status) -> None:
        self._db_status(status)
        self.labelSaved.emit(uid, label)

    # ==== database ================================================================================
    def _database_opened(self, status) -> None:
        log.info("database: %s", status)
        self._db_opened = True
        self._db_status(status)
        self._poll.start()
        if self._stats_wanted:
            self._stats_wanted = False
            self.refresh_stats()

    def _database_open_failed(self, exc: BaseException) -> None:
        log.error("database not opened", exc_info=exc)
        self._db_opened = True  # (as far as it goes: reads will say why they fail)
        self._set_db_state(DatabaseState("Database: unavailable", str(exc), online=False))
        self.problem.emit("No database", f"{exc}\n\nThe app works without it, but predictions "
                                         f"are not saved.")

    def _poll_database(self) -> None:
        if self.database.pending("poll") == 0:
            self.database.submit(_poll, self, key="poll", on_result=self._db_status)

    def _db_status(self, status) -> None:
        if status is None:
            return
        where = status.where
        place = "local server" if where.startswith("local socket") else where
        if status.online:
            text = f"Database: {place}"
            if status.pending:
                text += f" · sending {status.pending}"
            tip = f"Predictions are saved in the {'embedded PostgreSQL server' if where == 'embedded' else 'PostgreSQL server at ' + where}."
        else:
            text = f"Database: offline ({place})"
            if status.pending:
                text += f" · {status.pending} waiting"
            tip = (status.message or "Not connected.") + \
                "\nPredictions wait on this computer and are sent when the database is back."
        was_online = self._db_state.online
        was_starting = self._db_state.starting
        self._set_db_state(DatabaseState(text, tip, online=status.online, pending=status.pending))
        if was_starting and not status.online:
            self.problem.emit("The database is not reachable",
                              f"{status.message or 'Not connected.'}\n\nThe app works on: "
                              f"predictions are kept on this computer and sent when the "
                              f"database is reachable again.")
        elif was_online and not status.online:
            self.notify.emit("The database went offline; predictions wait on this computer.")

    def _set_db_state(self, state: DatabaseState) -> None:
        if state == self._db_state:
            return  # (after each write: mostly unchanged)
        self._db_state = state
        self.databaseState.emit(state)

    @property
    def database_state(self) -> DatabaseState:
        return self._db_state

    def refresh_stats(self) -> None:
        if not self._use_database:
            self.statsFailed.emit("The database is off.")
            return
        if not self._db_opened:
            self._stats_wanted = True  # read them as soon as the database is open
            return
        self.database.submit(_read_stats, self, key="stats", on_result=self.statsReady.emit,
                             on_error=lambda e: self.statsFailed.emit(_db_message(e)))

    def export_csv(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not self._use_database:
            self.exportFailed.emit("The database is off.")
            return
        self.database.submit(_export, self, path, on_result=lambda n: self.exportDone.emit(str(path), n),
                             on_error=lambda e: self.exportFailed.emit(_db_message(e)))

    # ==== training ==============================================================================
    @property
    def training_running(self) -> bool:
        return self._training_job is not None

    def start_training(self, config: dict) -> bool:
        """Train in the worker with TrainConfig(**config); the new weights go to a new file
        in settings.models_dir and replace the model when the run finishes well."""
        if self._training_job is not None:
            return False
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(self.settings.models_dir) / f"{config.get('arch', 'mnist_cnn')}-{stamp}.pth"
        self._training_job = self.training.submit(
            _train, self, dict(config), Path(self.settings.mnist_dir), out, with_job=True,
            on_result=self._trained, on_error=self._training_error,
            on_progress=self._training_progress, on_done=self._training_done)
        self.trainingStarted.emit()
        return True

    def cancel_training(self) -> None:
        if self._training_job is not None:
            self._training_job.cancel()

    def _training_progress(self, value) -> None:
        if isinstance(value, str):
            self.trainingStatus.emit(value)
        else:
            self.trainingProgress.emit(value)

    def _trained(self, outcome: TrainingOutcome) -> None:
        self._swap_model(outcome.predictor, outcome.info, remember=True)
        self.trainingFinished.emit(outcome)
        self.notify.emit(f"New model in use: {outcome.info.summary()}")

    def _training_error(self, exc: BaseException) -> None:
        if type(exc).__name__ == "TrainingCancelled":
            self.trainingCancelled.emit()
            return
        log.error("training failed", exc_info=exc)
        self.trainingFailed.emit(f"Training failed: {exc}\nThe current model stays in use.")

    def _training_done(self) -> None:
        self._training_job = None

    # ==== shutdown ================================================================================
    def shutdown(self, timeout_s: float = 20.0) -> None:
        """Stop the workers, log the open drawing, close the database, stop the embedded
        server.  Safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        self._poll.stop()
        self.training.stop(drain=False, timeout_s=timeout_s)
        self.inference.stop(drain=False, timeout_s=timeout_s)
        d = self._drawing
        if d.prediction is not None and d.uuid is None and self._use_database:
            self._log_drawing(d, None)
        self.database.submit(_close_database, self)
        self.database.stop(drain=True, timeout_s=timeout_s)
        log.info("controller shut down")

    def _worker_error(self, name: str, exc: BaseException) -> None:
        self.problem.emit("Something went wrong", f"{name}: {exc}")


# ==== the jobs: these run in worker threads and touch no widget ===================================
def _import_ml() -> dict:
    import torch

    from app.ml import model, train

    # One image at a time needs no thread pool, and idle pool threads spinning on a busy
    # machine cost more than they give (measured: 100 ms instead of 11 ms per prediction
    # on 2 loaded cores).  Training asks for more while it runs.
    torch.set_num_threads(1)

    return {"architectures": dict(model.ARCH_DESCRIPTIONS),
            "presets": {k: dict(v) for k, v in train.PRESETS.items()},
            "defaults": {"epochs": train.TrainConfig().epochs, "batch_size": train.TrainConfig().batch_size,
                         "learning_rate": train.TrainConfig().learning_rate,
                         "arch": train.TrainConfig().arch, "augment": train.TrainConfig().augment}}


def _warm_up() -> None:
    """Run once, on tiny data, what training and logging import lazily.

    The first optimiser step pulls in ~800 modules (torch._dynamo, sympy, mpmath, ...) and
    the first PNG written loads Pillow's plugins.  Imports hold the GIL for long stretches
    (a 100 ms freeze of the window, measured), so they had better happen now, at
    start-up in this idle thread, than in the middle of a training run.
    """
    import torch
    from PIL import Image

    from app.ml import train
    from app.ml.model import build_model

    Image.fromarray(np.zeros((28, 28), np.uint8)).save(io.BytesIO(), format="PNG")
    x = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    y = torch.arange(4)
    train.fit(build_model(), x, y, x, y, train.TrainConfig(epochs=1, batch_size=2),
              progress=lambda p: None)


def _model_info(predictor) -> ModelInfo:
    from app.ml.model import ARCH_DESCRIPTIONS

    loaded = predictor.loaded
    return ModelInfo(path=Path(predictor.model_path), arch=predictor.arch, sha256=loaded.sha256 or "",
                     metadata=predictor.metadata, description=ARCH_DESCRIPTIONS.get(predictor.arch, ""))


def _load_predictor(path: Path):
    from app.ml import MNISTPredictor

    predictor = MNISTPredictor(path)
    return predictor, _model_info(predictor)


def _as_result(p, seq: int, epoch: int, source: str, started: float, requested_at: float) -> PredictionResult:
    return PredictionResult(digit=p.digit, confidence=p.confidence, probabilities=tuple(p.probabilities),
                            image=p.image, runner_up=p.runner_up, seq=seq, epoch=epoch, source=source,
                            seconds=time.perf_counter() - started, requested_at=requested_at)


def _predict(predictor, picture: np.ndarray, seq: int, epoch: int, source: str, requested_at: float):
    started = time.perf_counter()
    p = predictor.predict(picture)
    return _as_result(p, seq, epoch, source, started, requested_at), picture


def _open_image(predictor, path: Path, seq: int, epoch: int, requested_at: float):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            pil = img.copy()
    except FileNotFoundError:
        raise ValueError("the file does not exist") from None
    except UnidentifiedImageError:
        raise ValueError("this is not an image file Pillow can read (try PNG or JPEG)") from None
    rgba = pil.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    qimage = QImage(data, rgba.width, rgba.height, rgba.width * 4, QImage.Format.Format_RGBA8888).copy()
    caption = f"{path.name} — draw to start a new digit"
    preview = rgba.copy()
    preview.thumbnail((RAW_PNG_MAX, RAW_PNG_MAX))
    picture = np.asarray(preview.convert("L"))
    if predictor is None:
        return qimage, caption, None, None, "The model is not loaded yet."
    started = time.perf_counter()
    try:
        p = predictor.predict(pil)
    except ValueError as exc:  # NothingDrawn or an unreadable mode
        return qimage, caption, None, None, f"Nothing to recognise in {path.name}: {exc}"
    return qimage, caption, _as_result(p, seq, epoch, "file", started, requested_at), picture, None


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _raw_png(arr: np.ndarray | None) -> bytes | None:
    if arr is None:
        return None
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))
    if max(img.size) > RAW_PNG_MAX:
        img.thumbnail((RAW_PNG_MAX, RAW_PNG_MAX), Image.Resampling.BOX)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _open_database(ctl: Controller):
    from app.db import open_database

    # Set here, in the database thread, so that the jobs queued meanwhile find it.
    ctl._repo, ctl._server = open_database(ctl.settings)
    return ctl._repo.status()


def _repo(ctl: Controller):
    if ctl._repo is None:
        from app.db import DatabaseUnavailable

        raise DatabaseUnavailable("The database is not open.")
    return ctl._repo


def _log(ctl: Controller, item: dict):
    from app.db import PredictionRecord

    repo = _repo(ctl)
    record = PredictionRecord(predicted_digit=item["predicted_digit"], confidence=item["confidence"],
                              probabilities=item["probabilities"], image_png=_png(item["image"]),
                              raw_png=_raw_png(item.get("raw")), model_version=item.get("model_version"),
                              source=item.get("source", "canvas"), uuid=item["uuid"],
                              created_at=item["created_at"], true_label=item.get("true_label"))
    uid = repo.log(record)
    return uid, item.get("true_label"), repo.status()


def _set_label(ctl: Controller, uid: str, label):
    repo = _repo(ctl)
    repo.set_label(uid, label)
    return repo.status()


def _poll(ctl: Controller):
    repo = ctl._repo
    if repo is None:
        return None
    status = repo.status()
    if not status.online or status.pending:
        repo.flush_spool()
        status = repo.status()
    return status


def _read_stats(ctl: Controller):
    from app.widgets.statistics import HistoryItem, StatsSnapshot

    repo = _repo(ctl)
    acc = repo.accuracy()
    rows = repo.recent(HISTORY_ROWS)
    recent = []
    for r in rows:
        thumb = QImage.fromData(r.image_png, "PNG")
        recent.append(HistoryItem(uuid=r.uuid, created_at=r.created_at, predicted=r.predicted_digit,
                                  confidence=r.confidence, true_label=r.true_label,
                                  thumbnail=None if thumb.isNull() else thumb, source=r.source,
                                  model_version=r.model_version))
    return StatsSnapshot(total=int(acc["total"]), labelled=int(acc["labelled"]), correct=int(acc["correct"]),
                         accuracy=None if acc["accuracy"] is None else float(acc["accuracy"]),
                         digits=repo.digit_statistics(), confusion=repo.confusion(),
                         per_day=repo.accuracy_per_day(), recent=recent)


def _export(ctl: Controller, path: Path) -> int:
    return _repo(ctl).export_csv(path)


def _close_database(ctl: Controller) -> None:
    repo, server = ctl._repo, ctl._server
    ctl._repo = ctl._server = None
    try:
        if repo is not None:
            repo.close()
    finally:
        if server is not None:
            server.stop()


def _train(job, ctl: Controller, config: dict, mnist_dir: Path, out: Path) -> TrainingOutcome:
    import torch

    from app.ml import MNISTPredictor, data, train

    if ctl._mnist is None:
        job.progress("Loading the MNIST images…")
        # Reading the files is Python-heavy (gzip in small chunks) and would compete for the
        # GIL with the dialog's one big repaint into its "running" state: let that go first.
        time.sleep(0.15)
        last = [0.0]

        def downloaded(name: str, done: int, total: int) -> None:
            if job.cancelled:  # Cancel (or quitting) also stops a download
                raise train.TrainingCancelled("training cancelled")
            now = time.monotonic()
            if now - last[0] > 0.2:
                last[0] = now
                share = f" ({100 * done // total} %)" if total else ""
                job.progress(f"Downloading {name}{share}…")

        ctl._mnist = data.ensure(mnist_dir, progress=downloaded)
    mnist = ctl._mnist
    if job.cancelled:
        raise train.TrainingCancelled("training cancelled")
    cfg = train.TrainConfig(**config)
    cfg.validate()
    job.progress(f"Training {cfg.arch} for {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}…")
    threads = torch.get_num_threads()
    # All cores but one: the GUI thread keeps one.
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    try:
        result = train.train(cfg, mnist, progress=job.progress, should_cancel=lambda: job.cancelled)
    finally:
        torch.set_num_threads(threads)
    if job.cancelled:
        raise train.TrainingCancelled("training cancelled")
    job.progress("Saving the weights…")
    train.save_result(result, mnist, out)
    predictor = MNISTPredictor(out)
    return TrainingOutcome(info=_model_info(predictor), predictor=predictor,
                           test_accuracy=result.test_accuracy, seconds=result.seconds,
                           epochs=len(result.history))


def _is_model_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "ModelFileError"


def _is_nothing_drawn(exc: BaseException) -> bool:
    return type(exc).__name__ == "NothingDrawn"


def _db_message(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
