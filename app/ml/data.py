"""The MNIST files: find, verify (md5), download and read them into memory.

The four official IDX files are read with numpy and gzip; no torchvision.  Everybody
who needs them (the app's training, ``run_model.py``, the tests, the benchmarks) calls
``find_or_fetch`` / ``load_or_fetch`` with the settings: the folder is an explicit one
(``--data-dir``), else ``settings.mnist_dir`` (``MNIST_DIR``, else ``<data folder>/mnist``);
missing files are downloaded there, from ``settings.mnist_mirror`` (``MNIST_MIRROR``)
first, then the public mirrors.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from app.ml.errors import MNISTError

log = logging.getLogger(__name__)

#: name -> (md5 of the .gz file, number of items)
FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 60000),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", 60000),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 10000),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 10000),
}

#: Public mirrors of the original files, tried in order.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

MEAN = 0.1307
STD = 0.3081

ProgressFn = Callable[[str, int, int], None]  # (file name, bytes done, bytes total or 0)


@dataclass(frozen=True)
class MNISTSplit:
    images: np.ndarray  # (N, 28, 28) uint8, white digit on black
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> "MNISTSplit":
        if n is None or n >= len(self):
            return self
        return MNISTSplit(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class MNIST:
    train: MNISTSplit
    test: MNISTSplit
    md5s: dict[str, str]


def md5_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_files(data_dir: Path) -> list[str]:
    return [name for name in FILES if not (Path(data_dir) / name).is_file()]


def verify(data_dir: Path) -> dict[str, str]:
    """Check the md5 of each file; raise ``MNISTError`` naming the bad or missing ones."""
    data_dir = Path(data_dir)
    missing = missing_files(data_dir)
    if missing:
        raise MNISTError(
            f"MNIST files missing in {data_dir}: {', '.join(missing)}. "
            f"Download them (run_model.py does this when online) or copy the four "
            f"files {', '.join(FILES)} into that folder, or point --data-dir / MNIST_DIR at them.")
    sums = {}
    for name, (expected, _) in FILES.items():
        actual = md5_of(data_dir / name)
        if actual != expected:
            raise MNISTError(
                f"{data_dir / name} is corrupt (md5 {actual}, expected {expected}). "
                f"Delete it and download it again, or replace it with the official file.")
        sums[name] = actual
    return sums


def mirrors_with(first: str | None) -> tuple[str, ...]:
    """The download mirrors in the order they are tried: ``first`` (the ``MNIST_MIRROR``
    setting, a base URL holding the four .gz files), then the public ones."""
    if not first:
        return MIRRORS
    first = first.rstrip("/") + "/"
    return (first, *(m for m in MIRRORS if m != first))


def find_or_fetch(settings, data_dir: Path | None = None, *, allow_download: bool = True,
                  progress: ProgressFn | None = None) -> Path:
    """The folder that holds the four MNIST files, downloading the missing ones first.

    ``data_dir`` (an explicit ``--data-dir``) wins over ``settings.mnist_dir``.  Missing
    files come from ``settings.mnist_mirror`` first, then the public mirrors, each checked
    against its md5 and kept only then.  Raises ``MNISTError`` saying what to do when the
    files are missing and cannot be downloaded (or downloading is not allowed).
    """
    folder = Path(data_dir or settings.mnist_dir)
    if missing_files(folder):
        if not allow_download:
            verify(folder)  # raises the "missing" message
        log.info("MNIST files missing in %s; downloading", folder)
        download(folder, mirrors=mirrors_with(getattr(settings, "mnist_mirror", None)), progress=progress)
    return folder


def load_or_fetch(settings, data_dir: Path | None = None, *, allow_download: bool = True,
                  progress: ProgressFn | None = None) -> "MNIST":
    """``find_or_fetch``, then ``load`` (md5-checked): the MNIST images in memory."""
    return load(find_or_fetch(settings, data_dir, allow_download=allow_download, progress=progress))


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    # zlib.decompress releases the GIL for the whole file (gzip.open reads in small
    # chunks and holds it), so a GUI thread stays responsive while MNIST loads.
    try:
        raw = zlib.decompress(Path(path).read_bytes(), 31)
    except zlib.error as exc:
        raise MNISTError(f"{path} is not a valid gzip file ({exc}). Delete it and download it again.") from exc
    return _parse_idx(raw, path, expected_dims)


def _parse_idx(raw: bytes, path: Path, expected_dims: int | None) -> np.ndarray:
    """IDX bytes -> array.  A 1-dimensional file is a labels file: its values must be 0..9."""
    if len(raw) < 4:
        raise MNISTError(f"{path} is too short to be an IDX file ({len(raw)} bytes; the header alone is 4). "
                         f"It is damaged or not an IDX file: use another copy.")
    zero, dtype_code, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or dims == 0 or (expected_dims is not None and dims != expected_dims):
        what = f" with {expected_dims} dimensions" if expected_dims is not None else ""
        raise MNISTError(f"{path} is not an IDX file of unsigned bytes{what}.")
    if len(raw) < 4 + 4 * dims:
        raise MNISTError(f"{path} is truncated: its header names {dims} dimensions but the file ends "
                         f"after {len(raw)} bytes. Use another copy.")
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != math.prod(shape):
        raise MNISTError(f"{path} is truncated: header says {shape}, found {data.size} bytes of data.")
    if dims == 1 and data.size and int(data.max()) > 9:
        bad = int(data.max())
        raise MNISTError(f"{path} holds label {bad} (at position {int(np.argmax(data == bad))}); "
                         f"digit labels run from 0 to 9. The file is damaged or not a labels file.")
    return data.reshape(shape)


def load(data_dir: Path, check_md5: bool = True) -> MNIST:
    """Read the four files into memory (about 55 MB as uint8)."""
    data_dir = Path(data_dir)
    md5s = verify(data_dir) if check_md5 else {}
    if not check_md5 and missing_files(data_dir):
        verify(data_dir)  # raises the "missing" message
    train = MNISTSplit(_read_idx(data_dir / "train-images-idx3-ubyte.gz", 3),
                       _read_idx(data_dir / "train-labels-idx1-ubyte.gz", 1).astype(np.int64))
    test = MNISTSplit(_read_idx(data_dir / "t10k-images-idx3-ubyte.gz", 3),
                      _read_idx(data_dir / "t10k-labels-idx1-ubyte.gz", 1).astype(np.int64))
    for split, (n_img, n_lab) in (("train", (len(train.images), len(train.labels))),
                                  ("test", (len(test.images), len(test.labels)))):
        if n_img != n_lab:
            raise MNISTError(f"MNIST {split} set in {data_dir}: {n_img} images but {n_lab} labels.")
    return MNIST(train=train, test=test, md5s=md5s)


def download(data_dir: Path, mirrors: Iterable[str] = MIRRORS, progress: ProgressFn | None = None,
             timeout: float = 30.0) -> None:
    """Fetch each missing file from the first mirror that serves it with the right md5.

    A file is written to ``<name>.<pid>.part`` and renamed only once its md5 matches, so a
    broken download never leaves a partial or corrupt file behind.
    """
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MNISTError(
            f"Cannot create the MNIST folder {data_dir} ({exc.strerror or exc}). Set MNIST_DATA_HOME "
            f"(the data folder) or MNIST_DIR to a folder you can write to.") from exc
    mirrors = list(mirrors)
    for name in missing_files(data_dir):
        expected = FILES[name][0]
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                _fetch(url, data_dir / name, expected, progress, timeout)
                break
            except (OSError, urllib.error.URLError, MNISTError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                log.warning("download of %s failed: %s", url, reason)
                errors.append(f"{url} ({reason})")
        else:
            still = missing_files(data_dir)
            where = (f"None of the four files is in {data_dir} yet." if len(still) == len(FILES)
                     else f"Still missing in {data_dir}: {', '.join(still)}.")
            raise MNISTError(
                f"Could not download {name}: {'; '.join(errors)}. This computer looks offline, or no "
                f"mirror serves the file. {where} To go on, copy the four MNIST files "
                f"({', '.join(FILES)}) into {data_dir}, or point --data-dir / MNIST_DIR at a folder "
                f"that has them, or set MNIST_MIRROR to a URL that serves them (a local "
                f"`python -m http.server` in a folder holding them will do).")


def _fetch(url: str, target: Path, expected_md5: str, progress: ProgressFn | None, timeout: float) -> None:
    part = target.with_name(f"{target.name}.{os.getpid()}.part")  # two downloaders never share one
    digest = hashlib.md5()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "mnist-classifier"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while block := resp.read(1 << 16):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(target.name, done, total)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected_md5:
            raise MNISTError(f"md5 mismatch ({digest.hexdigest()}, expected {expected_md5})")
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def ensure(data_dir: Path, allow_download: bool = True, progress: ProgressFn | None = None,
           mirrors: Iterable[str] = MIRRORS) -> MNIST:
    """Load MNIST from ``data_dir``, downloading missing files first when allowed."""
    data_dir = Path(data_dir)
    if missing_files(data_dir) and allow_download:
        log.info("MNIST files missing in %s; downloading", data_dir)
        download(data_dir, mirrors=mirrors, progress=progress)
    return load(data_dir)


def tqdm_progress() -> ProgressFn:
    """A terminal progress bar for ``download``."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def report(name: str, done: int, total: int) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(total=total or None, unit="B", unit_scale=True, desc=name)
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()

    return report


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzipped if ``path`` ends in .gz), the MNIST format."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header)
        fh.write(arr.tobytes())
    return path


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or not)."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = zlib.decompress(raw, 31)
        except zlib.error as exc:
            raise MNISTError(f"{path} is not a valid gzip file ({exc}). Use another copy.") from exc
    return _parse_idx(raw, path, None)
