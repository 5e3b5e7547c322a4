"""The database room: one session, owned by the database worker, and what the status bar
says about it.

``DatabaseSession`` is the database as the worker thread holds it: the repository (its
connection and offline spool), the embedded server, and the ids of the model versions
registered so far.  It is made in the GUI thread but used only inside jobs of the
database worker, one at a time and in order; every job is a function
``job(session, *args)`` that returns what the GUI thread needs.

``DatabaseController`` lives in the GUI thread: it owns that worker, opens the session
at start, polls the connection (sending what waits in the spool), turns each status into
a ``DatabaseState`` for the status bar, and runs the other rooms' jobs
(``run(job, *args, ...)``).  On shutdown the queued writes are drained first.
"""

from __future__ import annotations

import logging
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from app.settings import Settings
from app.viewmodels import DatabaseState
from app.workers import Job, WorkerThread

log = logging.getLogger(__name__)

#: How often the database thread checks the connection and sends what waits.
DB_POLL_MS = 4000


class DatabaseSession:
    """The repository, the embedded server and the registered versions' ids (sha256 ->
    id), as the database worker holds them.  Use it only in that worker's jobs."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._repo = None
        self._server = None
        self.version_ids: dict[str, int] = {}

    def open(self):
        """Connect (starting the embedded server if it is the one in use); returns the
        status.  An unreachable database still gives a working, spooling repository."""
        from app.db import open_database

        self._repo, self._server = open_database(self.settings)
        return self._repo.status()

    @property
    def repo(self):
        """The app.db.PredictionRepository; DatabaseUnavailable before it is open."""
        if self._repo is None:
            from app.db import DatabaseUnavailable

            raise DatabaseUnavailable("The database is not open.")
        return self._repo

    @property
    def is_open(self) -> bool:
        return self._repo is not None

    def close(self) -> None:
        repo, server = self._repo, self._server
        self._repo = self._server = None
        try:
            if repo is not None:
                repo.close()
        finally:
            if server is not None:
                server.stop()


# ---- jobs: they run in the database worker --------------------------------------------------------
def open_session(session: DatabaseSession):
    return session.open()


def poll(session: DatabaseSession):
    """The status; when offline or when writes wait, try to send them first."""
    if not session.is_open:
        return None
    repo = session.repo
    status = repo.status()
    if not status.online or status.pending:
        repo.flush_spool()
        status = repo.status()
    return status


def close_session(session: DatabaseSession) -> None:
    session.close()


def message(exc: BaseException) -> str:
    """An error's words for people (its class name when it has none)."""
    text = str(exc)
    return text if text else type(exc).__name__


def describe(status, settings: Settings | None = None) -> DatabaseState:
    """An app.db DbStatus -> what the status bar shows.  ``settings``: the tooltip names
    the ``.env`` file the settings were read from, if any."""
    where = status.where
    place = "local server" if where.startswith("local socket") else where
    if status.online:
        text = f"Database: {place}"
        if status.pending:
            text += f" · sending {status.pending}"
        server = "embedded PostgreSQL server" if where == "embedded" else "PostgreSQL server at " + where
        tip = f"Predictions are saved in the {server}."
    else:
        text = f"Database: offline ({place})"
        if status.pending:
            text += f" · {status.pending} waiting"
        tip = (status.message or "Not connected.") + \
            "\nPredictions wait on this computer and are sent when the database is back."
    warning = getattr(status, "warning", None)
    if warning:
        text += " · ⚠ offline saving off"
        tip += f"\n\n⚠ {warning}"
    source = settings_source(settings)
    if source:
        tip += f"\n\n{source}"
    return DatabaseState(text, tip, online=status.online, pending=status.pending, warning=warning)


def settings_source(settings: Settings | None) -> str:
    """Which ``.env`` file the settings were read from, in words ("" when none was)."""
    path = getattr(settings, "dotenv_path", None)
    return f"Settings read from {path} (and the environment, which wins)." if path else ""


def drawings_sent_text(n: int) -> str:
    return f"{n} drawing{'s' if n != 1 else ''} sent to the database."


