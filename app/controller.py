"""The app's logic between the widgets and the core (app.ml, app.db): no widgets here.

The ``Controller`` lives in the GUI thread.  It owns three worker threads (app/workers.py):

- ``inference``: imports torch (after the first paint), loads weights, preprocesses and
  predicts (with "Why this digit?" on, also the gradient x input map).  Live prediction
  requests share one key, so a request that has not started is dropped for a newer one:
  stale requests never queue up.
- ``database``: opens the database (and starts the embedded server), registers model
  versions, logs drawings, sets labels, reads the statistics and the versions, exports
  CSV and the labelled drawings; one job at a time, in order.
- ``training``: the training loop of run_model.py and the fine-tuning on the user's
  drawings (app.learn.improve), cancellable, saving atomically.

Model versions: every model that comes into use (shipped, loaded, trained, fine-tuned,
switched back to) is registered in the database job queue before any prediction it made
can be logged, so each logged prediction carries its version's id.  When the database is
offline the registration waits and is retried when it is back.

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
#: Explanation method of "Why this digit?" (MNISTPredictor.explain).
EXPLAIN_METHOD = "gradient"


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

    @property
    def kind(self) -> str:
        """How the weights came about: "shipped", "trained" or "fine-tuned"."""
        kind = self.metadata.get("kind")
        if kind in ("trained", "fine-tuned", "shipped"):
            return kind
        try:
            if self.path.resolve() == paths.bundled_model_path().resolve():
                return "shipped"
        except OSError:
            pass
        return "trained"

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
    model_sha256: str = ""  # the weights that made it
    #: "Why this digit?": (28, 28) float32 in [-1, 1], gradient x input for ``digit``.
    heat: np.ndarray | None = None
    #: Where the 28x28 field lies on the drawing (x, y, w, h as fractions of its size),
    #: to lay the heat map over the canvas; None when unknown.
    heat_rect: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class VersionRow:
    """A model version as the widgets show it (from the database's model_versions)."""

    id: int
    parent_id: int | None
    created_at: datetime
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
        if self.parent_id is not None:
            text += f" · from #{self.parent_id}"
        return text


@dataclass
class ImproveResult:
    """The outcome of Improve with my corrections: the numbers before and after, and
    whether the new model was kept (then it is in use: ``info``)."""

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
    predictor: Any = None
    version_id: int | None = None


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
    datasetExported = Signal(object, int)  # the files written, the number of drawings
    datasetExportFailed = Signal(str)
    # model versions
    modelVersion = Signal(object)  # the id of the model in use (None: not registered yet)
    versionsReady = Signal(object)  # list[VersionRow], newest first
    versionsFailed = Signal(str)
    versionSwitchFailed = Signal(str)
    comparisonReady = Signal(object)  # PredictionRepository.compare_versions()
    comparisonFailed = Signal(str)
    # improving the model with the user's drawings
    labelledCount = Signal(int, int)  # labelled drawings, how many are needed
    improveStarted = Signal()
    improveStatus = Signal(str)
    improveProgress = Signal(object)  # app.ml.train.TrainProgress
    improveFinished = Signal(object)  # ImproveResult (kept or not)
    improveFailed = Signal(str)
    improveCancelled = Signal()
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
        self._improve_job = None  # the fine-tuning job, once it runs
        self._improving = False  # from Improve… until its outcome
        self._improve_cancelled = False
        #: Test hook: an app.ml.finetune.FinetuneConfig for Improve (None: the default).
        self.finetune_config = None
        # Model versions.  GUI thread: sha256 -> id of the registered ones, and the
        # registrations still to do (sha256 -> spec).  Database thread only: its own map,
        # which the log jobs read (so a prediction queued after a registration gets its id).
        self._version_ids: dict[str, int] = {}
        self._unregistered: dict[str, dict] = {}
        self._registering = 0
        self._db_version_ids: dict[str, int] = {}
        self._stats_version: int | None = None  # the statistics' filter (None: all)
        self._explain = False
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

    def _swap_model(self, predictor, info: ModelInfo, remember: bool, kind: str | None = None,
                    parent_sha: str | None = None) -> None:
        settle_heap()
        self.predictor = predictor
        self.model_info = info
        self.model_path = info.path
        if remember:
            self.qsettings.setValue(MODEL_PATH_KEY, str(info.path))
        self._register_version(info, kind, parent_sha)
        self.modelReady.emit(info)
        self.modelVersion.emit(self.model_version_id)

    def _model_failed(self, exc: BaseException, path: Path) -> None:
        text = str(exc) if _is_model_error(exc) else f"Could not load {path}: {exc}"
        log.warning("model not loaded: %s", text)
        if self.predictor is not None:
            text += f"\n\nThe current model ({self.model_info.summary()}) stays in use."
        self.modelFailed.emit(text)

    @property
    def model_ready(self) -> bool:
        return self.predictor is not None

    # ==== model versions ==========================================================================
    @property
    def model_version_id(self) -> int | None:
        """The database id of the model in use (None until it is registered)."""
        if self.model_info is None:
            return None
        return self._version_ids.get(self.model_info.sha256)

    def _register_version(self, info: ModelInfo, kind: str | None, parent_sha: str | None) -> None:
        """Queue the registration of the model now in use, before anything it predicts can
        be logged.  Registering known weights again is harmless (the id stays)."""
        if not self._use_database or not info.sha256:
            return
        self._unregistered[info.sha256] = dict(
            path=str(info.path), sha256=info.sha256, arch=info.arch, metadata=dict(info.metadata),
            kind=kind or info.kind, parent_sha=parent_sha or info.metadata.get("parent_sha256"))
        self._submit_registrations()

    def _submit_registrations(self) -> None:
        self._registering += 1
        self.database.submit(_register_versions, self, list(self._unregistered.values()),
                             on_result=self._versions_registered,
                             on_error=lambda e: log.warning("model version not registered: %s", e),
                             on_done=self._registration_done)

    def _registration_done(self) -> None:
        self._registering -= 1

    def _versions_registered(self, result: tuple) -> None:
        registered, dropped, status = result
        before = self.model_version_id
        self._version_ids.update(registered)
        for sha in list(registered) + dropped:
            self._unregistered.pop(sha, None)
        if self._unregistered:
            log.info("%d model version(s) wait for the database", len(self._unregistered))
        self._db_status(status)
        if self.model_version_id != before:
            self.modelVersion.emit(self.model_version_id)

    def refresh_versions(self) -> None:
        """Read the model versions (versionsReady / versionsFailed)."""
        if not self._use_database:
            self.versionsFailed.emit("The database is off: no model versions are recorded.")
            return
        self.database.submit(_read_versions, self, key="versions", on_result=self.versionsReady.emit,
                             on_error=lambda e: self.versionsFailed.emit(_db_message(e)))

    def use_version(self, version: VersionRow) -> None:
        """Switch to an earlier model version: load its weights file (in the worker)."""
        if self.model_info is not None and version.sha256 == self.model_info.sha256:
            self.notify.emit(f"Version {version.title} is already in use.")
            return
        self.modelLoading.emit(str(version.path or ""))
        self.inference.submit(_load_version, version,
                              on_result=lambda r: self._version_loaded(r, version),
                              on_error=self._version_failed)

    def _version_loaded(self, result: tuple, version: VersionRow) -> None:
        predictor, info = result
        self._version_ids[info.sha256] = version.id
        self._swap_model(predictor, info, remember=True, kind=version.kind)
        self.notify.emit(f"Now using model version {version.title}: {info.summary()}")

    def _version_failed(self, exc: BaseException) -> None:
        text = str(exc) if isinstance(exc, VersionFileError) or _is_model_error(exc) else f"{exc}"
        if self.predictor is not None:
            text += f"\n\nThe current model ({self.model_info.summary()}) stays in use."
        log.warning("version not switched: %s", text)
        self.versionSwitchFailed.emit(text)

    def compare_versions(self, a_id: int, b_id: int) -> None:
        """Two versions' accuracy on the labelled drawings, side by side (comparisonReady)."""
        if not self._use_database:
            self.comparisonFailed.emit("The database is off.")
            return
        self.database.submit(_compare_versions, self, int(a_id), int(b_id), key="compare",
                             on_result=self.comparisonReady.emit,
                             on_error=lambda e: self.comparisonFailed.emit(_db_message(e)))

    # ==== why this digit? ===========================================================================
    @property
    def explaining(self) -> bool:
        return self._explain

    def set_explain(self, on: bool) -> None:
        """Compute the saliency map with each prediction (or stop).  Turned on, the drawing
        on screen is predicted again, with its map."""
        self._explain = bool(on)
        d = self._drawing
        if on and d.raw is not None and d.prediction is not None and d.uuid is None \
                and self.predictor is not None:
            self._seq += 1
            seq = self._latest_seq = self._seq
            epoch = self._epoch
            self.inference.submit(_predict, self.predictor, d.raw, seq, epoch, d.source,
                                  time.perf_counter(), True, key="predict", on_result=self._predicted,
                                  on_error=lambda e: self._predict_failed(e, seq, epoch))

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
                              time.perf_counter(), self._explain, key="predict",
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
                              self._explain, key="predict", on_result=lambda r: self._image_opened(r, seq, epoch),
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
                    image=p.image, raw=d.raw, model_version=version, source=d.source,
                    model_sha256=p.model_sha256)
        self.log_prediction(item)
        return d.uuid

    def log_prediction(self, item: dict) -> None:
        """Write one prediction (fields of PredictionRecord; ``image``/``raw`` as arrays).

        ``model_sha256`` names the weights that made it (default: the model in use); the
        database job turns it into the model version's id."""
        if not self._use_database:
            return
        if not item.get("model_sha256") and self.model_info is not None:
            item = dict(item, model_sha256=self.model_info.sha256)
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
        if status.online and self._unregistered and not self._registering:
            self._submit_registrations()  # the database is back: record what waits

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
        self.database.submit(_read_stats, self, self._stats_version, key="stats",
                             on_result=self.statsReady.emit,
                             on_error=lambda e: self.statsFailed.emit(_db_message(e)))

    @property
    def stats_version(self) -> int | None:
        return self._stats_version

    def set_stats_version(self, version_id: int | None) -> None:
        """Show the statistics of one model version (None: of all) and read them again."""
        self._stats_version = None if version_id is None else int(version_id)
        self.refresh_stats()

    def export_dataset(self, path: str | os.PathLike) -> None:
        """The labelled drawings as .npz, or as MNIST IDX files (name.gz / name.idx: see
        app.learn.export_dataset); datasetExported(files, count) when written."""
        path = Path(path)
        if not self._use_database:
            self.datasetExportFailed.emit("The database is off: there are no labelled drawings.")
            return
        self.database.submit(_export_dataset, self, path,
                             on_result=lambda r: self.datasetExported.emit(*r),
                             on_error=lambda e: self.datasetExportFailed.emit(_db_message(e)))

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

    @property
    def learning_busy(self) -> bool:
        """Training or improving runs (they share the training thread)."""
        return self._training_job is not None or self._improving

    def start_training(self, config: dict) -> bool:
        """Train in the worker with TrainConfig(**config); the new weights go to a new file
        in settings.models_dir and replace the model when the run finishes well."""
        if self.learning_busy:
            if self._improving:
                self.trainingFailed.emit("Improve with my corrections is running: train when it has finished.")
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
        parent = self.model_info.sha256 if self.model_info is not None else None
        self._swap_model(outcome.predictor, outcome.info, remember=True, kind="trained", parent_sha=parent)
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

    # ==== improving with the user's drawings ==============================================================
    @property
    def improve_running(self) -> bool:
        return self._improving

    def count_labelled(self) -> None:
        """How many labelled drawings there are to learn from (labelledCount)."""
        if not self._use_database:
            self.labelledCount.emit(0, 0)
            return
        self.database.submit(_count_labelled, self, key="count",
                             on_result=lambda r: self.labelledCount.emit(*r),
                             on_error=lambda e: log.warning("labelled drawings not counted: %s", e))

    def start_improve(self) -> bool:
        """Fine-tune the model in use on the labelled drawings (app.learn.improve): first
        read them (database thread), then train (training thread).  The new model replaces
        the current one only when it is kept."""
        if self.learning_busy:
            if self._training_job is not None:
                self.improveFailed.emit("A training run is in progress: improve when it has finished.")
            return False
        if not self._use_database:
            self.improveFailed.emit("The database is off: there are no labelled drawings to learn from.")
            return False
        if self.predictor is None:
            self.improveFailed.emit("No model is loaded yet.")
            return False
        self._improving = True
        self._improve_cancelled = False
        self.improveStarted.emit()
        self.improveStatus.emit("Reading your labelled drawings…")
        base = self.predictor
        self.database.submit(_read_user_dataset, self,
                             on_result=lambda r: self._user_dataset_read(r, base),
                             on_error=self._improve_error)
        return True

    def cancel_improve(self) -> None:
        if not self._improving:
            return
        self._improve_cancelled = True
        if self._improve_job is not None:
            self._improve_job.cancel()

    def _user_dataset_read(self, result: tuple, base) -> None:
        dataset, needed = result
        if self._improve_cancelled:
            self._improve_end()
            self.improveCancelled.emit()
            return
        n = len(dataset)
        if n < needed:
            self._improve_end()
            self.improveFailed.emit(
                f"Improving needs at least {needed} labelled drawings; there "
                f"{'is' if n == 1 else 'are'} {n}.\nDraw {needed - n} more and label them with "
                f"✓ Correct or ✗ Wrong… (or a digit key), then try again.")
            return
        self.improveStatus.emit(f"Fine-tuning on {n} labelled drawings…")
        self._improve_job = self.training.submit(
            _improve, self, base, dataset, self.finetune_config, Path(self.settings.mnist_dir),
            Path(self.settings.models_dir), with_job=True, on_result=self._improved,
            on_error=self._improve_error, on_progress=self._improve_progress, on_done=self._improve_end)

    def _improve_progress(self, value) -> None:
        if isinstance(value, str):
            self.improveStatus.emit(value)
        else:
            self.improveProgress.emit(value)

    def _improved(self, result: ImproveResult) -> None:
        self._improve_end()
        if result.kept:
            if result.version_id is not None:
                self._version_ids[result.info.sha256] = result.version_id
            self._swap_model(result.predictor, result.info, remember=True, kind="fine-tuned",
                             parent_sha=result.base_sha256)
            self.notify.emit(f"Improved model in use: {result.info.summary()}")
        else:
            self.notify.emit("The fine-tuned model was not kept; the current model stays in use.")
        self.improveFinished.emit(result)

    def _improve_error(self, exc: BaseException) -> None:
        self._improve_end()
        if type(exc).__name__ == "TrainingCancelled":
            self.improveCancelled.emit()
            return
        if isinstance(exc, ValueError):
            self.improveFailed.emit(f"{str(exc)[:1].upper()}{str(exc)[1:]}")
            return
        log.error("improving failed", exc_info=exc)
        self.improveFailed.emit(f"Improving failed: {_db_message(exc)}\nThe current model stays in use.")

    def _improve_end(self) -> None:
        self._improve_job = None
        self._improving = False

    # ==== shutdown ================================================================================
    def shutdown(self, timeout_s: float = 20.0) -> None:
        """Stop the workers, log the open drawing, close the database, stop the embedded
        server.  Safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        self._poll.stop()
        if self._improve_job is not None:
            self._improve_job.cancel()
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


class VersionFileError(RuntimeError):
    """The weights file of a model version is missing or holds other weights."""


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


def _load_version(version: VersionRow):
    """Load an earlier version's weights file, if it is still there and still the same."""
    what = f"model version {version.title}"
    if not version.path:
        raise VersionFileError(f"The database does not know where the weights of {what} are.")
    path = Path(version.path)
    if not path.is_file():
        raise VersionFileError(
            f"The weights file of {what} is missing:\n{path}\n\nIt was moved or deleted. If "
            f"you still have it, open it with Model → Load weights….")
    predictor, info = _load_predictor(path)
    if info.sha256 != version.sha256:
        raise VersionFileError(
            f"The file {path} no longer holds the weights of {what}: it was overwritten "
            f"(its SHA-256 is {info.sha256[:12]}…, the version's {version.sha256[:12]}…).")
    return predictor, info


