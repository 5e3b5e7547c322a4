"""Model versions in the window: each logged drawing carries the id of the version that
made it; the statistics filter by version and compare two; Model → Versions… lists them
and switches back (a missing weights file gives a clear message)."""

from __future__ import annotations

from pathlib import Path

import psycopg2
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.widgets.compare import CompareDialog
from app.widgets.versions import VersionsDialog
from tests.widgets.conftest import save_artifact
from tests.db.dbhelpers import fetch
from tests.widgets.helpers import draw_and_wait


def query(db_url, sql, *args):
    return fetch(db_url, sql, args)


def other_weights(model_path: Path, folder: Path) -> Path:
    """The same network saved again with other metadata: another file, another version."""
    from app.ml import checkpoint

    loaded = checkpoint.load(model_path)
    out = folder / "other.pth"
    checkpoint.save(out, loaded.model, loaded.arch, loaded.arch_kwargs,
                    dict(loaded.metadata, created_at="2030-01-01T00:00:00+00:00", note="a copy"))
    return out


def give_feedback(qtbot, window, digit: int, key) -> None:
    draw_and_wait(qtbot, window, digit)
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
        QTest.keyClick(window, key)


def test_a_logged_drawing_carries_its_model_version(qtbot, window, db_url, model_path, model_arch):
    c = window.controller
    qtbot.waitUntil(lambda: c.models.model_version_id is not None, timeout=10000)
    give_feedback(qtbot, window, 7, Qt.Key.Key_Return)
    [(version_id, kind, sha, path, parent)] = query(
        db_url, "SELECT p.model_version_id, v.kind, v.weights_sha256, v.path, v.parent_id "
                "FROM predictions p JOIN model_versions v ON v.id = p.model_version_id")
    assert version_id == c.models.model_version_id
    assert (kind, sha, path, parent) == ("shipped", c.models.model_info.sha256, str(model_path), None)
    assert window.model_label.text().startswith(f"Model #{version_id}: {model_arch}")


def test_versions_filter_compare_and_switch_back(qtbot, window, db_url, model_path, tmp_path):
    c = window.controller
    qtbot.waitUntil(lambda: c.models.model_version_id is not None, timeout=10000)
    first, first_sha = c.models.model_version_id, c.models.model_info.sha256
    first_accuracy = c.models.model_info.metadata["test_accuracy"]
    give_feedback(qtbot, window, 7, Qt.Key.Key_Return)  # version 1: right
    other = other_weights(model_path, tmp_path)
    with qtbot.waitSignal(c.models.modelReady, timeout=10000):
        c.models.load_model(other)  # what Model → Load weights… does
    qtbot.waitUntil(lambda: c.models.model_version_id not in (None, first), timeout=10000)
    second = c.models.model_version_id
    give_feedback(qtbot, window, 1, Qt.Key.Key_3)  # version 2: wrong
    assert query(db_url, "SELECT model_version_id, true_label FROM predictions ORDER BY id") == \
        [(first, 7), (second, 3)]

    # Statistics: all versions, then each.
    with qtbot.waitSignal(c.statistics.statsReady, timeout=10000):
        window.tabs.setCurrentIndex(1)
    stats = window.stats_page.tab
    assert stats.version_combo.count() == 3 and stats.selected_version() is None
    assert (stats.total_value.text(), stats.accuracy_value.text()) == ("2", "50.0 %")
    with qtbot.waitSignal(c.statistics.statsReady, timeout=10000):
        stats.select_version(first)
    assert (stats.total_value.text(), stats.accuracy_value.text(), stats.row_count()) == ("1", "100.0 %", 1)
    with qtbot.waitSignal(c.statistics.statsReady, timeout=10000):
        stats.select_version(second)
    assert (stats.total_value.text(), stats.accuracy_value.text()) == ("1", "0.0 %")
    assert stats.selected_version() == second
    save_artifact(window, "statistics_by_version.png")

    # Compare the two (from the statistics tab: the one in use against the other).
    with qtbot.waitSignal(c.models.comparisonReady, timeout=10000):
        stats.compare_button.click()
    compare = window.dialogs.get(CompareDialog)
    qtbot.waitExposed(compare)
    assert compare.pair() == (first, second)
    assert compare.a_value.text() == "100.0 %" and compare.b_value.text() == "0.0 %"
    assert compare.delta_value.text().startswith("−100.0")
    assert compare.table.item(7, 1).text().startswith("100 %")
    assert compare.table.item(3, 2).text().startswith("0 %")  # (the 1 labelled as a 3)
    save_artifact(compare, "compare_versions.png")
    compare.hide()

    # Model → Versions…: both, the one in use marked; switch back to the first.
    with qtbot.waitSignal(c.models.versionsReady, timeout=10000):
        window.act_versions.trigger()
    dialog = window.dialogs.get(VersionsDialog)
    qtbot.waitExposed(dialog)
    assert [v.id for v in dialog.rows()] == [second, first]
    assert "in use" in dialog.table.item(0, 0).text() and dialog.table.item(1, 0).text().startswith(f"#{first} shipped")
    assert dialog.table.item(1, 3).text() == f"{first_accuracy:.2f} %"  # MNIST test accuracy from its metrics
    assert dialog.table.item(1, 4).text().startswith("100.0 %")  # on the labelled drawings
    assert dialog.table.item(1, 5).text() == first_sha[:12]
    save_artifact(dialog, "versions_dialog.png")
    dialog.select_version(first)
    with qtbot.waitSignal(c.models.modelVersion, timeout=10000, check_params_cb=lambda v: v == first):
        dialog.use_button.click()
    assert c.models.model_info.sha256 == first_sha and c.models.model_info.path == model_path
    assert window.model_label.text().startswith(f"Model #{first}:")
    dialog.hide()
    window.activateWindow()
    window.tabs.setCurrentIndex(0)
    give_feedback(qtbot, window, 1, Qt.Key.Key_Return)
    assert query(db_url, "SELECT model_version_id FROM predictions ORDER BY id DESC LIMIT 1") == [(first,)]

    # The other version's file is gone: a clear message, and the model stays.
    other.unlink()
    with qtbot.waitSignal(c.models.versionsReady, timeout=10000):
        window.act_versions.trigger()
    assert "(missing)" in dialog.table.item(0, 6).text()
    dialog.select_version(second)
    with qtbot.waitSignal(c.models.versionSwitchFailed, timeout=10000) as failed:
        dialog.use_button.click()
    assert "missing" in failed.args[0] and str(other) in failed.args[0] and "stays in use" in failed.args[0]
    assert c.models.model_info.sha256 == first_sha and c.models.model_version_id == first
    assert "missing" in window.last_message.text()
    assert window.model_label.text().startswith(f"Model #{first}:")


