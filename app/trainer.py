"""Training and fine-tuning in a child process, so that the app's window never waits.

A training loop in a thread of the GUI process competes with the GUI for Python's
interpreter lock (the pen stutters); in a process of its own it cannot.  The app calls,
from one of its worker threads::

    result = run_in_child(train_model, TrainRequest(...), report, should_cancel)

which starts a fresh Python process (multiprocessing, "spawn": the same in a checkout
and in the packaged executable, whose main.py calls ``multiprocessing.freeze_support()``),
hands it the request and relays what the child says over a pipe to ``report(kind,
value)``:

    ("started", pid)               the child runs
    ("status", text)               what it is doing (reading MNIST, saving, ...)
    ("progress", TrainProgress)    every few batches (app.ml.train.TrainProgress)

and returns the child's result (``TrainedModel``, ``ImprovedModel``) or raises what
it raised, class and message kept (``MNISTError``, ``ValueError``, ...).

Cancel: once ``should_cancel()`` is true the child is asked to stop (it looks between
batches) and raises ``TrainingCancelled`` here; if it is still running
``CANCEL_GRACE_S`` later it is killed.  A child that dies on its own (killed, crashed,
out of memory) raises ``TrainingCrashed``, which says so in words.  The child writes
weights only with ``checkpoint.save`` (a new file, atomically): the weights in use are
never touched, and the app swaps the new file in only after the child has reported.

No Qt here, and torch only in the child.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from app.ml.errors import ModelFileError, TrainingCancelled

log = logging.getLogger(__name__)

#: How long a child has to stop after Cancel before it is killed.
CANCEL_GRACE_S = 2.0
#: The child's scheduling priority (Unix "nice"): the window always comes first.
CHILD_NICENESS = 10
#: How often the parent looks at the child when it says nothing.
POLL_S = 0.05

ReportFn = Callable[[str, Any], None]


class TrainingCrashed(RuntimeError):
    """The training process ended without a result (killed, crashed, out of memory)."""


# ---- what the child is asked to do, and what it answers -------------------------------------------
@dataclass
class TrainRequest:
    config: dict  # app.ml.train.TrainConfig keyword arguments
    out: Path  # the new weights file
    mnist_dir: Path | None = None  # where the MNIST files are (downloaded there if missing)
    #: The data itself (an app.ml.data.MNIST) instead of ``mnist_dir``: the self-test's 20 digits.
    mnist: Any = None
    allow_download: bool = True
    mnist_mirror: str | None = None  # tried first when downloading
    #: Where the synthetic training images are cached (app/ml/sources.py); None: not kept.
    cache_dir: Path | None = None
    #: The weights in use (and their sha256): measured on the same test images as the new
    #: ones, so that the app can offer the better of the two.  None: nothing to compare.
    compare_with: Path | None = None
    compare_sha256: str | None = None


@dataclass
class TrainedModel:
    path: Path
    sha256: str
    test_accuracy: float  # percent, on the MNIST test images (or the first test_limit of them)
    seconds: float
    epochs: int
    #: The weights in use (TrainRequest.compare_with) on the same test images; None when
    #: not measured (none given, missing, changed or unreadable).
    current_accuracy: float | None = None
    test_images: int = 0


@dataclass
class ImproveRequest:
    base_path: Path  # the weights in use, fine-tuned
    base_sha256: str  # ... which the file must still hold
    dataset: Any  # app.learn.UserDataset: the user's labelled drawings, read from the database
    models_dir: Path  # where a kept model is saved
    mnist_dir: Path
    config: Any = None  # app.ml.finetune.FinetuneConfig (None: its defaults)
    allow_download: bool = True
    mnist_mirror: str | None = None


@dataclass
class ImprovedModel:
    kept: bool
    reason: str
    mnist_before: float
    mnist_after: float
    user_before: float
    user_after: float
    n_train: int
    n_holdout: int
    seconds: float
    base_sha256: str
    path: Path | None = None  # the new weights, when kept
    sha256: str | None = None


# ---- in the child ---------------------------------------------------------------------------------
class Inbox:
    """The child's end of the pipe: says what it does, hears Cancel."""

    def __init__(self, conn):
        self._conn = conn
        self._cancelled = False

    def send(self, kind: str, value: Any = None) -> None:
        try:
            self._conn.send((kind, value))
        except (BrokenPipeError, EOFError, OSError):
            # The app is gone: nobody wants the result.
            os._exit(3)

    def status(self, text: str) -> None:
        self.send("status", text)

    def progress(self, p) -> None:
        self.send("progress", p)

    def cancelled(self) -> bool:
        """True once the app asked to stop (or went away)."""
        try:
            while not self._cancelled and self._conn.poll():
                if self._conn.recv() == "cancel":
                    self._cancelled = True
        except (EOFError, OSError):
            self._cancelled = True
        return self._cancelled

    def check(self) -> None:
        if self.cancelled():
            raise TrainingCancelled("training cancelled")


