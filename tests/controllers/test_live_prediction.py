"""The live prediction room without a window: stale requests are dropped, answers for a
drawing that is gone are ignored, and the controller layer needs no widgets."""

from __future__ import annotations

import subprocess
import sys
import threading

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication

from tests.controllers.conftest import Record, picture, settle, wait_until


def hold(worker) -> threading.Event:
    """Keep a worker busy until the returned event is set."""
    gate = threading.Event()
    worker.submit(gate.wait, 30)
    return gate


def test_runs_in_a_core_application():
    app = QCoreApplication.instance()
    assert app is not None and not isinstance(app, QApplication)


def test_the_controllers_import_no_widgets():
    code = ("import sys; import app.controllers, app.viewmodels, app.trainer; "
            "assert 'PySide6.QtWidgets' not in sys.modules and 'PySide6.QtGui' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('PySide6'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_a_stale_request_is_dropped(make_controller, settings):
    c = make_controller(settings)
    p = c.prediction
    got = Record(ready=p.predictionReady, answered=p.answered)
    gate = hold(c.inference)  # the worker is busy: the requests wait
    seqs = [p.request_prediction(picture(d)) for d in (1, 0, 7)]
    assert seqs == sorted(seqs) and p.waiting and p.latest_seq == seqs[-1]
    assert c.inference.pending("predict") == 1  # the two older ones were dropped at once
    gate.set()
    wait_until(lambda: not p.waiting, what="the newest prediction")
    settle(0.3)
    [(result,)] = got["ready"]  # only the newest was predicted
    assert (result.seq, result.digit, result.source) == (seqs[-1], 7, "canvas")
    assert p.current_prediction is result and p.has_prediction and got["answered"] == [(True,)]


def test_an_answer_for_a_drawing_that_is_gone_is_ignored(make_controller, settings):
    c = make_controller(settings)
    p = c.prediction
    got = Record(ready=p.predictionReady, cleared=p.predictionCleared)
    gate = hold(c.inference)
    p.request_prediction(picture(7))
    p.canvas_emptied()  # everything undone before the answer came
    gate.set()
    wait_until(lambda: not p.waiting, what="the answer")
    settle(0.3)
    assert got["ready"] == [] and p.current_prediction is None and not p.has_prediction
    assert len(got["cleared"]) == 1
    # The next drawing is predicted as usual.
    p.request_prediction(picture(1))
    wait_until(lambda: got["ready"], what="the next prediction")
    assert got["ready"][0][0].digit == 1


def test_a_blank_picture_clears_and_an_older_answer_never_replaces_a_newer(make_controller, settings):
    c = make_controller(settings)
    p = c.prediction
    got = Record(ready=p.predictionReady, cleared=p.predictionCleared, failed=p.predictionFailed)
    p.request_prediction(picture(7))
    wait_until(lambda: got["ready"], what="the prediction")
    p.request_prediction(picture(7) * 0 + 255)  # all paper: nothing drawn
    wait_until(lambda: got["cleared"], what="the blank picture's answer")
    assert p.current_prediction is None and got["failed"] == []
