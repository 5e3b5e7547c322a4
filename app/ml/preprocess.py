"""Any drawn or scanned digit image -> the 28x28 input the network sees, the MNIST way.

Steps (LeCun's description of how MNIST was made):
1. convert to grey, find the background from the image border (either polarity works)
   and turn the image into "ink" (white digit on black, 0..1);
2. crop to the ink;
3. scale into a 20x20 box keeping the aspect ratio, with an area filter;
4. place it in a 28x28 field with its centre of mass at the centre;
5. normalise with MNIST's mean and std.
A blank image is reported as ``NothingDrawn``, never guessed at.

Before any of that, one size guard that every input goes through (``prepare``, so
``predict``, ``predict_batch`` and ``explain``; and ``open_image``, the image file opener):
an image of more than ``MAX_PIXELS`` is refused with ``ImageTooLarge``, and one of more
than ``WORK_PIXELS`` is first scaled down by an integer factor on its own pixel values
(a box average), before anything is converted to floats.  The network sees 20 x 20
pixels of ink, so nothing it could use is lost, and a huge image costs neither seconds
nor gigabytes.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.ml.data import MEAN, STD
from app.ml.errors import ImageTooLarge, NothingDrawn

FIELD = 28
BOX = 20
#: MNIST's mean centre of mass (row, col) measured on the training set.
CENTRE = 14.0
#: Ink below this fraction of the strongest ink is background noise.
NOISE_FLOOR = 0.12
#: An image whose strongest ink differs from the background by less than this is blank.
MIN_CONTRAST = 0.08
#: Larger images are refused: 25 million pixels (a 5000 x 5000 scan, a 6000 x 4000 photo).
MAX_PIXELS = 25_000_000
#: Larger images are scaled down to at most this many pixels before anything else.
WORK_PIXELS = 2_000_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """The network's input and what the user is shown."""

    image: np.ndarray  # (28, 28) float32 in 0..1, white digit on black
    tensor_input: np.ndarray  # (1, 28, 28) float32, normalised

    def as_uint8(self) -> np.ndarray:
        return np.clip(self.image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_grey_array(x) -> np.ndarray:
    """PIL image, numpy array or torch tensor -> (H, W) float32 in 0..1.

    Accepts H x W, H x W x 1/3/4 (or 1/3/4 x H x W for tensors), uint8 or float.
    Raises ``ValueError`` with a clear message for anything else.
    """
    if isinstance(x, Image.Image):
        return _from_pil(x)
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
        if x.ndim == 3 and x.shape[0] in (1, 3, 4) and x.shape[-1] not in (1, 3, 4):
            x = np.moveaxis(x, 0, -1)  # C x H x W -> H x W x C
    if not isinstance(x, np.ndarray):
        raise ValueError(f"expected a PIL image, a numpy array or a torch tensor, got {type(x).__name__}")
    return _from_array(x)


def open_image(source: str | os.PathLike | BinaryIO) -> Image.Image:
    """Open an image file (a path or a binary file object) for ``prepare``: the size guard
    applied, pixels loaded, file closed.

    A large JPEG is decoded at a reduced scale (1/2 to 1/8); anything still above
    ``MAX_PIXELS``, and a decompression bomb, is refused with ``ImageTooLarge`` before its
    pixels are decoded.  The image returned has at most ``WORK_PIXELS`` pixels.  A missing or
    unreadable file raises ``ValueError`` saying so.
    """
    try:
        img = Image.open(source)
    except FileNotFoundError:
        raise ValueError("the file does not exist") from None
    except Image.DecompressionBombError as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(claimed.group(1)) / 1e6:.0f} Mpx" if claimed else "far more pixels"
        raise ImageTooLarge(
            f"the image claims {size}, far more than the {MAX_PIXELS / 1e6:.0f} Mpx that can be read, so it was "
            f"not opened: it may be a decompression bomb (a small file that unpacks to gigabytes). If it is a "
            f"real picture, scale it down and open it again.") from None
    except UnidentifiedImageError:
        raise ValueError("this is not an image file Pillow can read (try PNG or JPEG)") from None
    except OSError as exc:
        raise ValueError(f"the file could not be read ({exc})") from None
    with img:
        w, h = img.size
        if w * h > WORK_PIXELS:  # JPEGs decode at 1/2, 1/4 or 1/8 of their size; others ignore this
            k = _factor(w, h, WORK_PIXELS)
            img.draft(img.mode, (max(1, w // k), max(1, h // k)))
            if img.size != (w, h):
                log.debug("%s x %s %s decoded at %s x %s", w, h, img.format, *img.size)
        try:
            small = limit_size(img)
            small.load()
        except (OSError, SyntaxError) as exc:  # truncated or damaged pixel data
            raise ValueError(f"the image file is damaged ({exc})") from None
        return small.copy() if small is img else small


def limit_size(img):
    """The size guard: refuse an image (PIL image or H x W (x C) array) of more than
    ``MAX_PIXELS`` with ``ImageTooLarge``; scale one of more than ``WORK_PIXELS`` down by a
    whole factor (a box average on its own pixel values).  Anything else comes back as is."""
    if isinstance(img, Image.Image):
        w, h = img.size
    else:
        h, w = img.shape[:2]
    if w * h > MAX_PIXELS:
        raise ImageTooLarge(
            f"the image is {w} × {h} pixels ({w * h / 1e6:.0f} Mpx); images of up to {MAX_PIXELS / 1e6:.0f} Mpx "
            f"(for example 5000 × 5000) can be read: scale it down and try again")
    if w * h <= WORK_PIXELS:
        return img
    if isinstance(img, Image.Image):
        if img.mode not in _REDUCIBLE:  # palette indices or bits cannot be averaged: convert first
            if img.mode.startswith("I;16"):
                img = img.convert("I")
            else:
                has_alpha = img.mode == "PA" or "transparency" in img.info
                img = img.convert("RGBA" if has_alpha else "L")
        return img.reduce(_factor(w, h, WORK_PIXELS))
    return _box_reduce(img)


#: The PIL modes ``Image.reduce`` averages.
_REDUCIBLE = {"L", "LA", "La", "RGB", "RGBA", "RGBa", "I", "F", "CMYK", "YCbCr"}


def _factor(w: int, h: int, limit: int) -> int:
    return max(1, math.ceil(math.sqrt(w * h / limit)))


def _box_reduce(arr: np.ndarray) -> np.ndarray:
    """Average blocks of ky x kx pixels so that at most WORK_PIXELS remain.

    Integer pixels stay integers of the same type (rounded means), floats become float32,
    booleans fractions in 0..1.  The last rows and columns that do not fill a whole block
    (fewer than k of them) are dropped.  Sums of strided slices: no full-size temporary.
    """
    h, w = arr.shape[:2]
    k = _factor(w, h, WORK_PIXELS)
    ky, kx = min(k, h), min(k, w)  # the same factor both ways: the digit keeps its shape
    if (h // ky) * (w // kx) > WORK_PIXELS:  # a sliver, one pixel thin: shrink its length more
        if ky == h:
            kx = min(w, math.ceil(w / WORK_PIXELS))
        else:
            ky = min(h, math.ceil(h / WORK_PIXELS))
    h2, w2 = h // ky, w // kx
    if arr.dtype == np.uint8 and ky * kx * 255 <= np.iinfo(np.uint16).max:
        acc = np.uint16
    elif np.issubdtype(arr.dtype, np.integer):
        acc = np.int64
    else:  # floats and booleans
        acc = np.float32
    rows = arr[0:h2 * ky:ky, :w2 * kx].astype(acc)
    for i in range(1, ky):
        rows += arr[i:h2 * ky:ky, :w2 * kx]
    out = rows[:, 0::kx].copy()
    for j in range(1, kx):
        out += rows[:, j::kx]
    del rows
    n = ky * kx
    if np.issubdtype(arr.dtype, np.integer):
        return ((out + n // 2) // n).astype(arr.dtype)
    out /= n
    return out


def _from_pil(img: Image.Image) -> np.ndarray:
    if img.width == 0 or img.height == 0:
        raise ValueError("the image is empty (0 pixels)")
    img = limit_size(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        rgba = np.asarray(img, dtype=np.float32) / 255.0
        return _composite(rgba)
    if img.mode in ("I", "I;16", "I;16B", "F"):
        return _from_array(np.asarray(img, dtype=np.float32))
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"the array has dtype {arr.dtype}; expected uint8 or float pixels")
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        channels = arr.shape[-1]
    elif arr.ndim == 2:
        channels = 0
    else:
        raise ValueError(
            f"the array has shape {arr.shape}; expected H x W or H x W x 1/3/4 (grey, RGB or RGBA)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"the array has shape {arr.shape}: it holds no pixels")
    arr = limit_size(arr)
    if arr.dtype == np.uint8:
        f = arr.astype(np.float32) / 255.0
    elif arr.dtype == bool:
        f = arr.astype(np.float32)
    else:
        f = arr.astype(np.float32)
        if not np.all(np.isfinite(f)):
            raise ValueError("the array holds NaN or infinite values")
        hi = float(f.max())
        if np.issubdtype(arr.dtype, np.integer) or hi > 1.0 + 1e-6:
            f = f / (255.0 if hi <= 255.0 else hi)  # integer pixels, or floats on a 0..255 scale
        if float(f.min()) < -1e-6:
            raise ValueError("the array holds negative pixel values; expected 0..1 or 0..255")
    if channels == 0:
        return f
    if channels == 1:
        return f[..., 0]
    if channels == 4:
        return _composite(f)
    return f[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _composite(rgba: np.ndarray) -> np.ndarray:
    grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    alpha = rgba[..., 3]
    if float(alpha.min()) >= 1.0 - 1e-6:
        return grey
    # Transparent pixels are background: put the image on white (ink drawn on a clear layer).
    return grey * alpha + (1.0 - alpha)


def ink_map(grey: np.ndarray) -> np.ndarray:
    """Grey image -> ink in 0..1 (1 = strongest ink), background found from the border."""
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    background = float(np.median(border))
    ink = np.abs(grey - background)
    if background > 0.5:  # dark ink on a light background: only darker pixels are ink
        ink = np.where(grey < background, ink, 0.0)
    else:
        ink = np.where(grey > background, ink, 0.0)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise NothingDrawn("nothing drawn: the image has no ink")
    ink = ink / peak
    ink[ink < NOISE_FLOOR] = 0.0
    return ink.astype(np.float32)


def prepare(x) -> Prepared:
    """Any supported input -> ``Prepared`` (raises ``NothingDrawn`` or ``ValueError``)."""
    grey = to_grey_array(x)
    if grey.shape == (FIELD, FIELD) and _looks_like_mnist(grey):
        ink = grey.astype(np.float32)
    else:
        ink = ink_map(grey)
    field = center_in_field(crop_and_scale(ink))
    return Prepared(image=field, tensor_input=((field - MEAN) / STD)[None].astype(np.float32))


def _looks_like_mnist(grey: np.ndarray) -> bool:
    """A 28x28 white-on-black image with an empty border is taken as already prepared input."""
    border = np.concatenate([grey[:2].ravel(), grey[-2:].ravel(), grey[:, :2].ravel(), grey[:, -2:].ravel()])
    return float(border.max()) == 0.0 and float(grey.max()) >= MIN_CONTRAST


def crop_and_scale(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink and fit it into a BOX x BOX square, keeping the aspect ratio."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise NothingDrawn("nothing drawn: the image has no ink")
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    img = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32))
    # Shrinking: the box (area) filter averages every source pixel.  Growing a tiny
    # drawing: bilinear keeps it smooth.
    resample = Image.Resampling.BOX if scale <= 1.0 else Image.Resampling.BILINEAR
    out = np.asarray(img.resize((new_w, new_h), resample=resample), dtype=np.float32)
    peak = float(out.max())
    return out / peak if peak > 0 else out


def center_in_field(digit: np.ndarray) -> np.ndarray:
    """Place ``digit`` (at most BOX x BOX) in a 28x28 field, centre of mass at the centre."""
    h, w = digit.shape
    total = float(digit.sum())
    ys, xs = np.indices(digit.shape, dtype=np.float64)
    com_y = float((digit * ys).sum() / total)
    com_x = float((digit * xs).sum() / total)
    top = _clamp(round(CENTRE - com_y), 0, FIELD - h)
    left = _clamp(round(CENTRE - com_x), 0, FIELD - w)
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top:top + h, left:left + w] = digit
    return field


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))
