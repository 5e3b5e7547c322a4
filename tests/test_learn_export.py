"""Dataset export is atomic: a process killed while writing leaves the previous export
whole (no cut or empty file), for the .npz and for both IDX files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from app import learn
from app.ml.data import read_idx

REPO = Path(__file__).resolve().parents[1]

# Writes a large dataset of noise (slow to compress) to argv[1] with save_dataset.
WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from app.learn import UserDataset, save_dataset
    rng = np.random.default_rng(1)
    n = 60000
    data = UserDataset(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                       rng.integers(0, 10, n), [f"k{i}" for i in range(n)])
    print("writing", flush=True)
    save_dataset(data, sys.argv[1])
    print("done", flush=True)
""")


def small(n: int, seed: int) -> learn.UserDataset:
    rng = np.random.default_rng(seed)
    return learn.UserDataset(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                             rng.integers(0, 10, n), [f"u{i}" for i in range(n)])


def kill_while_writing(target: Path, files: list[Path]) -> None:
    """Run the writer and SIGKILL it once it has started writing."""
    before = {f: f.stat() if f.exists() else None for f in files}
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(REPO)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            temps = [p for p in target.parent.iterdir() if p.name.endswith((".tmp", ".tmp.gz"))]
            changed = any((f.stat() if f.exists() else None) != before[f] for f in files)
            if changed or any(p.stat().st_size > 0 for p in temps):
                break
            time.sleep(0.002)
        assert child.poll() is None, "the export finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.parametrize("name", ["mine.npz", "mine.gz", "mine"])
def test_a_kill_while_exporting_keeps_the_previous_export(tmp_path, name):
    target = tmp_path / name
    files = learn.dataset_files(target)
    previous = small(12, seed=0)
    assert learn.save_dataset(previous, target) == files
    saved = {f: f.read_bytes() for f in files}
    kill_while_writing(target, files)
    for f in files:
        assert f.read_bytes() == saved[f], f"{f.name} was changed by the killed export"
    if name.endswith(".npz"):
        with np.load(target) as got:
            np.testing.assert_array_equal(got["images"], previous.images)
    else:
        np.testing.assert_array_equal(read_idx(files[0]), previous.images)
        np.testing.assert_array_equal(read_idx(files[1]), previous.labels.astype(np.uint8))
    # The next export replaces it whole, and leaves no temporary file of its own.
    newer = small(5, seed=1)
    leftovers = {p for p in tmp_path.iterdir() if ".tmp" in p.name}
    learn.save_dataset(newer, target)
    assert {p for p in tmp_path.iterdir() if ".tmp" in p.name} == leftovers
    first = np.load(target)["images"] if name.endswith(".npz") else read_idx(files[0])
    np.testing.assert_array_equal(first, newer.images)


def test_a_kill_during_the_first_export_leaves_no_cut_file(tmp_path):
    target = tmp_path / "first.npz"
    kill_while_writing(target, [target])
    assert not target.exists()