def _as_result(p, seq: int, epoch: int, source: str, started: float, requested_at: float,
               predictor=None, heat=None, heat_rect=None) -> PredictionResult:
    sha = (predictor.loaded.sha256 or "") if predictor is not None else ""
    return PredictionResult(digit=p.digit, confidence=p.confidence, probabilities=tuple(p.probabilities),
                            image=p.image, runner_up=p.runner_up, seq=seq, epoch=epoch, source=source,
                            seconds=time.perf_counter() - started, requested_at=requested_at,
                            model_sha256=sha, heat=heat, heat_rect=heat_rect)


def _predict(predictor, picture: np.ndarray, seq: int, epoch: int, source: str, requested_at: float,
             explain: bool = False):
    started = time.perf_counter()
    if explain:
        p, heat = predictor.explain(picture, EXPLAIN_METHOD)
        rect = field_rect(picture, p.image) if source == "canvas" else None
        return _as_result(p, seq, epoch, source, started, requested_at, predictor, heat, rect), picture
    p = predictor.predict(picture)
    return _as_result(p, seq, epoch, source, started, requested_at, predictor), picture


def field_rect(picture: np.ndarray, field: np.ndarray) -> tuple[float, float, float, float] | None:
    """Where the network's 28x28 field lies on ``picture`` (dark ink on light paper), as
    (x, y, w, h) fractions of the picture's size.

    Preprocessing crops the ink, scales it by one factor and centres it: so the ink's box
    on the picture and on the field match, which gives the factor and the offset.
    """
    ink = 255.0 - np.asarray(picture, dtype=np.float32)
    if ink.ndim != 2 or ink.max() <= 0:
        return None
    mask = ink > 0.12 * float(ink.max())
    seen = np.asarray(field) > 0
    if not mask.any() or not seen.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    frows, fcols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    side = max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0])
    field_side = max(frows[-1] + 1 - frows[0], fcols[-1] + 1 - fcols[0])
    scale = side / field_side
    cy, cx = (rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2
    fcy, fcx = (frows[0] + frows[-1] + 1) / 2, (fcols[0] + fcols[-1] + 1) / 2
    h, w = ink.shape
    n = field.shape[0]
    return ((cx - fcx * scale) / w, (cy - fcy * scale) / h, n * scale / w, n * scale / h)


def _open_image(predictor, path: Path, seq: int, epoch: int, requested_at: float, explain: bool = False):
    from app.ml.preprocess import open_image

    pil = open_image(path)  # size-guarded; ValueError saying what is wrong with the file
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
    heat = None
    try:
        if explain:
            p, heat = predictor.explain(pil, EXPLAIN_METHOD)
        else:
            p = predictor.predict(pil)
    except ValueError as exc:  # NothingDrawn or an unreadable mode
        return qimage, caption, None, None, f"Nothing to recognise in {path.name}: {exc}"
    return (qimage, caption, _as_result(p, seq, epoch, "file", started, requested_at, predictor, heat),
            picture, None)


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
                              created_at=item["created_at"], true_label=item.get("true_label"),
                              model_version_id=ctl._db_version_ids.get(item.get("model_sha256") or ""))
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


