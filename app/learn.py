"""Learning from the user: fine-tune on the corrected drawings in the database, keep the
result only if it is better, record it as a new model version, export the drawings.

Glue between app.ml (training) and app.db (the drawings, the versions); no Qt, so the
GUI (its training child process and its database worker), ``run_model.py --mode
finetune`` and the benchmark share it.  Fine-tuning (``improve``) needs no database: the
drawings are read before (``user_dataset``) and the kept model is recorded after
(``register_version``), each where the database is.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from app import exports
from app.fsutil import fsync_dir
from app.ml import checkpoint, preprocess
from app.ml.data import MNIST, MNISTSplit, write_idx
from app.ml.finetune import FinetuneConfig, FinetuneReport, finetune
from app.ml.train import CancelFn, ProgressFn

log = logging.getLogger(__name__)


@dataclass
class UserDataset:
    images: np.ndarray  # (N, 28, 28) uint8, the model inputs the user labelled
    labels: np.ndarray  # (N,) int64
    keys: list[str]  # prediction UUIDs

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class ImproveOutcome:
    report: FinetuneReport
    path: Path | None  # the new weights file, when kept
    sha256: str | None
    metadata: dict | None = None  # what the new weights file says about itself, when kept


def png_to_array(data: bytes) -> np.ndarray:
    img = preprocess.open_image(io.BytesIO(bytes(data)))
    arr = np.asarray(img.convert("L"), dtype=np.uint8)
    if arr.shape != (28, 28):
        raise ValueError(f"stored model input is {arr.shape}, not 28x28")
    return arr


def array_to_png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L").save(out, format="PNG")
    return out.getvalue()


def user_dataset(repo) -> UserDataset:
    """Every labelled drawing in the database, as arrays."""
    samples = repo.labelled_samples()
    images = np.stack([png_to_array(s.image_png) for s in samples]) if samples else np.zeros((0, 28, 28), np.uint8)
    labels = np.array([s.true_label for s in samples], dtype=np.int64)
    return UserDataset(images, labels, [str(s.uuid) for s in samples])


def improve(base: checkpoint.LoadedModel, data: UserDataset, mnist: MNIST, models_dir: Path,
            config: FinetuneConfig | None = None, progress: ProgressFn | None = None,
            should_cancel: CancelFn | None = None, mnist_eval: MNISTSplit | None = None) -> ImproveOutcome:
    """Fine-tune ``base`` on the user's labelled drawings (``user_dataset``); save the
    new weights in ``models_dir`` if they are kept.  Recording them as a model version
    is the caller's (``register_version``)."""
    report = finetune(base.model, data.images, data.labels, data.keys, mnist, config, progress, should_cancel,
                      mnist_eval)
    if not report.kept:
        return ImproveOutcome(report, None, None)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path(models_dir) / f"finetuned-{stamp}.pth"
    metadata = dict(base.metadata)
    metadata.pop("history", None)
    metadata.update({
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kind": "fine-tuned",
        "parent_sha256": base.sha256,
        "test_accuracy": round(report.mnist_after, 4),
        "finetune": {"mnist_before": report.mnist_before, "mnist_after": report.mnist_after,
                     "user_before": report.user_before, "user_after": report.user_after,
                     "user_train": report.n_train, "user_holdout": report.n_holdout},
    })
    sha = checkpoint.save(path, report.model, base.arch, base.arch_kwargs, metadata)
    return ImproveOutcome(report, path, sha, metadata)


#: What of a weights file's metadata a model version records as its metrics.
VERSION_METRICS = ("test_accuracy", "test_loss", "epochs", "finetune")


def version_metrics(metadata: dict) -> dict:
    """A model version's metrics: the ``VERSION_METRICS`` its weights file states."""
    return {k: metadata[k] for k in VERSION_METRICS if k in metadata}


