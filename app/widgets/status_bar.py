"""The main window's status bar: passing messages, and on the right the progress of a
training or improving run, the model in use (with its version) and the database's state."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from app.controllers import Controller
from app.viewmodels import DatabaseState, ModelInfo

log = logging.getLogger(__name__)


class StatusBar(QStatusBar):
    def __init__(self, controller: Controller, progress_bar: QProgressBar, parent: QWidget | None = None):
        super().__init__(parent)
        self.models = controller.models
        self.training_bar = progress_bar
        self.model_label = QLabel("Model: loading…")
        self.model_label.setToolTip("The model in use")
        self.db_label = QLabel("Database: starting…")
        self.db_label.setObjectName("dbStatus")
        for w in (self.training_bar, self.model_label, self.db_label):
            self.addPermanentWidget(w)
        m = controller.models
        m.modelLoading.connect(self._model_loading)
        m.modelReady.connect(lambda _info: self.show_model())
        m.modelVersion.connect(lambda _id: self.show_model())
        m.modelFailed.connect(self._model_failed)
        m.versionSwitchFailed.connect(lambda _text: self.show_model())
        controller.database.stateChanged.connect(self._db_state)

    def say(self, text: str, ms: int) -> None:
        """A passing message (``ms``: how long it stays; see app.widgets.theme)."""
        self.showMessage(text, ms)

    def _model_loading(self, path: str) -> None:
        self.model_label.setText("Model: loading…")
        self.model_label.setToolTip(path)

    def show_model(self) -> None:
        """The model in use, and its version once it is recorded."""
        info: ModelInfo | None = self.models.model_info
        if info is None:
            return
        version = self.models.model_version_id
        name = f"Model #{version}" if version is not None else "Model"
        self.model_label.setText(f"{name}: {info.summary()}")
        recorded = f"version #{version} ({info.kind})" if version is not None else \
            f"{info.kind}; not recorded as a version yet (database offline?)"
        self.model_label.setToolTip(f"{info.path}\n{info.description}\ntrained {info.created_at or '?'}\n"
                                    f"{recorded}")

    def _model_failed(self, text: str) -> None:
        if not self.models.model_ready:
            self.model_label.setText("Model: none")
            self.model_label.setToolTip(text)
        else:
            self.show_model()

    def _db_state(self, state: DatabaseState) -> None:
        self.db_label.setText(state.text)
        self.db_label.setToolTip(state.tooltip)
        self.db_label.setProperty("problem", not (state.online or state.starting))
        self.db_label.style().unpolish(self.db_label)
        self.db_label.style().polish(self.db_label)
