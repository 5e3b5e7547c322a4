"""Weights files that describe themselves, loaded safely and saved atomically.

A file is a ``torch.save``'d dict of plain values and tensors (so
``torch.load(weights_only=True)`` reads it): format tag, architecture name and its
arguments, normalisation, class count, training metadata and the state dict.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import numbers
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from app.fsutil import fsync_dir
from app.ml.calibration import Calibration
from app.ml.data import MEAN, STD
from app.ml.errors import ModelFileError
from app.ml.model import ARCHITECTURES, build_model

log = logging.getLogger(__name__)

FORMAT = "mnist-classifier-weights"
FORMAT_VERSION = 1

#: The ranges a weights file may give each network's arguments: name -> (type, lowest, highest).
#: Arguments a network accepts that are not listed here are checked against the type of their
#: default, and every network is also held to MAX_PARAMETERS before it is built.
ARCH_ARGUMENTS: dict[str, dict[str, tuple[type, float, float]]] = {
    "mnist_cnn": {"conv_dropout": (float, 0.0, 1.0), "fc_dropout": (float, 0.0, 1.0)},
    "wide": {"width": (int, 1, 256), "dropout": (float, 0.0, 1.0)},
}
#: No network of this program comes near this (the wide one at width 256 has 7.3 million).
MAX_PARAMETERS = 20_000_000
#: A weights file larger than this is refused before it is read (the largest allowed
#: network's weights take 80 MB).
MAX_FILE_BYTES = 128 * 1024 * 1024


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
    return write_payload(path, payload)


def write_payload(path: Path, payload: dict) -> str:
    """``torch.save`` atomically (temp file, fsync, rename); return the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    """Load a weights file; any problem becomes a ``ModelFileError`` that names the file.

    Everything in the file is checked before a network is built: the format, the
    architecture and its arguments (names, types, ranges), the class count, the metadata,
    and every tensor of the state dict (names, shapes, finite values) against what the
    architecture would build.  A bad file costs neither time nor memory.
    """
    path = Path(path)
    retrain = "Train a new model (Model > Train..., or `python run_model.py --mode train`) or choose another weights file."
    if not path.is_file():
        raise ModelFileError(f"Model file not found: {path}. {retrain}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"Model file {path} is {size / 2**20:.0f} MB; weights of this program's networks "
                             f"take under {MAX_FILE_BYTES // 2**20} MB, so this is not one of them. {retrain}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage, pickle with code objects...
        raise ModelFileError(f"Model file {path} is corrupt or not a weights file ({_short(exc)}). {retrain}") from exc
    if isinstance(payload, dict) and "state_dict" not in payload and payload and all(
            isinstance(v, torch.Tensor) for v in payload.values()):
        payload = {"format": FORMAT, "arch": "mnist_cnn", "state_dict": payload}  # a bare state dict
    try:
        arch, arch_kwargs, state, metadata = validate(payload)
    except ValueError as exc:
        raise ModelFileError(f"Model file {path} {exc}. {retrain}") from None
    model = build_model(arch, **arch_kwargs)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as exc:  # validate() checked names and shapes: not expected
        raise ModelFileError(f"Model file {path} does not match the {arch!r} network ({_short(exc)}). {retrain}") from exc
    model.to(device).eval()
    return LoadedModel(model=model, arch=arch, arch_kwargs=arch_kwargs, metadata=metadata,
                       path=path, sha256=file_sha256(path))


def validate(payload) -> tuple[str, dict, dict, dict]:
    """Check a loaded weights payload; return (arch, arch_kwargs, state_dict, metadata).

    Raises ``ValueError`` with the end of a sentence that starts "Model file X ..." (the
    caller names the file).  Builds nothing: the expected tensors come from the network
    built on PyTorch's "meta" device, which allocates no memory.
    """
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError("is not a MNIST classifier weights file")
    version = payload.get("format_version", 1)
    if not _is_int(version):
        raise ValueError(f"has format version {_show(version)}, which is not a whole number: the file is damaged")
    if version > FORMAT_VERSION:
        raise ValueError(f"was written by a newer version of this program (weights format {version}): "
                         f"update the program to use it")
    if version < 1:
        raise ValueError(f"has format version {version}, which no version of this program writes")
    arch = payload.get("arch", "mnist_cnn")
    if not isinstance(arch, str):
        raise ValueError(f"names its network {_show(arch)} ({_kind(arch)}); expected a name such as "
                         f"{', '.join(repr(a) for a in ARCHITECTURES)}")
    if arch not in ARCHITECTURES:
        raise ValueError(f"is for an unknown network {_show(arch)} (this program has "
                         f"{', '.join(repr(a) for a in ARCHITECTURES)})")
    classes = payload.get("num_classes", 10)
    if not _is_int(classes):
        raise ValueError(f"gives the number of classes {_show(classes)} ({_kind(classes)}); this program needs the number 10")
    if classes != 10:
        raise ValueError(f"has {classes} classes; this program needs 10 (the digits 0 to 9)")
    arch_kwargs = _check_arch_kwargs(arch, payload.get("arch_kwargs") or {})
    metadata = _check_metadata(payload.get("metadata") or {})
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"has weights that are not a table of named tensors ({_kind(state)})")
    _check_state(arch, arch_kwargs, state)
    return arch, arch_kwargs, state, metadata


