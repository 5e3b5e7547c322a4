"""The app's logic between the widgets and the core (app.ml, app.db): no widgets here.

One room per job, each a QObject living in the GUI thread that takes its collaborators
in its constructor; the work itself runs in worker threads (app/workers.py) as jobs that
get what they need as arguments and return what the GUI thread stores:

- ``prediction``: the live prediction of the drawing on the canvas (and opened images);
- ``reading``: Number mode: a whole number read digit by digit, corrected and logged;
- ``feedback``: ✓ Correct / ✗ Wrong… / clear, and logging the drawings;
- ``models``: the model in use, loading weights, the model versions;
- ``learning``: training and Improve with my corrections, in a child process;
- ``statistics``: the statistics tab's numbers and the exports;
- ``database``: the one database session, owned by the database worker, and its status;
- ``controller``: makes the rooms and wires them (``Controller``).

What the widgets are handed (``ModelInfo``, ``PredictionResult``, ...) is in app/viewmodels.py.
"""

from app.controllers.controller import Controller

__all__ = ["Controller"]
