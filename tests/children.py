"""Work for training processes in tests of app.trainer: each misbehaves in its own way.
(They live in a module of their own: a child process imports its work by name.)"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def killed(request, inbox):
    """Dies the way the out-of-memory killer ends a process."""
    inbox.status("about to die")
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)


def exits(request, inbox):
    os._exit(7)


class Unpicklable(Exception):
    def __init__(self, message, handle):
        super().__init__(message)
        self.handle = handle


def raises_unpicklable(request, inbox):
    raise Unpicklable("a lock cannot travel", __import__("threading").Lock())


def stops_when_asked(request, inbox):
    """Works until Cancel; writes ``request`` (a path) once it has seen it."""
    while not inbox.cancelled():
        time.sleep(0.01)
    Path(request).write_text("cancel seen")
    inbox.check()


def ignores_cancel(request, inbox):
    """Never looks: only killing stops it."""
    inbox.status("busy")
    time.sleep(120)
    Path(request).write_text("finished")
