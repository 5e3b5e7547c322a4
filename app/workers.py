"""The one way the app runs work off the GUI thread: named worker threads that run jobs.

A ``WorkerThread`` is a QObject that lives in the GUI thread and owns one ``QThread``
running a small job loop.  ``submit(fn, *args, on_result=..., on_error=...)`` queues a
call; the loop runs it in the worker thread and sends the outcome back through a queued
signal to this object's ``@Slot`` methods, which call the callbacks *in the GUI thread*.
So callbacks may touch widgets; ``fn`` never may.

- Jobs on one thread run one at a time, in order (the database thread relies on it).
- ``key=``: "latest only".  A job that has not started yet is dropped when a newer job
  with the same key is submitted; stale requests never pile up (live prediction).
- ``with_job=True`` passes the ``Job`` as the first argument: ``job.progress(value)``
  reports to ``on_progress`` (in the GUI thread), ``job.cancelled`` is the cooperative
  cancel flag (training).
- ``stop()`` cancels what runs, optionally lets queued jobs finish (``drain=True``: the
  database writes), and waits for the thread.  After it no callback is called.
  ``request_stop()`` does the same without waiting, so that several threads can stop
  at once.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class Job:
    """One queued call.  ``cancel()`` asks it to stop (it checks ``cancelled``)."""

    def __init__(self, thread: "WorkerThread", fn: Callable, args: tuple, kwargs: dict,
                 key: str | None, with_job: bool, on_result, on_error, on_progress, on_done):
        self.id = next(_ids)
        self.key = key
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.with_job = with_job
        self.on_result = on_result
        self.on_error = on_error
        self.on_progress = on_progress
        self.on_done = on_done
        self.submitted_at = time.perf_counter()
        self._thread = thread
        self._cancel = threading.Event()
        self.state = "queued"  # queued, running, done, dropped

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def progress(self, value: Any) -> None:
        """Report progress from inside the job (any thread); delivered in the GUI thread."""
        self._thread._progress.emit(self, value)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"<Job {self.id} {name} key={self.key} {self.state}>"


class _Loop(QThread):
    """The QThread's run(): take jobs from the owner's queue until told to stop."""

    def __init__(self, owner: "WorkerThread"):
        super().__init__()
        self._owner = owner

    def run(self) -> None:  # runs in the worker thread
        owner = self._owner
        while True:
            with owner._cond:
                while not owner._queue and not owner._stopping:
                    owner._cond.wait()
                if not owner._queue:
                    return  # stopping, nothing left
                if owner._stopping and not owner._drain:
                    return
                job = owner._queue.popleft()
                job.state = "running"
                owner._running = job
            try:
                args = (job,) + job.args if job.with_job else job.args
                result = job.fn(*args, **job.kwargs)
            except BaseException as exc:  # noqa: BLE001 - every failure goes back to the GUI
                job.state = "done"
                owner._failed.emit(job, exc)
            else:
                job.state = "done"
                owner._finished.emit(job, result)
            finally:
                with owner._cond:
                    owner._running = None
                    owner._cond.notify_all()


class WorkerThread(QObject):
    """A named worker thread with a job queue; create and use it in the GUI thread."""

    _finished = Signal(object, object)
    _failed = Signal(object, object)
    _progress = Signal(object, object)
    #: Any job's unhandled error (one without on_error): (job name, exception).
    errorOccurred = Signal(str, object)

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._running: Job | None = None
        self._stopping = False
        self._drain = False
        self._closed = False
        self._finished.connect(self._on_finished)
        self._failed.connect(self._on_failed)
        self._progress.connect(self._on_progress)
        self._loop = _Loop(self)
        self._loop.setObjectName(name)
        self._loop.start()

    # ---- submitting -------------------------------------------------------------------
    def submit(self, fn: Callable, *args, key: str | None = None, with_job: bool = False,
               on_result: Callable | None = None, on_error: Callable | None = None,
               on_progress: Callable | None = None, on_done: Callable | None = None,
               **kwargs) -> Job:
        """Queue ``fn(*args, **kwargs)``; callbacks run in the GUI thread.

        on_result(result), on_error(exception), on_progress(value), on_done() (after
        either).  With ``key``, a queued job with the same key is dropped for this one.
        """
        job = Job(self, fn, args, kwargs, key, with_job, on_result, on_error, on_progress, on_done)
        with self._cond:
            if self._stopping:
                job.state = "dropped"
                log.debug("%s: stopping, %r not run", self.name, job)
                return job
            if key is not None:
                for old in [j for j in self._queue if j.key == key]:
                    self._queue.remove(old)
                    old.state = "dropped"
            self._queue.append(job)
            self._cond.notify_all()
        return job

    def cancel(self, key: str | None = None) -> None:
        """Drop queued jobs (with ``key``, only those) and ask the running one to stop."""
        with self._cond:
            for job in [j for j in self._queue if key is None or j.key == key]:
                self._queue.remove(job)
                job.state = "dropped"
            if self._running is not None and (key is None or self._running.key == key):
                self._running.cancel()

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running is not None or bool(self._queue)

    def pending(self, key: str | None = None) -> int:
        """Jobs queued or running (with ``key``, only those)."""
        with self._cond:
            jobs = list(self._queue) + ([self._running] if self._running else [])
        return sum(1 for j in jobs if key is None or j.key == key)

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is queued or running (for shutdown and tests)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def request_stop(self, drain: bool = False) -> None:
        """Begin stopping without waiting: cancel the running job; with ``drain`` the
        queued jobs still run, else they are dropped.  No callback runs afterwards."""
        with self._cond:
            if not self._stopping:
                self._stopping = True
                self._drain = drain
            if not self._drain:
                for job in self._queue:
                    job.state = "dropped"
                self._queue.clear()
                if self._running is not None:
                    self._running.cancel()
            self._cond.notify_all()
        self._closed = True

    def stop(self, drain: bool = False, timeout_s: float = 10.0) -> bool:
        """Stop the thread (``request_stop``) and wait for it.  True if it ended."""
        self.request_stop(drain)
        ended = self._loop.wait(int(timeout_s * 1000))
        if not ended:
            log.warning("worker thread %s did not stop within %.0f s", self.name, timeout_s)
        return ended

    # ---- delivery, in the GUI thread -------------------------------------------------------
    @Slot(object, object)
    def _on_finished(self, job: Job, result: Any) -> None:
        if self._closed:
            return
        try:
            if job.on_result is not None:
                job.on_result(result)
        finally:
            if job.on_done is not None:
                job.on_done()

    @Slot(object, object)
    def _on_failed(self, job: Job, exc: BaseException) -> None:
        if self._closed:
            return
        try:
            if job.on_error is not None:
                job.on_error(exc)
            else:
                log.error("%s: %r failed", self.name, job, exc_info=exc)
                self.errorOccurred.emit(getattr(job.fn, "__qualname__", "job"), exc)
        finally:
            if job.on_done is not None:
                job.on_done()

    @Slot(object, object)
    def _on_progress(self, job: Job, value: Any) -> None:
        if not self._closed and job.on_progress is not None and not job.cancelled:
            job.on_progress(value)
