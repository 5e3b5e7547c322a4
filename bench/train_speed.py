#!/usr/bin/env python
"""Time to accuracy, DAWNBench style: train the product's network from scratch until it
first reaches 98.5 % test accuracy (checked after each epoch), twice:

1. the textbook pipeline: a Dataset returning one normalised tensor per item, a
   DataLoader with batch 64, Adam at 1e-3, constant;
2. our training loop with its "quick" preset (tensors in memory, batch-level work,
   one-cycle schedule).

Last line: ``speedup: N.NNx`` (textbook seconds / ours).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from app.ml import data  # noqa: E402
from app.ml.model import MNISTNet  # noqa: E402
from app.ml.train import evaluate, preset, to_tensors, train  # noqa: E402
from app.settings import Settings  # noqa: E402

TARGET = 98.5


class TextbookMNIST(Dataset):
    """What torchvision.datasets.MNIST + ToTensor + Normalize hand to a DataLoader."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i].copy()).float().div(255.0).unsqueeze(0)
        return (x - data.MEAN) / data.STD, int(self.labels[i])


def textbook(mnist, max_epochs: int, seed: int) -> tuple[float, int, float]:
    torch.manual_seed(seed)
    model = MNISTNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TextbookMNIST(mnist.train.images, mnist.train.labels), batch_size=64, shuffle=True)
    test_x, test_y = to_tensors(mnist.test.images, mnist.test.labels, torch.device("cpu"))
    start = time.perf_counter()
    acc = 0.0
    for epoch in range(1, max_epochs + 1):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        _, correct, n = evaluate(model, test_x, test_y)
        acc = 100.0 * correct / n
        print(f"  textbook epoch {epoch}: {acc:.2f}% at {time.perf_counter() - start:.1f} s", flush=True)
        if acc >= TARGET:
            break
    return time.perf_counter() - start, epoch, acc


def ours(mnist, max_epochs: int, seed: int) -> tuple[float, int, float]:
    config = preset("quick", seed=seed, use_cuda=False, target_accuracy=TARGET)
    config.epochs = max(config.epochs, 1)
    start = time.perf_counter()
    result = train(config, mnist)
    seconds = time.perf_counter() - start
    for h in result.history:
        print(f"  ours epoch {h.epoch}: {h.test_accuracy:.2f}% at {h.seconds:.1f} s", flush=True)
    if result.test_accuracy < TARGET:
        print(f"  ours did not reach {TARGET}% in {config.epochs} epochs", flush=True)
    return seconds, len(result.history), result.test_accuracy


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--max-epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    mnist = data.load_or_fetch(Settings.load(), args.data_dir, progress=data.tqdm_progress())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, target {TARGET}% test accuracy")
    t_ours, e_ours, a_ours = ours(mnist, args.max_epochs, args.seed)
    print(f"ours (quick preset): {t_ours:.1f} s, {e_ours} epochs, {a_ours:.2f}%")
    t_book, e_book, a_book = textbook(mnist, args.max_epochs, args.seed)
    print(f"textbook (Dataset + DataLoader, batch 64, Adam 1e-3): {t_book:.1f} s, {e_book} epochs, {a_book:.2f}%")
    print(f"speedup: {t_book / t_ours:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