def _version_row(v) -> VersionRow:
    """An app.db ModelVersion -> VersionRow."""
    metrics = v.metrics if isinstance(v.metrics, dict) else {}
    acc = metrics.get("test_accuracy")
    try:
        acc = float(acc) if acc is not None else None
    except (TypeError, ValueError):
        acc = None
    if acc is not None and acc <= 1.0:
        acc *= 100.0  # stored as a fraction
    return VersionRow(id=v.id, parent_id=v.parent_id, created_at=v.created_at, arch=v.arch, kind=v.kind,
                      name=v.name, sha256=v.sha256, path=v.path, mnist_accuracy=acc,
                      predictions=v.predictions, labelled=v.labelled, correct=v.correct,
                      accuracy=None if v.accuracy is None else float(v.accuracy),
                      file_missing=not (v.path and Path(v.path).is_file()))


def _read_stats(ctl: Controller, version_id: int | None = None):
    from app.widgets.statistics import HistoryItem, StatsSnapshot

    repo = _repo(ctl)
    versions = [_version_row(v) for v in repo.model_versions()]
    if version_id is not None and all(v.id != version_id for v in versions):
        version_id = None  # (a version that is gone: show all)
    acc = repo.accuracy(version_id)
    rows = repo.recent(HISTORY_ROWS, model_version_id=version_id)
    recent = []
    for r in rows:
        thumb = QImage.fromData(r.image_png, "PNG")
        recent.append(HistoryItem(uuid=r.uuid, created_at=r.created_at, predicted=r.predicted_digit,
                                  confidence=r.confidence, true_label=r.true_label,
                                  thumbnail=None if thumb.isNull() else thumb, source=r.source,
                                  model_version=r.model_version, model_version_id=r.model_version_id))
    return StatsSnapshot(total=int(acc["total"]), labelled=int(acc["labelled"]), correct=int(acc["correct"]),
                         accuracy=None if acc["accuracy"] is None else float(acc["accuracy"]),
                         digits=repo.digit_statistics(version_id), confusion=repo.confusion(version_id),
                         per_day=repo.accuracy_per_day(model_version_id=version_id), recent=recent,
                         versions=versions, version_id=version_id)