def _child_main(conn, work: Callable[[Any, Inbox], Any], request: Any) -> None:
    """The child process: do ``work(request, inbox)`` and say how it went."""
    logging.basicConfig(level=logging.WARNING, format="training process: %(levelname)s %(name)s: %(message)s")
    if hasattr(os, "nice"):
        try:
            os.nice(CHILD_NICENESS)
        except OSError:
            pass
    inbox = Inbox(conn)
    inbox.send("started", os.getpid())
    try:
        result = work(request, inbox)
    except TrainingCancelled:
        inbox.send("cancelled")
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the app, in words
        log.debug("training failed", exc_info=True)
        inbox.send("error", _portable(exc))
    else:
        inbox.send("done", result)
    finally:
        conn.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives the pipe (pickling), else a RuntimeError with its words."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
        if type(copy) is type(exc):
            return exc
    except Exception:  # noqa: BLE001 - any pickling problem: send words instead
        pass
    return RuntimeError(f"{type(exc).__name__}: {exc}")


def _threads() -> int:
    """All cores but one: the app keeps one for the window."""
    return max(1, (os.cpu_count() or 2) - 1)


def _mnist(mnist_dir: Path, inbox: Inbox, allow_download: bool, mirror: str | None = None):
    from app.ml import data

    inbox.status("Loading the MNIST images…")
    last = [0.0]

    def downloaded(name: str, done: int, total: int) -> None:
        inbox.check()  # Cancel also stops a download
        now = time.monotonic()
        if now - last[0] > 0.2:
            last[0] = now
            share = f" ({100 * done // total} %)" if total else ""
            inbox.status(f"Downloading {name}{share}…")

    where = _Where(Path(mnist_dir), mirror)
    mnist = data.load_or_fetch(where, allow_download=allow_download, progress=downloaded)
    inbox.check()
    return mnist


def train_model(request: TrainRequest, inbox: Inbox) -> TrainedModel:
    """Train a new network with ``request.config`` and save it to ``request.out``."""
    import torch

    from app.ml import train

    cfg = train.TrainConfig(**request.config)
    cfg.validate()
    mnist = request.mnist if request.mnist is not None else _mnist(request.mnist_dir, inbox, request.allow_download,
                                                                   request.mnist_mirror)
    torch.set_num_threads(_threads())
    inbox.status(f"Training {cfg.arch} for {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}…")
    result = train.train(cfg, mnist, progress=inbox.progress, should_cancel=inbox.cancelled,
                         cache_dir=request.cache_dir, status=inbox.status)
    inbox.check()
    inbox.status("Saving the weights…")
    sha = train.save_result(result, mnist, Path(request.out))
    test = mnist.test.subset(cfg.test_limit)
    current = None
    if request.compare_with is not None:
        inbox.status("Measuring the model in use on the same test images…")
        current = test_accuracy_of(Path(request.compare_with), request.compare_sha256, test)
    return TrainedModel(path=Path(request.out), sha256=sha, test_accuracy=result.test_accuracy,
                        seconds=result.seconds, epochs=len(result.history), current_accuracy=current,
                        test_images=len(test))


def test_accuracy_of(path: Path, sha256: str | None, test) -> float | None:
    """The accuracy (percent) of the weights in ``path`` on ``test`` (an MNISTSplit), the
    way training measures it; None when the file is gone, changed (not ``sha256``) or
    unreadable."""
    from app.ml import checkpoint, train
    from app.ml.errors import ModelFileError

    try:
        loaded = checkpoint.load(path)
    except ModelFileError as exc:
        log.warning("the model in use was not measured: %s", exc)
        return None
    if sha256 is not None and loaded.sha256 != sha256:
        log.warning("the model in use was not measured: %s has changed since it was loaded", path)
        return None
    x, y = train.to_tensors(test.images, test.labels, next(loaded.model.parameters()).device)
    _, correct, n = train.evaluate(loaded.model, x, y)
    return 100.0 * correct / max(n, 1)


