"""Why this digit? Which pixels of the 28x28 input pushed the network towards its answer."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def gradient_x_input(model: nn.Module, tensor_input: np.ndarray, target: int | None = None) -> np.ndarray:
    """Gradient x input for the ``target`` class (default: the predicted one).

    ``tensor_input`` is the normalised (1, 28, 28) array from ``preprocess.prepare``.
    Returns a (28, 28) float32 map scaled to [-1, 1]: positive pixels raised the class's
    score, negative ones lowered it.  The input is measured from the background value
    (black), so empty background contributes nothing.
    """
    x = torch.from_numpy(np.ascontiguousarray(tensor_input, dtype=np.float32))[None].requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x)
            cls = int(logits.argmax(1)) if target is None else int(target)
            grad, = torch.autograd.grad(logits[0, cls], x)
    finally:
        model.train(was_training)
    background = float((0.0 - 0.1307) / 0.3081)
    attribution = (grad * (x.detach() - background))[0, 0].numpy()
    peak = float(np.abs(attribution).max())
    return (attribution / peak if peak > 0 else attribution).astype(np.float32)


def occlusion(model: nn.Module, tensor_input: np.ndarray, target: int | None = None, patch: int = 4,
              stride: int = 2) -> np.ndarray:
    """How much the target class's probability drops when each patch is blanked, in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(tensor_input, dtype=np.float32))[None]
    background = (0.0 - 0.1307) / 0.3081
    with torch.inference_mode():
        base = torch.softmax(model(x), 1)[0]
        cls = int(base.argmax()) if target is None else int(target)
        positions = [(i, j) for i in range(0, 28 - patch + 1, stride) for j in range(0, 28 - patch + 1, stride)]
        batch = x.repeat(len(positions), 1, 1, 1)
        for k, (i, j) in enumerate(positions):
            batch[k, 0, i:i + patch, j:j + patch] = background
        drops = (base[cls] - torch.softmax(model(batch), 1)[:, cls]).numpy()
    heat = np.zeros((28, 28), np.float32)
    count = np.zeros((28, 28), np.float32)
    for (i, j), d in zip(positions, drops):
        heat[i:i + patch, j:j + patch] += d
        count[i:i + patch, j:j + patch] += 1
    heat /= np.maximum(count, 1)
    peak = float(np.abs(heat).max())
    return heat / peak if peak > 0 else heat
