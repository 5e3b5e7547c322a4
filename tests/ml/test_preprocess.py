import re

import numpy as np
import pytest
import torch
from PIL import Image

from app.ml.preprocess import NothingDrawn, prepare
from tests.ml.drawing import draw_digit


def blur(img: np.ndarray) -> np.ndarray:
    """3x3 box blur: "nearly the same" should not hinge on a one-pixel shift of a thin stroke."""
    p = np.pad(img, 1)
    return sum(p[i:i + img.shape[0], j:j + img.shape[1]] for i in range(3) for j in range(3)) / 9.0


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = blur(a), blur(b)
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@pytest.mark.parametrize("digit", [1, 7, 0, 4, 3])
def test_small_in_a_corner_or_large_gives_nearly_the_same_input(digit):
    centred = prepare(draw_digit(digit)).image
    small_corner = prepare(draw_digit(digit, scale=0.35, offset=(5, 170))).image
    large = prepare(draw_digit(digit, size=560)).image  # the same drawing on a canvas twice as big
    assert similarity(centred, small_corner) > 0.85
    assert similarity(centred, large) > 0.95


def test_input_follows_mnist_layout():
    img = prepare(draw_digit(0)).image
    rows = np.flatnonzero(img.any(1))
    cols = np.flatnonzero(img.any(0))
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == 20  # fits a 20x20 box
    ys, xs = np.indices(img.shape)
    com = ((img * ys).sum() / img.sum(), (img * xs).sum() / img.sum())
    assert abs(com[0] - 14) <= 0.5 and abs(com[1] - 14) <= 0.5
    assert img.max() == pytest.approx(1.0)
    assert img[0].max() == 0 and img[:, 0].max() == 0


def test_aspect_ratio_is_kept_not_stretched():
    img = prepare(draw_digit(1)).image  # a tall thin stroke stays tall and thin
    cols = np.flatnonzero(img.any(0))
    assert cols[-1] - cols[0] + 1 <= 4


def test_both_polarities_give_the_same_input():
    dark_on_light = prepare(draw_digit(7)).image
    light_on_dark = prepare(draw_digit(7, invert=True)).image
    np.testing.assert_allclose(dark_on_light, light_on_dark, atol=1e-5)


def test_grey_background_and_faint_ink():
    arr = np.asarray(draw_digit(4), dtype=np.float32) / 255.0
    faint = 0.55 + 0.2 * arr  # grey paper, pencil-faint ink
    assert similarity(prepare(faint).image, prepare(draw_digit(4)).image) > 0.97


@pytest.mark.parametrize("blank", [
    np.full((280, 280), 255, np.uint8),
    np.zeros((28, 28), np.float32),
    Image.new("RGBA", (100, 100), (0, 0, 0, 0)),
    np.full((50, 50, 3), 128, np.uint8),
])
def test_blank_image_is_nothing_drawn_not_a_guess(blank):
    with pytest.raises(NothingDrawn, match="nothing drawn"):
        prepare(blank)


def _inputs():
    img = draw_digit(7)
    arr = np.asarray(img)
    return {
        "PIL L": img,
        "PIL RGB": img.convert("RGB"),
        "PIL 1": img.convert("1"),
        "PIL I": img.convert("I"),
        "PIL RGBA transparent": Image.merge("RGBA", [Image.new("L", img.size, 0)] * 3 + [Image.eval(img, lambda v: 255 - v)]),
        "uint8 HxW": arr,
        "uint8 HxWx1": arr[..., None],
        "uint8 HxWx3": np.repeat(arr[..., None], 3, axis=2),
        "uint8 HxWx4": np.dstack([arr, arr, arr, np.full_like(arr, 255)]),
        "float 0..1": arr.astype(np.float64) / 255.0,
        "float 0..255": arr.astype(np.float32),
        "tensor HxW": torch.from_numpy(arr.copy()),
        "tensor 1xHxW float": torch.from_numpy(arr.astype(np.float32) / 255.0)[None],
    }


@pytest.mark.parametrize("name", list(_inputs()))
def test_every_supported_input_type(name):
    reference = prepare(draw_digit(7)).image
    assert similarity(prepare(_inputs()[name]).image, reference) > 0.97


@pytest.mark.parametrize("bad, message", [
    (np.zeros(10), "shape"),
    (np.zeros((2, 3, 28, 28)), "shape"),
    (np.zeros((0, 28)), "no pixels"),
    (np.full((28, 28), np.nan, np.float32), "NaN"),
    (np.array([["a", "b"], ["c", "d"]]), "dtype"),
    (-np.ones((28, 28), np.float32), "negative"),
    ("digit.png", "PIL image, a numpy array or a torch tensor"),
    (None, "PIL image, a numpy array or a torch tensor"),
])
def test_bad_input_gets_a_clear_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        prepare(bad)


def test_mnist_digits_pass_through_nearly_unchanged(mnist):
    images = mnist.test.images[:300]
    diffs = [np.abs(prepare(img).image - img / 255.0).mean() for img in images]
    assert np.mean(diffs) < 0.01


