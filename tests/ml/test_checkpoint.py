import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from app.ml import checkpoint
from app.ml.model import MNISTNet, build_model

REPO = Path(__file__).resolve().parents[2]


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model = MNISTNet(conv_dropout=0.1, fc_dropout=0.25)
    path = tmp_path / "m.pth"
    sha = checkpoint.save(path, model, "mnist_cnn", {"conv_dropout": 0.1, "fc_dropout": 0.25},
                          {"test_accuracy": 99.1, "epochs": 3})
    loaded = checkpoint.load(path)
    assert loaded.arch == "mnist_cnn" and loaded.metadata["epochs"] == 3 and loaded.test_accuracy == 99.1
    assert loaded.sha256 == sha and not loaded.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    raw = torch.load(path, weights_only=True)
    assert raw["normalization"] == {"mean": 0.1307, "std": 0.3081} and raw["num_classes"] == 10


def test_missing_file_names_the_file_and_what_to_do(tmp_path):
    with pytest.raises(checkpoint.ModelFileError, match=r"not found: .*nope\.pth.*run_model.py --mode train"):
        checkpoint.load(tmp_path / "nope.pth")


def test_truncated_file(tmp_path):
    path = tmp_path / "m.pth"
    checkpoint.save(path, MNISTNet(), "mnist_cnn")
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(checkpoint.ModelFileError, match=r"m\.pth is corrupt"):
        checkpoint.load(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "m.pth"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(checkpoint.ModelFileError, match="corrupt or not a weights file"):
        checkpoint.load(path)


def test_weights_of_another_network(tmp_path):
    path = tmp_path / "m.pth"
    checkpoint.save(path, build_model("wide"), "mnist_cnn")  # labelled as the product network
    with pytest.raises(checkpoint.ModelFileError, match="does not match the 'mnist_cnn' network"):
        checkpoint.load(path)


def test_a_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "m.pth"
    torch.save({"format": checkpoint.FORMAT, "state_dict": MNISTNet().state_dict(), "evil": print}, path)
    with pytest.raises(checkpoint.ModelFileError, match="corrupt or not a weights file"):
        checkpoint.load(path)


def test_a_bare_state_dict_of_the_product_network_loads(tmp_path):
    path = tmp_path / "m.pth"
    torch.save(MNISTNet().state_dict(), path)
    assert checkpoint.load(path).arch == "mnist_cnn"


SAVER = """
import sys, torch
from app.ml import checkpoint
from app.ml.model import MNISTNet
path = sys.argv[1]
i = 0
print("ready", flush=True)
while True:
    i += 1
    torch.manual_seed(i)
    checkpoint.save(path, MNISTNet(), "mnist_cnn", metadata={"i": i})
"""


def test_a_kill_during_saves_leaves_a_usable_file(tmp_path):
    path = tmp_path / "m.pth"
    checkpoint.save(path, MNISTNet(), "mnist_cnn", metadata={"i": 0})
    for delay in (0.3, 0.55, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], cwd=REPO, stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        loaded = checkpoint.load(path)  # never a half-written file
        assert isinstance(loaded.metadata["i"], int)
    assert checkpoint.load(path).metadata["i"] > 0  # the saver really overwrote it
