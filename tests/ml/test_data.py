"""MNIST files: reading, md5 checks and the download over real HTTP from a local server."""

import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from app.ml import data
from app.settings import Settings


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


# ---- finding or fetching the files the way the app does ---------------------------------
class _CountingHandler(_QuietHandler):
    requests: list[str] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def counting_mirror(mnist_dir):
    """A local mirror of the four files that records what it was asked for."""
    seen: list[str] = []
    handler = type("Handler", (_CountingHandler,), {"requests": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(mnist_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    server.shutdown()
    server.server_close()


def test_the_mirror_setting_comes_first_in_the_download_list():
    mirrors = data.mirrors_with("http://127.0.0.1:8000/mnist")
    assert mirrors[0] == "http://127.0.0.1:8000/mnist/"
    assert mirrors[1:] == data.MIRRORS
    assert data.mirrors_with(None) == data.MIRRORS
    assert data.mirrors_with(data.MIRRORS[1]) == (data.MIRRORS[1], data.MIRRORS[0], data.MIRRORS[2])


def test_find_or_fetch_downloads_into_the_data_folder_from_the_mirror_setting(tmp_path, counting_mirror):
    url, seen = counting_mirror
    settings = Settings.load(env={"MNIST_DATA_HOME": str(tmp_path / "home"), "MNIST_MIRROR": url}, dotenv_path=None)
    assert settings.mnist_mirror == url
    progress = []
    folder = data.find_or_fetch(settings, progress=lambda name, done, total: progress.append((name, done, total)))
    assert folder == tmp_path / "home" / "mnist"
    assert sorted(seen) == sorted("/" + name for name in data.FILES)  # from the local mirror, first
    assert data.verify(folder) == {name: md5 for name, (md5, _) in data.FILES.items()}
    assert {name for name, _, _ in progress} == set(data.FILES)
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.FILES)  # no partial files
    # A second call finds them: nothing is downloaded again.
    assert data.find_or_fetch(settings) == folder and len(seen) == 4
    assert len(data.load_or_fetch(settings).test) == 10000 and len(seen) == 4


def test_an_explicit_folder_wins_over_the_settings(tmp_path, mnist_dir):
    settings = Settings.load(env={"MNIST_DATA_HOME": str(tmp_path / "home")}, dotenv_path=None)
    assert data.find_or_fetch(settings, mnist_dir, allow_download=False) == mnist_dir
    with pytest.raises(data.MNISTError, match="MNIST files missing in .*home/mnist"):
        data.find_or_fetch(settings, allow_download=False)
    assert not (tmp_path / "home" / "mnist").exists() or not any((tmp_path / "home" / "mnist").iterdir())


def test_offline_without_a_copy_says_everything_needed(tmp_path):
    target = tmp_path / "home" / "mnist"
    with pytest.raises(data.MNISTError) as info:
        data.download(target, mirrors=data.mirrors_with("http://127.0.0.1:9/"))
    message = str(info.value)
    assert "Could not download" in message and "http://127.0.0.1:9/train-images-idx3-ubyte.gz" in message
    for name in data.FILES:  # which files, where to put them, and the other ways out
        assert name in message
    assert str(target) in message and "MNIST_DIR" in message and "MNIST_MIRROR" in message
    assert list(target.iterdir()) == []


def test_a_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(data.MNISTError, match=r"Cannot create .*file/mnist.*MNIST_DATA_HOME"):
        data.download(blocker / "mnist", mirrors=["http://127.0.0.1:9/"])


# ---- read_idx on bad files -----------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_read_idx_on_a_file_shorter_than_its_header(tmp_path, size):
    path = tmp_path / "short.idx"
    path.write_bytes(b"\x00\x00\x08\x03"[:size])
    with pytest.raises(data.MNISTError, match=r"short\.idx is too short to be an IDX file"):
        data.read_idx(path)


def test_read_idx_with_a_cut_dimension_header(tmp_path):
    path = tmp_path / "cut.idx"
    path.write_bytes(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" + b"\x00\x00")  # says 3 dims, has 1.5
    with pytest.raises(data.MNISTError, match=r"cut\.idx is truncated: its header names 3 dimensions"):
        data.read_idx(path)


def test_read_idx_refuses_labels_outside_0_to_9(tmp_path):
    path = data.write_idx(tmp_path / "labels-idx1-ubyte.gz", np.array([1, 2, 200, 3], dtype=np.uint8))
    with pytest.raises(data.MNISTError, match=r"labels-idx1-ubyte\.gz holds label 200 .*0 to 9"):
        data.read_idx(path)
    ok = data.write_idx(tmp_path / "ok-idx1-ubyte", np.arange(10, dtype=np.uint8))
    assert data.read_idx(ok).tolist() == list(range(10))


def test_read_idx_on_a_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05")  # named .gz, not gzipped
    with pytest.raises(data.MNISTError, match=r"x-idx1-ubyte\.gz is not a valid gzip file"):
        data.read_idx(path)
