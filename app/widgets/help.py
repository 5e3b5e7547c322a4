"""The texts of Help → Keyboard shortcuts, Help → About and Model → About this model.

The shortcut list is made from the window's actions themselves (their shortcuts and
status tips), menu by menu, so it cannot drift from what the keys do.
"""

from __future__ import annotations

import html
import logging

from PySide6.QtGui import QAction, QKeySequence

from app.viewmodels import ModelInfo

log = logging.getLogger(__name__)


def keys_of(action: QAction) -> str:
    """An action's shortcuts as people read them: "Esc, Del"."""
    return ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())


def table(rows: list[tuple[str, str]]) -> str:
    """Rows of (name, value), both HTML, as a two-column table."""
    return "<table cellspacing=4>" + "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows) \
        + "</table>"


_table = table


def shortcuts_html(sections: list[tuple[str, list[QAction]]], group: list[QAction] | None = None,
                   mouse: str = "") -> str:
    """A table of the actions that have shortcuts, under their menus' names; ``group``
    (the digit keys) shortcuts a run of actions that share a status tip as one line."""
    rows: list[tuple[str, str]] = []
    for title, actions in sections:
        keyed = [a for a in actions if not a.isSeparator() and a.shortcuts()]
        if not keyed:
            continue
        rows.append((f"<i>{html.escape(title.replace('&', ''))}</i>", ""))
        rows += [(html.escape(keys_of(a)), html.escape(a.statusTip() or a.text().replace("&", ""))) for a in keyed]
    if group:
        rows.append((html.escape(f"{keys_of(group[0])} – {keys_of(group[-1])}"),
                     html.escape(group[0].whatsThis() or group[0].statusTip())))
    text = _table(rows)
    if mouse:
        text += f"<p>{html.escape(mouse)}</p>"
    return text


def about_html(title: str, version: str) -> str:
    return (f"<h3>{html.escape(title)} {html.escape(version)}</h3>"
            "<p>Draw a digit; a convolutional network trained on MNIST reads it. "
            "Your feedback is stored in PostgreSQL and shown as statistics.</p>"
            "<p>PySide6 · pyqtgraph · PyTorch · PostgreSQL</p>")


def model_html(info: ModelInfo | None, version_id: int | None) -> str:
    """Architecture, accuracy, date, file and version of the model in use."""
    if info is None:
        return "No model is loaded yet."
    m = info.metadata
    rows = [("Version", f"#{version_id} ({info.kind})" if version_id is not None
             else f"{info.kind}, not recorded in the database yet"),
            ("Architecture", f"{info.arch}<br><small>{html.escape(info.description)}</small>"),
            ("Test accuracy", f"{info.test_accuracy:.2f} %" if info.test_accuracy is not None else "unknown"),
            ("Trained", html.escape(str(info.created_at or "unknown"))),
            ("Epochs", html.escape(str(m.get("epochs", "?")))),
            ("Training images", html.escape(str(m.get("train_samples", "?")))),
            ("File", html.escape(str(info.path))),
            ("SHA-256", f"<small>{info.sha256}</small>")]
    return _table(rows)
