"""The model room: which weights are in use, loading others, and the model versions.

Weights are loaded in the inference worker (``MNISTPredictor``); the model in use
changes only when the new one has loaded, in the GUI thread (``_swap``).  Every model
that comes into use (shipped, loaded, trained, fine-tuned, switched back to) is
registered as a model version by a job of the database worker, queued before anything
it predicts can be logged, so each logged prediction carries its version's id.  When
the database is offline the registration waits, and is tried again once a status says
it is back.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QSettings, Signal

from app import paths
from app.controllers import database
from app.controllers.database import DatabaseController, DatabaseSession
from app.controllers.problems import problem_from
from app.ml.errors import ModelFileError
from app.settings import Settings
from app.viewmodels import MLInfo, ModelInfo, Problem, VersionRow, WeightsVersion
from app.workers import WorkerThread

log = logging.getLogger(__name__)

#: QSettings key of the weights file in use (set by Load weights…, training, improving).
MODEL_PATH_KEY = "model/path"


class VersionFileError(RuntimeError):
    """The weights file of a model version is missing or holds other weights."""


def initial_model_path(settings: Settings, qsettings: QSettings) -> Path:
    """The weights to start with: MNIST_MODEL_PATH when set; else the weights last used
    (Load weights…, training) if that file still exists; else the shipped weights
    (``app.paths.bundled_model_path()``, the settings' default)."""
    if Path(settings.model_path) != paths.bundled_model_path():
        return Path(settings.model_path)
    remembered = qsettings.value(MODEL_PATH_KEY, "", type=str)
    if remembered and Path(remembered).is_file():
        return Path(remembered)
    return Path(settings.model_path)


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


# ---- jobs of the inference worker ------------------------------------------------------------------
def import_ml() -> MLInfo:
    """Import torch and the training code; what the training dialog can offer."""
    import torch

    from app.ml import model, train

    # One image at a time needs no thread pool, and idle pool threads spinning on a busy
    # machine cost more than they give (measured: 100 ms instead of 11 ms per prediction
    # on 2 loaded cores).  Training runs in a process of its own.
    torch.set_num_threads(1)
    presets = {}
    for name in train.PRESETS:
        cfg = train.preset(name)
        presets[name] = {k: getattr(cfg, k) for k in PRESET_FIELDS}
    return MLInfo(architectures=dict(model.ARCH_DESCRIPTIONS), presets=presets)


#: What a recipe sets, as the training dialog receives it (the dialog shows the first five).
PRESET_FIELDS = ("epochs", "batch_size", "learning_rate", "augment", "arch", "synthetic", "synthetic_share",
                 "outliers", "outlier_share", "outlier_weight", "validation", "calibration")


def model_info(predictor) -> ModelInfo:
    from app.ml.model import ARCH_DESCRIPTIONS

    return ModelInfo(path=Path(predictor.model_path), arch=predictor.arch, sha256=predictor.loaded.sha256 or "",
                     metadata=predictor.metadata, description=ARCH_DESCRIPTIONS.get(predictor.arch, ""))


def load_predictor(path: Path):
    from app.ml import MNISTPredictor

    predictor = MNISTPredictor(path)
    return predictor, model_info(predictor)


def load_version(version: VersionRow):
    """Load an earlier version's weights file, if it is still there and still the same."""
    what = f"model version {version.title}"
    if not version.path:
        raise VersionFileError(f"The database does not know where the weights of {what} are.")
    path = Path(version.path)
    if not path.is_file():
        raise VersionFileError(
            f"The weights file of {what} is missing:\n{path}\n\nIt was moved or deleted. If "
            f"you still have it, open it with Model → Load weights….")
    predictor, info = load_predictor(path)
    if info.sha256 != version.sha256:
        raise VersionFileError(
            f"The file {path} no longer holds the weights of {what}: it was overwritten "
            f"(its SHA-256 is {info.sha256[:12]}…, the version's {version.sha256[:12]}…).")
    return predictor, info


# ---- jobs of the database worker -------------------------------------------------------------------
def register_versions(session: DatabaseSession, versions: list[WeightsVersion]):
    """Register model versions, oldest first (a parent before its child).  Returns the
    ids got (sha256 -> id), the versions given up on (their sha256), and the database
    status."""
    from app import learn

    repo = session.repo
    registered: dict[str, int] = {}
    dropped: list[str] = []
    for v in versions:
        try:
            version_id = learn.register_version(repo, Path(v.path), v.sha256, v.arch, v.metadata,
                                                parent_sha=v.parent_sha256, kind=v.kind)
        except ValueError as exc:  # e.g. a name the database refuses: retrying will not help
            log.warning("model version %s not registered: %s", v.sha256[:12], exc)
            dropped.append(v.sha256)
            continue
        if version_id is not None:
            session.version_ids[v.sha256] = version_id
            registered[v.sha256] = version_id
        elif repo.status().online:  # refused by a database that works: retrying will not help
            log.warning("model version %s not registered; giving up", v.sha256[:12])
            dropped.append(v.sha256)
    return registered, dropped, repo.status()


def version_row(v) -> VersionRow:
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


def read_versions(session: DatabaseSession) -> list[VersionRow]:
    return [version_row(v) for v in session.repo.model_versions()]


def compare_versions(session: DatabaseSession, a_id: int, b_id: int) -> dict:
    return session.repo.compare_versions(a_id, b_id)


# ---- the GUI-thread side ------------------------------------------------------------------------------
class ModelController(QObject):
    mlReady = Signal(object)  # MLInfo: torch is loaded, training can be offered
    modelLoading = Signal(str)
    modelReady = Signal(object)  # ModelInfo of the model now in use
    modelFailed = Signal(object)  # Problem (a str): why the weights did not load (.path: which file)
    modelVersion = Signal(object)  # the id of the model in use (None: not registered yet)
    versionsReady = Signal(object)  # list[VersionRow], newest first
    versionsFailed = Signal(str)
    versionSwitchFailed = Signal(object)  # Problem
    comparisonReady = Signal(object)  # PredictionRepository.compare_versions()
    comparisonFailed = Signal(str)
    notify = Signal(str)
    problem = Signal(str, str)

    def __init__(self, settings: Settings, qsettings: QSettings, inference: WorkerThread,
                 database: DatabaseController, parent: QObject | None = None):
        super().__init__(parent)
        self.qsettings = qsettings
        self.inference = inference
        self.database = database
        self.predictor = None  # app.ml.MNISTPredictor: handed to inference jobs, never run here
        self.model_info: ModelInfo | None = None
        self.ml_info: MLInfo | None = None
        self.model_path = initial_model_path(settings, qsettings)
        # sha256 -> id of the registered versions; every model that came into use, as the
        # database is told about it; the registrations still to do.
        self._version_ids: dict[str, int] = {}
        self._versions: dict[str, WeightsVersion] = {}
        self._unregistered: dict[str, WeightsVersion] = {}
        self._registering = 0
        database.statusReceived.connect(self._database_status)

    def start(self) -> None:
        """Import torch and load the first model (in the inference worker)."""
        self.inference.submit(import_ml, on_result=self._ml_imported, on_error=self._ml_import_failed)
        self.load_model(self.model_path, remember=False)

    def _ml_imported(self, info: MLInfo) -> None:
        settle_heap()
        self.ml_info = info
        self.mlReady.emit(info)

    def _ml_import_failed(self, exc: BaseException) -> None:
        log.error("PyTorch could not be loaded", exc_info=exc)
        self.problem.emit("PyTorch could not be loaded",
                          f"{exc}\n\nReinstall the requirements (make venv) and start again.")

    # ---- the model in use -------------------------------------------------------------------
    @property
    def model_ready(self) -> bool:
        return self.predictor is not None

    def load_model(self, path: str | os.PathLike, remember: bool = True) -> None:
        """Load weights in the worker; the current model stays until the new one works."""
        path = Path(path)
        self.modelLoading.emit(str(path))
        self.inference.submit(load_predictor, path,
                              on_result=lambda r: self._model_loaded(r, remember),
                              on_error=lambda e: self.modelFailed.emit(self._not_loaded(e, path)))

    def _model_loaded(self, result: tuple, remember: bool) -> None:
        predictor, info = result
        self._swap(predictor, info, remember)
        log.info("model loaded: %s (%s)", info.summary(), info.path)
        self.notify.emit(f"Model loaded: {info.summary()}")

    def adopt(self, path: Path, kind: str, parent_sha: str | None,
              on_adopted: Callable[[ModelInfo, int | None], None], on_failed: Callable[[str], None]) -> None:
        """Put weights that training or fine-tuning made in use: load them (inference
        worker), swap them in, register their version (database worker); then
        ``on_adopted(info, version_id)`` (None when the database is off or offline), or
        ``on_failed(text)`` if they do not load."""
        def loaded(result: tuple) -> None:
            predictor, info = result
            self._swap(predictor, info, remember=True, kind=kind, parent_sha=parent_sha,
                       then=lambda: on_adopted(info, self._version_ids.get(info.sha256)))

        self.inference.submit(load_predictor, Path(path), on_result=loaded,
                              on_error=lambda e: on_failed(self._not_loaded(e, Path(path))))

    def _swap(self, predictor, info: ModelInfo, remember: bool, kind: str | None = None,
              parent_sha: str | None = None, then: Callable[[], None] | None = None) -> None:
        settle_heap()
        self.predictor = predictor
        self.model_info = info
        self.model_path = info.path
        if remember:
            self.qsettings.setValue(MODEL_PATH_KEY, str(info.path))
        self._register(info, kind, parent_sha, then)
        self.modelReady.emit(info)
        self.modelVersion.emit(self.model_version_id)

    def _not_loaded(self, exc: BaseException, path: Path) -> Problem:
        """Why ``path`` did not load, whole (an internal error it quotes goes into the
        details), and which model is in use now."""
        text = None if isinstance(exc, (ModelFileError, VersionFileError)) else f"Could not load {path}: {exc}"
        problem = problem_from(exc, text, path=path)
        log.warning("model not loaded: %s%s", problem, f" ({problem.details})" if problem.details else "")
        if self.model_info is not None:
            problem = Problem(f"{problem}\n\nThe current model ({self.model_info.summary()}) stays in use.",
                              problem.details, problem.path)
        return problem

    # ---- the shipped model -----------------------------------------------------------------
    def shipped_model_for(self, instead_of: Path | None) -> Path | None:
        """The way back from ``instead_of`` (a file that did not load): the first shipped
        weights file (app.paths.shipped_model_paths, the default first) that exists and is
        another file; None when there is none."""
        for shipped in paths.shipped_model_paths():
            if not shipped.is_file():
                continue
            try:
                if instead_of is not None and Path(instead_of).resolve() == shipped.resolve():
                    continue
            except OSError:
                pass
            return shipped
        return None

    def use_shipped_model(self, path: Path) -> None:
        """Load shipped weights (and remember them for the next start)."""
        self.load_model(path)

    # ---- versions ---------------------------------------------------------------------------------
    @property
    def model_version_id(self) -> int | None:
        """The database id of the model in use (None until it is registered)."""
        if self.model_info is None:
            return None
        return self._version_ids.get(self.model_info.sha256)

    def version_of(self, sha256: str) -> WeightsVersion | None:
        """How the weights with this sha256 came about, for a model that has been in use
        (None for others): what a drawing it predicted is logged with."""
        return self._versions.get(sha256)

    def _register(self, info: ModelInfo, kind: str | None, parent_sha: str | None,
                  then: Callable[[], None] | None) -> None:
        """Queue the registration of the model now in use, before anything it predicts can
        be logged.  Registering known weights again is harmless (the id stays)."""
        if not info.sha256:
            if then is not None:
                then()
            return
        known = self._versions.get(info.sha256)
        version = WeightsVersion(
            sha256=info.sha256, path=info.path, arch=info.arch, metadata=dict(info.metadata),
            kind=kind or (known.kind if known else info.kind),
            parent_sha256=parent_sha or (known.parent_sha256 if known else info.metadata.get("parent_sha256")))
        self._versions[info.sha256] = version
        if not self.database.enabled:
            if then is not None:
                then()
            return
        self._unregistered[info.sha256] = version
        self._submit_registrations(then)

    def _submit_registrations(self, then: Callable[[], None] | None = None) -> None:
        self._registering += 1

        def done() -> None:
            self._registering -= 1
            if then is not None:
                then()

        self.database.run(register_versions, list(self._unregistered.values()), on_result=self._registered,
                          on_error=lambda e: log.warning("model version not registered: %s", e), on_done=done)

    def _registered(self, result: tuple) -> None:
        registered, dropped, status = result
        before = self.model_version_id
        self._version_ids.update(registered)
        for sha in list(registered) + dropped:
            self._unregistered.pop(sha, None)
        if self._unregistered:
            log.info("%d model version(s) wait for the database", len(self._unregistered))
        self.database.take_status(status)
        if self.model_version_id != before:
            self.modelVersion.emit(self.model_version_id)

    def _database_status(self, status) -> None:
        if status.online and self._unregistered and not self._registering:
            self._submit_registrations()  # the database is back: record what waits

    def refresh_versions(self) -> None:
        """Read the model versions (versionsReady / versionsFailed)."""
        if not self.database.enabled:
            self.versionsFailed.emit("The database is off: no model versions are recorded.")
            return
        self.database.run(read_versions, key="versions", on_result=self.versionsReady.emit,
                          on_error=lambda e: self.versionsFailed.emit(database.message(e)))

    def use_version(self, version: VersionRow) -> None:
        """Switch to an earlier model version: load its weights file (in the worker)."""
        if self.model_info is not None and version.sha256 == self.model_info.sha256:
            self.notify.emit(f"Version {version.title} is already in use.")
            return
        self.modelLoading.emit(str(version.path or ""))

        def loaded(result: tuple) -> None:
            predictor, info = result
            self._version_ids[info.sha256] = version.id
            self._swap(predictor, info, remember=True, kind=version.kind)
            self.notify.emit(f"Now using model version {version.title}: {info.summary()}")

        def failed(exc: BaseException) -> None:
            self.versionSwitchFailed.emit(self._not_loaded(exc, Path(version.path or "")))

        self.inference.submit(load_version, version, on_result=loaded, on_error=failed)

    def compare_versions(self, a_id: int, b_id: int) -> None:
        """Two versions' accuracy on the labelled drawings, side by side (comparisonReady)."""
        if not self.database.enabled:
            self.comparisonFailed.emit("The database is off.")
            return
        self.database.run(compare_versions, int(a_id), int(b_id), key="compare",
                          on_result=self.comparisonReady.emit,
                          on_error=lambda e: self.comparisonFailed.emit(database.message(e)))
