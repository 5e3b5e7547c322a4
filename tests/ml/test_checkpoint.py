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


# ---- bad weights files: a clear error, quickly, without building a huge network ----------------
def _payload(**changes) -> dict:
    payload = {"format": checkpoint.FORMAT, "format_version": 1, "arch": "mnist_cnn",
               "arch_kwargs": {"conv_dropout": 0.1, "fc_dropout": 0.25}, "num_classes": 10,
               "metadata": {"test_accuracy": 99.0}, "state_dict": MNISTNet().state_dict()}
    payload.update(changes)
    return payload


def _with_tensor(name: str, value: float) -> dict:
    state = MNISTNet().state_dict()
    state[name] = state[name].clone()
    state[name].view(-1)[3] = value
    return state


BAD_FILES = {
    # name: (payload, what the message must say)
    "huge_width": (_payload(arch="wide", arch_kwargs={"width": 2048}, state_dict={}),
                   r"the 'wide' network the argument width=2048, which is out of range \(1 to 256\)"),
    "arch_list": (_payload(arch=["mnist_cnn"]), r"names its network \['mnist_cnn'\] .*expected a name such as 'mnist_cnn'"),
    "version_text": (_payload(format_version="1"), r"has format version '1', which is not a whole number"),
    "kwargs_list": (_payload(arch_kwargs=[("conv_dropout", 0.1)]), r"network arguments .* not a table of names and values"),
    "classes_text": (_payload(num_classes="10"), r"number of classes '10' \(text\); this program needs the number 10"),
    "classes_5": (_payload(num_classes=5), r"has 5 classes; this program needs 10"),
    "unknown_kwarg": (_payload(arch_kwargs={"depth": 3}), r"unknown argument 'depth' .*conv_dropout, fc_dropout"),
    "kwarg_text": (_payload(arch="wide", arch_kwargs={"width": "16"}, state_dict={}), r"the 'wide' network the argument width='16', which is not a whole number"),
    "kwarg_bool": (_payload(arch="wide", arch_kwargs={"width": True}, state_dict={}), r"the 'wide' network the argument width=True, which is not a whole number"),
    "kwarg_nan": (_payload(arch_kwargs={"conv_dropout": float("nan")}), r"argument conv_dropout=nan, which is out of range \(0 to 1\)"),
    "dropout_big": (_payload(arch_kwargs={"fc_dropout": 7.0}), r"argument fc_dropout=7.0, which is out of range \(0 to 1\)"),
    "state_list": (_payload(state_dict=[1, 2]), r"has weights that are not a table of named tensors \(a list\)"),
    "state_value": (_payload(state_dict={**MNISTNet().state_dict(), "fc2.bias": [0.0] * 10}),
                    r"'fc2.bias' is not a tensor"),
    "missing_tensor": (_payload(state_dict={k: v for k, v in MNISTNet().state_dict().items() if k != "fc2.bias"}),
                       r"does not match the 'mnist_cnn' network: missing fc2.bias"),
    "wrong_shape": (_payload(arch="wide", arch_kwargs={"width": 64}, state_dict=build_model("wide").state_dict()),
                    r"does not match the 'wide' network: features.0.0.weight is 16x1x3x3, the network has 64x1x3x3"),
    "nan_weight": (_payload(state_dict=_with_tensor("conv2.weight", float("nan"))),
                   r"holds NaN or infinite values \(in conv2.weight\)"),
    "inf_weight": (_payload(state_dict=_with_tensor("fc1.bias", float("inf"))),
                   r"holds NaN or infinite values \(in fc1.bias\)"),
    "metadata_text": (_payload(metadata="trained yesterday"), r"has metadata that is not a table of named values \(text\)"),
    "accuracy_text": (_payload(metadata={"test_accuracy": "high"}), r"records a test accuracy 'high' that is not a number from 0 to 100"),
    "temperature_text": (_payload(metadata={"calibration": {"temperature": "warm"}}),
                         r"unusable calibration data \(calibration temperature 'warm' is not a number"),
    "threshold_nan": (_payload(metadata={"calibration": {"temperature": 1.0, "digit_threshold": float("nan")}}),
                      r"unusable calibration data \(digit threshold nan is not a finite number"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_weights_give_a_clear_model_file_error(tmp_path, case):
    payload, message = BAD_FILES[case]
    path = tmp_path / f"{case}.pth"
    torch.save(payload, path)
    with pytest.raises(checkpoint.ModelFileError, match=message) as info:
        checkpoint.load(path)
    assert str(path) in str(info.value)
    assert "Train a new model" in str(info.value) or "another weights file" in str(info.value)


MEASURE = """
import json, sys, time, torch
from app.ml import checkpoint
from tests.ml.memory import peak_mb, reset_peak
checkpoint.load(sys.argv[1])  # warm up: torch's first load allocates its own buffers
out = {}
for path in sys.argv[2:]:
    base = reset_peak()
    start = time.perf_counter()
    try:
        checkpoint.load(path)
        error = None
    except checkpoint.ModelFileError as exc:
        error = str(exc)
    except Exception as exc:
        error = "escaped: " + type(exc).__name__ + ": " + str(exc)
    out[path] = {"error": error, "seconds": time.perf_counter() - start,
                 "peak_growth_mb": peak_mb() - base}
print(json.dumps(out))
"""


def test_bad_weights_cost_little_memory(tmp_path, shipped_model_path):
    """Each bad file is refused with under 200 MB of extra peak memory (measured in a child
    process: its peak RSS while loading each file, against its RSS before)."""
    import json

    paths = []
    for case, (payload, _) in sorted(BAD_FILES.items()):
        paths.append(str(tmp_path / f"{case}.pth"))
        torch.save(payload, paths[-1])
    out = subprocess.run([sys.executable, "-c", MEASURE, str(shipped_model_path), *paths], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    for path, r in results.items():
        print(f"{Path(path).stem}: {r['seconds'] * 1000:.0f} ms, peak +{r['peak_growth_mb']:.0f} MB")
        assert r["error"] and not r["error"].startswith("escaped"), (path, r)
        assert r["peak_growth_mb"] < 200, (path, r)


def test_a_well_formed_wide_file_still_loads(tmp_path):
    path = tmp_path / "w.pth"
    checkpoint.save(path, build_model("wide", width=8), "wide", {"width": 8, "dropout": 0.2})
    assert checkpoint.load(path).model.features[0][0].weight.shape == (8, 1, 3, 3)


def test_a_file_too_large_for_any_network_is_refused_unread(tmp_path):
    path = tmp_path / "big.pth"
    with open(path, "wb") as fh:  # sparse: takes no disk space, and is never read
        fh.truncate(checkpoint.MAX_FILE_BYTES + 1)
    with pytest.raises(checkpoint.ModelFileError, match=r"big\.pth is 128 MB; weights of this program's networks"):
        checkpoint.load(path)
