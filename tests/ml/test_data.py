"""MNIST files: reading, md5 checks and the download over real HTTP from a local server."""

import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from app.ml import data


def test_reads_the_real_files(mnist):
    assert mnist.train.images.shape == (60000, 28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.test.images.shape == (10000, 28, 28)
    assert mnist.train.labels.shape == (60000,) and set(np.unique(mnist.test.labels)) == set(range(10))
    assert abs(mnist.train.images.mean() / 255 - data.MEAN) < 1e-3
    assert abs(mnist.train.images.std() / 255 - data.STD) < 1e-3
    assert mnist.md5s == {name: md5 for name, (md5, _) in data.FILES.items()}


def test_missing_files_are_named_with_what_to_do(tmp_path):
    with pytest.raises(data.MNISTError, match="missing.*train-images-idx3-ubyte.gz.*MNIST_DIR"):
        data.load(tmp_path)


def test_corrupt_file_is_detected_by_md5(tmp_path, mnist_dir):
    for name in data.FILES:
        shutil.copy(mnist_dir / name, tmp_path / name)
    with open(tmp_path / "t10k-labels-idx1-ubyte.gz", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff\x00\xff")
    with pytest.raises(data.MNISTError, match="t10k-labels-idx1-ubyte.gz is corrupt.*download it again"):
        data.load(tmp_path)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """Serve a folder over HTTP on 127.0.0.1; returns its base URL."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_download_over_http_with_md5_check_and_progress(tmp_path, mnist_dir, serve):
    url = serve(mnist_dir)
    target = tmp_path / "mnist"
    seen = {}
    loaded = data.ensure(target, mirrors=[url], progress=lambda name, done, total: seen.__setitem__(name, (done, total)))
    assert len(loaded.train) == 60000
    assert set(seen) == set(data.FILES)
    assert all(done == total > 0 for done, total in seen.values())
    assert sorted(p.name for p in target.iterdir()) == sorted(data.FILES)


def test_a_corrupt_mirror_is_skipped_for_the_next(tmp_path, mnist_dir, serve):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in data.FILES:
        shutil.copy(mnist_dir / name, bad / name)
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(b"not the labels")
    target = tmp_path / "mnist"
    data.download(target, mirrors=[serve(bad), serve(mnist_dir)])
    assert data.verify(target)


def test_download_failure_leaves_no_partial_file_and_says_what_to_do(tmp_path, mnist_dir, serve):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in data.FILES:
        (bad / name).write_bytes((mnist_dir / name).read_bytes()[:5000])  # truncated everywhere
    target = tmp_path / "mnist"
    with pytest.raises(data.MNISTError, match="md5 mismatch.*copy the four MNIST files"):
        data.download(target, mirrors=[serve(bad)])
    assert list(target.iterdir()) == []


def test_offline_gives_a_clear_message(tmp_path):
    # Port 9 on loopback: nothing listens there, the connection is refused at once.
    with pytest.raises(data.MNISTError, match=r"Could not download.*offline.*MNIST_DIR"):
        data.download(tmp_path, mirrors=["http://127.0.0.1:9/"])
    assert list(tmp_path.iterdir()) == []
