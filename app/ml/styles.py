"""Synthetic handwriting styles: MNIST digits re-drawn the way a particular person might
write them (thicker pen, a slant).  Used to simulate a user in benchmarks and tests."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from app.ml.preprocess import prepare


def restyle(images: np.ndarray, thickness: int = 2, slant_deg: float = -30.0, squash: float = 0.7) -> np.ndarray:
    """(N, 28, 28) uint8 MNIST digits -> the same digits with a thicker pen (``thickness``
    extra dilations), slanted by ``slant_deg`` and narrowed to ``squash`` of their width,
    then prepared as the app prepares a drawing.  Returns (N, 28, 28) uint8."""
    x = torch.from_numpy(np.array(images, dtype=np.float32) / 255.0).unsqueeze(1)
    x = F.pad(x, (14, 14, 14, 14))  # room for the slant
    n = x.shape[0]
    shear = math.tan(math.radians(slant_deg))
    theta = torch.tensor([[1.0 / squash, shear, 0.0], [0.0, 1.0, 0.0]]).expand(n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False)
    for _ in range(thickness):
        x = torch.maximum(x, 0.85 * F.max_pool2d(x, 3, stride=1, padding=1))
    out = (x[:, 0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    return np.stack([prepare(img).as_uint8() for img in out])
