"""The number room without a window, against the real database: a number drawn as ink
(an image: no strokes) is read digit by digit; ✓ given before the reading arrives waits
for it and logs every digit as a prediction row of one reading; an answer for a drawing
that is gone is dropped; a typed number of the wrong length is refused with a reason; a
reading made while the database is away is sent later, still one reading."""

from __future__ import annotations

import threading

import numpy as np

from tests.controllers.conftest import Record, picture, settle, wait_until
from tests.db.dbhelpers import fetch


def number(*digits: int) -> np.ndarray:
    """Digits drawn side by side, as the canvas hands a picture over (black on white)."""
    return np.hstack([picture(d) for d in digits])


def digit_rows(url):
    return fetch(url, "SELECT reading_id::text, reading_position, predicted_digit, true_label, source, "
                      "model_version_id, octet_length(raw_png) FROM predictions ORDER BY reading_position")


def test_confirm_before_the_reading_arrives_logs_one_reading(make_controller, settings, db_url):
    c = make_controller(settings)
    wait_until(lambda: c.models.model_version_id is not None, what="the model's version")
    got = Record(ready=c.reading.readingReady, done=c.reading.readingDone, logged=c.reading.logged)
    gate = threading.Event()
    c.inference.submit(gate.wait, 30)  # the reading is late
    c.reading.request(number(4, 7))
    assert c.reading.waiting and c.reading.confirm()  # ✓ while the answer is on its way
    settle(0.3)
    assert got["logged"] == [] and digit_rows(db_url) == []
    gate.set()
    wait_until(lambda: got["logged"], what="the reading to be logged")
    [(r,)] = got["ready"]
    assert r.text == "47" and len(r.boxes) == 2 and r.boxes[0][0] < 0.5 < r.boxes[1][0]
    [(reading_id, text)] = got["done"]
    assert text == "47" and got["logged"] == [(reading_id,)]
    version = c.models.model_version_id
    assert [row[:6] for row in digit_rows(db_url)] == [(reading_id, 0, 4, 4, "canvas", version),
                                                       (reading_id, 1, 7, 7, "canvas", version)]
    assert all(raw > 0 for *_, raw in digit_rows(db_url))  # the drawing is kept with its digits
    assert fetch(db_url, "SELECT text, true_text, correct FROM readings") == [("47", "47", True)]
    assert not c.reading.has_reading and not c.reading.confirm()  # logged once


def test_corrections_and_a_typed_number(make_controller, settings, db_url):
    c = make_controller(settings)
    got = Record(done=c.reading.readingDone, changed=c.reading.correctionsChanged)
    c.reading.request(number(4, 7, 1))
    wait_until(lambda: c.reading.has_reading and not c.reading.waiting, what="the reading")
    assert c.reading.reading.text == "471"
    c.reading.set_digit(1, 2)
    assert c.reading.reading.text == "421" and len(got["changed"]) == 1
    c.reading.set_digit(1, 7)  # back to what was read: no correction left
    assert c.reading.reading.corrections == {}
    assert "3 digits" in c.reading.set_text("47")  # a count that does not match: refused, why
    assert "digits only" in c.reading.set_text("4a1")
    assert c.reading.reading.text == "471"  # nothing changed
    assert c.reading.set_text("4 9 1") is None
    assert c.reading.confirm()
    wait_until(lambda: got["done"], what="the reading to be logged")
    c.database.worker.wait_idle(10)
    assert [(r[1], r[2], r[3]) for r in digit_rows(db_url)] == [(0, 4, 4), (1, 7, 9), (2, 1, 1)]
    assert fetch(db_url, "SELECT text, true_text, correct FROM readings") == [("471", "491", False)]
    assert fetch(db_url, "SELECT total, labelled, correct FROM reading_accuracy") == [(1, 1, 0)]


def test_a_reading_of_a_drawing_that_is_gone_is_dropped(make_controller, settings, db_url):
    c = make_controller(settings)
    got = Record(ready=c.reading.readingReady, cleared=c.reading.readingCleared)
    gate = threading.Event()
    c.inference.submit(gate.wait, 30)
    c.reading.request(number(4, 7))
    c.reading.discard()  # cleared before the answer: nothing was read, nothing to log
    gate.set()
    wait_until(lambda: not c.reading.waiting, what="the answer")
    settle(0.2)
    assert got["ready"] == [] and not c.reading.has_reading

    # A blank picture is "nothing drawn", not an error; ✓ then does nothing.
    c.reading.request(np.full((280, 560), 255, np.uint8))
    wait_until(lambda: not c.reading.waiting, what="the answer")
    assert len(got["cleared"]) == 2 and not c.reading.confirm()
    c.database.worker.wait_idle(10)
    assert digit_rows(db_url) == []


def test_a_number_saved_offline_is_sent_later_as_one_reading(make_controller, settings, external_pg,
                                                             external_db_url):
    external_pg.stop()
    try:
        c = make_controller(settings.with_(database_url=external_db_url), wait_db=False, db_poll_ms=200)
        wait_until(lambda: c.database.is_open and not c.database.state.starting, 60, "the database to be tried")
        assert not c.database.state.online
        c.reading.request(number(7, 1))
        wait_until(lambda: c.reading.has_reading and not c.reading.waiting, what="the reading")
        c.reading.set_digit(0, 1)
        assert c.reading.confirm()
        wait_until(lambda: c.database.state.pending == 2, 30, "two digits waiting")
    finally:
        external_pg.start()
    wait_until(lambda: c.database.state.online and c.database.state.pending == 0, 60, "the spool to be sent")
    rows = digit_rows(external_db_url)
    assert [(r[1], r[2], r[3]) for r in rows] == [(0, 7, 1), (1, 1, 1)] and rows[0][0] == rows[1][0]
    assert fetch(external_db_url, "SELECT text, true_text, correct FROM readings") == [("71", "11", False)]
