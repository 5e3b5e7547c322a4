"""Synthetic handwriting: digits (and things that are not digits) drawn in many hands.

Each writer has a style (`WriterStyle`): slant, width, pen, how shaky, which forms of the
digits they use (a continental writer crosses the 7 and flags the 1), and how their
strokes reach the computer:

- ``smooth``: a pen tablet sampling densely;
- ``few_points``: a few points with corners, joined by straight lines or by the canvas's
  midpoint curves (a stroke resampled to 6-16 points, pen-up moves sometimes drawn too);
- ``mouse``: points at uneven distances (uneven speed), joined by the canvas's curves.

A drawing is rendered black on white with a round pen and handed to
`app.ml.preprocess.prepare`, exactly as the app prepares a canvas drawing.  The result is
the 28x28 image the network sees.

Writers are numbered; writer *n*'s style comes from a random generator seeded with *n*,
so a set of writers (say, those used for training) can be kept apart from another (the
development sets): see `TRAIN_WRITERS` and `DEV_WRITERS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.ml import glyphs as G
from app.ml.errors import TrainingCancelled
from app.ml.preprocess import NothingDrawn, prepare

#: Writer numbers used to make training data, and those kept for the development sets.
TRAIN_WRITERS = range(0, 100_000)
DEV_WRITERS = range(1_000_000, 1_100_000)

MODES = ("smooth", "few_points", "mouse")

_DIGIT_GLYPHS = G.digit_glyphs()
_BY_DIGIT: dict[int, list[G.Glyph]] = {d: [g for g in _DIGIT_GLYPHS if g.label == d] for d in range(10)}
_PARSED: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

#: Forms a "continental" writer prefers, and a "US" writer.
_CONTINENTAL = {"1_long_flag": 4.0, "1_flag_base": 2.0, "1_flag": 1.5, "7_crossed": 4.0,
                "7_crossed_hooked": 2.0, "2_z_crossed": 1.0, "4_open": 2.0, "4_open_slanted": 1.5,
                "9_curled": 1.5, "0_slashed": 0.7, "3_flat_top": 1.2}
_US = {"1_bar": 4.0, "7_plain": 3.0, "4_closed": 2.0, "2_classic": 2.0, "9_straight": 2.0}


@dataclass
class WriterStyle:
    slant: float  # shear: x += slant * (1 - y)
    aspect: float  # width / height of the digit's box
    rotation: float  # degrees
    pen: float  # pen width as a fraction of the digit's height
    jitter: float  # noise on the skeleton's points (unit box)
    wobble: float  # amplitude of a smooth random bend (unit box)
    height_px: float  # the digit's height in pixels when drawn
    modes: np.ndarray  # probabilities of MODES
    preference: dict[str, float] = field(default_factory=dict)  # glyph name -> weight

    @classmethod
    def sample(cls, writer: int) -> "WriterStyle":
        rng = np.random.default_rng([writer, 7919])
        kind = rng.choice(3, p=[0.2, 0.55, 0.25])
        pen = [rng.uniform(0.03, 0.07), rng.uniform(0.07, 0.14), rng.uniform(0.14, 0.27)][kind]
        continental = rng.random() < 0.45
        pref = dict(_CONTINENTAL if continental else _US)
        for g in _DIGIT_GLYPHS:  # every writer has some habits of their own
            pref[g.name] = pref.get(g.name, 1.0) * float(rng.lognormal(0.0, 0.6))
        modes = rng.dirichlet([2.0, 1.5, 1.5])
        return cls(slant=float(np.clip(rng.normal(0.12, 0.16), -0.35, 0.55)),
                   aspect=float(rng.uniform(0.45, 1.05)),
                   rotation=float(rng.normal(0.0, 4.0)),
                   pen=float(pen), jitter=float(rng.uniform(0.01, 0.045)),
                   wobble=float(rng.uniform(0.0, 0.045)),
                   height_px=float(rng.uniform(50, 160)), modes=modes, preference=pref)

    def pick(self, digit: int, rng: np.random.Generator) -> G.Glyph:
        forms = _BY_DIGIT[digit]
        w = np.array([self.preference.get(g.name, 1.0) for g in forms])
        return forms[int(rng.choice(len(forms), p=w / w.sum()))]


# ---- from a glyph to pen strokes -------------------------------------------------------------
def _parsed(glyph: G.Glyph) -> list[tuple[np.ndarray, np.ndarray]]:
    if glyph.name not in _PARSED:
        out = []
        for s in glyph.strokes:
            pts = G.parse_stroke(s)
            out.append((np.stack([p for p, _ in pts]), np.array([c for _, c in pts])))
        _PARSED[glyph.name] = out
    return _PARSED[glyph.name]


def pen_strokes(glyph: G.Glyph, style: WriterStyle, rng: np.random.Generator) -> list[np.ndarray]:
    """The dense centre lines of the strokes a writer makes for ``glyph``, in pixels
    (x right, y down; the digit about ``style.height_px`` high, placed away from 0)."""
    strokes = []
    for pts, corners in _parsed(glyph):
        p = pts + rng.normal(0.0, style.jitter, pts.shape)
        strokes.append(G.smooth(p, corners, step=0.015))
    strokes = [_overshoot(s, rng) for s in strokes]
    if len(strokes) > 1 and rng.random() < 0.2:  # another stroke order
        strokes = [strokes[i] for i in rng.permutation(len(strokes))]
    strokes = [s[::-1] if rng.random() < 0.08 else s for s in strokes]
    # The writer's hand: a smooth bend, then width, slant and rotation.
    allp = np.concatenate(strokes)
    bend = _bend(rng, style.wobble)
    slant = style.slant + rng.normal(0.0, 0.06)
    aspect = style.aspect * math.exp(rng.normal(0.0, 0.1))
    angle = math.radians(style.rotation + rng.normal(0.0, 4.0))
    c, s = math.cos(angle), math.sin(angle)
    height = style.height_px * math.exp(rng.normal(0.0, 0.1))
    out = []
    for st in strokes:
        q = st + bend(st)
        x = (q[:, 0] - 0.5) * aspect + slant * (0.5 - q[:, 1])
        y = q[:, 1] - 0.5
        out.append(np.stack([c * x - s * y, s * x + c * y], 1) * height)
    lo = np.concatenate(out).min(0)
    margin = style.pen * height + 4
    return [o - lo + margin for o in out] if len(allp) else out


def _overshoot(s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strokes that stop short or run on: trim or extend each end a little."""
    if len(s) < 4:
        return s
    for end in (0, 1):
        r = rng.random()
        if r < 0.25:  # stop short
            k = int(len(s) * rng.uniform(0.0, 0.08))
            if k and len(s) - k >= 3:
                s = s[k:] if end == 0 else s[:-k]
        elif r < 0.45:  # run on along the tangent
            a, b = (s[0], s[min(3, len(s) - 1)]) if end == 0 else (s[-1], s[max(-4, -len(s))])
            d = a - b
            n = np.linalg.norm(d)
            if n > 1e-6:
                ext = a + d / n * rng.uniform(0.02, 0.09)
                s = np.concatenate([ext[None], s]) if end == 0 else np.concatenate([s, ext[None]])
    return s


