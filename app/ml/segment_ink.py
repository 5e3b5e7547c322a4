"""The ink side of reading a number: pieces of ink, pen strokes and cut paths.

Plain numpy and Pillow on 2-D ink maps (0..1, white on black); nothing here knows the
classifier.  ``app.ml.segment`` builds the reading on top of it.

- ``label_components``: 8-connected pieces of ink, numbered left to right.
- ``stroke_groups`` / ``stroke_labels``: pen strokes that overlap horizontally form one
  group (a 5's flag, a 4's second stroke stay with their digit); each ink pixel goes to
  the group whose strokes drew it.
- ``find_cuts``: candidate cut paths through a piece of ink that may hold several
  touching or overlapping digits: the cheapest top-to-bottom paths (crossing as little
  ink as possible, bending around the digits), one per valley of that cost along a row.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

#: Ink connected to a stroke group's ink within this share of the picture's height
#: belongs to that group (``stroke_labels``).
STROKE_REACH = 0.12
#: Ink (0..1) above this is solid: it makes components and cut costs.
SOLID = 0.25
#: A cut path pays this per column it moves sideways (an ink pixel costs 1).
SEAM_LATERAL = 0.25
#: Rows (fractions of the piece's height) through which cut paths are sought.
SEAM_ROWS = (1 / 4, 1 / 3, 5 / 12, 1 / 2, 7 / 12, 2 / 3, 3 / 4)
#: Cut paths crossing more strokes than this are not proposed.
SEAM_MAX_CROSSED = 2.6
#: Two cut paths closer than this (digit heights, mean distance) are one.
SEAM_SPACING = 0.08
#: At most one cut path per this much width (digit heights), plus one.
SEAM_PER_HEIGHT = 0.2
#: Each side of a cut holds at least this share of the piece's ink.
SEAM_MIN_SIDE = 0.05


@dataclass(frozen=True)
class Stroke:
    """One pen stroke in the picture's pixel coordinates: its points and the pen width."""

    points: tuple[tuple[float, float], ...]
    width: float

    def x_extent(self) -> tuple[float, float]:
        xs = [p[0] for p in self.points]
        r = self.width / 2
        return min(xs) - r, max(xs) + r


# ---- small tools ---------------------------------------------------------------------------------
def downscale(ink: np.ndarray, scale: float) -> np.ndarray:
    """``ink`` scaled by ``scale`` (<= 1) with an area filter; a copy when ``scale`` >= 1."""
    if scale >= 1.0:
        return ink.astype(np.float32, copy=True)
    h, w = ink.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = np.asarray(Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32)).resize(
        size, Image.Resampling.BOX), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the true pixels, ends exclusive; None when there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def pen_width(solid: np.ndarray) -> float:
    """Stroke thickness in pixels: twice the ink's area over its outline's length."""
    area = int(solid.sum())
    if area == 0:
        return 1.0
    p = np.pad(solid, 1)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    outline = max(1, area - int(inner.sum()))
    return max(1.0, 2.0 * area / outline)


