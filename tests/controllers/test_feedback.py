"""The feedback room without a window, against the real database: feedback given before
the prediction arrives waits for it; a clear logs once, unlabelled; a correction updates
the row; the statistics come back as arrays, not pictures."""

from __future__ import annotations

import threading

import numpy as np

from tests.controllers.conftest import Record, picture, settle, wait_until
from tests.db.dbhelpers import fetch


def rows(db_url):
    return fetch(db_url, "SELECT uuid::text, predicted_digit, true_label, source, model_version_id "
                         "FROM predictions ORDER BY id")


def test_feedback_given_before_the_prediction_arrives(make_controller, settings, db_url):
    c = make_controller(settings)
    wait_until(lambda: c.models.model_version_id is not None, what="the model's version")
    got = Record(done=c.feedback.drawingDone, logged=c.feedback.logged, ready=c.prediction.predictionReady)
    gate = threading.Event()
    c.inference.submit(gate.wait, 30)  # the prediction is late
    c.prediction.request_prediction(picture(7))
    assert c.feedback.confirm()  # ✓ Correct pressed while the answer is on its way
    settle(0.3)
    assert got["logged"] == [] and rows(db_url) == []  # nothing to log yet
    gate.set()
    wait_until(lambda: got["logged"], what="the drawing to be logged")
    [(uid, label)] = got["done"]
    assert label == 7 and got["ready"][0][0].digit == 7
    assert rows(db_url) == [(uid, 7, 7, "canvas", c.models.model_version_id)]
    assert not c.prediction.has_prediction and not c.feedback.confirm()  # logged once: no more feedback


def test_a_correction_given_early_wins_and_a_failed_prediction_voids_it(make_controller, settings, db_url):
    c = make_controller(settings)
    got = Record(done=c.feedback.drawingDone)
    gate = threading.Event()
    c.inference.submit(gate.wait, 30)
    c.prediction.request_prediction(picture(1))
    assert c.feedback.correct_to(4)  # "it is a 4", before the answer
    gate.set()
    wait_until(lambda: got["done"], what="the feedback")
    assert got["done"][0][1] == 4
    c.feedback.discard()  # (the canvas is cleared after feedback: nothing more is logged)
    c.database.worker.wait_idle(10)
    assert [(r[1], r[2]) for r in rows(db_url)] == [(1, 4)]

    # Feedback waiting for a picture with nothing on it is dropped, not logged.
    gate = threading.Event()
    c.inference.submit(gate.wait, 30)
    c.prediction.request_prediction(np.full((280, 280), 255, np.uint8))
    assert c.feedback.confirm()
    gate.set()
    wait_until(lambda: not c.prediction.waiting, what="the answer")
    settle(0.3)
    c.database.worker.wait_idle(10)
    assert len(got["done"]) == 1 and len(rows(db_url)) == 1


def test_clear_logs_once_unlabelled_then_a_label_and_the_statistics(make_controller, settings, db_url):
    c = make_controller(settings)
    got = Record(logged=c.feedback.logged, saved=c.feedback.labelSaved, stats=c.statistics.statsReady)
    c.prediction.request_prediction(picture(0))
    wait_until(lambda: c.prediction.has_prediction, what="the prediction")
    c.feedback.discard()
    c.feedback.discard()  # a second clear of an empty canvas logs nothing
    wait_until(lambda: got["logged"], what="the log")
    [(uid, label)] = got["logged"]
    assert label is None and [(r[0], r[2]) for r in rows(db_url)] == [(uid, None)]
    c.feedback.set_label(uid, 6)
    wait_until(lambda: got["saved"], what="the label")
    assert [(r[0], r[2]) for r in rows(db_url)] == [(uid, 6)]
    c.statistics.refresh_stats()
    wait_until(lambda: got["stats"], what="the statistics")
    [(snapshot,)] = got["stats"]
    assert (snapshot.total, snapshot.labelled) == (1, 1)
    [item] = snapshot.recent
    assert item.uuid == uid and item.true_label == 6
    assert isinstance(item.image, np.ndarray) and item.image.shape == (28, 28)  # pixels, not a QImage
