"""Digits drawn with PIL strokes the way a person draws them on the canvas (black on white)."""

from PIL import Image, ImageDraw

STROKES = {
    1: [[(140, 40), (140, 240)]],
    7: [[(70, 50), (210, 50), (120, 240)]],
    0: [[(140, 40), (200, 80), (210, 160), (170, 235), (110, 235), (70, 160), (80, 80), (140, 40)]],
    4: [[(170, 240), (170, 40), (60, 170), (220, 170)]],
    3: [[(70, 60), (140, 35), (200, 70), (190, 120), (130, 140), (200, 165), (200, 220), (140, 245), (70, 220)]],
}


def draw_digit(digit: int, size: int = 280, width: int = 18, offset=(0, 0), scale: float = 1.0,
               invert: bool = False) -> Image.Image:
    bg, ink = (0, 255) if invert else (255, 0)
    img = Image.new("L", (size, size), bg)
    d = ImageDraw.Draw(img)
    for stroke in STROKES[digit]:
        pts = [(x * scale * size / 280 + offset[0], y * scale * size / 280 + offset[1]) for x, y in stroke]
        d.line(pts, fill=ink, width=max(1, int(width * scale * size / 280)), joint="curve")
    return img
