"""Colours shared by the stylesheet (resources/style.qss) and the pyqtgraph charts, how long
status-bar messages stay, and the loaders for the bundled stylesheet and SVG icons."""

from __future__ import annotations

import logging

from PySide6.QtGui import QIcon

from app import paths

log = logging.getLogger(__name__)

TEXT = "#2b2f36"
MUTED = "#6b7280"
PLOT_BG = "#ffffff"
ACCENT = "#2f6fde"
ACCENT_DARK = "#1f4fa8"
BAR = "#c3cad8"
GOOD = "#1f9d55"
BAD = "#d64545"
HEAT = [(244, 246, 250), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]
#: "Why this digit?": pixels that pushed the network towards its answer, and against it.
EVIDENCE_FOR = (240, 90, 30)
EVIDENCE_AGAINST = (40, 120, 255)

#: How long a passing status-bar message stays (ms): an echo of what a worker is doing
#: ("Reading x.png…", training's current step, "Label saved."); a note on what an action
#: of the user did (saved, cancelled, switched); a result worth reading (exports, warnings).
ECHO_MS = 3000
NOTE_MS = 5000
RESULT_MS = 8000
#: ... or until the next message replaces it (work under way: "Exporting…").
UNTIL_REPLACED = 0


def stylesheet() -> str:
    """The bundled style sheet; ``@ICONS@`` in it stands for the icons folder (a style
    sheet's relative urls would be relative to the working folder)."""
    path = paths.resources_dir() / "style.qss"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        log.warning("stylesheet %s not read: %s", path, exc)
        return ""
    return text.replace("@ICONS@", (paths.resources_dir() / "icons").as_posix())


def icon(name: str) -> QIcon:
    path = paths.resources_dir() / "icons" / f"{name}.svg"
    if not path.is_file():
        log.warning("icon %s missing", path)
        return QIcon()
    return QIcon(str(path))