def _register_versions(ctl: Controller, specs: list[dict]):
    """Register model versions, oldest first (a parent before its child).  Returns the
    ids got (sha256 -> id), the specs given up on, and the database status."""
    from app import learn

    repo = _repo(ctl)
    registered: dict[str, int] = {}
    dropped: list[str] = []
    for s in specs:
        try:
            version_id = learn.register_version(repo, Path(s["path"]), s["sha256"], s["arch"], s["metadata"],
                                                parent_sha=s["parent_sha"], kind=s["kind"])
        except ValueError as exc:  # e.g. a name the database refuses: retrying will not help
            log.warning("model version %s not registered: %s", s["sha256"][:12], exc)
            dropped.append(s["sha256"])
            continue
        if version_id is not None:
            ctl._db_version_ids[s["sha256"]] = version_id
            registered[s["sha256"]] = version_id
        elif repo.status().online:  # refused by a database that works: retrying will not help
            log.warning("model version %s not registered; giving up", s["sha256"][:12])
            dropped.append(s["sha256"])
    return registered, dropped, repo.status()


def _read_versions(ctl: Controller) -> list[VersionRow]:
    return [_version_row(v) for v in _repo(ctl).model_versions()]


def _compare_versions(ctl: Controller, a_id: int, b_id: int) -> dict:
    return _repo(ctl).compare_versions(a_id, b_id)


