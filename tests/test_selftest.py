"""``main.py --self-test``: the check the packaged executable runs."""

import os
import subprocess
import sys
from pathlib import Path

from app.selftest import run_self_test

REPO = Path(__file__).resolve().parents[1]


def test_self_test_passes_on_a_working_checkout(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MNIST_DATA_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, str(REPO / "main.py"), "--self-test"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "self-test ok"
    assert any("20/20 bundled digits right" in l or "19/20 bundled digits right" in l for l in lines)
    assert any(l.strip().startswith("database: embedded PostgreSQL started") for l in lines)
    assert any(l.strip().startswith("training: one epoch on 20 digits in a training process") for l in lines)


def test_self_test_fails_with_the_reason(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a model")
    said = []
    assert run_self_test(model_path=bad, out=said.append) == 1
    assert said[-1].startswith("self-test FAILED at model: Model file") and "corrupt" in said[-1]


def test_self_test_fails_without_the_piece_network(tmp_path):
    said = []
    assert run_self_test(pieces_path=tmp_path / "missing.pth", out=said.append) == 1
    assert said[-1].startswith("self-test FAILED at model: the number reader's piece network")
    assert "missing.pth" in said[-1]


def test_self_test_without_a_display_chooses_offscreen(tmp_path):
    """No DISPLAY, no WAYLAND_DISPLAY, no QT_QPA_PLATFORM: Qt's default (xcb) would abort."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["MNIST_DATA_HOME"] = str(tmp_path / "home")
    out = subprocess.run([sys.executable, str(REPO / "main.py"), "--self-test"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "self-test ok"
    assert any("Qt offscreen platform renders widgets (no display found)" in l for l in lines), lines


def test_qt_platform_choice():
    from app.selftest import qt_platform_args

    assert qt_platform_args({}) == ["-platform", "offscreen"]
    assert qt_platform_args({"DISPLAY": ":0"}) == []
    assert qt_platform_args({"WAYLAND_DISPLAY": "wayland-0"}) == []
    assert qt_platform_args({"QT_QPA_PLATFORM": "xcb"}) == []  # the user's choice stands
    assert qt_platform_args({"DISPLAY": ""}) == ["-platform", "offscreen"]
