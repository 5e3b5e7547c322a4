"""The reliability diagram of a model (About this model): per confidence bin, how often
the answers in it were right, against the diagonal where confidence and accuracy agree.
It shows what it is given (the bins from the weights file's metadata); nothing else."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from app.widgets import theme
from app.widgets.charts import plain_plot


class ReliabilityDiagram(QWidget):
    """Bars: the share right in each confidence bin (darker: more answers); dashes: perfect."""

    def __init__(self, parent: QWidget | None = None):
        from PySide6.QtWidgets import QVBoxLayout

        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.plot = plain_plot()
        self.plot.setMinimumSize(260, 220)
        self.plot.setLabel("bottom", "confidence")
        self.plot.setLabel("left", "share right")
        self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        self.plot.plot([0, 1], [0, 1], pen=pg.mkPen(theme.MUTED, width=1, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.bars: pg.BarGraphItem | None = None
        lay.addWidget(self.plot)
        self.setToolTip("Reliability diagram on the MNIST test set: when the model says 90 %, "
                        "is it right 90 % of the time? Bars on the dashed line mean yes.")

    def set_bins(self, edges, counts, accuracy) -> None:
        edges = np.asarray(edges, float)
        counts = np.asarray(counts, float)
        acc = np.array([np.nan if v is None else v for v in accuracy], float)
        if self.bars is not None:
            self.plot.removeItem(self.bars)
        share = counts / max(counts.sum(), 1.0)
        brushes = [pg.mkBrush(47, 111, 222, int(60 + 195 * min(1.0, s * 5))) for s in share]
        self.bars = pg.BarGraphItem(x=(edges[:-1] + edges[1:]) / 2, height=np.nan_to_num(acc),
                                    width=float(edges[1] - edges[0]) * 0.92, brushes=brushes, pen=pg.mkPen(None))
        self.plot.addItem(self.bars)

    def bar_heights(self) -> np.ndarray:
        """What the bars show (for tests)."""
        return np.asarray(self.bars.opts["height"]) if self.bars is not None else np.zeros(0)
