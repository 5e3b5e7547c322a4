"""The networks.

``MNISTNet`` is the product's network and the default everywhere.  ``WideNet`` is an
optional, stronger network offered beside it (``--arch wide``); it never replaces it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_ARCH = "mnist_cnn"


class MNISTNet(nn.Module):
    """conv 1->10 (5x5), conv 10->20 (5x5), each ReLU + 2x2 max-pool, dropout after
    conv2, fc 320->50, dropout, fc 50->10.  21 840 parameters.  Returns logits."""

    def __init__(self, conv_dropout: float = 0.5, fc_dropout: float = 0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(conv_dropout)
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)
        self.fc_dropout = fc_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=self.fc_dropout, training=self.training)
        return self.fc2(x)


class WideNet(nn.Module):
    """A stronger optional network: two 3x3 conv blocks with batch norm, then a small head."""

    def __init__(self, width: int = 16, dropout: float = 0.25):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, width), block(width, 2 * width))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * width * 49, 128),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mnist_cnn": MNISTNet,
    "wide": WideNet,
}

ARCH_DESCRIPTIONS = {
    "mnist_cnn": "The product's CNN: 2 conv layers (10, 20 filters, 5x5), fc 320-50-10; 21 840 parameters",
    "wide": "Optional wider CNN: 4 conv layers (16, 32 filters, 3x3) with batch norm, fc 1568-128-10",
}


def build_model(arch: str = DEFAULT_ARCH, **kwargs) -> nn.Module:
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}") from None
    return cls(**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class PieceNet(nn.Module):
    """The number reader's second opinion (``app.ml.pieces``), beside the digit network:
    is a piece cut out of a drawing one whole digit?  The wide network's layout at half its
    width, with 11 outputs: the digits 0-9 and "not one whole digit" (10)."""

    CLASSES = 11

    def __init__(self, width: int = 8, dropout: float = 0.2):
        super().__init__()
        self.body = WideNet(width=width, dropout=dropout)
        self.body.head[-1] = nn.Linear(128, self.CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