def improve_model(request: ImproveRequest, inbox: Inbox) -> ImprovedModel:
    """Fine-tune the weights in ``request.base_path`` on the user's drawings (app.learn.improve);
    a kept model is saved in ``request.models_dir``, never recorded here."""
    import torch

    from app import learn
    from app.ml import checkpoint

    started = time.perf_counter()
    base = checkpoint.load(Path(request.base_path))
    if base.sha256 != request.base_sha256:
        raise ModelFileError(f"The weights file {request.base_path} has changed since the model in use was "
                             f"loaded from it. Load it again (Model → Load weights…) and try again.")
    mnist = _mnist(request.mnist_dir, inbox, request.allow_download, request.mnist_mirror)
    torch.set_num_threads(_threads())
    inbox.status(f"Fine-tuning on {len(request.dataset)} labelled drawings mixed with MNIST images…")
    outcome = learn.improve(base, request.dataset, mnist, Path(request.models_dir), request.config,
                            progress=inbox.progress, should_cancel=inbox.cancelled)
    r = outcome.report
    return ImprovedModel(kept=r.kept, reason=r.reason, mnist_before=r.mnist_before, mnist_after=r.mnist_after,
                         user_before=r.user_before, user_after=r.user_after, n_train=r.n_train,
                         n_holdout=r.n_holdout, seconds=time.perf_counter() - started,
                         base_sha256=base.sha256 or "", path=outcome.path, sha256=outcome.sha256)


@dataclass(frozen=True)
class _Where:
    """What data.load_or_fetch reads of the settings: the folder and the mirror."""

    mnist_dir: Path
    mnist_mirror: str | None


# ---- in the app -----------------------------------------------------------------------------------
def run_in_child(work: Callable[[Any, Inbox], Any], request: Any, report: ReportFn | None = None,
                 should_cancel: Callable[[], bool] | None = None, grace_s: float = CANCEL_GRACE_S) -> Any:
    """Run ``work(request, inbox)`` in a new process and wait for it (see the module's
    docstring).  ``work`` must be a module-level function (the child imports it)."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=True)
    process = ctx.Process(target=_child_main, args=(theirs, work, request), name="training", daemon=True)
    process.start()
    theirs.close()  # the child holds the other end: EOF when it ends
    log.info("training process %d started", process.pid)
    asked_at: float | None = None
    outcome: tuple | None = None
    try:
        while outcome is None:
            if asked_at is None and should_cancel is not None and should_cancel():
                asked_at = time.monotonic()
                log.info("asking training process %d to stop", process.pid)
                try:
                    ours.send("cancel")
                except OSError:
                    pass
            if asked_at is not None and time.monotonic() - asked_at > grace_s and process.is_alive():
                log.warning("training process %d did not stop within %.0f s: killing it", process.pid, grace_s)
                process.kill()
                process.join(5)
                raise TrainingCancelled("training cancelled")
            try:
                if not ours.poll(POLL_S):
                    if not process.is_alive() and not ours.poll(0):
                        break  # ended without a word
                    continue
                kind, value = ours.recv()
            except (EOFError, OSError):
                break  # the child closed its end: ended (its last words, if any, came before)
            if kind in ("done", "error", "cancelled"):
                outcome = (kind, value)
            elif report is not None:
                report(kind, value)
    finally:
        ours.close()
        process.join(grace_s if outcome is not None else 5)
        if process.is_alive():
            process.kill()
            process.join(5)
    if outcome is None:
        if asked_at is not None:
            raise TrainingCancelled("training cancelled")
        raise TrainingCrashed(_how_it_ended(process.exitcode))
    kind, value = outcome
    if kind == "done":
        return value
    if kind == "cancelled":
        raise TrainingCancelled("training cancelled")
    raise value


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "The training process did not end."
    if exitcode < 0:
        sig = -exitcode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        if sig == getattr(signal, "SIGKILL", 9):
            return (f"The training process was killed ({name}) before it finished; the "
                    f"system may have run out of memory. Close other programs or train "
                    f"with fewer images or a smaller batch, and try again.")
        return f"The training process crashed ({name}) before it finished."
    return f"The training process ended unexpectedly (exit code {exitcode}) before it finished."
