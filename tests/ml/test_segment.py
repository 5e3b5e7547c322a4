"""Reading whole numbers: segmentation into digits, with and without the pen strokes.

Drawings are either real MNIST training digits composed side by side at canvas scale (10x,
as the app hands them to the reader) or strokes rendered the way the canvas renders them
(round-capped lines of the brush width, black on white)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.ml import MNISTPredictor, NothingDrawn
from app.ml import glyphs, segment, synth
from app.ml.segment import NumberReading, Stroke, as_strokes
from tests.ml.drawing import draw_digit

BRUSH = 22  # the canvas's default brush


@pytest.fixture(scope="module")
def predictor(shipped_model_path):
    return MNISTPredictor()


# ---- drawings ------------------------------------------------------------------------------------
def render(strokes: list[Stroke], size=(600, 280), invert=False) -> np.ndarray:
    """Strokes painted like the canvas paints them: round caps and joins, brush width."""
    img = Image.new("L", size, 0 if invert else 255)
    d = ImageDraw.Draw(img)
    ink = 255 if invert else 0
    for s in strokes:
        r = s.width / 2
        if len(s.points) > 1:
            d.line(s.points, fill=ink, width=round(s.width), joint="curve")
        for x, y in s.points:
            d.ellipse([x - r, y - r, x + r, y + r], fill=ink)
    return np.asarray(img)


def shifted(points, dx, dy=0.0):
    return tuple((x + dx, y + dy) for x, y in points)


def five(dx=0.0, flag_gap=14.0) -> list[Stroke]:
    """A 5 in two strokes: the body, then the flag drawn apart (not touching it)."""
    body = ((95, 60), (85, 135), (125, 118), (170, 130), (185, 180), (160, 228), (110, 235), (80, 215))
    flag = ((95 + flag_gap + BRUSH, 55), (185, 52))
    return [Stroke(shifted(body, dx), BRUSH), Stroke(shifted(flag, dx), BRUSH)]


def four(dx=0.0) -> list[Stroke]:
    """A 4 in two strokes: the open angle, then the stem across its bar."""
    return [Stroke(shifted(((110, 40), (70, 170), (200, 170)), dx), BRUSH),
            Stroke(shifted(((165, 75), (165, 250)), dx), BRUSH)]


def one(dx=0.0) -> list[Stroke]:
    return [Stroke(shifted(((140, 40), (130, 240)), dx), BRUSH)]


def zero(dx=0.0) -> list[Stroke]:
    return [Stroke(shifted(((140, 40), (195, 80), (205, 160), (170, 235), (110, 235), (75, 160), (85, 80),
                            (140, 40)), dx), BRUSH)]


def mnist_digit(images, labels, digit, nth=0):
    """The nth MNIST image of ``digit`` as canvas-scale ink (0..1), cropped to its columns."""
    idx = np.flatnonzero(labels == digit)[nth]
    big = np.asarray(Image.fromarray(images[idx]).resize((280, 280), Image.Resampling.BICUBIC), np.float32) / 255
    cols = np.flatnonzero(big.max(axis=0) > 0.05)
    return np.clip(big[:, cols[0]:cols[-1] + 1], 0, 1)


def compose(inks, gap=40, touch=False, margin=40):
    """Inks side by side, ``gap`` px between their boxes; ``touch``: pushed until the inks touch.
    Returns (black-on-white uint8 picture, the digits' boxes (x, y, w, h))."""
    width = sum(i.shape[1] for i in inks) + gap * len(inks) + 2 * margin
    canvas = np.zeros((280, width), np.float32)
    boxes, x = [], margin
    for k, ink in enumerate(inks):
        if k and touch:  # slide left from the previous box's edge until the inks meet
            while x > margin:
                region = canvas[:, x - 1:x - 1 + ink.shape[1]] > 0.3
                if (region & (ink > 0.3)).any():
                    break
                x -= 1
        canvas[:, x:x + ink.shape[1]] = np.maximum(canvas[:, x:x + ink.shape[1]], ink)
        rows = np.flatnonzero(ink.max(axis=1) > 0.3)
        boxes.append((x, int(rows[0]), ink.shape[1], int(rows[-1] - rows[0] + 1)))
        x += ink.shape[1] + gap
    return ((1 - canvas) * 255 + 0.5).astype(np.uint8), boxes


# ---- strokes --------------------------------------------------------------------------------------
def test_a_five_in_two_strokes_stays_one_digit(predictor):
    strokes = five()
    picture = render(strokes)
    assert predictor.predict(picture).digit == 5
    # the flag does not touch the body: as ink alone they are two pieces
    assert len({a.unit for a in segment.analyse(picture).atoms}) == 2
    reading = predictor.read_number(picture, strokes=strokes)
    assert reading.text == "5" and len(reading.digits) == 1


def test_a_four_in_two_strokes_stays_one_digit(predictor):
    strokes = four()
    picture = render(strokes)
    assert predictor.predict(picture).digit == 4
    reading = predictor.read_number(picture, strokes=strokes)
    assert reading.text == "4" and len(reading.digits) == 1


@pytest.mark.parametrize("name", ["5_two_strokes", "5_flag_last", "4_open", "4_closed"])
def test_two_stroke_digits_of_many_writers_stay_one_digit(predictor, name):
    """Pen strokes of unseen writers (app.ml.synth), drawn the way the canvas draws them."""
    glyph = next(g for g in glyphs.digit_glyphs() if g.name == name)
    rng = np.random.default_rng(5)
    lengths, texts = [], []
    for writer in range(12):
        style = synth.WriterStyle.sample(synth.DEV_WRITERS.start + writer)
        lines = synth.pen_strokes(glyph, style, rng)
        width = max(2.0, style.pen * style.height_px)
        picture = np.asarray(synth.render(lines, width))
        strokes = [Stroke(tuple(map(tuple, line.tolist())), width) for line in lines]
        reading = predictor.read_number(picture, strokes=strokes)
        lengths.append(len(reading))
        texts.append(reading.text)
    assert lengths == [1] * 12
    assert texts.count(str(glyph.label)) >= 10, texts


def test_numbers_written_by_unseen_writers_with_their_strokes(predictor):
    """Four-digit numbers in the hands of twenty writers (app.ml.synth), the digits close
    together (a tenth of a digit's height apart), read with the strokes."""
    rng = np.random.default_rng(3)
    right = 0
    for writer in range(20):
        style = synth.WriterStyle.sample(synth.DEV_WRITERS.start + 100 + writer)
        digits = [int(d) for d in rng.integers(0, 10, 4)]
        lines, x = [], 0.0
        for d in digits:
            drawn = synth.pen_strokes(style.pick(d, rng), style, rng)
            lo, hi = np.concatenate(drawn).min(0), np.concatenate(drawn).max(0)
            lines += [line - lo + np.array([x + 20, 20]) for line in drawn]
            x += (hi[0] - lo[0]) + 0.1 * style.height_px
        width = max(2.0, style.pen * style.height_px)
        picture = np.asarray(synth.render(lines, width))
        strokes = [Stroke(tuple(map(tuple, line.tolist())), width) for line in lines]
        right += predictor.read_number(picture, strokes=strokes).text == "".join(map(str, digits))
    assert right >= 17, right


def test_fifty_four_in_strokes(predictor):
    strokes = five() + four(dx=210)
    picture = render(strokes, size=(520, 280))
    reading = predictor.read_number(picture, strokes=strokes)
    assert reading.text == "54"
    assert predictor.read_number(picture).text == "54"  # the ink alone reads the same


@pytest.mark.parametrize("text, parts, dx", [("11", (one, one), 90), ("10", (one, zero), 130)])
def test_eleven_and_ten_are_two_digits(predictor, text, parts, dx):
    strokes = parts[0]() + parts[1](dx=dx)
    picture = render(strokes)
    assert predictor.read_number(picture, strokes=strokes).text == text
    assert predictor.read_number(picture).text == text
    assert predictor.read_number(255 - picture).text == text  # white on black


def test_strokes_of_the_app_canvas(predictor, qtbot):
    """The canvas's own strokes (QPointF points, a width per point) and its snapshot."""
    from PySide6.QtCore import QPointF

    from app.widgets.canvas import DrawingCanvas
    from app.widgets.ink import Stroke as CanvasStroke

    canvas = DrawingCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(560, 280)
    for s in five() + four(dx=250):
        canvas.add_stroke(CanvasStroke([QPointF(x, y) for x, y in s.points], [s.width] * len(s.points)))
    picture = canvas.snapshot(max_side=560)  # in the strokes' own (logical) pixels
    assert picture.shape[1] == canvas.width() == 560  # one pixel a logical pixel
    assert as_strokes(canvas.strokes) == five() + four(dx=250)
    assert predictor.read_number(picture, strokes=canvas.strokes).text == "54"
    assert as_strokes([(s.points, s.width) for s in five()]) == five()


def test_bad_strokes_are_a_clear_error(predictor):
    with pytest.raises(ValueError, match="width"):
        as_strokes([(((1, 2), (3, 4)), -1)])
    with pytest.raises(ValueError, match="stroke"):
        as_strokes(["not a stroke"])


# ---- MNIST digits ---------------------------------------------------------------------------------
def test_numbers_of_mnist_digits(predictor, mnist):
    images, labels = mnist.train.images, mnist.train.labels
    right = 0
    for nth in range(6):
        digits = [int(d) for d in (nth, (nth + 3) % 10, (nth + 7) % 10, 1)]
        picture, boxes = compose([mnist_digit(images, labels, d, nth) for d in digits], gap=40)
        reading = predictor.read_number(picture)
        right += reading.text == "".join(map(str, digits))
    assert right >= 5


def test_touching_zeros_are_cut(predictor, mnist):
    images, labels = mnist.train.images, mnist.train.labels
    read = []
    for nth in range(5):
        inks = [mnist_digit(images, labels, 0, 2 * nth), mnist_digit(images, labels, 0, 2 * nth + 1)]
        picture, _ = compose(inks, touch=True)
        assert len({a.unit for a in segment.analyse(picture).atoms}) == 1  # one piece of ink
        read.append(predictor.read_number(picture).text)
    assert read.count("00") >= 4, read


def test_boxes_lie_on_the_digits(predictor, mnist):
    images, labels = mnist.train.images, mnist.train.labels
    picture, truth = compose([mnist_digit(images, labels, d) for d in (2, 0, 2, 5)], gap=50)
    reading = predictor.read_number(picture)
    assert reading.text == "2025"
    assert len(reading.boxes) == 4
    for (x, y, w, h), (tx, ty, tw, th) in zip(reading.boxes, truth):
        ix = max(0, min(x + w, tx + tw) - max(x, tx))
        iy = max(0, min(y + h, ty + th) - max(y, ty))
        assert ix * iy / (w * h + tw * th - ix * iy) > 0.8  # intersection over union
    ink = picture < 128
    for x, y, w, h in reading.boxes:  # every box holds ink and no ink lies outside all boxes
        assert ink[y:y + h, x:x + w].any()
    covered = np.zeros_like(ink)
    for x, y, w, h in reading.boxes:
        covered[y:y + h, x:x + w] = True
    assert not (ink & ~covered).any()


def test_reading_shape_and_confidence(predictor, mnist):
    images, labels = mnist.train.images, mnist.train.labels
    picture, _ = compose([mnist_digit(images, labels, d) for d in (7, 3)], gap=60)
    reading = predictor.read_number(picture)
    assert isinstance(reading, NumberReading)
    assert reading.text == "".join(str(p.digit) for p in reading.digits)
    assert reading.confidence == pytest.approx(np.prod([p.confidence for p in reading.digits]))
    for p in reading.digits:
        assert p.image.shape == (28, 28) and len(p.probabilities) == 10


# ---- one digit, blank ---------------------------------------------------------------------------------
def test_one_digit_alone_equals_predict(predictor, mnist):
    drawings = [draw_digit(d) for d in (0, 1, 3, 4, 7)] + [draw_digit(7, width=34), draw_digit(3, invert=True)]
    drawings += [255 - np.asarray(Image.fromarray(img).resize((280, 280), Image.Resampling.BICUBIC))
                 for img in mnist.test.images[:20]]
    drawings += list(mnist.test.images[20:30])  # 28x28 MNIST input as such
    for x in drawings:
        single = predictor.predict(x)
        reading = predictor.read_number(x)
        assert reading.text == str(single.digit)
        # the same 28x28 input (a batch may round the last digits differently)
        np.testing.assert_array_equal(reading.digits[0].image, single.image)
        assert reading.digits[0].probabilities == pytest.approx(single.probabilities, abs=1e-6)


@pytest.mark.parametrize("value", [0, 255])
def test_blank_raises_nothing_drawn(predictor, value):
    with pytest.raises(NothingDrawn):
        predictor.read_number(np.full((280, 560), value, np.uint8))
    with pytest.raises(NothingDrawn):
        predictor.read_number(np.full((280, 560), value, np.uint8), strokes=[])


def test_boxes_of_a_large_picture_are_in_its_own_pixels(predictor, mnist):
    """A picture above the size guard's limit is read on a scaled-down copy; the boxes
    still come in the picture's own pixels."""
    images, labels = mnist.train.images, mnist.train.labels
    picture, truth = compose([mnist_digit(images, labels, d) for d in (4, 7)], gap=60)
    big = np.asarray(Image.fromarray(picture).resize((picture.shape[1] * 6, picture.shape[0] * 6)))
    assert big.size > 2_000_000
    reading = predictor.read_number(Image.fromarray(big))
    assert reading.text == "47"
    for (x, y, w, h), (tx, ty, tw, th) in zip(reading.boxes, truth):
        assert abs(x - 6 * tx) <= 30 and abs(y - 6 * ty) <= 30  # (the truth counts only solid ink)
        assert abs(w - 6 * tw) <= 0.05 * 6 * tw + 30 and abs(h - 6 * th) <= 0.05 * 6 * th + 30
