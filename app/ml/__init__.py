"""The machine-learning core: model, MNIST data, training, preprocessing, inference. No Qt."""

from app.ml.checkpoint import ModelFileError
from app.ml.inference import MNISTPredictor, Prediction
from app.ml.preprocess import NothingDrawn

__all__ = ["MNISTPredictor", "Prediction", "NothingDrawn", "ModelFileError"]
