"""run_model.py --mode read, as a user runs it, on image files."""

import numpy as np
from PIL import Image

from tests.ml.test_cli import run
from tests.ml.test_segment import compose, mnist_digit


def _number_png(mnist, digits, path, invert=False):
    picture, _ = compose([mnist_digit(mnist.train.images, mnist.train.labels, d, nth=1) for d in digits], gap=45)
    Image.fromarray(255 - picture if invert else picture).save(path)
    return path


def test_reads_the_number_in_each_file(tmp_path, mnist):
    a = _number_png(mnist, (2, 0, 2, 5), tmp_path / "year.png")
    b = _number_png(mnist, (7, 4), tmp_path / "dark.png", invert=True)
    out = run("--mode", "read", "--image", str(a), str(b))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"{a}: 2025  (confidence ")
    assert [line.split()[1] for line in lines[1:5]] == ["2", "0", "2", "5"]
    assert all(line.strip().split()[2].endswith("%") for line in lines[1:5])
    assert any(line.startswith(f"{b}: 74  ") for line in lines)


def test_a_single_digit_prints_that_digit(tmp_path, mnist):
    img = np.asarray(Image.fromarray(mnist.test.images[0]).resize((280, 280), Image.Resampling.BICUBIC))
    path = tmp_path / "seven.png"
    Image.fromarray(255 - img).save(path)
    out = run("--mode", "read", "--image", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{path}: {int(mnist.test.labels[0])}  (confidence ")
    assert len(out.stdout.strip().splitlines()) == 2


def test_missing_and_unreadable_files_are_clear_errors(tmp_path, mnist):
    good = _number_png(mnist, (3, 1), tmp_path / "good.png")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    blank = tmp_path / "blank.png"
    Image.new("L", (300, 200), 255).save(blank)
    out = run("--mode", "read", "--image", str(tmp_path / "missing.png"), str(text), str(blank), str(good))
    assert out.returncode == 2
    assert f"{tmp_path / 'missing.png'}: the file does not exist" in out.stderr
    assert f"{text}: this is not an image file" in out.stderr
    assert f"{blank}: nothing drawn" in out.stderr
    assert f"{good}: 31  " in out.stdout  # the good file is still read
    assert "Traceback" not in out.stderr


def test_read_without_images_says_what_to_give():
    out = run("--mode", "read")
    assert out.returncode == 2
    assert "--image FILE" in out.stderr