def contacts(labels: np.ndarray, n: int) -> np.ndarray:
    """(n, n): how many pixel edges each pair of labels 1..n shares (symmetric)."""
    c = np.zeros((n + 1, n + 1))
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        m = (a != b) & (a > 0) & (b > 0)
        np.add.at(c, (a[m], b[m]), 1.0)
    c = c + c.T
    return c[1:, 1:]


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean image: (labels 1..n, n), numbered by their
    leftmost column.  Works on runs of pixels, so it costs little in Python."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    rs, cs = np.nonzero(d == 1)
    _, ce = np.nonzero(d == -1)  # same (row-major) order as the starts, end exclusive
    n = len(rs)
    labels = np.zeros((h, w), np.int32)
    if n == 0:
        return labels, 0
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    first = np.searchsorted(rs, np.arange(h + 1))
    cs_l, ce_l = cs.tolist(), ce.tolist()
    for r in range(1, h):
        i, i_end = int(first[r - 1]), int(first[r])
        j, j_end = int(first[r]), int(first[r + 1])
        while i < i_end and j < j_end:
            if cs_l[j] <= ce_l[i] and cs_l[i] <= ce_l[j]:  # overlap or diagonal contact
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            if ce_l[i] < ce_l[j]:
                i += 1
            else:
                j += 1
    roots = [find(k) for k in range(n)]
    left: dict[int, int] = {}
    for k, root in enumerate(roots):
        if cs_l[k] < left.get(root, w):
            left[root] = cs_l[k]
    order = sorted(left, key=lambda u: (left[u], u))
    number = {u: i + 1 for i, u in enumerate(order)}
    run_label = np.array([number[r] for r in roots], np.int32)
    lengths = ce - cs
    flat_start = rs * w + cs
    idx = np.repeat(flat_start - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + np.arange(lengths.sum())
    labels.ravel()[idx] = np.repeat(run_label, lengths)
    return labels, len(order)


def absorb_faint(labels: np.ndarray, any_ink: np.ndarray, steps: int = 2) -> np.ndarray:
    """Give unlabelled ink pixels next to a labelled one that label (``steps`` rings)."""
    labels = labels.copy()
    for _ in range(steps):
        todo = any_ink & (labels == 0)
        if not todo.any():
            break
        p = np.pad(labels, 1)
        near = np.maximum.reduce([p[1 + dy:p.shape[0] - 1 + dy, 1 + dx:p.shape[1] - 1 + dx]
                                  for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
        labels = np.where(todo, near, labels)
    return labels


# ---- strokes ---------------------------------------------------------------------------------------
def stroke_groups(strokes: Sequence[Stroke], merge: float) -> list[list[int]]:
    """Indices of strokes that overlap horizontally by at least ``merge`` of the narrower
    one (transitively), groups ordered left to right."""
    n = len(strokes)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            a = parent[a] = parent[parent[a]]
        return a

    ext = [s.x_extent() for s in strokes]
    for a in range(n):
        for b in range(a + 1, n):
            lo, hi = max(ext[a][0], ext[b][0]), min(ext[a][1], ext[b][1])
            narrow = max(1e-6, min(ext[a][1] - ext[a][0], ext[b][1] - ext[b][0]))
            if hi - lo >= merge * narrow:
                parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for k in range(n):
        groups.setdefault(find(k), []).append(k)
    return sorted(groups.values(), key=lambda g: min(ext[k][0] for k in g))


def stroke_labels(small: np.ndarray, strokes: Sequence[Stroke], groups: list[list[int]], sx: float,
                  sy: float) -> tuple[np.ndarray, int]:
    """Label the ink of ``small`` (the picture scaled by ``sx``, ``sy``) by stroke group
    1..len(groups); ink no stroke explains (a picture behind them) gets labels of its own
    after those, one per connected piece.  Returns (labels, number of labels)."""
    h, w = small.shape
    any_ink = small > 0
    labels = np.zeros((h, w), np.int32)
    core_owner = np.zeros((h, w), np.int32)
    for gi, group in enumerate(groups, start=1):
        members = [strokes[k] for k in group]
        near = render_strokes(members, (w, h), sx, sy, widen=1.0, margin=2.0)
        core = render_strokes(members, (w, h), sx, sy, widen=0.6, margin=0.0)
        labels = np.where(near & any_ink & (labels == 0), gi, labels)
        core_owner = np.where(core & (core_owner == 0), gi, core_owner)
    labels = np.where((core_owner > 0) & any_ink, core_owner, labels)
    # ink next to a group's ink that its lines miss (the canvas draws smooth curves through
    # the samples, not straight lines) goes to that group
    labels = absorb_faint(labels, any_ink, steps=max(2, round(STROKE_REACH * h)))
    rest = (small > SOLID) & (labels == 0)
    n = len(groups)
    if rest.any():
        extra, m = label_components(rest)
        labels = np.where(extra > 0, extra + n, labels)
        n += m
    return absorb_faint(labels, any_ink), n


def render_strokes(strokes: Sequence[Stroke], size: tuple[int, int], sx: float, sy: float, widen: float,
                   margin: float) -> np.ndarray:
    """The strokes painted (round caps and joins) on a ``size`` (w, h) mask, scaled."""
    img = Image.new("1", size, 0)
    d = ImageDraw.Draw(img)
    s = (sx + sy) / 2
    for st in strokes:
        pts = [(x * sx, y * sy) for x, y in st.points]
        r = max(0.5, st.width * s * widen / 2 + margin)
        if len(pts) > 1:
            d.line(pts, fill=1, width=max(1, round(2 * r)), joint="curve")
        for x, y in (pts[0], pts[-1]):
            d.ellipse([x - r, y - r, x + r, y + r], fill=1)
    return np.asarray(img, dtype=bool)


# ---- cut paths ---------------------------------------------------------------------------------------
def _seam_table(cost: np.ndarray, lateral: float) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest path cost from the first row down to every cell (one cell a row, moving at
    most one column, ``lateral`` per column moved) and the move that reached it (-1, 0, 1)."""
    h, w = cost.shape
    acc = np.empty((h, w))
    step = np.zeros((h, w), np.int8)
    acc[0] = cost[0]
    big = np.full(1, np.inf)
    for r in range(1, h):
        prev = acc[r - 1]
        from_left = np.concatenate([big, prev[:-1]]) + lateral
        from_right = np.concatenate([prev[1:], big]) + lateral
        best = np.minimum(prev, np.minimum(from_left, from_right))
        step[r] = np.where(best == prev, 0, np.where(best == from_left, -1, 1))
        acc[r] = cost[r] + best
    return acc, step


def _valleys(values: np.ndarray, lo: int, hi: int) -> list[int]:
    """Columns in [lo, hi) where ``values`` has a local minimum (a plateau gives its middle)."""
    out = []
    x = lo
    while x < hi:
        end = x
        while end + 1 < hi and values[end + 1] == values[x]:
            end += 1
        left_ok = x == 0 or values[x - 1] > values[x]
        right_ok = end + 1 >= len(values) or values[end + 1] > values[x]
        if left_ok and right_ok:
            out.append((x + end) // 2)
        x = end + 1
    return out


def find_cuts(ink: np.ndarray, height: float, pen: float) -> list[tuple[np.ndarray, float]]:
    """Candidate cuts through one piece of ink (0..1, zero outside it): for a few rows, the
    cheapest top-to-bottom path through each cell of the row, kept where that cost has a
    valley along the row.  ``height`` is a digit's height and ``pen`` the stroke thickness
    (pixels).  Returns (the path's column in each row, the strokes it crosses), left to right."""
    h, w = ink.shape
    margin = max(2, int(round(0.1 * height)))
    if w < 2 * margin + 1 or h < 3:
        return []
    cost = np.where(ink > SOLID, 1.0, ink * (0.5 / SOLID))
    down, step_down = _seam_table(cost, SEAM_LATERAL)
    up_rev, step_up_rev = _seam_table(cost[::-1], SEAM_LATERAL)
    up, step_up = up_rev[::-1], step_up_rev[::-1]
    cum = np.concatenate([np.zeros((h, 1)), np.cumsum(ink, axis=1)], axis=1)
    total = float(cum[:, -1].sum())
    rows = np.arange(h)
    options: list[tuple[float, int, int]] = []
    for mid in sorted({min(h - 1, int(f * h)) for f in SEAM_ROWS}):
        through = down[mid] + up[mid] - cost[mid]
        for x in _valleys(through, margin, w - margin):
            crossed = float(through[x]) / max(pen, 1.0)
            if crossed <= SEAM_MAX_CROSSED:
                options.append((crossed, mid, x))
    options.sort()
    limit = int(math.ceil(w / (SEAM_PER_HEIGHT * height))) + 1
    found: list[tuple[np.ndarray, float]] = []
    for crossed, mid, x in options:
        # a path through a point of one already found is most likely that path: skip it
        # before tracing it (tracing costs a Python loop over the rows)
        if any(p[mid] == x for p, _ in found):
            continue
        path = np.empty(h, np.intp)
        path[mid] = x
        for r in range(mid, 0, -1):
            path[r - 1] = path[r] + step_down[r, path[r]]
        for r in range(mid, h - 1):
            path[r + 1] = path[r] + step_up[r, path[r]]
        left = float(cum[rows, path].sum())
        if min(left, total - left) < SEAM_MIN_SIDE * total:
            continue
        if any(np.abs(path - p).mean() < SEAM_SPACING * height for p, _ in found):
            continue
        found.append((path, crossed))
        if len(found) >= limit:
            break
    found.sort(key=lambda pc: float(pc[0].mean()))
    return found


def split_by_cuts(region: np.ndarray, cuts: list[tuple[np.ndarray, float]]) -> list[np.ndarray]:
    """The parts of the boolean ``region`` between consecutive cut paths, left to right
    (empty parts left out)."""
    h, w = region.shape
    cols = np.arange(w)[None, :]
    parts = []
    left_path = np.zeros(h, np.intp)
    for path, _ in cuts:
        path = np.maximum(path, left_path)  # cut paths never cross
        part = region & (cols >= left_path[:, None]) & (cols < path[:, None])
        if part.any():
            parts.append(part)
        left_path = path
    part = region & (cols >= left_path[:, None])
    if part.any():
        parts.append(part)
    return parts
