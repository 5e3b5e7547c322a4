"""Reading a whole number: split a drawing into digits and read each one.

1. **Units.** With the pen strokes known (the canvas has them) a unit is a group of
   strokes that overlap horizontally, so a 5's flag or a 4's second stroke stays with its
   digit; without them (an image file) a unit is a connected piece of ink.
2. **Cuts.** A unit wider than ``CUT_WIDTH`` digit heights, or one the network is unsure
   of when it reads it whole (below ``SURE``, or "not a digit"), gets candidate cut paths
   (``segment_ink.find_cuts``: the cheapest top-to-bottom paths, crossing as little ink as
   possible); the parts between them are *atoms*.  Other units are one atom each.
3. **Choice.** Atoms are ordered left to right; a candidate digit is a run of up to
   ``MAX_ATOMS`` consecutive atoms (or a whole unit), not too wide and without a wide
   blank gap inside.  Every candidate is prepared the MNIST way (crop, 20x20 box, centre
   of mass; ``app.ml.preprocess``) and the networks read them in one batch each.
   Dynamic programming picks the grouping with the best total score: each digit's
   log-probability, less a penalty for a piece the classifier says is not a digit, plus
   the log-probability the piece network (``app.ml.pieces``, when there is one) gives it
   of being one whole digit rather than a fragment or parts of two, and small costs of
   shape and of cutting (see ``Weights``).  A piece with a cut through it is read by both
   networks (``PIECE_VOTE``), or by the piece network alone when it is sure the piece is
   no whole digit (``NOT_ASKED``); a whole unit by the digit network alone.

The analysis runs on a copy of the ink ``WORK_HEIGHT`` pixels high; candidates are cut out
of a finer copy, and the whole drawing from the ink itself, so a digit drawn alone is
prepared exactly as ``MNISTPredictor.predict`` prepares it and gets the same answer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from app.ml import segment_ink as si
from app.ml.data import MEAN, STD
from app.ml.preprocess import (FIELD, NothingDrawn, Prepared, _looks_like_mnist, center_in_field,
                               crop_and_scale, ink_map, to_grey_array)
from app.ml.segment_ink import Stroke

if TYPE_CHECKING:  # the predictor imports this module; no cycle at run time
    from app.ml.inference import Prediction

log = logging.getLogger(__name__)

#: The ink is analysed at this height (px).
WORK_HEIGHT = 64
#: Candidates are cut out of a copy of the ink at most this high (px): the network sees
#: 20 x 20 pixels of a digit, so nothing it could use is lost.
FINE_HEIGHT = 128
#: A candidate digit: at most this many atoms, this wide and with no blank gap inside
#: wider than ``MAX_GAP`` (both in digit heights).  Units narrower than ``MIN_CUT_WIDTH``
#: are not cut.  Where two digits overlap, the cut paths (``segment_ink.SEAM_SPACING``)
#: lie close together and one digit may span many atoms: with 5, and cut paths 0.12 digit
#: heights apart, 55 % of touching test strings had a run of candidates each holding one
#: whole digit; with 9 and 0.08, 72 % (``tests/ml/test_pieces.py``).
MAX_ATOMS = 9
MAX_WIDTH = 1.4
MAX_GAP = 0.2
#: A unit is cut when it is wider than ``CUT_WIDTH``, or wider than ``MIN_CUT_WIDTH`` and
#: the network, reading it whole, is less sure than ``SURE`` or says it is not a digit.
CUT_WIDTH = 1.0
MIN_CUT_WIDTH = 0.35
SURE = 0.9
#: Strokes overlapping horizontally by this share of the narrower one are one digit.
STROKE_MERGE = 0.5
#: An atom smaller than this both ways (digit heights) is a mark that may be left out.
MARK = 0.25
#: A piece shorter than this (digit heights) is probably not a whole digit.
SHORT = 0.6
#: Log-probabilities are floored here (a piece read at 1e-6 is no worse than at 1e-4).
MIN_LOG_P = math.log(1e-4)

#: How wide each digit usually is, as a share of its height: the geometric mean over the
#: boxes of the ink (pixels > 0) of MNIST's 60 000 training digits, and the spread
#: (standard deviation of the log),
#: at least ``MIN_SPREAD`` so that other people's handwriting is not judged by MNIST's.
#: A 1 is never too narrow.
DIGIT_WIDTH = (0.91, 0.43, 0.94, 0.82, 0.81, 0.94, 0.75, 0.79, 0.78, 0.70)
DIGIT_WIDTH_SPREAD = (0.17, 0.43, 0.19, 0.19, 0.20, 0.23, 0.20, 0.20, 0.21, 0.20)
MIN_SPREAD = 0.25

Classify = Callable[[Sequence[Prepared]], "list[Prediction]"]
#: The piece network (``app.ml.pieces.PieceScorer``): each piece's probabilities (N x 11)
#: of being each digit, whole, and of not being one whole digit (the last).
Verify = Callable[[Sequence[Prepared]], np.ndarray]
#: A piece cut out of a unit is read by both networks: the geometric mean of the digit
#: network's probabilities and the piece network's (over the digits), weighted so.  Whole
#: units (a digit apart from the others) are read by the digit network alone.
PIECE_VOTE = 0.5
#: ... but a piece the piece network finds at least this likely to be no one whole digit is
#: read by it alone: the score it gets for that (``Weights.whole``) keeps it out of any
#: reading that has a better choice, and the digit network need not read it.
NOT_ASKED = 0.995


@dataclass(frozen=True)
class Weights:
    """The reading's score, in natural-log units (lengths in digit heights).

    A piece read as digit d scores ``log p(d)`` + ``per_digit`` - ``width`` x z^2 / 2 (z:
    how many spreads its width lies from d's usual width) - ``gap`` x its widest blank gap
    - ``short`` x how much shorter than ``SHORT`` digit heights it is - ``not_a_digit`` when
    the classifier says it is not a digit + ``whole`` x the log of the piece network's
    probability that it is one whole digit (``app.ml.pieces``).  Each cut through a unit costs ``cut`` +
    ``crossed`` x the strokes it crosses, ``narrow_cut`` more through a unit no wider than
    ``CUT_WIDTH`` (one digit, cut only because the network was unsure of it whole) and
    ``stroke_cut`` more through a group of pen strokes.  Leaving out a small mark costs
    ``skip``.

    The defaults were fitted by ``bench/number_reading_fit.py --strings 150 --random 300``
    with the app's default model (a search over these weights for the most strings read
    exactly, on 1 192 strings of 2-6 MNIST *training* digits in every gap class of
    ``bench/number_reading.py``; on as many other training strings held out, 96.6 % of the
    separated and 75.8 % of the touching strings were read exactly).  The network's own
    log-probability and its not-a-digit verdict do most of the work: the fit left the
    bonus per digit and the costs of a cut at zero.  ``not_a_digit``, ``stroke_cut`` and
    ``skip`` are set by hand (the composed strings have neither strokes nor stray marks).
    ``whole`` came with the piece network, from a sweep of 0-3 on 460 strings of training
    digits; ``number_reading_fit.py --fit whole`` finds 1.5 and 3 equal on held-out strings
    (84.2 % of the touching and 81.5 % of the overlapping ones read exactly, where some
    segmentation of the candidates reads 92.3 % and 92.6 %).  The weights were kept when
    the cut paths came closer together (``MAX_ATOMS``): on 200 four-digit strings per gap
    class of the 5 000 training digits the piece network never learnt from, touching
    strings went from 85.5 % to 90.5 % read exactly, overlapping from 82.5 % to 85.5 % and
    separated from 96.5 % to 98.0 %.
    """

    per_digit: float = 0.0
    width: float = 0.02
    gap: float = 1.0
    short: float = 1.0
    cut: float = 0.0
    crossed: float = 0.0
    narrow_cut: float = 2.0
    not_a_digit: float = 6.0
    stroke_cut: float = 3.0
    skip: float = 2.0
    whole: float = 3.0


DEFAULT_WEIGHTS = Weights()


@dataclass(frozen=True)
class NumberReading:
    """A number read from a drawing, digit by digit, left to right."""

    text: str
    digits: list  # list[Prediction]
    boxes: list[tuple[int, int, int, int]]  # each digit's (x, y, w, h) in the input's pixels
    confidence: float  # the product of the digits' confidences

    def __len__(self) -> int:
        return len(self.digits)


def as_strokes(strokes: Iterable[Any] | None) -> list[Stroke]:
    """Strokes in any of these forms -> ``Stroke`` objects: ``Stroke``; ``(points, width)``;
    an object with ``.points`` and ``.width`` or ``.widths`` (points as ``(x, y)`` pairs or
    objects with ``x()`` / ``y()`` methods, as the canvas keeps them).  Eraser strokes
    (``.erase`` true) are left out: their effect is in the picture."""
    out = []
    for s in strokes or ():
        if isinstance(s, Stroke):
            out.append(s)
            continue
        if getattr(s, "erase", False):
            continue
        if isinstance(s, (tuple, list)) and len(s) == 2 and np.isscalar(s[1]):
            points, width = s
        elif hasattr(s, "points"):
            points = s.points
            width = getattr(s, "width", None)
            if width is None:
                widths = getattr(s, "widths", None)
                width = max(widths) if widths is not None and len(widths) else 1.0
        else:
            raise ValueError("a stroke must be a Stroke, a (points, width) pair or have .points and .width; "
                             f"got {type(s).__name__}")
        pts = tuple((float(p.x()), float(p.y())) if callable(getattr(p, "x", None)) else (float(p[0]), float(p[1]))
                    for p in points)
        if not pts:
            continue
        if not (np.isscalar(width) and math.isfinite(float(width)) and float(width) > 0):
            raise ValueError(f"a stroke's width must be a positive number of pixels, got {width!r}")
        out.append(Stroke(points=pts, width=float(width)))
    return out


# ---- the reading -------------------------------------------------------------------------------
def read_number(classify: Classify, x, strokes: Iterable[Any] | None = None,
                weights: Weights = DEFAULT_WEIGHTS, verify: Verify | None = None) -> NumberReading:
    """Read the number drawn in ``x`` (any input ``prepare`` takes).

    ``classify`` reads a list of ``Prepared`` digits in one batch
    (``MNISTPredictor.predict_prepared``).  ``strokes``, when known, are the pen strokes in
    ``x``'s pixel coordinates (see ``as_strokes``).  ``verify``, when given, says how likely
    each candidate piece is one whole digit (``app.ml.pieces``).  Raises ``NothingDrawn`` for a blank
    input and ``ValueError`` for input it cannot read.
    """
    layout = analyse(x, strokes, classify)
    cands = layout.candidates()
    preds, whole = read_candidates(cands, classify, verify)
    feats = np.array([piece_features(layout, c, p, w) for c, p, w in zip(cands, preds, whole)])
    chosen = choose(layout, cands, feats @ piece_weights(weights), weights)
    digits = [preds[k] for k in chosen]
    log.debug("%d atoms, %d candidates, read %s", len(layout.atoms), len(cands),
              "".join(str(p.digit) for p in digits))
    # the size guard (``preprocess.limit_size``) may have scaled a large input down
    h, w = _input_size(x)
    ry, rx = h / layout.ink.shape[0], w / layout.ink.shape[1]
    boxes = [cands[k].box for k in chosen]
    if (ry, rx) != (1.0, 1.0):
        boxes = [(math.floor(bx * rx), math.floor(by * ry), math.ceil(bw * rx), math.ceil(bh * ry))
                 for bx, by, bw, bh in boxes]
    return NumberReading(text="".join(str(p.digit) for p in digits), digits=digits, boxes=boxes,
                         confidence=float(np.prod([p.confidence for p in digits])))


def read_candidates(cands: Sequence["Candidate"], classify: Classify,
                    verify: Verify | None = None) -> tuple[list, np.ndarray]:
    """Each candidate's ``Prediction`` and its probability of being one whole digit (1
    without a piece network).  A candidate made of whole units is read by the digit network
    alone, so that a digit drawn alone reads as ``predict`` reads it; one with a cut through
    it by both networks (``PIECE_VOTE``), unless the piece network is sure it is no one
    whole digit (``NOT_ASKED``): the digit network is not asked about it."""
    prepared = [c.prepared for c in cands]
    if verify is None:
        return classify(prepared), np.ones(len(cands))
    q = np.asarray(verify(prepared), np.float64)
    digits = q[:, :10] / np.maximum(q[:, :10].sum(axis=1, keepdims=True), 1e-12)
    asked = [k for k, c in enumerate(cands) if c.uncut or q[k, -1] < NOT_ASKED]
    read = dict(zip(asked, classify([prepared[k] for k in asked]))) if asked else {}
    from app.ml.inference import Prediction  # the predictor imports this module
    out = []
    for k, (c, d) in enumerate(zip(cands, digits)):
        p = read.get(k)
        if c.uncut:
            out.append(p)
            continue
        log_mix = np.log(np.maximum(d, 1e-12))
        if p is not None:
            log_mix = (1 - PIECE_VOTE) * np.log(np.maximum(p.probabilities, 1e-12)) + PIECE_VOTE * log_mix
        mix = np.exp(log_mix - log_mix.max())
        mix /= mix.sum()
        j = int(mix.argmax())
        probabilities = tuple(float(v) for v in mix)
        if p is None:
            p = Prediction(digit=j, confidence=float(mix[j]), probabilities=probabilities,
                           image=prepared[k].as_uint8())
        else:
            p = dataclasses.replace(p, digit=j, confidence=float(mix[j]), probabilities=probabilities)
        out.append(p)
    return out, 1.0 - q[:, -1]


#: What a piece's score is made of (``piece_features``), in the order of ``piece_weights``.
FEATURES = ("log_p", "one", "width_z2", "gap", "short", "not_a_digit", "whole")


def piece_features(layout: "Layout", cand: "Candidate", pred, whole: float = 1.0) -> tuple[float, ...]:
    h = layout.height
    d = pred.digit
    z = math.log(max(cand.width, 1.0) / h / DIGIT_WIDTH[d]) / max(DIGIT_WIDTH_SPREAD[d], MIN_SPREAD)
    if d == 1:
        z = max(z, 0.0)
    # a classifier without the not-a-digit score takes every image for a digit
    not_digit = 0.0 if getattr(pred, "is_digit", True) else 1.0
    return (max(math.log(max(pred.confidence, 1e-300)), MIN_LOG_P), 1.0, z * z / 2, cand.gap / h,
            max(0.0, SHORT - cand.height / h), not_digit, max(math.log(max(float(whole), 1e-300)), MIN_LOG_P))


def piece_weights(w: Weights) -> np.ndarray:
    return np.array([1.0, w.per_digit, -w.width, -w.gap, -w.short, -w.not_a_digit, w.whole])


def choose(layout: "Layout", cands: list["Candidate"], scores: Sequence[float], weights: Weights) -> list[int]:
    """The indices (into ``cands``) of the reading with the best total of the pieces'
    ``scores`` less the costs of the cuts between them."""
    return best_path(len(layout.atoms), [c.first for c in cands], [c.last for c in cands], scores,
                     layout.cut_costs(weights), [a.mark for a in layout.atoms], weights.skip)


def best_path(n: int, first: Sequence[int], last: Sequence[int], scores: Sequence[float],
              boundary: Sequence[float], marks: Sequence[bool], skip: float) -> list[int]:
    """Dynamic programming over ``n`` atoms: candidate k covers atoms first[k]..last[k]-1
    and scores ``scores[k]``; starting a digit at atom i costs ``boundary[i]``; a mark may
    be left out for ``skip``.  Returns the chosen candidates, left to right."""
    by_end: dict[int, list[int]] = {}
    for k, j in enumerate(last):
        by_end.setdefault(j, []).append(k)
    best = [-math.inf] * (n + 1)
    back: list[tuple[int, int | None]] = [(0, None)] * (n + 1)
    best[0] = 0.0
    for j in range(1, n + 1):
        if marks[j - 1] and best[j - 1] - skip > best[j]:
            best[j], back[j] = best[j - 1] - skip, (j - 1, None)
        for k in by_end.get(j, ()):
            i = first[k]
            v = best[i] + scores[k] - boundary[i]
            if v > best[j]:
                best[j], back[j] = v, (i, k)
    chosen = []
    j = n
    while j > 0:
        i, k = back[j]
        if k is not None:
            chosen.append(k)
        j = i
    if not chosen:  # only small marks: read the best piece rather than nothing
        chosen = [int(np.argmax(scores))]
    return chosen[::-1]


# ---- the analysis --------------------------------------------------------------------------------
@dataclass
class Atom:
    x0: int  # bounding box in working pixels, end exclusive
    y0: int
    x1: int
    y1: int
    unit: int
    mark: bool = False  # small enough to be left out


@dataclass
class Candidate:
    first: int  # atoms first..last-1
    last: int
    prepared: Prepared
    box: tuple[int, int, int, int]  # (x, y, w, h) in the input's pixels
    width: float  # working pixels
    height: float
    gap: float  # the widest blank gap inside, working pixels
    uncut: bool = False  # whole units only: no cut runs through it


@dataclass
class Layout:
    ink: np.ndarray  # the input's ink, 0..1
    fine: np.ndarray  # the copy candidates are cut from
    fine_labels: np.ndarray  # each pixel of ``fine``: its atom 1..n, 0 for none
    atoms: list[Atom]  # left to right
    height: float  # a digit's height, working pixels
    work_width: int  # width of the working copy, px
    crossed: np.ndarray  # (n, n) strokes a cut between two atoms of one unit crosses
    stroke: np.ndarray  # (n,) bool: the atom's unit is a group of pen strokes
    narrow: np.ndarray  # (n,) bool: the atom's unit is no wider than CUT_WIDTH digit heights

    def cut_costs(self, weights: Weights) -> np.ndarray:
        """cost[k]: a digit ending before atom k and the next starting at it: the cuts this
        makes through units (nothing when no unit lies on both sides)."""
        n = len(self.atoms)
        unit = np.array([a.unit for a in self.atoms])
        out = np.zeros(n + 1)
        for k in range(1, n):
            cost = 0.0
            for u in set(unit[:k].tolist()) & set(unit[k:].tolist()):
                left, right = np.flatnonzero(unit[:k] == u), k + np.flatnonzero(unit[k:] == u)
                cost += weights.cut + weights.crossed * float(self.crossed[np.ix_(left, right)].sum())
                cost += weights.stroke_cut * bool(self.stroke[left[0]])
                cost += weights.narrow_cut * bool(self.narrow[left[0]])
            out[k] = cost
        return out

    def candidates(self) -> list[Candidate]:
        """Each run of consecutive atoms that could be one digit, each whole unit, and
        the whole drawing when it could be one digit."""
        n, h = len(self.atoms), self.height
        spans = set()
        for i in range(n):
            for j in range(i + 1, min(n, i + MAX_ATOMS) + 1):
                width, gap = self._extent(i, j)
                if j > i + 1 and (width > MAX_WIDTH * h or gap > MAX_GAP * h):
                    break
                spans.add((i, j))
        unit = [a.unit for a in self.atoms]
        for u in set(unit):  # each whole unit whose atoms lie side by side
            i, j = unit.index(u), n - unit[::-1].index(u)
            if unit[i:j].count(u) == j - i and self._extent(i, j)[0] <= MAX_WIDTH * h:
                spans.add((i, j))
        width, gap = self._extent(0, n)
        if width <= MAX_WIDTH * h and gap <= MAX_GAP * h:
            spans.add((0, n))
        out = [self._cut_out(i, j) for i, j in sorted(spans)]
        return [c for c in out if c is not None]

    def _extent(self, i: int, j: int) -> tuple[float, float]:
        """Width of atoms i..j-1 together and the widest blank gap between them."""
        spans = sorted((a.x0, a.x1) for a in self.atoms[i:j])
        gap, reach = 0, spans[0][1]
        for x0, x1 in spans[1:]:
            gap = max(gap, x0 - reach)
            reach = max(reach, x1)
        return float(reach - spans[0][0]), float(gap)

    def _cut_out(self, i: int, j: int) -> Candidate | None:
        atoms = self.atoms[i:j]
        width, gap = self._extent(i, j)
        height = float(max(a.y1 for a in atoms) - min(a.y0 for a in atoms))
        if i == 0 and j == len(self.atoms):
            piece, ox, ry, rx = self.ink, 0, 1.0, 1.0  # prepared exactly as predict() prepares it
        else:
            fine = self.fine
            ry, rx = self.ink.shape[0] / fine.shape[0], self.ink.shape[1] / fine.shape[1]
            k = fine.shape[1] / self.work_width
            fx0 = max(0, math.floor(min(a.x0 for a in atoms) * k))
            fx1 = min(fine.shape[1], math.ceil(max(a.x1 for a in atoms) * k))
            lab = self.fine_labels[:, fx0:fx1]
            piece = fine[:, fx0:fx1] * ((lab > i) & (lab <= j))
            ox = fx0
        rows = np.flatnonzero(piece.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(piece.any(axis=0))
        piece = piece[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        fld = center_in_field(crop_and_scale(piece))
        prepared = Prepared(image=fld, tensor_input=((fld - MEAN) / STD)[None].astype(np.float32))
        bx0, by0 = math.floor((ox + cols[0]) * rx), math.floor(rows[0] * ry)
        bx1, by1 = math.ceil((ox + cols[-1] + 1) * rx), math.ceil((rows[-1] + 1) * ry)
        units = {a.unit for a in atoms}
        uncut = sum(a.unit in units for a in self.atoms) == j - i
        return Candidate(first=i, last=j, prepared=prepared, box=(bx0, by0, bx1 - bx0, by1 - by0),
                         width=width, height=height, gap=gap, uncut=uncut)


def ink_of(x) -> np.ndarray:
    """The ink (0..1, white on black) of any input, found exactly as ``prepare`` finds it."""
    grey = to_grey_array(x)
    if grey.shape == (FIELD, FIELD) and _looks_like_mnist(grey):
        return grey.astype(np.float32)
    return ink_map(grey)


def analyse(x, strokes: Iterable[Any] | None = None, classify: Classify | None = None) -> Layout:
    """Units, cuts and atoms of a drawing (raises ``NothingDrawn`` when it is blank).
    Without ``classify`` every unit wider than ``MIN_CUT_WIDTH`` is cut."""
    ink = ink_of(x)
    strokes = as_strokes(strokes)
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        raise NothingDrawn("nothing drawn: the image has no ink")
    tall = rows[-1] - rows[0] + 1
    small = si.downscale(ink, min(1.0, WORK_HEIGHT / tall))
    fine = si.downscale(ink, min(1.0, FINE_HEIGHT / tall))
    sy, sx = small.shape[0] / ink.shape[0], small.shape[1] / ink.shape[1]
    solid = small > si.SOLID
    if not solid.any():
        solid = small > 0.5 * float(small.max())
    if strokes:
        groups = si.stroke_groups(strokes, STROKE_MERGE)
        units, n_units = si.stroke_labels(small, strokes, groups, sx, sy)
        from_strokes = set(range(1, len(groups) + 1))
    else:
        units, n_units = si.label_components(solid)
        units = si.absorb_faint(units, small > 0)
        from_strokes = set()
    pen = si.pen_width(solid)
    boxes = {u: b for u in range(1, n_units + 1) if (b := si.bbox(units == u)) is not None}
    height = _digit_height([b[3] - b[1] for b in boxes.values()])

    # cut each unit that may hold two digits; the parts are the atoms
    wide = [u for u, b in boxes.items() if b[2] - b[0] >= MIN_CUT_WIDTH * height]
    if classify is not None and wide:
        unsure = {u for u, p in zip(wide, classify([_prepare(fine, units, u, small.shape) for u in wide]))
                  if p.confidence < SURE or not getattr(p, "is_digit", True)}
        wide = {u for u in wide if u in unsure or boxes[u][2] - boxes[u][0] > CUT_WIDTH * height}
    labels = np.zeros(small.shape, np.int32)
    atoms: list[Atom] = []
    for u, (x0, y0, x1, y1) in boxes.items():
        region = units[y0:y1, x0:x1] == u
        cuts = []
        if u in wide:
            cuts = si.find_cuts(np.where(region, small[y0:y1, x0:x1], 0.0), height, pen)
        view = labels[y0:y1, x0:x1]
        for part in si.split_by_cuts(region, cuts):
            view[part] = len(atoms) + 1
            ax0, ay0, ax1, ay1 = si.bbox(part)
            atoms.append(Atom(x0 + ax0, y0 + ay0, x0 + ax1, y0 + ay1, unit=u))
    order = sorted(range(len(atoms)), key=lambda q: (atoms[q].x0 + atoms[q].x1, q))
    relabel = np.zeros(len(atoms) + 1, np.int32)
    relabel[[q + 1 for q in order]] = np.arange(1, len(atoms) + 1)
    labels = relabel[labels]
    atoms = [atoms[q] for q in order]
    for a in atoms:
        a.mark = max(a.x1 - a.x0, a.y1 - a.y0) < MARK * height

    ky, kx = fine.shape[0] / small.shape[0], fine.shape[1] / small.shape[1]
    rows_f = np.minimum(((np.arange(fine.shape[0]) + 0.5) / ky).astype(np.intp), small.shape[0] - 1)
    cols_f = np.minimum(((np.arange(fine.shape[1]) + 0.5) / kx).astype(np.intp), small.shape[1] - 1)
    n = len(atoms)
    unit = np.array([a.unit for a in atoms])
    same = unit[:, None] == unit[None, :]
    layout = Layout(ink=ink, fine=fine, fine_labels=labels[rows_f[:, None], cols_f[None, :]], atoms=atoms,
                    height=height, work_width=small.shape[1],
                    crossed=si.contacts(labels, n) * same / pen,
                    stroke=np.array([u in from_strokes for u in unit.tolist()], bool),
                    narrow=np.array([boxes[u][2] - boxes[u][0] <= CUT_WIDTH * height for u in unit.tolist()], bool))
    log.debug("%d units, %d atoms, digit height %.1f, pen %.1f (working px)", len(boxes), len(atoms), height, pen)
    return layout


def _input_size(x) -> tuple[int, int]:
    """(height, width) of any input ``to_grey_array`` takes, before the size guard."""
    if hasattr(x, "size") and not hasattr(x, "shape"):  # a PIL image
        return int(x.size[1]), int(x.size[0])
    shape = tuple(x.shape)
    if len(shape) == 3 and type(x).__module__.startswith("torch") and shape[0] in (1, 3, 4) \
            and shape[-1] not in (1, 3, 4):
        return int(shape[1]), int(shape[2])
    return int(shape[0]), int(shape[1])


def _prepare(fine: np.ndarray, units: np.ndarray, u: int, shape: tuple[int, int]) -> Prepared:
    """Unit ``u`` of the working copy (labels ``units``, size ``shape``), prepared from ``fine``."""
    ky, kx = fine.shape[0] / shape[0], fine.shape[1] / shape[1]
    rows = np.minimum(((np.arange(fine.shape[0]) + 0.5) / ky).astype(np.intp), shape[0] - 1)
    cols = np.minimum(((np.arange(fine.shape[1]) + 0.5) / kx).astype(np.intp), shape[1] - 1)
    piece = fine * (units[rows[:, None], cols[None, :]] == u)
    fld = center_in_field(crop_and_scale(piece))
    return Prepared(image=fld, tensor_input=((fld - MEAN) / STD)[None].astype(np.float32))


def _digit_height(heights: list[int]) -> float:
    if not heights:
        return 1.0
    tallest = max(heights)
    return float(max(1.0, np.median([h for h in heights if h >= 0.5 * tallest])))


__all__ = ["NumberReading", "Weights", "DEFAULT_WEIGHTS", "Stroke", "as_strokes", "read_number", "analyse"]