def _bend(rng: np.random.Generator, amplitude: float):
    """A smooth random displacement field over the unit box."""
    k = rng.normal(0.0, 1.0, (2, 2, 2))  # 2 components x 2 frequencies x (sin, cos) phase
    ph = rng.uniform(0, 2 * math.pi, (2, 2))

    def f(p: np.ndarray) -> np.ndarray:
        out = np.zeros_like(p)
        for comp in range(2):
            for fr in range(2):
                out[:, comp] += k[comp, fr, 0] * np.sin(math.pi * (fr + 1) * p[:, 0] + ph[comp, fr]) \
                    * k[comp, fr, 1] * np.cos(math.pi * (fr + 1) * p[:, 1] + ph[comp, fr])
        return out * amplitude / 2

    return f


# ---- how the strokes reach the computer ------------------------------------------------------
def acquire(strokes: list[np.ndarray], mode: str, rng: np.random.Generator) -> tuple[list[np.ndarray], bool]:
    """The points a device would deliver; returns (strokes, smooth_with_canvas_curves)."""
    if mode == "smooth":
        return strokes, False
    if mode == "few_points":
        n = int(rng.integers(6, 17))
        if rng.random() < 0.55:  # one trajectory, pen-up moves included, resampled as a whole
            return [resample(np.concatenate(strokes), n)], bool(rng.random() < 0.5)
        lengths = np.array([_length(s) for s in strokes])
        share = lengths / max(lengths.sum(), 1e-9)
        return [resample(s, max(2, int(round(n * sh)))) for s, sh in zip(strokes, share)], \
            bool(rng.random() < 0.5)
    # mouse: uneven steps along the path, joined by the canvas's midpoint curves
    out = []
    height = max(np.ptp(np.concatenate(strokes)[:, 1]), 1.0)
    mean_step = height * rng.uniform(0.03, 0.12)
    for s in strokes:
        d = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(s, axis=0), axis=1))])
        t, at = [0.0], 0.0
        while at < d[-1]:
            at += rng.gamma(1.5, mean_step / 1.5)
            t.append(min(at, d[-1]))
        out.append(np.stack([np.interp(t, d, s[:, 0]), np.interp(t, d, s[:, 1])], 1))
    return out, True