def _count_labelled(ctl: Controller) -> tuple[int, int]:
    from app.ml.finetune import MIN_SAMPLES

    return int(_repo(ctl).labelled_count()), MIN_SAMPLES


def _read_user_dataset(ctl: Controller):
    from app import learn
    from app.ml.finetune import MIN_SAMPLES

    return learn.user_dataset(_repo(ctl)), MIN_SAMPLES


def _export_dataset(ctl: Controller, path: Path) -> tuple[list[str], int]:
    from app import learn

    repo = _repo(ctl)
    if repo.labelled_count() == 0:
        raise ValueError("There are no labelled drawings to export yet: label some with ✓ Correct or "
                         "✗ Wrong… (or a digit key) first.")
    n = learn.export_dataset(repo, path)
    if path.suffix == ".npz":
        files = [path]
    else:  # the names app.learn.export_dataset gives the IDX files
        gz = ".gz" if path.name.endswith(".gz") else ""
        stem = path.name.removesuffix(".gz").removesuffix(".idx")
        files = [path.with_name(f"{stem}-images-idx3-ubyte{gz}"), path.with_name(f"{stem}-labels-idx1-ubyte{gz}")]
    return [str(f) for f in files], n


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


def _mnist_data(job, ctl: Controller, mnist_dir: Path):
    """The MNIST images, read (or downloaded) once and cached for the training thread."""
    from app.ml import data, train

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

        ctl._mnist = data.load_or_fetch(ctl.settings, mnist_dir, progress=downloaded)
    if job.cancelled:
        raise train.TrainingCancelled("training cancelled")
    return ctl._mnist


