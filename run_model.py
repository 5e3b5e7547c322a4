#!/usr/bin/env python
"""Train and test the MNIST classifier from the command line.

    python run_model.py --mode train            # train with the defaults, save the model
    python run_model.py --mode test             # Test set: Average loss ..., Accuracy ...
    python run_model.py --mode both --epochs 5
    python run_model.py --mode test --test-samples 10   # also saves a figure of 10 digits
    python run_model.py --mode read --image number.png  # read the number written in an image
    python run_model.py --mode pieces           # train the number reader's piece network

The shape follows pytorch/examples' mnist/main.py.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

from app import paths
from app.settings import Settings

log = logging.getLogger("run_model")


class NonFiniteLoss(ValueError):
    """Training or testing gave a NaN or infinite loss: the weights are unusable."""


def build_parser() -> argparse.ArgumentParser:
    from app.ml.model import ARCHITECTURES
    from app.ml.pieces import PieceTraining
    from app.ml.train import DEFAULT_PRESET, PRESETS, TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(description="Train and test the MNIST digit classifier.")
    p.add_argument("--mode", choices=["train", "test", "both", "finetune", "read", "pieces"], default="both",
                   help="train a model, test one, or both (default: both); finetune: learn from "
                        "the corrections in the database; read: read the number in each --image; "
                        "pieces: train the number reader's piece network")
    p.add_argument("--strings", type=int, default=None, metavar="N",
                   help="--mode pieces: strings of training digits to cut pieces from (default: "
                        f"{PieceTraining.strings}); --epochs, --batch-size, --learning-rate and --seed apply, "
                        f"with defaults {PieceTraining.epochs}, {PieceTraining.batch_size}, "
                        f"{PieceTraining.learning_rate} and {PieceTraining.seed} for this mode")
    p.add_argument("--image", type=Path, nargs="+", default=None, metavar="FILE",
                   help="image files to read with --mode read (a digit or a whole number)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs to train (default: {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"batch size (default: {d.batch_size})")
    p.add_argument("--learning-rate", "--lr", type=float, default=d.learning_rate,
                   help=f"peak learning rate of Adam's one-cycle schedule (default: {d.learning_rate})")
    p.add_argument("--model-path", type=Path, default=None,
                   help="weights file to write (train) or read (test) "
                        "(default: MNIST_MODEL_PATH or saved_models/mnist_classifier.pth)")
    p.add_argument("--no-cuda", action="store_true", help="train on the CPU even when CUDA is available")
    p.add_argument("--test-samples", type=int, default=0, metavar="N",
                   help="save a figure of N test digits with prediction and probabilities")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with the four MNIST .gz files (default: MNIST_DIR or the user data folder; "
                        "downloaded there if missing)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default: {d.seed})")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default=None,
                   help="network to train (default: the recipe's; mnist_cnn is the product's CNN)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                   help=f"the recipe to start from (default: {DEFAULT_PRESET}, the shipped product network; "
                        "robust: the app's default network that also says 'not a digit'; quick: 2 epochs, "
                        "~99%%); flags given explicitly still win")
    p.add_argument("--synthetic", type=int, default=None, metavar="N",
                   help="synthetic digits mixed into training (default: the recipe's; 0: MNIST only)")
    p.add_argument("--outliers", type=int, default=None, metavar="N",
                   help="non-digit drawings for outlier exposure (default: the recipe's)")
    p.add_argument("--validation", type=int, default=None, metavar="N",
                   help="MNIST training images held out to calibrate (default: the recipe's)")
    p.add_argument("--calibration", type=int, default=None, metavar="N",
                   help="synthetic digits by other writers to calibrate on (default: the recipe's)")
    p.add_argument("--train-limit", type=int, default=None, metavar="N",
                   help="train on the first N training images only (quick trials)")
    p.add_argument("--test-limit", type=int, default=None, metavar="N",
                   help="evaluate on the first N test images only")
    p.add_argument("--no-augment", action="store_true", help="train without data augmentation")
    p.add_argument("--figures-dir", type=Path, default=None,
                   help="where figures go (default: next to the model file)")
    p.add_argument("--no-download", action="store_true", help="never download MNIST, fail if it is missing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def default_model_path(settings: Settings) -> Path:
    """MNIST_MODEL_PATH (or MODEL_PATH) when set, else the product network's weights (the
    app may default to the wider network; this command trains and tests the product's)."""
    if settings.source_of("MNIST_MODEL_PATH") or settings.source_of("MODEL_PATH"):
        return Path(settings.model_path)
    return paths.product_model_path()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    settings = Settings.load()
    model_path = args.model_path or default_model_path(settings)
    figures_dir = args.figures_dir or model_path.parent
    from app.ml import data
    from app.ml.checkpoint import ModelFileError

    try:
        if args.mode == "read":  # the app's model unless one is named
            named = args.model_path or settings.source_of("MNIST_MODEL_PATH") or settings.source_of("MODEL_PATH")
            return read_images(args.image, model_path if named else None)
        if args.mode == "finetune":
            from app.learn import finetune_cli
            return finetune_cli(settings, args, model_path)
        mnist = data.load_or_fetch(settings, args.data_dir, allow_download=not args.no_download,
                                   progress=None if args.quiet else data.tqdm_progress())
        if args.mode == "pieces":
            train_pieces(args, mnist, args.model_path or paths.pieces_model_path())
            return 0
        if args.mode in ("train", "both"):
            train_and_save(args, mnist, model_path, figures_dir, settings.data_home / "synthetic")
        if args.mode in ("test", "both"):
            test_model(args, mnist, model_path, figures_dir)
    except (data.MNISTError, ModelFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the previous model file is unchanged", file=sys.stderr)
        return 130
    return 0


def read_images(files: list[Path] | None, model_path: Path | None) -> int:
    """Print the number read in each image file and each digit with its confidence
    (``model_path`` None: the app's default model)."""
    if not files:
        print("error: --mode read needs at least one image: --image FILE [FILE ...]", file=sys.stderr)
        return 2
    from app.ml import MNISTPredictor, NothingDrawn
    from app.ml.preprocess import open_image

    predictor = MNISTPredictor(model_path)
    failed = 0
    for path in files:
        try:
            reading = predictor.read_number(open_image(path))
        except NothingDrawn:
            print(f"error: {path}: nothing drawn (the image has no ink); give a picture of a number",
                  file=sys.stderr)
        except ValueError as exc:  # missing, not an image, damaged, too large
            print(f"error: {path}: {exc}", file=sys.stderr)
        else:
            print(f"{path}: {reading.text}  (confidence {100 * reading.confidence:.1f}%)")
            for k, (digit, box) in enumerate(zip(reading.digits, reading.boxes), start=1):
                x, y, w, h = box
                print(f"  {k}. {digit.digit}  {100 * digit.confidence:5.1f}%   box x={x} y={y} w={w} h={h}")
            continue
        failed += 1
    return 2 if failed else 0


def train_and_save(args, mnist, model_path: Path, figures_dir: Path, cache_dir: Path | None = None) -> None:
    """Train with the chosen recipe; the synthetic images are cached in ``cache_dir``."""
    from app.ml import plots
    from app.ml.train import save_result, train

    config = config_from_args(args)
    bar = None if args.quiet else _TqdmReporter()
    start = time.perf_counter()
    status = None if args.quiet else (lambda text: print(text, flush=True))
    result = train(config, mnist, progress=bar, cache_dir=cache_dir, status=status)
    if bar:
        bar.close()
    for h in result.history:
        print(f"Epoch {h.epoch}: train loss {h.train_loss:.4f}, test loss {h.test_loss:.4f}, "
              f"test accuracy {h.test_accuracy:.2f}%")
    check_training_losses(result.history, model_path)
    sha = save_result(result, mnist, model_path)
    history_png = plots.save_history(result.history, figures_dir / f"{model_path.stem}_history.png")
    print(f"Trained {config.arch} in {time.perf_counter() - start:.1f} s on {result.device}: "
          f"test accuracy {result.test_accuracy:.2f}%")
    if result.calibration:
        c = result.calibration
        print(f"Calibrated: temperature {c['temperature']:.3f}, calibration error on the test set "
              f"{100 * c['test_ece']:.2f}%, {100 * c['test_digit_accept']:.2f}% of the test digits accepted as digits")
    print(f"Saved model to {model_path} (sha256 {sha[:12]}), history figure to {history_png}")


def train_pieces(args, mnist, path: Path) -> None:
    """Train the number reader's piece network (``app.ml.pieces``) and save it to ``path``."""
    from app.ml import pieces

    defaults = build_parser()
    given = {name: getattr(args, name) for name in ("epochs", "batch_size", "learning_rate", "seed")
             if getattr(args, name) != defaults.get_default(name)}
    if args.strings is not None:
        if args.strings < 10:
            raise ValueError("--strings must be at least 10")
        given["strings"] = args.strings
    config = pieces.PieceTraining(**given)
    bar = None if args.quiet else _TqdmReporter()
    status = None if args.quiet else (lambda text: print(text, flush=True))
    try:
        model, metadata = pieces.train(mnist.train, config, status=status, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    pieces.save(path, model, metadata)
    print(f"Held-out pieces: {metadata['held_out_accuracy']:.2f}% right; whole digits kept "
          f"{metadata['held_out_whole_kept']:.1f}%, broken pieces caught {metadata['held_out_broken_caught']:.1f}% "
          f"({metadata['seconds']:.0f} s)")
    print(f"Saved the piece network to {path}")


def check_training_losses(history, model_path: Path) -> None:
    """Raise ``NonFiniteLoss`` when an epoch ended with a NaN or infinite loss (nothing is saved)."""
    for h in history:
        if not (math.isfinite(h.train_loss) and math.isfinite(h.test_loss)):
            raise NonFiniteLoss(
                f"training diverged: epoch {h.epoch} ended with train loss {h.train_loss:.4g} and test loss "
                f"{h.test_loss:.4g}. The weights are unusable and were not saved; {model_path} is unchanged. "
                f"Train again with a lower --learning-rate (or another --seed).")


def config_from_args(args):
    from app.ml.train import PRESETS, TrainConfig

    parser_defaults = TrainConfig()
    chosen = dict(PRESETS[args.preset])
    # Flags the user typed win over the preset; untouched flags keep the preset's value.
    for flag, field in (("epochs", "epochs"), ("batch_size", "batch_size"), ("learning_rate", "learning_rate")):
        value = getattr(args, flag)
        if value != getattr(parser_defaults, field) or field not in chosen:
            chosen[field] = value
    for field in ("synthetic", "outliers", "validation", "calibration", "arch"):
        if getattr(args, field) is not None:
            chosen[field] = getattr(args, field)
    if args.no_augment:
        chosen["augment"] = False
    return TrainConfig(seed=args.seed, use_cuda=not args.no_cuda,
                       train_limit=args.train_limit, test_limit=args.test_limit, **chosen)


def test_model(args, mnist, model_path: Path, figures_dir: Path) -> None:
    import numpy as np
    import torch

    from app.ml import checkpoint, plots
    from app.ml.train import evaluate, pick_device, to_tensors

    device = pick_device(not args.no_cuda)
    loaded = checkpoint.load(model_path, device)
    split = mnist.test.subset(args.test_limit)
    x, y = to_tensors(split.images, split.labels, device)
    loss, correct, n = evaluate(loaded.model, x, y)
    if not math.isfinite(loss):
        raise NonFiniteLoss(
            f"testing gave a loss of {loss:.4g} on {n} test images: the weights in {model_path} overflow "
            f"(their values are far too large), so the model is unusable. Train a new model "
            f"(`python run_model.py --mode train`) or use another weights file.")
    print(f"Model: {model_path} ({loaded.arch})")
    print(f"\nTest set: Average loss: {loss:.4f}, Accuracy: {correct}/{n} ({100.0 * correct / n:.2f}%)\n")
    if args.test_samples > 0:
        k = min(args.test_samples, n)
        rng = np.random.default_rng(args.seed)
        idx = np.sort(rng.choice(n, size=k, replace=False))
        from app.ml.train import normalize
        with torch.inference_mode():
            probs = torch.softmax(loaded.model(normalize(x[idx])), 1).cpu().numpy()
        out = plots.save_samples(split.images[idx], split.labels[idx], probs,
                                 figures_dir / f"{model_path.stem}_test_samples.png")
        print(f"Saved {k} test samples to {out}")


class _TqdmReporter:
    def __init__(self):
        from tqdm import tqdm
        self._tqdm = tqdm
        self.bar = None
        self.last_test = None

    def __call__(self, p) -> None:
        if self.bar is None:
            self.bar = self._tqdm(total=p.epochs * p.batches, unit="batch", desc="training")
        self.bar.n = (p.epoch - 1) * p.batches + p.batch
        if p.epoch_stats is not None:
            self.last_test = f"{p.epoch_stats.test_accuracy:.2f}%"
        postfix = {"epoch": f"{p.epoch}/{p.epochs}", "loss": f"{p.loss:.3f}"}
        if self.last_test:
            postfix["test"] = self.last_test
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    sys.exit(main())
