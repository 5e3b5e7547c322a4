"""The learning room: Model → Train… and Improve with my corrections.

Both run in a child process (app.trainer), supervised by a job of the training worker
that relays what the child says; the app itself never runs a training step.  Improve
first reads the user's labelled drawings in the database worker and hands them to the
child.  A finished run's weights are put in use by the model room (``adopt``: loaded in
the inference worker, registered as a version in the database worker); a cancelled,
failed or crashed run leaves the model in use as it was.

A training run replaces nothing by itself: the child also measures the model in use on
the same test images, and ``trainingChoice`` asks the user which to keep (``choose``);
Improve has its own rule (held-out drawings and the MNIST test set) and keeps or rejects
on its own.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app import trainer
from app.controllers.database import DatabaseController, DatabaseSession
from app.controllers.models import ModelController
from app.controllers.problems import problem_from, words
from app.ml.errors import TrainingCancelled
from app.settings import Settings
from app.viewmodels import ImproveResult, ModelInfo, Problem, TrainingChoice, TrainingOutcome
from app.workers import WorkerThread

log = logging.getLogger(__name__)


# ---- jobs ---------------------------------------------------------------------------------------
def supervise(job, work, request) -> Any:
    """Training worker: run ``work(request)`` in a child process (app.trainer), relay what
    it says as (kind, value) progress, pass Cancel on."""
    return trainer.run_in_child(work, request, report=lambda kind, value: job.progress((kind, value)),
                                should_cancel=lambda: job.cancelled)


def count_labelled(session: DatabaseSession) -> tuple[int, int]:
    """Database worker: the labelled drawings there are, and how many Improve needs."""
    from app.ml.finetune import MIN_SAMPLES

    return int(session.repo.labelled_count()), MIN_SAMPLES


def read_user_dataset(session: DatabaseSession):
    """Database worker: the labelled drawings as arrays (app.learn.UserDataset)."""
    from app import learn
    from app.ml.finetune import MIN_SAMPLES

    return learn.user_dataset(session.repo), MIN_SAMPLES


# ---- the GUI-thread side ----------------------------------------------------------------------------
class LearningController(QObject):
    # training
    trainingStarted = Signal()
    trainingStatus = Signal(str)
    trainingProgress = Signal(object)  # app.ml.train.TrainProgress
    #: Training finished: the new model and the one in use, to choose from (``choose``).
    trainingChoice = Signal(object)  # TrainingChoice
    trainingFinished = Signal(object)  # TrainingOutcome: the new model is in use
    #: The user kept the model in use; the new weights stay in that file.
    trainingDeclined = Signal(object)  # TrainingChoice
    trainingFailed = Signal(object)  # Problem (a str)
    trainingCancelled = Signal()
    # improving with the user's drawings
    labelledCount = Signal(int, int)  # labelled drawings, how many are needed
    improveStarted = Signal()
    improveStatus = Signal(str)
    improveProgress = Signal(object)  # app.ml.train.TrainProgress
    improveFinished = Signal(object)  # ImproveResult (kept or not)
    improveFailed = Signal(str)
    improveCancelled = Signal()
    notify = Signal(str)

    def __init__(self, settings: Settings, worker: WorkerThread, models: ModelController,
                 database: DatabaseController, finetune: Any = None, parent: QObject | None = None):
        """``finetune``: an app.ml.finetune.FinetuneConfig for Improve (None: its defaults)."""
        super().__init__(parent)
        self.settings = settings
        self.worker = worker
        self.models = models
        self.database = database
        self.finetune = finetune
        self._task: str | None = None  # "training" or "improving", from the request to the outcome
        self._job = None  # the supervising job, while the child runs
        self._cancelled = False  # Cancel pressed while Improve reads the drawings
        self._choice: tuple[trainer.TrainedModel, TrainingChoice] | None = None  # awaiting an answer
        self._last_request: trainer.TrainRequest | None = None  # the training run's request
        #: The process id of the training process while one runs (None otherwise).
        self.child_pid: int | None = None

    @property
    def busy(self) -> bool:
        """Training or improving runs (one at a time)."""
        return self._task is not None

    @property
    def improve_running(self) -> bool:
        return self._task == "improving"

    def _run_child(self, work, request, on_progress, on_result, on_error) -> None:
        def progress(message: tuple) -> None:
            kind, value = message
            if kind == "started":
                self.child_pid = value
                log.info("training process %d runs", value)
            else:
                on_progress(kind, value)

        def done() -> None:
            self._job = None
            self.child_pid = None

        self._job = self.worker.submit(supervise, work, request, with_job=True, on_progress=progress,
                                       on_result=on_result, on_error=on_error, on_done=done)

    def _end(self) -> None:
        self._task = None

    # ---- training -----------------------------------------------------------------------------
    def start_training(self, config: dict) -> bool:
        """Train TrainConfig(**config) in a child process; the new weights go to a new file
        in settings.models_dir and replace the model when the run finishes well."""
        if self.busy:
            if self._task == "improving":
                self.trainingFailed.emit("Improve with my corrections is running: train when it has finished.")
            return False
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(self.settings.models_dir) / f"{config.get('arch', 'mnist_cnn')}-{stamp}.pth"
        current = self.models.model_info
        self._choice = None  # (a question left unanswered: the new run's answer counts)
        request = trainer.TrainRequest(config=dict(config), out=out, mnist_dir=Path(self.settings.mnist_dir),
                                       mnist_mirror=self.settings.mnist_mirror,
                                       cache_dir=Path(self.settings.data_home) / "synthetic",
                                       compare_with=current.path if current is not None else None,
                                       compare_sha256=current.sha256 if current is not None else None)
        self._task = "training"
        self._last_request = request
        self._run_child(trainer.train_model, request, self._training_progress, self._trained, self._training_error)
        self.trainingStarted.emit()
        return True

    def cancel_training(self) -> None:
        if self._task == "training" and self._job is not None:
            self._job.cancel()

    def _training_progress(self, kind: str, value) -> None:
        if kind == "status":
            self.trainingStatus.emit(value)
        elif kind == "progress":
            self.trainingProgress.emit(value)

    def _trained(self, trained: trainer.TrainedModel) -> None:
        """The run finished: ask which model to keep (or, with no model in use, use it)."""
        self._end()
        current = self.models.model_info
        if current is None:
            self._adopt(trained)
            return
        measured = trained.current_accuracy if self._measured_is_in_use(current) else None
        choice = TrainingChoice(path=trained.path, new_accuracy=trained.test_accuracy, current_accuracy=measured,
                                current_summary=current.summary(), test_images=trained.test_images,
                                seconds=trained.seconds, epochs=trained.epochs)
        self._choice = (trained, choice)
        log.info("training finished: new %.2f %%, in use %s", trained.test_accuracy,
                 "not measured" if measured is None else f"{measured:.2f} %")
        self.trainingChoice.emit(choice)

    def _measured_is_in_use(self, current: ModelInfo) -> bool:
        """The child measured the weights in use when it started; still the same?"""
        request = self._last_request
        return request is not None and request.compare_sha256 == current.sha256

    @property
    def pending_choice(self) -> TrainingChoice | None:
        """A finished training's question, while unanswered."""
        return self._choice[1] if self._choice is not None else None

    def choose(self, use_new: bool) -> None:
        """The answer to ``trainingChoice``: put the new model in use, or keep the current one."""
        if self._choice is None:
            return
        trained, choice = self._choice
        self._choice = None
        if use_new:
            self._task = "training"  # (until the new weights are in use)
            self._adopt(trained)
        else:
            log.info("kept the model in use; the new weights stay in %s", trained.path)
            self.trainingDeclined.emit(choice)
            self.notify.emit(f"Kept the model in use; the new weights are saved in {trained.path}.")

    def _adopt(self, trained: trainer.TrainedModel) -> None:
        self.trainingStatus.emit("Loading the new weights…")

        def adopted(info: ModelInfo, version_id: int | None) -> None:
            self._end()
            self.trainingFinished.emit(TrainingOutcome(info=info, test_accuracy=trained.test_accuracy,
                                                       seconds=trained.seconds, epochs=trained.epochs))
            self.notify.emit(f"New model in use: {info.summary()}")

        def failed(text: str) -> None:
            self._end()
            self.trainingFailed.emit(Problem(f"The new weights could not be loaded: {text}",
                                             getattr(text, "details", None)))

        # Trained from scratch: no parent version (the model in use was only compared with).
        self.models.adopt(trained.path, "trained", None, on_adopted=adopted, on_failed=failed)

    def _training_error(self, exc: BaseException) -> None:
        self._end()
        if isinstance(exc, TrainingCancelled):
            self.trainingCancelled.emit()
            return
        log.error("training failed: %s", exc, exc_info=None if isinstance(exc, trainer.TrainingCrashed) else exc)
        problem = problem_from(exc)
        self.trainingFailed.emit(Problem(f"Training failed: {problem}\nThe current model stays in use.",
                                         problem.details))

    # ---- improving ------------------------------------------------------------------------------
    def count_labelled(self) -> None:
        """How many labelled drawings there are to learn from (labelledCount)."""
        if not self.database.enabled:
            self.labelledCount.emit(0, 0)
            return
        self.database.run(count_labelled, key="count", on_result=lambda r: self.labelledCount.emit(*r),
                          on_error=lambda e: log.warning("labelled drawings not counted: %s", e))

    def start_improve(self) -> bool:
        """Fine-tune the model in use on the labelled drawings: first read them (database
        worker), then train (child process).  The new model replaces the current one only
        when it is kept."""
        if self.busy:
            if self._task == "training":
                self.improveFailed.emit("A training run is in progress: improve when it has finished.")
            return False
        if not self.database.enabled:
            self.improveFailed.emit("The database is off: there are no labelled drawings to learn from.")
            return False
        base = self.models.model_info
        if base is None:
            self.improveFailed.emit("No model is loaded yet.")
            return False
        self._task = "improving"
        self._cancelled = False
        self.improveStarted.emit()
        self.improveStatus.emit("Reading your labelled drawings…")
        self.database.run(read_user_dataset, on_result=lambda r: self._dataset_read(r, base),
                          on_error=self._improve_error)
        return True

    def cancel_improve(self) -> None:
        if self._task != "improving":
            return
        self._cancelled = True
        if self._job is not None:
            self._job.cancel()

    def _dataset_read(self, result: tuple, base: ModelInfo) -> None:
        dataset, needed = result
        if self._cancelled:
            self._end()
            self.improveCancelled.emit()
            return
        n = len(dataset)
        if n < needed:
            self._end()
            self.improveFailed.emit(
                f"Improving needs at least {needed} labelled drawings; there "
                f"{'is' if n == 1 else 'are'} {n}.\nDraw {needed - n} more and label them with "
                f"✓ Correct or ✗ Wrong… (or a digit key), then try again.")
            return
        self.improveStatus.emit(f"Fine-tuning on {n} labelled drawings…")
        request = trainer.ImproveRequest(base_path=base.path, base_sha256=base.sha256, dataset=dataset,
                                         models_dir=Path(self.settings.models_dir),
                                         mnist_dir=Path(self.settings.mnist_dir), config=self.finetune,
                                         mnist_mirror=self.settings.mnist_mirror)
        self._run_child(trainer.improve_model, request, self._improve_progress, self._improved,
                        self._improve_error)

    def _improve_progress(self, kind: str, value) -> None:
        if kind == "status":
            self.improveStatus.emit(value)
        elif kind == "progress":
            self.improveProgress.emit(value)

    def _improved(self, r: trainer.ImprovedModel) -> None:
        if not r.kept:
            self._finish_improve(r, None, None)
            return
        self.improveStatus.emit("Loading the improved weights…")
        self.models.adopt(r.path, "fine-tuned", r.base_sha256,
                          on_adopted=lambda info, version_id: self._finish_improve(r, info, version_id),
                          on_failed=lambda text: self._improve_failed(
                              f"The improved weights could not be loaded: {text}"))

    def _finish_improve(self, r: trainer.ImprovedModel, info: ModelInfo | None, version_id: int | None) -> None:
        self._end()
        result = ImproveResult(kept=info is not None, reason=r.reason, mnist_before=r.mnist_before,
                               mnist_after=r.mnist_after, user_before=r.user_before, user_after=r.user_after,
                               n_train=r.n_train, n_holdout=r.n_holdout, seconds=r.seconds,
                               base_sha256=r.base_sha256, info=info, version_id=version_id)
        if info is not None:
            self.notify.emit(f"Improved model in use: {info.summary()}")
        else:
            self.notify.emit("The fine-tuned model was not kept; the current model stays in use.")
        self.improveFinished.emit(result)

    def _improve_error(self, exc: BaseException) -> None:
        if isinstance(exc, TrainingCancelled):
            self._end()
            self.improveCancelled.emit()
            return
        if isinstance(exc, ValueError):
            self._improve_failed(f"{str(exc)[:1].upper()}{str(exc)[1:]}")
            return
        log.error("improving failed: %s", exc, exc_info=None if isinstance(exc, trainer.TrainingCrashed) else exc)
        self._improve_failed(f"Improving failed: {words(exc)}\nThe current model stays in use.")

    def _improve_failed(self, text: str) -> None:
        self._end()
        self.improveFailed.emit(text)