def resample(s: np.ndarray, n: int) -> np.ndarray:
    """``n`` points spaced evenly along the polyline ``s``."""
    d = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(s, axis=0), axis=1))])
    if d[-1] <= 0:
        return s[:1].repeat(n, 0)
    t = np.linspace(0.0, d[-1], n)
    return np.stack([np.interp(t, d, s[:, 0]), np.interp(t, d, s[:, 1])], 1)


def _length(s: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(s, axis=0), axis=1).sum()) if len(s) > 1 else 0.0


def canvas_curve(p: np.ndarray, per_piece: int = 8) -> np.ndarray:
    """The canvas's smoothing (app/widgets canvas `smooth_path`): quadratic curves through
    the midpoints of the samples, with the samples as control points."""
    if len(p) <= 2:
        return p
    out = [p[:1], (p[:1] + p[1:2]) / 2]
    t = np.linspace(0.0, 1.0, per_piece)[1:, None]
    for i in range(1, len(p) - 1):
        a, ctrl, b = (p[i - 1] + p[i]) / 2, p[i], (p[i] + p[i + 1]) / 2
        out.append((1 - t) ** 2 * a + 2 * (1 - t) * t * ctrl + t ** 2 * b)
    out.append(p[-1:])
    return np.concatenate(out)


# ---- pen rendering --------------------------------------------------------------------------
def render(strokes: list[np.ndarray], width: float, curves: bool = False,
           widths: list[float] | None = None) -> Image.Image:
    """Black round-pen strokes on a white picture just large enough to hold them."""
    allp = np.concatenate(strokes)
    w = max(1.0, width)
    size = (int(allp[:, 0].max() + w + 4), int(allp[:, 1].max() + w + 4))
    img = Image.new("L", (max(size[0], 8), max(size[1], 8)), 255)
    d = ImageDraw.Draw(img)
    for i, s in enumerate(strokes):
        sw = widths[i] if widths is not None else w
        line = canvas_curve(s) if curves else s
        r = sw / 2
        if len(line) > 1:
            d.line([tuple(q) for q in line.tolist()], fill=0, width=max(1, int(round(sw))))
        # Round caps, and round joins where the line turns (ImageDraw's own round joins
        # are slow; along a smooth curve the pieces meet without gaps anyway).
        for x, y in line[_turns(line)].tolist():
            d.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return img


def _turns(line: np.ndarray, degrees: float = 12.0) -> np.ndarray:
    """Indices of the ends of a polyline and of the points where it turns."""
    keep = np.zeros(len(line), bool)
    keep[0] = keep[-1] = True
    if len(line) > 2:
        a, b = np.diff(line[:-1], axis=0), np.diff(line[1:], axis=0)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-9)
        keep[1:-1] = cos < math.cos(math.radians(degrees))
    return np.flatnonzero(keep)


def draw(glyph: G.Glyph, style: WriterStyle, rng: np.random.Generator,
         mode: str | None = None) -> tuple[Image.Image, list[np.ndarray], float]:
    """A glyph in a writer's hand: (picture, the strokes as delivered, pen width in px)."""
    strokes = pen_strokes(glyph, style, rng)
    if mode is None:
        mode = MODES[int(rng.choice(len(MODES), p=style.modes))]
    strokes, curves = acquire(strokes, mode, rng)
    height = max(np.ptp(np.concatenate(strokes)[:, 1]), np.ptp(np.concatenate(strokes)[:, 0]) * 0.5, 8.0)
    width = style.pen * height * math.exp(rng.normal(0.0, 0.12))
    return render(strokes, width, curves), strokes, width


