"""The app's controller: it makes the rooms, hands each its collaborators, and starts
and stops them.  The widgets (and app/application.py) talk to the rooms through it:
``controller.prediction``, ``.reading`` (Number mode), ``.feedback``, ``.models``,
``.learning``, ``.statistics``, ``.database``.

Three worker threads (app/workers.py) do the slow work: ``inference`` (torch, loading
weights, predicting), ``database`` (every database job, one at a time, in order, on one
session) and ``training`` (it supervises the training child process).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from app.controllers.database import DB_POLL_MS, DatabaseController
from app.controllers.feedback import FeedbackController
from app.controllers.learning import LearningController
from app.controllers.models import ModelController, settle_heap
from app.controllers.prediction import PredictionController
from app.controllers.reading import ReadingController
from app.controllers.statistics import StatisticsController
from app.settings import Settings
from app.workers import WorkerThread

log = logging.getLogger(__name__)


class Controller(QObject):
    #: A passing message for the status bar (from any room).
    notify = Signal(str)
    #: Something worth a dialog: title, text (from any room).
    problem = Signal(str, str)

    def __init__(self, settings: Settings, qsettings: QSettings | None = None, parent: QObject | None = None,
                 use_database: bool = True, finetune: Any = None, db_poll_ms: int = DB_POLL_MS):
        """``use_database``: False runs without logging; ``finetune``: the
        app.ml.finetune.FinetuneConfig of Improve (None: its defaults); ``db_poll_ms``: how
        often the connection is checked."""
        super().__init__(parent)
        self.settings = settings
        qsettings = qsettings if qsettings is not None else QSettings()
        self.inference = WorkerThread("inference", self)
        self.training = WorkerThread("training", self)
        self.database = DatabaseController(settings, use_database, db_poll_ms, self)
        self.models = ModelController(settings, qsettings, self.inference, self.database, self)
        self.prediction = PredictionController(self.inference, self.models, self)
        self.feedback = FeedbackController(self.prediction, self.models, self.database, self)
        self.reading = ReadingController(self.inference, self.models, self.database, self)
        self.statistics = StatisticsController(self.database, self)
        self.learning = LearningController(settings, self.training, self.models, self.database, finetune, self)
        for room in (self.database, self.models, self.learning):
            room.notify.connect(self.notify)
        for room in (self.database, self.models, self.prediction, self.feedback, self.reading):
            room.problem.connect(self.problem)
        for worker in (self.inference, self.database.worker, self.training):
            worker.errorOccurred.connect(self._worker_error)
        self._shut_down = False

    def start(self) -> None:
        """Begin the slow work: torch and the model, and the database.  Call after the
        window has been painted once."""
        settle_heap()  # the window's objects live as long as the app
        self.models.start()
        self.database.start()

    def open_image(self, path: str | os.PathLike) -> None:
        """Predict an image file: the drawing on screen is done with first (logged
        unlabelled if it had a prediction)."""
        self.feedback.discard()
        self.prediction.open_image(path)

    def shutdown(self, timeout_s: float = 20.0) -> None:
        """Stop the training process and the workers, log the open drawing, close the
        database, stop the embedded server.  Safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        # All three stop at once; the database worker runs what is queued first.
        self.training.request_stop()  # cancels: the training process is asked, then ended
        self.inference.request_stop()
        if self.database.enabled:
            self.feedback.log_open_drawing()
            self.reading.log_open_reading()
        self.database.shutdown(timeout_s)
        self.inference.stop(timeout_s=timeout_s)
        self.training.stop(timeout_s=timeout_s)
        log.info("controller shut down")

    def _worker_error(self, name: str, exc: BaseException) -> None:
        self.problem.emit("Something went wrong", f"{name}: {exc}")