def version_spec(sha256: str, path: Path, arch: str, metadata: dict, kind: str = "trained",
                 parent_sha: str | None = None, name: str | None = None):
    """The app.db VersionSpec of a weights file: what ``repo.log(record, version=...)``
    registers when the database does not know the version yet (e.g. a drawing saved
    while it was offline).  ValueError when a field cannot be recorded (see
    VersionSpec.checked)."""
    from app.db import VersionSpec

    return VersionSpec(sha256=sha256, path=str(path), arch=arch, metrics=version_metrics(metadata),
                       kind=kind, parent_sha256=parent_sha, name=name).checked()


def register_version(repo, path: Path, sha256: str, arch: str, metadata: dict, parent_sha: str | None = None,
                     kind: str = "trained", name: str | None = None) -> int | None:
    """Record a weights file as a model version; None if the database is offline."""
    from app.db import DatabaseError

    metrics = version_metrics(metadata)
    try:
        parent_id = None
        if parent_sha:
            parent = repo.model_version_by_sha(parent_sha)
            parent_id = parent.id if parent else None
        return repo.register_model_version(sha256=sha256, path=str(path), arch=arch, metrics=metrics,
                                           parent_id=parent_id, kind=kind, name=name)
    except DatabaseError as exc:
        log.warning("could not record the model version (database offline?): %s", exc)
        return None


def export_dataset(repo, path: Path) -> int:
    """The user's labelled drawings as ``.npz`` (images, labels, uuids) or as MNIST-style
    IDX files: ``name-images-idx3-ubyte(.gz)`` and ``name-labels-idx1-ubyte(.gz)``.
    Returns the number of drawings.  See `save_dataset`."""
    data = user_dataset(repo)
    save_dataset(data, path)
    return len(data)


def dataset_files(path: Path) -> list[Path]:
    """The files `save_dataset` writes for ``path`` (app/exports.py names them)."""
    return exports.dataset_files(path)


def save_dataset(data: UserDataset, path: Path) -> list[Path]:
    """Write ``data`` to ``path`` (.npz, or the two IDX files); return the files written.

    Each file is written to a temporary file in the same folder, flushed to disk, and only
    then renamed over the target: a crash or kill while writing leaves the previous export
    as it was (at worst a hidden ``.name.*.tmp`` file beside it), never a cut file.
    """
    targets = dataset_files(path)
    temps: list[Path] = []
    try:
        for target in targets:
            gz = ".gz" if target.name.endswith(".gz") else ""
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{gz}",
                                       dir=target.parent)
            os.close(fd)
            temps.append(Path(tmp))
        if len(targets) == 1:
            with open(temps[0], "wb") as f:
                np.savez_compressed(f, images=data.images, labels=data.labels.astype(np.uint8),
                                    uuids=np.array(data.keys))
        else:
            write_idx(temps[0], data.images)
            write_idx(temps[1], data.labels.astype(np.uint8))
        for tmp in temps:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        for tmp, target in zip(temps, targets):
            os.chmod(tmp, 0o644)  # (mkstemp makes 0600; a plain open would give this)
            os.replace(tmp, target)
        fsync_dir(targets[0].parent)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    return targets


def finetune_cli(settings, args, model_path: Path) -> int:
    """``run_model.py --mode finetune``: the database from the usual settings."""
    from app.db import open_database
    from app.ml import data as mnist_data

    mnist = mnist_data.load_or_fetch(settings, args.data_dir, allow_download=not args.no_download)
    base = checkpoint.load(model_path)
    repo, server = open_database(settings, offline_ok=False)
    try:
        ds = user_dataset(repo)
        print(f"{len(ds)} labelled drawings in the database ({repo.status()})")
        cfg = FinetuneConfig(seed=args.seed)
        if args.epochs != 15:  # the training default; an explicit value wins
            cfg.epochs = args.epochs
        outcome = improve(base, ds, mnist, settings.models_dir, cfg)
        print(outcome.report.summary())
        print(outcome.report.reason)
        if outcome.path:
            register_version(repo, outcome.path, outcome.sha256, base.arch, outcome.metadata,
                             parent_sha=base.sha256, kind="fine-tuned")
            print(f"Saved the fine-tuned model to {outcome.path}; use it with --model-path or MNIST_MODEL_PATH")
        return 0
    finally:
        repo.close()
        if server is not None:
            server.stop()
