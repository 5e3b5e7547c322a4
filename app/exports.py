"""The names of the files the app exports: one home for them.

File → Export predictions to CSV… suggests ``predictions.csv``.  File → Export dataset…
suggests ``my-digits.npz`` and writes, for a chosen ``name``:

- ``name.npz``: one NumPy archive (images, labels, uuids);
- ``name.gz``: MNIST-style IDX files, gzipped: ``name-images-idx3-ubyte.gz`` and
  ``name-labels-idx1-ubyte.gz``;
- ``name.idx``: the same, not compressed (``name-images-idx3-ubyte``, ...).

No Qt and no core here: the widgets, the controllers and app.learn all ask this module.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: What File → Export predictions to CSV… suggests.
CSV_NAME = "predictions.csv"
#: What File → Export dataset… suggests.
DATASET_NAME = "my-digits.npz"
#: The endings that choose a dataset format.
NPZ, IDX_GZ, IDX = ".npz", ".gz", ".idx"
DATASET_SUFFIXES = (NPZ, IDX_GZ, IDX)


def dataset_path(path: str | Path, suffix: str = NPZ) -> Path:
    """The name for a dataset export: a name that ends in a known suffix keeps it (and
    so its format); any other gets ``suffix``."""
    p = Path(path)
    if p.name.endswith(DATASET_SUFFIXES):
        return p
    return p.with_name(p.name + suffix)


def dataset_files(path: str | Path) -> list[Path]:
    """The files an export to ``path`` writes: ``[x.npz]``, or the images and labels IDX
    files for ``x.gz`` / ``x.idx``."""
    path = Path(path)
    if path.suffix == NPZ:
        return [path]
    gz = IDX_GZ if path.name.endswith(IDX_GZ) else ""
    stem = path.name.removesuffix(IDX_GZ).removesuffix(IDX)
    return [path.with_name(f"{stem}-images-idx3-ubyte{gz}"), path.with_name(f"{stem}-labels-idx1-ubyte{gz}")]
