"""Weights files that describe themselves, loaded safely and saved atomically.

A file is a ``torch.save``'d dict of plain values and tensors (so
``torch.load(weights_only=True)`` reads it): format tag, architecture name and its
arguments, normalisation, class count, training metadata and the state dict.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from app.fsutil import fsync_dir
from app.ml.data import MEAN, STD
from app.ml.errors import ModelFileError
from app.ml.model import ARCHITECTURES, build_model

log = logging.getLogger(__name__)

FORMAT = "mnist-classifier-weights"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    model: nn.Module
    arch: str
    arch_kwargs: dict
    metadata: dict = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None

    @property
    def test_accuracy(self) -> float | None:
        return self.metadata.get("test_accuracy")


def save(path: Path, model: nn.Module, arch: str, arch_kwargs: dict | None = None,
         metadata: dict | None = None) -> str:
    """Write the weights atomically (temp file, fsync, rename); return the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}),
        "num_classes": 10,
        "input_size": [28, 28],
        "normalization": {"mean": MEAN, "std": STD},
        "metadata": dict(metadata or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; weights are ordinary files
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(path: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a weights file; any problem becomes a ``ModelFileError`` that names the file."""
    path = Path(path)
    retrain = "Train a new model (Model > Train..., or `python run_model.py --mode train`) or choose another weights file."
    if not path.is_file():
        raise ModelFileError(f"Model file not found: {path}. {retrain}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated zip, garbage, pickle with code objects...
        raise ModelFileError(f"Model file {path} is corrupt or not a weights file ({_short(exc)}). {retrain}") from exc
    if isinstance(payload, dict) and "state_dict" not in payload and all(
            isinstance(v, torch.Tensor) for v in payload.values()):
        payload = {"format": FORMAT, "arch": "mnist_cnn", "state_dict": payload}  # a bare state dict
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"Model file {path} is not a MNIST classifier weights file. {retrain}")
    if payload.get("format_version", 1) > FORMAT_VERSION:
        raise ModelFileError(f"Model file {path} was written by a newer version of this program. "
                             f"Update the program or use another weights file.")
    arch = payload.get("arch", "mnist_cnn")
    if arch not in ARCHITECTURES:
        raise ModelFileError(f"Model file {path} is for an unknown architecture {arch!r}. {retrain}")
    if payload.get("num_classes", 10) != 10:
        raise ModelFileError(f"Model file {path} has {payload['num_classes']} classes, not 10. {retrain}")
    arch_kwargs = dict(payload.get("arch_kwargs") or {})
    try:
        model = build_model(arch, **arch_kwargs)
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ModelFileError(f"Model file {path} does not match the {arch!r} network ({_short(exc)}). {retrain}") from exc
    model.to(device).eval()
    return LoadedModel(model=model, arch=arch, arch_kwargs=arch_kwargs, metadata=dict(payload.get("metadata") or {}),
                       path=path, sha256=file_sha256(path))


def _short(exc: Exception, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."