# ---- the GUI-thread side ----------------------------------------------------------------------------
class DatabaseController(QObject):
    stateChanged = Signal(object)  # DatabaseState
    #: A status came back from the database (app.db DbStatus); sent after stateChanged.
    statusReceived = Signal(object)
    #: The session is open (or failed to open): reads may start.
    opened = Signal()
    notify = Signal(str)
    problem = Signal(str, str)

    def __init__(self, settings: Settings, enabled: bool = True, poll_ms: int = DB_POLL_MS,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.enabled = enabled
        self.settings = settings
        self.worker = WorkerThread("database", self)
        self._session = DatabaseSession(settings)
        self._opened = False
        self._drawings_sent = 0  # DbStatus.drawings_sent of the last status (it only grows)
        self._state = DatabaseState("Database: starting…", "Connecting to the database", online=False,
                                    starting=True)
        self._poll = QTimer(self)
        self._poll.setInterval(poll_ms)
        self._poll.timeout.connect(self._poll_now)

    # ---- start and stop -----------------------------------------------------------------
    def start(self) -> None:
        source = settings_source(self.settings)
        if source:
            log.info("%s", source)
        if not self.enabled:
            self._set_state(DatabaseState("Database: off", "Not logging predictions", online=False))
            return
        self.worker.submit(open_session, self._session, on_result=self._opened_ok, on_error=self._open_failed)
        self.stateChanged.emit(self._state)

    def shutdown(self, timeout_s: float) -> None:
        """Run the writes still queued, close the session, stop the embedded server."""
        self._poll.stop()
        self.worker.submit(close_session, self._session)
        self.worker.stop(drain=True, timeout_s=timeout_s)

    # ---- running the other rooms' jobs --------------------------------------------------------
    def run(self, job: Callable, *args, key: str | None = None, on_result: Callable | None = None,
            on_error: Callable | None = None, on_done: Callable | None = None) -> Job:
        """Queue ``job(session, *args)`` in the database worker; the callbacks run in the
        GUI thread."""
        return self.worker.submit(job, self._session, *args, key=key, on_result=on_result, on_error=on_error,
                                  on_done=on_done)

    @property
    def is_open(self) -> bool:
        """Opening has finished (well or not): reads may be queued."""
        return self._opened

    @property
    def state(self) -> DatabaseState:
        return self._state

    # ---- status -----------------------------------------------------------------------------------
    def take_status(self, status) -> None:
        """A job brought back the database's status: show it, say what changed."""
        if status is None:
            return
        was_online, was_starting, had_warning = self._state.online, self._state.starting, self._state.warning
        self._set_state(describe(status, self.settings))
        sent = getattr(status, "drawings_sent", 0) - self._drawings_sent
        if sent > 0:
            self._drawings_sent += sent
            self.notify.emit(drawings_sent_text(sent))
        warning = getattr(status, "warning", None)
        if warning and warning != had_warning:
            self.problem.emit("Drawings made while offline cannot be kept", warning)
        if was_starting and not status.online:
            self.problem.emit("The database is not reachable",
                              f"{status.message or 'Not connected.'}\n\nThe app works on: "
                              f"predictions are kept on this computer and sent when the "
                              f"database is reachable again.")
        elif was_online and not status.online:
            self.notify.emit("The database went offline; predictions wait on this computer.")
        self.statusReceived.emit(status)

    def _set_state(self, state: DatabaseState) -> None:
        if state == self._state:
            return  # (after each write: mostly unchanged)
        self._state = state
        self.stateChanged.emit(state)

    def _opened_ok(self, status) -> None:
        log.info("database: %s", status)
        self._opened = True
        self.take_status(status)
        self._poll.start()
        self.opened.emit()

    def _open_failed(self, exc: BaseException) -> None:
        log.error("database not opened", exc_info=exc)
        self._opened = True  # (as far as it goes: reads will say why they fail)
        source = settings_source(self.settings)
        self._set_state(DatabaseState("Database: unavailable", str(exc) + (f"\n\n{source}" if source else ""),
                                      online=False))
        self.problem.emit("No database", f"{exc}\n\nThe app works without it, but predictions are not saved.")
        self.opened.emit()

    def _poll_now(self) -> None:
        if self.worker.pending("poll") == 0:
            self.worker.submit(poll, self._session, key="poll", on_result=self.take_status)