def test_a_version_waits_for_an_offline_database(qtbot, make_window, settings, embedded_pg):
    """The model is loaded while the database cannot be reached: it is registered as
    soon as the database is there."""
    import uuid

    from psycopg2 import sql

    name = f"late_{uuid.uuid4().hex[:10]}"
    w = make_window(settings.with_(database_url=embedded_pg.url_for(name)), wait_db=False,
                    db_poll_ms=300)  # look again often
    c = w.controller
    qtbot.waitUntil(lambda: not c.database.state.starting, timeout=30000)
    assert not c.database.state.online and c.models.model_version_id is None
    assert "not recorded" in w.model_label.toolTip()
    admin = psycopg2.connect(embedded_pg.admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        qtbot.waitUntil(lambda: c.models.model_version_id is not None, timeout=20000)
        assert query(embedded_pg.url_for(name), "SELECT id, kind, weights_sha256 FROM model_versions") == \
            [(c.models.model_version_id, "shipped", c.models.model_info.sha256)]
        assert w.model_label.text().startswith(f"Model #{c.models.model_version_id}:")
    finally:
        w.close()
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def test_a_model_trained_from_scratch_has_no_parent_arrow(qtbot):
    """A version made by Train (from scratch) shows no "← #n": it comes from no version,
    even when the database recorded the one in use then; a fine-tuned one does."""
    import datetime as dt

    from app.viewmodels import VersionRow

    when = dt.datetime(2026, 11, 26, 14, 5, tzinfo=dt.timezone.utc)
    rows = [VersionRow(id=4, parent_id=3, created_at=when, arch="mnist_cnn", kind="fine-tuned", name=None,
                       sha256="d" * 64, path="/m/d.pth", mnist_accuracy=99.3),
            VersionRow(id=3, parent_id=2, created_at=when, arch="mnist_cnn", kind="trained", name=None,
                       sha256="c" * 64, path="/m/c.pth", mnist_accuracy=98.9),
            VersionRow(id=2, parent_id=None, created_at=when, arch="mnist_cnn", kind="shipped", name=None,
                       sha256="b" * 64, path="/m/b.pth", mnist_accuracy=99.4)]
    dialog = VersionsDialog()
    qtbot.addWidget(dialog)
    dialog.show_versions(rows, 4)
    titles = [dialog.table.item(r, 0).text() for r in range(3)]
    assert titles[0].startswith("#4 fine-tuned  ← #3")
    assert titles[1] == "#3 trained" and titles[2] == "#2 shipped"
    assert rows[0].describe().endswith("· from #3") and "from" not in rows[1].describe()
