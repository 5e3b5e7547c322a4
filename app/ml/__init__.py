"""The machine-learning core: model, MNIST data, training, preprocessing, inference. No Qt.

``import app.ml`` does not import torch: the predictor is loaded on first use
(``from app.ml import MNISTPredictor``), and the errors live in ``app.ml.errors``.
"""

from app.ml.errors import MNISTError, ModelFileError, NothingDrawn, TrainingCancelled

__all__ = ["MNISTPredictor", "Prediction", "NothingDrawn", "ModelFileError", "MNISTError",
           "TrainingCancelled"]


def __getattr__(name: str):
    if name in ("MNISTPredictor", "Prediction"):
        from app.ml import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'app.ml' has no attribute {name!r}")
