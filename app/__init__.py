"""MNIST Digit Classifier: shared application code (core in app.ml and app.db, Qt in app.widgets)."""

__version__ = "1.0.0"
