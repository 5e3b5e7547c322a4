"""Start-up: the window is painted before torch is imported, and a SIGTERM shuts down
cleanly (workers stopped, no crash)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.widgets.conftest import REPO

CHILD = """
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from app import application
def painted():
    print("TORCH_AT_FIRST_PAINT", "torch" in sys.modules, flush=True)
    QTimer.singleShot(300, QApplication.quit)
rc = application.run(["main.py"], first_paint_hook=painted)
print("TORCH_AT_EXIT", "torch" in sys.modules, flush=True)
sys.exit(rc)
"""


def test_window_is_painted_before_torch_is_imported(tmp_path, model_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MNIST_DATA_HOME=str(tmp_path / "home"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), MNIST_MODEL_PATH=str(model_path),
               DATABASE_URL="postgresql://postgres@127.0.0.1:1/mnist",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TORCH_AT_FIRST_PAINT False" in out.stdout
    assert "controller shut down" in out.stderr
    assert "Fatal" not in out.stderr and "Traceback" not in out.stderr