def to_input(img: Image.Image) -> np.ndarray | None:
    """A picture -> the 28x28 uint8 network input, or None when nothing is drawn."""
    try:
        return prepare(img).as_uint8()
    except NothingDrawn:
        return None


# ---- data sets -----------------------------------------------------------------------------
@dataclass
class SynthSet:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64: the digit, or -1 for "not a digit"
    kinds: list[str]  # glyph name (e.g. "7_crossed") or what the non-digit is
    writers: np.ndarray  # (N,) writer numbers (-1 where none)

    def __len__(self) -> int:
        return len(self.labels)


def digits(n: int, seed: int, writers: range = TRAIN_WRITERS, digit: int | None = None,
           glyph: str | None = None, mode: str | None = None, stop: Callable[[], bool] | None = None) -> SynthSet:
    """``n`` synthetic digits by writers drawn from ``writers`` (each writes a few).
    ``stop`` is asked every few dozen drawings; a True raises ``TrainingCancelled``."""
    rng = np.random.default_rng([seed, 1])
    images, labels, kinds, who = [], [], [], []
    style_cache: dict[int, WriterStyle] = {}
    by_name = {g.name: g for g in _DIGIT_GLYPHS}
    while len(images) < n:
        _check(stop, len(images))
        writer = int(rng.integers(writers.start, writers.stop))
        style = style_cache.get(writer) or style_cache.setdefault(writer, WriterStyle.sample(writer))
        d = int(rng.integers(10)) if digit is None else digit
        g = by_name[glyph] if glyph is not None else style.pick(d, rng)
        img, _, _ = draw(g, style, rng, mode)
        x = to_input(img)
        if x is None:
            continue
        images.append(x)
        labels.append(g.label)
        kinds.append(g.name)
        who.append(writer)
    return SynthSet(np.stack(images), np.array(labels, np.int64), kinds, np.array(who))


def _check(stop: Callable[[], bool] | None, made: int) -> None:
    if stop is not None and made % 25 == 0 and stop():
        raise TrainingCancelled("training cancelled")


#: What the non-digit sets are made of, and how often.
NONDIGIT_MIX = {"letter": 0.34, "typed": 0.2, "shape": 0.14, "scribble": 0.14, "crossed_out": 0.08,
                "two_digits": 0.1}


def nondigits(n: int, seed: int, writers: range = TRAIN_WRITERS, fonts: list[Path] | None = None,
              mix: dict[str, float] | None = None, stop: Callable[[], bool] | None = None) -> SynthSet:
    """``n`` drawings that are not a digit: hand-written letters, typed letters (from
    ``fonts``), shapes, scribbles, crossed-out digits, two digits side by side.  ``stop``
    as for :func:`digits`."""
    rng = np.random.default_rng([seed, 2])
    mix = dict(mix or NONDIGIT_MIX)
    if not fonts:
        mix.pop("typed", None)
    names = list(mix)
    p = np.array([mix[k] for k in names])
    p /= p.sum()
    letters = [g for g in G.nondigit_glyphs() if g.name.startswith("letter_")]
    shapes = [g for g in G.nondigit_glyphs() if g.name.startswith("shape_")]
    images, kinds, who = [], [], []
    while len(images) < n:
        _check(stop, len(images))
        kind = names[int(rng.choice(len(names), p=p))]
        writer = int(rng.integers(writers.start, writers.stop))
        style = WriterStyle.sample(writer)
        if kind == "letter":
            g = letters[int(rng.integers(len(letters)))]
            img, _, _ = draw(g, style, rng)
            what = g.name
        elif kind == "shape":
            g = shapes[int(rng.integers(len(shapes)))]
            img, _, _ = draw(g, style, rng)
            what = g.name
        elif kind == "typed":
            ch = TYPED_LETTERS[int(rng.integers(len(TYPED_LETTERS)))]
            img = typed(ch, fonts[int(rng.integers(len(fonts)))], rng)
            what = f"typed_{ch}"
        elif kind == "scribble":
            img, what = scribble(style, rng), "scribble"
        elif kind == "crossed_out":
            img, what = crossed_out(style, rng), "crossed_out"
        else:
            img, what = side_by_side(style, rng), "two_digits"
        x = to_input(img)
        if x is None:
            continue
        images.append(x)
        kinds.append(what)
        who.append(writer)
    return SynthSet(np.stack(images), np.full(len(images), -1, np.int64), kinds, np.array(who))


