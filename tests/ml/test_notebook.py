"""The notebook runs top to bottom (nbclient, a real kernel); any failing cell fails the test."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_notebook_runs_top_to_bottom(mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))  # the kernel inherits it
    nb = nbformat.read(REPO / "mnist_classifier.ipynb", as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 4  # the plots were drawn
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "21,840 parameters" in text and "test accuracy" in text