def _check_arch_kwargs(arch: str, given) -> dict:
    if not isinstance(given, dict):
        raise ValueError(f"gives the network arguments as {_kind(given)}, not a table of names and values")
    accepted = {name: p for name, p in inspect.signature(ARCHITECTURES[arch].__init__).parameters.items()
                if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    ranges = ARCH_ARGUMENTS.get(arch, {})
    out = {}
    for name, value in given.items():
        if name not in accepted:
            raise ValueError(f"gives the {_show(arch)} network an unknown argument {_show(name)} (it takes "
                             f"{', '.join(accepted) or 'none'})")
        default = accepted[name].default
        unknown_type = default is inspect.Parameter.empty or default is None
        kind, lo, hi = ranges.get(name, (None if unknown_type else type(default), None, None))
        if kind is int and not _is_int(value):
            raise ValueError(f"gives the {_show(arch)} network the argument {name}={_show(value)}, which is not a whole number")
        if kind is float and not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
            raise ValueError(f"gives the {_show(arch)} network the argument {name}={_show(value)}, which is not a number")
        if kind in (bool, str) and not isinstance(value, kind):
            raise ValueError(f"gives the {_show(arch)} network the argument {name}={_show(value)} ({_kind(value)}); "
                             f"expected {kind.__name__}")
        if kind is None and not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"gives the {_show(arch)} network the argument {name}={_show(value)} ({_kind(value)})")
        if lo is not None and not (lo <= value <= hi):  # NaN fails this too
            raise ValueError(f"gives the {_show(arch)} network the argument {name}={_show(value)}, which is out of "
                             f"range ({lo:g} to {hi:g})")
        out[name] = float(value) if kind is float else value
    return out


def _check_metadata(metadata) -> dict:
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise ValueError(f"has metadata that is not a table of named values ({_kind(metadata)})")
    acc = metadata.get("test_accuracy")
    if acc is not None and not (isinstance(acc, numbers.Real) and not isinstance(acc, bool)
                                and math.isfinite(acc) and 0 <= acc <= 100):
        raise ValueError(f"records a test accuracy {_show(acc)} that is not a number from 0 to 100: the file is damaged")
    for key in ("created_at", "kind", "parent_sha256"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            raise ValueError(f"records {key} as {_show(metadata[key])} ({_kind(metadata[key])}), not text: the file is damaged")
    try:
        Calibration.from_metadata(metadata)
    except ValueError as exc:
        raise ValueError(f"has unusable calibration data ({exc}): the file is damaged") from None
    return dict(metadata)


def _check_state(arch: str, arch_kwargs: dict, state: dict) -> None:
    with torch.device("meta"):
        expected = build_model(arch, **arch_kwargs)
    n_params = sum(p.numel() for p in expected.parameters())
    if n_params > MAX_PARAMETERS:
        raise ValueError(f"describes a {arch!r} network with {n_params:,} parameters; this program's networks "
                         f"have at most {MAX_PARAMETERS:,}")
    want = expected.state_dict()
    missing = [k for k in want if k not in state]
    extra = [_show(k) for k in state if k not in want]
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")] if missing else []) + \
                ([f"unexpected {', '.join(extra[:5])}" + (" ..." if len(extra) > 5 else "")] if extra else [])
        raise ValueError(f"does not match the {arch!r} network: {'; '.join(parts)}")
    for name, ref in want.items():
        t = state[name]
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"does not match the {arch!r} network: {name!r} is not a tensor ({_kind(t)})")
        if tuple(t.shape) != tuple(ref.shape):
            raise ValueError(f"does not match the {arch!r} network: {name} is {_shape(t.shape)}, "
                             f"the network has {_shape(ref.shape)}")
        if t.is_floating_point() != ref.is_floating_point() or t.is_complex():
            raise ValueError(f"does not match the {arch!r} network: {name} holds {t.dtype}, expected {ref.dtype}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"holds NaN or infinite values (in {name}): the weights are damaged, perhaps by a "
                             f"training that diverged")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _show(value, limit: int = 60) -> str:
    """repr() of a value read from a file, cut short: a message never quotes a megabyte."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _kind(value) -> str:
    return {str: "text", list: "a list", tuple: "a list", dict: "a table", bool: "true/false",
            type(None): "nothing"}.get(type(value), type(value).__name__)


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape) or "a single number"


def _short(exc: Exception, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."