#: Typed letters that are not written like a digit (see glyphs.LETTERS); a typed S, s and b
#: are in too: print's curves do not look like a hand-written 5 or 6.
TYPED_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYabcdefhkmnprstuvwxy#%&@?+*=<>"


def typed(ch: str, font: Path | str, rng: np.random.Generator) -> Image.Image:
    """``ch`` typed in ``font`` (a TrueType file, or "<default>": Pillow's own font)."""
    size = int(rng.integers(28, 120))
    f = ImageFont.load_default(size=size) if str(font) == "<default>" else ImageFont.truetype(str(font), size)
    box = f.getbbox(ch)
    img = Image.new("L", (box[2] + 2 * size, box[3] + 2 * size), 255)
    ImageDraw.Draw(img).text((size, size), ch, fill=0, font=f)
    angle = rng.normal(0.0, 5.0)
    return img.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)


def typed_digit(d: int, font: Path, rng: np.random.Generator) -> Image.Image:
    return typed(str(d), font, rng)


def scribble(style: WriterStyle, rng: np.random.Generator) -> Image.Image:
    """A random scrawl: a curve through a handful of random points, a blob or a hatch."""
    kind = rng.random()
    if kind < 0.55:
        k = int(rng.integers(4, 14))
        pts = rng.uniform(0.0, 1.0, (k, 2)) * [rng.uniform(0.4, 1.5), 1.0]
        line = G.smooth(pts, np.zeros(k, bool), step=0.01)
    elif kind < 0.8:  # hatching back and forth
        k = int(rng.integers(4, 10))
        ys = np.linspace(0, 1, k)
        xs = np.where(np.arange(k) % 2 == 0, 0.0, 1.0) + rng.normal(0, 0.05, k)
        line = G.smooth(np.stack([xs, ys + rng.normal(0, 0.03, k)], 1), np.ones(k, bool), step=0.01)
    else:  # a filled blob: a thick pen going round
        t = np.linspace(0, rng.uniform(4, 10) * math.pi, 80)
        r = rng.uniform(0.1, 0.5, 1) * (1 + 0.3 * np.sin(t * rng.uniform(0.3, 2)))
        line = np.stack([0.5 + r * np.cos(t), 0.5 + r * np.sin(t)], 1)
    h = style.height_px
    pts = line * h + style.pen * h + 4
    pts -= pts.min(0) - style.pen * h - 4
    width = style.pen * h * (rng.uniform(1.0, 3.0) if kind >= 0.8 else 1.0)
    return render([pts], width)


def crossed_out(style: WriterStyle, rng: np.random.Generator) -> Image.Image:
    """A digit struck through with a cross or scribbled over."""
    d = int(rng.integers(10))
    strokes = pen_strokes(style.pick(d, rng), style, rng)
    allp = np.concatenate(strokes)
    lo, hi = allp.min(0), allp.max(0)
    if rng.random() < 0.5:
        marks = [np.array([lo, hi]), np.array([[hi[0], lo[1]], [lo[0], hi[1]]])]
    else:
        k = int(rng.integers(5, 12))
        ys = np.linspace(lo[1], hi[1], k)
        xs = np.where(np.arange(k) % 2 == 0, lo[0], hi[0])
        marks = [np.stack([xs, ys], 1)]
    height = max(hi[1] - lo[1], 8.0)
    return render(strokes + marks, style.pen * height)


def side_by_side(style: WriterStyle, rng: np.random.Generator) -> Image.Image:
    """Two digits next to each other (a number is not one digit)."""
    a, b = (pen_strokes(style.pick(int(rng.integers(10)), rng), style, rng) for _ in range(2))
    aw = np.concatenate(a)[:, 0].max()
    gap = rng.uniform(-0.1, 0.4) * style.height_px
    b = [s + [aw + gap - np.concatenate(b)[:, 0].min(), rng.normal(0, 0.08) * style.height_px] for s in b]
    allp = np.concatenate(a + b)
    shift = np.minimum(allp.min(0) - style.pen * style.height_px - 4, 0)
    return render([s - shift for s in a + b], style.pen * style.height_px)
