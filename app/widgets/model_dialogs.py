"""The Model menu's windows: Train…, Improve with my corrections…, Versions…, the
comparison of two versions and About this model; and the status bar's progress bar that shows a training or
improving run while its window is hidden.

Each window is built on first use (``get``) and kept; ``show`` brings it to the front.
They are told what the controller's learning and model rooms say.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDialog, QMessageBox, QProgressBar, QWidget

from app.controllers import Controller
from app.viewmodels import ImproveResult, TrainingChoice, TrainingOutcome, VersionRow
from app.widgets import theme
from app.widgets.about_model import AboutModelDialog
from app.widgets.cards import JobProgress
from app.widgets.compare import CompareDialog
from app.widgets.improve import ImproveDialog
from app.widgets.messages import message_box
from app.widgets.training import TrainingDialog, format_duration
from app.widgets.versions import VersionsDialog

log = logging.getLogger(__name__)

D = TypeVar("D", bound=QDialog)

TRAINING_FORMAT = "training %p %"
TRAINING_TIP = "Training runs; Model → Train… shows it"
IMPROVING_FORMAT = "improving %p %"
IMPROVING_TIP = "Improving the model; Model → Improve with my corrections… shows it"


def choice_texts(choice: TrainingChoice) -> tuple[str, str]:
    """The two accuracies as the question says them: ("98.94 %", "99.40 %")."""
    current = "not measured" if choice.current_accuracy is None else f"{choice.current_accuracy:.2f} %"
    return f"{choice.new_accuracy:.2f} %", current


class ModelDialogs(QObject):
    #: A passing message for the status bar, and how long it stays (ms).
    message = Signal(str, int)

    def __init__(self, controller: Controller, window: QWidget):
        super().__init__(window)
        self.controller = controller
        self.learning = controller.learning
        self.models = controller.models
        self._window = window
        self._dialogs: dict[type, QDialog] = {}
        self._makers: dict[type, Callable[[], QDialog]] = {
            TrainingDialog: self._make_training, ImproveDialog: self._make_improve,
            VersionsDialog: self._make_versions, CompareDialog: self._make_compare,
            AboutModelDialog: lambda: AboutModelDialog(self._window)}
        self._compare_wanted: tuple | None = None  # the pair to compare once the versions are read
        #: "Use the new model or keep the current one?" while it is open.
        self.training_question: QMessageBox | None = None
        #: In the status bar: the run's progress while its window is hidden.
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, JobProgress.STEPS)
        self.progress_bar.setFixedWidth(160)
        self.progress_bar.hide()
        self._bar_for(TRAINING_FORMAT, TRAINING_TIP)
        self._connect()

    # ---- the windows --------------------------------------------------------------------------
    def get(self, kind: type[D]) -> D:
        """The window of this class, built on first use."""
        if kind not in self._dialogs:
            self._dialogs[kind] = self._makers[kind]()
        return self._dialogs[kind]

    def built(self, kind: type[D]) -> D | None:
        """The window if it was built, else None (nothing to tell it)."""
        return self._dialogs.get(kind)

    def show(self, kind: type[D]) -> D:
        dialog = self.get(kind)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _make_training(self) -> TrainingDialog:
        info = self.models.ml_info
        dialog = TrainingDialog(info.architectures, info.presets, self._window)
        dialog.startRequested.connect(self.learning.start_training)
        dialog.cancelRequested.connect(self.learning.cancel_training)
        return dialog

    def _make_improve(self) -> ImproveDialog:
        dialog = ImproveDialog(self._window)
        dialog.startRequested.connect(self.learning.start_improve)
        dialog.cancelRequested.connect(self.learning.cancel_improve)
        return dialog

    def _make_versions(self) -> VersionsDialog:
        dialog = VersionsDialog(self._window)
        dialog.useRequested.connect(self.models.use_version)
        dialog.refreshRequested.connect(self.models.refresh_versions)
        dialog.compareRequested.connect(self.compare_pair)
        return dialog

    def _make_compare(self) -> CompareDialog:
        dialog = CompareDialog(self._window)
        dialog.compareRequested.connect(self.models.compare_versions)
        return dialog

    def _connect(self) -> None:
        lr, m = self.learning, self.models
        lr.trainingStarted.connect(self._training_started)
        lr.trainingStatus.connect(self._training_status)
        lr.trainingProgress.connect(self._training_progress)
        lr.trainingChoice.connect(self._training_choice)
        lr.trainingFinished.connect(self._training_finished)
        lr.trainingDeclined.connect(self._training_declined)
        lr.trainingFailed.connect(self._training_failed)
        lr.trainingCancelled.connect(self._training_cancelled)
        lr.labelledCount.connect(lambda n, needed: self.get(ImproveDialog).set_count(n, needed))
        lr.improveStarted.connect(self._improve_started)
        lr.improveStatus.connect(self._improve_status)
        lr.improveProgress.connect(self._improve_progress)
        lr.improveFinished.connect(self._improve_finished)
        lr.improveFailed.connect(self._improve_failed)
        lr.improveCancelled.connect(self._improve_cancelled)
        m.versionsReady.connect(self._versions_ready)
        m.versionsFailed.connect(lambda text: self.get(VersionsDialog).show_error(text))
        m.versionSwitchFailed.connect(self._version_switch_failed)
        m.modelVersion.connect(self._model_version)
        m.modelReady.connect(lambda _info: self._refresh_about())
        m.comparisonReady.connect(lambda result: self.get(CompareDialog).show_comparison(result))
        m.comparisonFailed.connect(lambda text: self.get(CompareDialog).show_error(text))

    def _not_yet(self) -> bool:
        if self.models.ml_info is None:
            self.message.emit("PyTorch is still loading; try again in a moment.", theme.NOTE_MS)
            return True
        return False

    def _bar_for(self, fmt: str, tip: str) -> None:
        self.progress_bar.setFormat(fmt)
        self.progress_bar.setToolTip(tip)

    def _bar_done(self) -> None:
        self.progress_bar.hide()
        self._bar_for(TRAINING_FORMAT, TRAINING_TIP)

    # ---- Model → Train… ---------------------------------------------------------------------------
    def show_training(self) -> None:
        if not self._not_yet():
            self.show(TrainingDialog)

    def _training_started(self) -> None:
        self.get(TrainingDialog).training_started()
        self._bar_for(TRAINING_FORMAT, TRAINING_TIP)
        self.progress_bar.setValue(0)
        self.progress_bar.show()

    def _training_status(self, text: str) -> None:
        self.get(TrainingDialog).show_status(text)
        self.message.emit(text, theme.ECHO_MS)

    def _training_progress(self, p) -> None:
        self.get(TrainingDialog).show_progress(p)
        self.progress_bar.setValue(int(p.fraction * JobProgress.STEPS))
        self.progress_bar.setToolTip(f"Training: epoch {p.epoch}/{p.epochs}, about {format_duration(p.eta)} left")

    def _training_choice(self, choice: TrainingChoice) -> None:
        """Training finished: ask which model to use, the better one as the default."""
        self._bar_done()
        new, current = choice_texts(choice)
        measured = (f"Both measured on the same {choice.test_images:,} MNIST test images".replace(",", " ")
                    if choice.current_accuracy is not None else
                    "The model in use could not be measured on the same test images (see the log)")
        self.get(TrainingDialog).training_choice(
            f"Done in {format_duration(choice.seconds)}: test accuracy {choice.new_accuracy:.2f} %. "
            f"Choose which model to use.\nSaved to {choice.path}")
        self._close_training_question()
        box = message_box(self._window, "Use the new model?",
                          f"Use the new model ({new}) or keep the current one ({current})?\n\n"
                          f"{measured}. The model in use: {choice.current_summary}. The new weights "
                          f"are saved in {choice.path} either way (Model → Load weights… opens them later).",
                          QMessageBox.Icon.Question, buttons=QMessageBox.StandardButton.NoButton)
        use = box.addButton(f"Use the new model ({new})", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton(f"Keep the current one ({current})", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(use if choice.new_is_better else keep)
        box.setEscapeButton(keep)
        use.clicked.connect(lambda: self.learning.choose(True))
        keep.clicked.connect(lambda: self.learning.choose(False))
        box.destroyed.connect(self._training_question_closed)
        self.training_question = box
        box.show()
        box.raise_()

    def _close_training_question(self) -> None:
        if self.training_question is not None:
            self.training_question.close()

    def _training_question_closed(self) -> None:
        self.training_question = None

    def _training_declined(self, choice: TrainingChoice) -> None:
        self.get(TrainingDialog).training_declined(
            f"Kept the current model ({choice_texts(choice)[1]}). The new weights are saved in {choice.path}.")

    def _training_finished(self, outcome: TrainingOutcome) -> None:
        self._bar_done()
        self.get(TrainingDialog).training_finished(
            f"Done in {format_duration(outcome.seconds)}: test accuracy {outcome.test_accuracy:.2f} %. "
            f"The new model is in use.\nSaved to {outcome.info.path}")

    def _training_failed(self, text: str) -> None:
        self._bar_done()
        self.get(TrainingDialog).training_failed(text)

    def _training_cancelled(self) -> None:
        self._bar_done()
        self.get(TrainingDialog).training_cancelled()
        self.message.emit("Training cancelled; the model is unchanged.", theme.NOTE_MS)

    # ---- Model → Improve with my corrections… ---------------------------------------------------------
    def show_improve(self) -> None:
        if self._not_yet():
            return
        if not self.get(ImproveDialog).running:
            self.learning.count_labelled()
        self.show(ImproveDialog)

    def _improve_started(self) -> None:
        self.get(ImproveDialog).improve_started()
        self._bar_for(IMPROVING_FORMAT, IMPROVING_TIP)
        self.progress_bar.setValue(0)
        self.progress_bar.show()

    def _improve_status(self, text: str) -> None:
        self.get(ImproveDialog).show_status(text)
        self.message.emit(text, theme.ECHO_MS)

    def _improve_progress(self, p) -> None:
        self.get(ImproveDialog).show_progress(p)
        self.progress_bar.setValue(int(p.fraction * JobProgress.STEPS))

    def _improve_finished(self, result: ImproveResult) -> None:
        self._bar_done()
        self.get(ImproveDialog).show_result(result)
        self.learning.count_labelled()

    def _improve_failed(self, text: str) -> None:
        self._bar_done()
        self.get(ImproveDialog).improve_failed(text)

    def _improve_cancelled(self) -> None:
        self._bar_done()
        self.get(ImproveDialog).improve_cancelled()
        self.message.emit("Improving cancelled; the model is unchanged.", theme.NOTE_MS)

    # ---- Model → About this model ------------------------------------------------------------------
    def show_about_model(self) -> AboutModelDialog:
        dialog = self.get(AboutModelDialog)
        dialog.show_model(self.models.model_info, self.models.model_version_id)
        return self.show(AboutModelDialog)

    def _refresh_about(self) -> None:
        dialog = self.built(AboutModelDialog)
        if dialog is not None and dialog.isVisible():
            dialog.show_model(self.models.model_info, self.models.model_version_id)

    # ---- Model → Versions…, and comparing two ------------------------------------------------------------
    def show_versions(self) -> None:
        self.get(VersionsDialog).show_error("Reading the versions…")
        self.models.refresh_versions()
        self.show(VersionsDialog)

    def _versions_ready(self, rows: list[VersionRow]) -> None:
        versions = self.built(VersionsDialog)
        if versions is not None:
            versions.show_versions(rows, self.models.model_version_id)
        compare = self.built(CompareDialog)
        if compare is not None and self._compare_wanted is not None:
            a, b = self._compare_wanted
            self._compare_wanted = None
            compare.set_versions(rows, a, b)

    def _version_switch_failed(self, text: str) -> None:
        versions = self.built(VersionsDialog)
        if versions is not None:
            versions.show_error(text.split("\n\n")[0])

    def _model_version(self, version_id) -> None:
        self._refresh_about()
        versions = self.built(VersionsDialog)
        if versions is not None and versions.isVisible():
            self.models.refresh_versions()

    def compare_pair(self, a_id: int | None, b_id: int | None) -> None:
        """Open the comparison of versions a and b (the versions list is read first)."""
        self.get(CompareDialog)
        self._compare_wanted = (a_id, b_id)
        self.models.refresh_versions()
        self.show(CompareDialog)

    def compare_in_use(self, versions: list[VersionRow]) -> None:
        """Compare the version in use with its parent (or the one before it)."""
        current = self.models.model_version_id
        by_id = {v.id: v for v in versions}
        b = current if current in by_id else (versions[0].id if versions else None)
        a = by_id[b].parent_id if b in by_id else None
        if a not in by_id:
            older = [v.id for v in versions if v.id != b]
            a = older[0] if older else None
        self.compare_pair(a, b)