# ---- huge images: a clear result or error, fast, without gigabytes ------------------------------
def png_of_size(path, width: int, height: int, bit_depth: int = 8):
    """A valid blank grey PNG of any size, written without ever holding its pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + b"\xff" * ((width * bit_depth + 7) // 8)
    z = zlib.compressobj(1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0))
                 + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big-images")
    photo = Image.new("RGB", (7000, 5000), "white")
    photo.paste(draw_digit(7, size=4000).convert("RGB"), (1500, 500))
    photo.save(folder / "photo.jpg", quality=90)
    del photo
    draw_digit(7, size=4500).save(folder / "scan.png")
    return {"photo.jpg": folder / "photo.jpg", "scan.png": folder / "scan.png",
            "huge.png": png_of_size(folder / "huge.png", 13000, 13000),
            "bomb.png": png_of_size(folder / "bomb.png", 20000, 20000, bit_depth=1)}


#: Each case runs in a child process: make the input (not measured), then prepare or
#: predict it; the child reports its peak RSS growth and what happened.
MEASURE = """
import json, sys, time
import numpy as np
from PIL import Image
from app.ml import preprocess
from app.ml.inference import MNISTPredictor
from tests.ml.drawing import draw_digit
from tests.ml.memory import peak_mb, reset_peak

case, path = sys.argv[1], sys.argv[2]
predictor = MNISTPredictor()
predictor.predict(draw_digit(7))  # warm up
make = {
    "array 20000x20000": lambda: np.full((20000, 20000), 255, np.uint8),
    "array 6000x6000": lambda: np.full((6000, 6000), 255, np.uint8),
    "array 4500x4500 uint8": lambda: np.asarray(draw_digit(7, size=4500)),
    "array 4500x4500x3 float32": lambda: np.repeat(np.asarray(draw_digit(7, size=4500), np.float32)[..., None], 3, 2),
    "PIL 13000x13000": lambda: Image.new("L", (13000, 13000), 255),
    "PIL 4500x4500": lambda: draw_digit(7, size=4500),
    "PIL 4500x4500 palette": lambda: draw_digit(7, size=4500).convert("P"),
    "PIL 4500x4500 1-bit": lambda: draw_digit(7, size=4500).convert("1"),
}
x = make[case]() if case in make else None
if isinstance(x, np.ndarray):
    x.sum()  # every page in memory before the baseline
base = reset_peak()
start = time.perf_counter()
try:
    if x is None:  # a file, through the image opener
        x = preprocess.open_image(path)
    r = predictor.predict(x)
    _, heat = predictor.explain(x)
    [r2] = predictor.predict_batch([x])
    outcome = {"digit": r.digit, "same": r2.digit == r.digit, "image": r.image.tolist()}
except ValueError as exc:
    outcome = {"error": str(exc), "type": type(exc).__name__}
outcome["seconds"] = time.perf_counter() - start
outcome["peak_growth_mb"] = peak_mb() - base
print(json.dumps(outcome))
"""

TOO_LARGE = {
    "array 20000x20000": r"20000 × 20000 pixels \(400 Mpx\)",
    "array 6000x6000": r"6000 × 6000 pixels \(36 Mpx\)",
    "PIL 13000x13000": r"13000 × 13000 pixels \(169 Mpx\)",
    "huge.png": r"13000 × 13000 pixels \(169 Mpx\)",
    "bomb.png": r"decompression bomb",
}
READ = ["array 4500x4500 uint8", "array 4500x4500x3 float32", "PIL 4500x4500", "PIL 4500x4500 palette",
        "PIL 4500x4500 1-bit", "photo.jpg", "scan.png"]


@pytest.mark.parametrize("case", list(TOO_LARGE) + READ)
def test_huge_images_are_read_or_refused_with_little_memory(case, big_files):
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", MEASURE, case, str(big_files.get(case, ""))], cwd=repo,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{case}: {r['seconds'] * 1000:.0f} ms, peak +{r['peak_growth_mb']:.0f} MB, "
          f"{r.get('error') or 'digit %s' % r.get('digit')}")
    if case in TOO_LARGE:
        assert r.get("type") == "ImageTooLarge", r
        assert re.search(TOO_LARGE[case], r["error"]) and "25 Mpx" in r["error"] and "scale it down" in r["error"]
    else:
        assert "error" not in r, r
        assert r["digit"] == 7 and r["same"]
        assert similarity(np.array(r["image"], np.float32) / 255, prepare(draw_digit(7)).image) > 0.95
    assert r["peak_growth_mb"] < 200, r


def test_the_image_opener_says_what_is_wrong(tmp_path):
    from app.ml.preprocess import open_image

    with pytest.raises(ValueError, match="the file does not exist"):
        open_image(tmp_path / "none.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"not an image file Pillow can read \(try PNG or JPEG\)"):
        open_image(tmp_path / "notes.png")
    draw_digit(3).save(tmp_path / "three.png")
    img = open_image(tmp_path / "three.png")
    assert img.size == (280, 280) and prepare(img).image.shape == (28, 28)


def test_no_other_image_file_opener():
    """Every image file the app opens goes through the guarded opener."""
    from pathlib import Path

    app = Path(__file__).resolve().parents[2] / "app"
    openers = [str(p.relative_to(app)) for p in app.rglob("*.py")
               if "Image.open(" in p.read_text() and p.name != "preprocess.py"]
    assert openers == []
