"""End to end on a real X server (Xvfb) with real input: start main.py, draw a digit with
xdotool, press Enter, and find the row with its label in the database.

The screenshots are kept in artifacts/ (git-ignored): xvfb_drawn.png (the prediction on
screen) and xvfb_after_enter.png.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from tests.widgets.conftest import ARTIFACTS, REPO

pytestmark = pytest.mark.xvfb

TOOLS = ("Xvfb", "xdotool", "import")


@pytest.fixture
def xserver():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: run `make system-deps` (scripts/system-deps.sh)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()  # Xvfb writes the display number once it is ready
    assert number.isdigit(), "Xvfb did not start"
    yield f":{number}"
    proc.terminate()
    proc.wait(10)


class App:
    """main.py in a subprocess; its log lines collected as they come."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen([sys.executable, str(REPO / "main.py")], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = rx.search(line)
                if m:
                    return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r}; the app said:\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self._reader.join(5)


def xdo(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True, timeout=30)


def screenshot(display: str, path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    subprocess.run(["import", "-window", "root", str(path)], env={**os.environ, "DISPLAY": display},
                   check=True, timeout=30)


def seven(x0: int, y0: int, size: int) -> list[tuple[int, int]]:
    """The strokes of a 7 as a person draws it (top bar, then the diagonal), screen px."""
    corners = [(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)]
    pts = []
    for (ax, ay), (bx, by) in zip(corners, corners[1:]):
        for i in range(25):
            t = i / 25
            pts.append((round(x0 + size * (ax + (bx - ax) * t)), round(y0 + size * (ay + (by - ay) * t))))
    pts.append((round(x0 + size * corners[-1][0]), round(y0 + size * corners[-1][1])))
    return pts


def labelled_rows(db_url: str):
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT predicted_digit, true_label, source FROM predictions")
            return cur.fetchall()
    finally:
        conn.close()


def test_draw_with_xdotool_press_enter_and_find_the_row(xserver, tmp_path, db_url, model_path, mnist_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "DB_", "DATABASE_URL"))}
    env.update(DISPLAY=xserver, QT_QPA_PLATFORM="xcb", DATABASE_URL=db_url, MNIST_MODEL_PATH=str(model_path),
               MNIST_DIR=str(mnist_dir), MNIST_DATA_HOME=str(tmp_path / "home"),
               XDG_CONFIG_HOME=str(tmp_path / "config"))  # a QSettings file of its own
    app = App(env)
    try:
        m = app.wait_for(r"canvas at x=(\d+) y=(\d+), (\d+)x(\d+)")
        x0, y0, w, h = map(int, m.groups())
        app.wait_for(r"model loaded")
        app.wait_for(r"database: online")
        pts = seven(x0, y0, min(w, h))
        xdo(xserver, "mousemove", str(pts[0][0]), str(pts[0][1]), "mousedown", "1")
        for x, y in pts[1:]:
            xdo(xserver, "mousemove", str(x), str(y))
        xdo(xserver, "mouseup", "1")
        time.sleep(1.0)  # the prediction arrives in milliseconds; let the screen settle
        screenshot(xserver, ARTIFACTS / "xvfb_drawn.png")
        xdo(xserver, "key", "Return")
        deadline = time.monotonic() + 20
        while not labelled_rows(db_url) and time.monotonic() < deadline:
            time.sleep(0.1)
        screenshot(xserver, ARTIFACTS / "xvfb_after_enter.png")
        assert labelled_rows(db_url) == [(7, 7, "canvas")]
    finally:
        rc = app.stop()
    assert rc == 0, "\n".join(app.lines[-30:])
    assert any("controller shut down" in line for line in app.lines)