def _train(job, ctl: Controller, config: dict, mnist_dir: Path, out: Path) -> TrainingOutcome:
    import torch

    from app.ml import MNISTPredictor, train

    mnist = _mnist_data(job, ctl, mnist_dir)
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


def _improve(job, ctl: Controller, base, dataset, config, mnist_dir: Path, models_dir: Path) -> ImproveResult:
    """Fine-tune ``base`` (an MNISTPredictor) on the user's drawings; app.learn.improve
    measures before and after, and saves and registers the new weights if they are kept."""
    import torch

    from app import learn
    from app.ml import MNISTPredictor

    mnist = _mnist_data(job, ctl, mnist_dir)
    job.progress(f"Fine-tuning on {len(dataset)} labelled drawings mixed with MNIST images…")
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # the GUI thread keeps a core
    try:
        # The drawings were read in the database thread (``dataset``); improve() uses the
        # repository (thread-safe: one lock) only to record a kept version.
        outcome = learn.improve(_repo(ctl), base.loaded, mnist, models_dir, config, progress=job.progress,
                                should_cancel=lambda: job.cancelled, dataset=dataset)
    finally:
        torch.set_num_threads(threads)
    r = outcome.report
    result = ImproveResult(kept=r.kept, reason=r.reason, mnist_before=r.mnist_before, mnist_after=r.mnist_after,
                           user_before=r.user_before, user_after=r.user_after, n_train=r.n_train,
                           n_holdout=r.n_holdout, seconds=time.perf_counter() - started,
                           base_sha256=base.loaded.sha256 or "", version_id=outcome.version_id)
    if r.kept and outcome.path is not None:
        result.predictor = MNISTPredictor(outcome.path)
        result.info = _model_info(result.predictor)
    return result


def _is_model_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "ModelFileError"


def _is_nothing_drawn(exc: BaseException) -> bool:
    return type(exc).__name__ == "NothingDrawn"


def _db_message(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
