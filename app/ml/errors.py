"""The errors of the machine-learning core, in a module without torch.

Callers that never run a network (the GUI's controllers, the command line's error
handling) import them from here and catch them by class; the modules that raise them
re-export them where they always were (``app.ml.checkpoint.ModelFileError``, ...).
"""

from __future__ import annotations


class ModelFileError(RuntimeError):
    """A weights file is missing, corrupt, truncated or for another network."""


class NothingDrawn(ValueError):
    """The image holds no ink: there is no digit to recognise."""


class TrainingCancelled(Exception):
    """The user cancelled training; the previous weights are untouched."""


class MNISTError(RuntimeError):
    """The MNIST files are missing, corrupt or could not be downloaded."""


class ImageTooLarge(ValueError):
    """The image has more than preprocess.MAX_PIXELS pixels (or is a decompression bomb)."""


__all__ = ["ModelFileError", "NothingDrawn", "ImageTooLarge", "TrainingCancelled", "MNISTError"]
