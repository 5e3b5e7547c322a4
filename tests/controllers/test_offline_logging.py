"""Logging without a window while the database is away: the app started with its server
down from the first drawing; once the server is up, every drawing saved meanwhile is in
the database with the model version that made it (also a model loaded while offline),
and the status says how many drawings were sent.  A drawing the database refuses is kept
on disk, and the user is told where."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.controllers.conftest import Record, picture, wait_until
from tests.controllers.test_versions import other_weights
from tests.db.dbhelpers import fetch


def log_drawing(c, digit: int, label: int | None = None) -> str:
    got = Record(done=c.feedback.drawingDone)
    c.prediction.request_prediction(picture(digit))
    wait_until(lambda: c.prediction.has_prediction, what=f"the prediction of a {digit}")
    assert c.feedback.confirm() if label is None else c.feedback.correct_to(label)
    wait_until(lambda: got["done"], what="the feedback")
    c.feedback.discard()
    return got["done"][0][0]


def test_drawings_saved_offline_from_the_start_keep_their_model_versions(make_controller, settings, external_pg,
                                                                        external_db_url, model_path, tmp_path):
    external_pg.stop()
    try:
        c = make_controller(settings.with_(database_url=external_db_url), wait_db=False, db_poll_ms=200)
        wait_until(lambda: c.database.is_open and not c.database.state.starting, 60, "the database to be tried")
        assert not c.database.state.online
        notes = Record(notify=c.notify)
        shipped_sha = c.models.model_info.sha256
        first = [log_drawing(c, d) for d in (1, 7, 0)]
        # Another model, loaded while offline: its drawings must not take the first one's version.
        loaded = Record(ready=c.models.modelReady)
        c.models.load_model(other_weights(model_path, tmp_path))
        wait_until(lambda: loaded["ready"], what="the other weights")
        other_sha = c.models.model_info.sha256
        second = [log_drawing(c, 4, label=4)]
        wait_until(lambda: c.database.state.pending == 4, 30, "four drawings waiting")
        assert c.models.model_version_id is None
    finally:
        external_pg.start()
    wait_until(lambda: c.database.state.online and c.database.state.pending == 0, 60, "the spool to be sent")
    rows = fetch(external_db_url, "SELECT p.uuid::text, v.weights_sha256, p.true_label FROM predictions p "
                                  "LEFT JOIN model_versions v ON v.id = p.model_version_id ORDER BY p.id")
    assert [r[0] for r in rows] == first + second
    assert [r[1] for r in rows] == [shipped_sha] * 3 + [other_sha]  # no NULL version
    assert [r[2] for r in rows] == [1, 7, 0, 4]
    assert fetch(external_db_url, "SELECT kind, path, metrics->>'test_accuracy' FROM model_versions "
                                  "WHERE weights_sha256 = %s", (shipped_sha,)) == [
        ("shipped", str(model_path), str(c.models.model_info.metadata["test_accuracy"]))]
    # The status bar hears how many drawings went out.
    wait_until(lambda: any("sent" in text for (text,) in notes["notify"]), 10, "the note")
    assert ("4 drawings sent to the database.",) in notes["notify"]
    # The app's own registration finds the versions the replay made: the same ids.
    wait_until(lambda: c.models.model_version_id is not None, 30, "the version in use")
    assert fetch(external_db_url, "SELECT count(*) FROM model_versions") == [(2,)]


def test_a_drawing_the_database_refuses_is_kept_and_the_user_told(make_controller, settings, db_url):
    """A model that gave NaN (as a damaged weights file did): the record is refused, the
    drawing stays on disk, and the message says where."""
    from app.controllers.feedback import LogEntry

    c = make_controller(settings)
    got = Record(problem=c.problem, logged=c.feedback.logged)
    p = c.models.predictor.predict(picture(3))
    c.feedback.log_prediction(LogEntry(predicted_digit=p.digit, confidence=math.nan,
                                       probabilities=list(p.probabilities), image=p.image, raw=picture(3),
                                       true_label=3, source="canvas"))
    wait_until(lambda: got["problem"], what="the message")
    [(title, text)] = got["problem"]
    folder = Path(settings.data_home) / "unsaved"
    [kept] = [f for f in folder.glob("*.json")]
    uid = kept.stem
    assert "not saved in the database" in title and "confidence" in text and str(folder) in text
    assert "Nothing is lost" in text and uid in text
    about = json.loads(kept.read_text())
    assert (about["predicted_digit"], about["true_label"], about["confidence"]) == (p.digit, 3, None)
    assert (folder / f"{uid}.png").read_bytes().startswith(b"\x89PNG")
    assert (folder / f"{uid}-input.png").is_file()
    assert got["logged"] == [] and fetch(db_url, "SELECT count(*) FROM predictions") == [(0,)]
