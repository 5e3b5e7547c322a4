"""Learning from the user in the window: Model → Improve with my corrections… (too few
drawings, Cancel, not kept, kept and swapped in without a restart) and File → Export
dataset… (NPZ and IDX)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg2
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.ml import data
from app.ml.data import read_idx
from app.ml.finetune import FinetuneConfig
from app.ml.styles import restyle
from app.widgets.improve import ImproveDialog
from app.widgets.stats_page import IDX_GZ_FILTER, NPZ_FILTER, dataset_export_path
from tests.widgets.conftest import save_artifact
from tests.widgets.helpers import draw_and_wait, log_labelled

#: Small enough for a test (about 4 s on 2 cores), large enough to learn another hand.
QUICK = FinetuneConfig(epochs=1, replay=2000, learning_rate=0.0003)


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return data.load(mnist_dir)


def versions(db_url):
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, kind, parent_id, weights_sha256, path FROM model_versions ORDER BY id")
            return cur.fetchall()
    finally:
        conn.close()


def open_improve(qtbot, window):
    qtbot.waitUntil(window.act_improve.isEnabled, timeout=30000)
    with qtbot.waitSignal(window.controller.learning.labelledCount, timeout=10000):
        window.act_improve.trigger()
    dialog = window.dialogs.get(ImproveDialog)
    qtbot.waitExposed(dialog)
    return dialog


def test_too_few_then_cancel_then_not_kept(qtbot, make_window, settings, mnist, db_url):
    # Long enough to cancel after its first progress report.
    window = make_window(settings, finetune=FinetuneConfig(epochs=3, replay=2000, learning_rate=0.0003))
    c = window.controller
    qtbot.waitUntil(lambda: c.models.model_version_id is not None, timeout=10000)
    old = c.models.model_info
    # Plain MNIST digits the model reads right: nothing to learn.
    images, labels = mnist.test.images[3000:3100], mnist.test.labels[3000:3100]
    right = np.array([p.digit for p in c.models.predictor.predict_batch(images)]) == labels
    images, labels = images[right][:60], labels[right][:60]

    log_labelled(c, images[:7], labels[:7], "plain")
    dialog = open_improve(qtbot, window)
    assert "<b>7</b>" in dialog.count_label.text() and "at least <b>20</b>" in dialog.count_label.text()
    assert not dialog.start_button.isEnabled()
    with qtbot.waitSignal(c.learning.improveFailed, timeout=10000) as failed:
        c.learning.start_improve()  # (the button is off; the controller says why too)
    assert "at least 20" in failed.args[0] and "there are 7" in failed.args[0]
    save_artifact(dialog, "improve_dialog_too_few.png")

    log_labelled(c, images[7:], labels[7:], "plain-more")
    with qtbot.waitSignal(c.learning.labelledCount, timeout=10000):
        c.learning.count_labelled()
    assert "<b>60</b>" in dialog.count_label.text() and dialog.start_button.isEnabled()

    # Cancel: the old model stays, nothing is written.
    with qtbot.waitSignal(c.learning.improveProgress, timeout=60000):
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert dialog.running and dialog.cancel_button.isEnabled() and not dialog.start_button.isEnabled()
    assert window.training_bar.isVisible()
    with qtbot.waitSignal(c.learning.improveCancelled, timeout=30000):
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert c.models.model_info is old and not c.learning.improve_running
    assert "current model stays" in dialog.status.text() and dialog.start_button.isEnabled()
    assert not Path(settings.models_dir).exists() or not any(Path(settings.models_dir).iterdir())
    assert not window.training_bar.isVisible()

    # Run to the end: held-out accuracy is 100 % already, so the new model is not kept.
    with qtbot.waitSignal(c.learning.improveFinished, timeout=120000) as done:
        dialog.start_button.click()
    r = done.args[0]
    assert not r.kept and "did not improve" in r.reason and r.user_before == 100.0
    assert c.models.model_info is old and r.info is None
    assert [v[1] for v in versions(db_url)] == ["shipped"]  # no new version
    assert "Not kept" in dialog.verdict.text() and "stays in use" in dialog.verdict.text()
    assert dialog.cells["user"][0].text() == "100.0 %" and dialog.cells["mnist"][0].text().endswith("%")
    save_artifact(dialog, "improve_dialog_not_kept.png")


def test_improve_keeps_a_better_model_and_swaps_it_in(qtbot, make_window, settings, qsettings, mnist, db_url):
    window = make_window(settings, finetune=QUICK)
    c = window.controller
    qtbot.waitUntil(lambda: c.models.model_version_id is not None, timeout=10000)
    base_id, base_sha = c.models.model_version_id, c.models.model_info.sha256
    # A user who writes thick, slanted, narrow digits: MNIST training digits in another hand.
    images = restyle(mnist.train.images[1000:1120], thickness=3, slant_deg=-40, squash=0.6)
    log_labelled(c, images, mnist.train.labels[1000:1120], "restyled")
    dialog = open_improve(qtbot, window)
    assert "<b>120</b>" in dialog.count_label.text()
    with qtbot.waitSignal(c.learning.improveFinished, timeout=120000) as done:
        dialog.start_button.click()
    r = done.args[0]
    assert r.kept, r.reason
    assert r.user_after > r.user_before and r.mnist_before - r.mnist_after <= 0.2
    # Swapped in without a restart, remembered, and recorded as a child of the old version.
    assert c.models.model_info is r.info and c.models.model_info.sha256 != base_sha
    assert r.info.path.parent == Path(settings.models_dir) and qsettings.value("model/path") == str(r.info.path)
    qtbot.waitUntil(lambda: c.models.model_version_id == r.version_id, timeout=10000)
    assert versions(db_url)[-1] == (r.version_id, "fine-tuned", base_id, r.info.sha256, str(r.info.path))
    assert window.model_label.text().startswith(f"Model #{r.version_id}:")
    assert "Kept" in dialog.verdict.text() and f"#{r.version_id}" in dialog.verdict.text()
    assert dialog.cells["user"][1].text() == f"{r.user_after:.1f} %"
    save_artifact(dialog, "improve_dialog_kept.png")
    dialog.hide()
    # The new model predicts at once, and its predictions carry its version.
    window.activateWindow()
    draw_and_wait(qtbot, window, 7)
    assert c.prediction.current_prediction.model_sha256 == r.info.sha256
    with qtbot.waitSignal(c.feedback.logged, timeout=10000):
        QTest.keyClick(window, Qt.Key.Key_Return)
    conn = psycopg2.connect(db_url)
    with conn.cursor() as cur:
        cur.execute("SELECT model_version_id FROM predictions ORDER BY id DESC LIMIT 1")
        assert cur.fetchone() == (r.version_id,)
    conn.close()


def test_export_dataset_npz_and_idx(qtbot, window, mnist, tmp_path):
    c = window.controller
    with qtbot.waitSignal(c.statistics.datasetExportFailed, timeout=10000) as failed:
        window.stats_page.export_dataset(tmp_path / "none.npz")
    assert "no labelled drawings" in failed.args[0] and not (tmp_path / "none.npz").exists()
    log_labelled(c, mnist.test.images[:5], mnist.test.labels[:5], "export")
    target = dataset_export_path(str(tmp_path / "mine"), NPZ_FILTER)
    assert target.name == "mine.npz"
    with qtbot.waitSignal(c.statistics.datasetExported, timeout=10000) as done:
        window.stats_page.export_dataset(target)
    assert done.args == [[str(target)], 5]
    got = np.load(target)
    assert got["images"].shape == (5, 28, 28) and list(got["labels"]) == list(mnist.test.labels[:5])
    assert "Exported 5 labelled drawings" in window.statusBar().currentMessage()

    target = dataset_export_path(str(tmp_path / "mine"), IDX_GZ_FILTER)
    with qtbot.waitSignal(c.statistics.datasetExported, timeout=10000) as done:
        window.stats_page.export_dataset(target)
    images, labels = tmp_path / "mine-images-idx3-ubyte.gz", tmp_path / "mine-labels-idx1-ubyte.gz"
    assert done.args == [[str(images), str(labels)], 5]
    np.testing.assert_array_equal(read_idx(images), got["images"])
    np.testing.assert_array_equal(read_idx(labels), mnist.test.labels[:5])
    assert "mine-images-idx3-ubyte.gz and mine-labels-idx1-ubyte.gz" in window.statusBar().currentMessage()


def test_a_drop_on_mnist_is_never_green(qtbot):
    """−0.07 points on MNIST (within what the keep rule allows) is shown neutral, not as a
    gain; a gain is green; a drop beyond the rule and no gain on the user's drawings red."""
    from app.viewmodels import ImproveResult
    from app.widgets import theme
    from app.widgets.improve import ImproveDialog

    dialog = ImproveDialog()
    qtbot.addWidget(dialog)

    def colours(mnist_after: float, user_after: float) -> tuple[str, str]:
        dialog.show_result(ImproveResult(kept=True, reason="kept", mnist_before=99.40, mnist_after=mnist_after,
                                         user_before=80.0, user_after=user_after, n_train=40, n_holdout=10,
                                         seconds=3.0, base_sha256="a" * 64))
        return tuple(dialog.cells[key][2].styleSheet().split(";")[0].removeprefix("color: ")
                     for key in ("mnist", "user"))

    assert colours(99.33, 90.0) == (theme.MUTED, theme.GOOD)
    assert dialog.cells["mnist"][2].text() == "−0.07 points"
    assert colours(99.50, 80.0) == (theme.GOOD, theme.BAD)
    assert colours(99.10, 70.0) == (theme.BAD, theme.BAD)
