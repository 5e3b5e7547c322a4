"""run_model.py end to end, as a user runs it, on a small subset."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args, env_extra=None, cwd=REPO):
    import os
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(REPO / "run_model.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_train_and_test_on_a_subset(tmp_path, mnist_dir):
    model = tmp_path / "m.pth"
    out = run("--mode", "both", "--epochs", "1", "--batch-size", "50", "--learning-rate", "0.005",
              "--train-limit", "2000", "--test-limit", "500", "--synthetic", "300", "--validation", "500",
              "--calibration", "200", "--model-path", str(model), "--data-dir",
              str(mnist_dir), "--no-cuda", "--seed", "3", "--test-samples", "6", "-q",
              env_extra={"MNIST_DATA_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr
    assert "Test set: Average loss: " in out.stdout
    line = next(l for l in out.stdout.splitlines() if l.startswith("Test set"))
    correct = int(line.split("Accuracy: ")[1].split("/")[0])
    assert "/500 (" in line and correct > 350
    assert model.is_file()
    # The standard recipe: synthetic digits in the mix (cached in the data folder), calibrated.
    from app.ml import checkpoint

    meta = checkpoint.load(model).metadata
    assert meta["training_data"]["synthetic_digits"] == 300 and meta["training_data"]["validation"] == 500
    assert 0.05 < meta["calibration"]["temperature"] < 20 and meta["calibration"]["top_map"]
    assert list((tmp_path / "home" / "synthetic").glob("digits-*-300.npz"))
    assert (tmp_path / "m_history.png").stat().st_size > 10000
    assert (tmp_path / "m_test_samples.png").stat().st_size > 10000


def test_test_mode_on_the_shipped_model(mnist_dir):
    out = run("--mode", "test", "--data-dir", str(mnist_dir), "--test-limit", "2000", "-q",
              "--figures-dir", "/tmp")
    assert out.returncode == 0, out.stderr
    assert "Accuracy: " in out.stdout and "/2000" in out.stdout


def test_missing_model_is_a_clear_error(tmp_path, mnist_dir):
    out = run("--mode", "test", "--model-path", str(tmp_path / "none.pth"), "--data-dir", str(mnist_dir))
    assert out.returncode == 2
    assert "not found" in out.stderr and "--mode train" in out.stderr
    assert "Traceback" not in out.stderr


def test_offline_without_data_says_where_to_put_the_files(tmp_path):
    out = run("--mode", "test", "--data-dir", str(tmp_path / "empty"), "--no-download")
    assert out.returncode == 2
    assert "MNIST files missing" in out.stderr and "MNIST_DIR" in out.stderr


def test_help_lists_every_flag():
    out = run("--help")
    for flag in ("--mode", "--epochs", "--batch-size", "--learning-rate", "--model-path", "--no-cuda",
                 "--test-samples", "--data-dir", "--seed", "--arch"):
        assert flag in out.stdout


def _damaged_copy(src: Path, dst: Path, change) -> Path:
    import torch

    payload = torch.load(src, weights_only=True)
    change(payload["state_dict"])
    torch.save(payload, dst)
    return dst


def test_nan_weights_are_refused_with_a_clear_error(tmp_path, mnist_dir, shipped_model_path):
    bad = _damaged_copy(shipped_model_path, tmp_path / "nan.pth",
                        lambda state: state["fc1.weight"].view(-1)[7:9].fill_(float("nan")))
    out = run("--mode", "test", "--model-path", str(bad), "--data-dir", str(mnist_dir), "--test-limit", "500", "-q")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "NaN or infinite values (in fc1.weight)" in out.stderr and "Traceback" not in out.stderr
    assert "Average loss" not in out.stdout


def test_a_model_whose_loss_overflows_fails_the_test_run(tmp_path, mnist_dir, shipped_model_path):
    """Finite weights so large that the activations overflow: the loss is NaN, and the run fails."""
    def blow_up(state):
        state["conv1.weight"].mul_(1e20)
        state["conv2.weight"].mul_(1e20)

    bad = _damaged_copy(shipped_model_path, tmp_path / "huge.pth", blow_up)
    out = run("--mode", "test", "--model-path", str(bad), "--data-dir", str(mnist_dir), "--test-limit", "500", "-q")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "error: testing gave a loss of nan" in out.stderr and "Traceback" not in out.stderr
    assert "Average loss: nan" not in out.stdout


def test_a_training_that_ends_in_a_non_finite_loss_is_an_error(tmp_path):
    import math

    import pytest

    import run_model
    from app.ml.train import EpochStats

    good = EpochStats(epoch=1, train_loss=0.3, train_accuracy=90.0, test_loss=0.2, test_accuracy=95.0, seconds=1.0)
    run_model.check_training_losses([good], tmp_path / "m.pth")  # finite: nothing to say
    for loss in (math.nan, math.inf):
        diverged = EpochStats(epoch=2, train_loss=loss, train_accuracy=10.0, test_loss=2.3, test_accuracy=9.8,
                              seconds=2.0)
        with pytest.raises(run_model.NonFiniteLoss, match=r"epoch 2 .* train loss (nan|inf).*m\.pth is unchanged.*--learning-rate"):
            run_model.check_training_losses([good, diverged], tmp_path / "m.pth")


def test_the_command_line_tests_the_product_network_by_default(tmp_path, mnist_dir):
    """The app defaults to the wider network; run_model.py to the product's, unless
    MNIST_MODEL_PATH says otherwise."""
    env = {"MNIST_DATA_HOME": str(tmp_path / "home"), "MNIST_MODEL_PATH": ""}
    out = run("--mode", "test", "--test-limit", "300", "--data-dir", str(mnist_dir), "-q", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert "mnist_classifier.pth" in out.stdout + out.stderr
    wide = REPO / "saved_models" / "mnist_robust.pth"
    out = run("--mode", "test", "--test-limit", "300", "--data-dir", str(mnist_dir), "-q",
              env_extra={**env, "MNIST_MODEL_PATH": str(wide)})
    assert out.returncode == 0, out.stderr
    assert "mnist_robust.pth" in out.stdout + out.stderr
