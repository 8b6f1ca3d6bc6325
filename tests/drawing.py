"""Synthetic scenes drawn with OpenCV for tests: plates, clutter, and where the plate ended up.

Everything is deterministic (seeded), BGR uint8, and built from cv2 primitives only, so tests
need no image files. Typical use::

    plate = draw_plate("KX7B42")
    scene, box = cluttered_scene(plate, seed=3)   # box: where the plate was pasted
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from plateread.types import Box

FONT = cv2.FONT_HERSHEY_SIMPLEX


def gray_bgr(value: int) -> tuple[int, int, int]:
    return (value, value, value)


def render_text(text: str, char_height: int, thickness: int, font: int = FONT) -> np.ndarray:
    """``text`` as a uint8 ink mask (255 = ink) cropped to its ink, capitals ``char_height`` px tall.

    Measured from drawn ink rather than ``cv2.getTextSize``, whose box includes baseline room and
    misses half the stroke width, so that margins around the text are exact.
    """
    (_, h1), _ = cv2.getTextSize("H", font, 1.0, 1)
    scale = char_height / h1
    for _ in range(3):  # refine: the rendered cap height is not exactly proportional to scale
        (w, h), base = cv2.getTextSize(text, font, scale, thickness)
        canvas = np.zeros((h + base + 4 * thickness, w + 4 * thickness), np.uint8)
        cv2.putText(canvas, text, (2 * thickness, h + 2 * thickness), font, scale, 255, thickness, cv2.LINE_AA)
        cap = np.zeros_like(canvas)
        cv2.putText(cap, "H", (2 * thickness, h + 2 * thickness), font, scale, 255, thickness, cv2.LINE_AA)
        rows = np.flatnonzero(cap.max(axis=1) > 127)
        scale *= char_height / max(1, rows[-1] - rows[0] + 1)
    ys, xs = np.nonzero(canvas > 127)
    return canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def draw_plate(
    text: str,
    *,
    char_height: int = 18,
    thickness: int = 2,
    bold: int = 0,
    stretch: float = 0.9,
    margin: tuple[int, int] = (6, 3),
    aspect: float | None = None,
    fg: int = 25,
    bg: int = 230,
    border: int = 0,
    font: int = FONT,
) -> np.ndarray:
    """A plate: ``text`` in ``fg`` grey on a ``bg`` grey rectangle (dark on light by default).

    ``char_height`` is the drawn height of capitals and ``margin`` the exact (x, y) space between
    the ink and the plate edge; ``aspect`` (width/height), when given, widens the horizontal margin
    to reach it. ``stretch`` scales the text horizontally (below 1: condensed, like plate fonts).
    ``thickness`` goes to ``cv2.putText``; OpenCV 5 treats every value above 1 as "bold", so
    ``bold`` thickens strokes by that many pixels by dilation, the same on any OpenCV version.
    ``border`` draws a frame that many pixels thick in the text colour. Swap ``fg``/``bg`` for a
    light-on-dark plate. The defaults match the scale the classic locator's fixed 13×5 kernels
    work at: 18 px capitals, so six characters make a text block of aspect ratio ~4.5 on a plate
    of ~4.1.
    """
    ink = render_text(text, char_height, thickness, font)
    if stretch != 1.0:
        ink = cv2.resize(ink, (max(1, round(ink.shape[1] * stretch)), ink.shape[0]), interpolation=cv2.INTER_AREA)
    if bold:
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (bold + 1, bold + 1)))
    ih, iw = ink.shape
    height, width = ih + 2 * margin[1], iw + 2 * margin[0]
    if aspect is not None:
        width = max(width, round(aspect * height))
    alpha = np.zeros((height, width), np.float32)
    x0, y0 = (width - iw) // 2, margin[1]
    alpha[y0:y0 + ih, x0:x0 + iw] = ink / 255.0
    plate = (bg + (fg - bg) * alpha).round().astype(np.uint8)
    plate = cv2.cvtColor(plate, cv2.COLOR_GRAY2BGR)
    if border:
        cv2.rectangle(plate, (0, 0), (width - 1, height - 1), gray_bgr(fg), border)
    return plate


def noisy_background(shape: tuple[int, int], *, seed: int = 0, noise: float = 10.0) -> np.ndarray:
    """A mid-grey vertical gradient with Gaussian noise: no structure, but no flat areas either."""
    rng = np.random.default_rng(seed)
    h, w = shape
    ramp = np.linspace(70, 130, h, dtype=np.float32)[:, None].repeat(w, axis=1)
    img = ramp + rng.normal(0.0, noise, (h, w)).astype(np.float32)
    return cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def add_clutter(
    image: np.ndarray, *, seed: int = 0, shapes: int = 12, lines: int = 10, keepout: Box | None = None
) -> np.ndarray:
    """Draws random rectangles, circles and lines in place, none overlapping ``keepout``.

    Shapes and lines get random grey levels, some as light as a plate, so the light mask and the
    gradient both have something other than the plate to respond to.
    """
    rng = np.random.default_rng(seed + 1)
    h, w = image.shape[:2]

    def clear_of_keepout(x0: int, y0: int, x1: int, y1: int) -> bool:
        if keepout is None:
            return True
        return x1 < keepout.xmin or x0 > keepout.xmax or y1 < keepout.ymin or y0 > keepout.ymax

    drawn = tries = 0
    while drawn < shapes and tries < shapes * 50:
        tries += 1
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        rw, rh = int(rng.integers(8, max(9, w // 6))), int(rng.integers(8, max(9, h // 6)))
        x0, y0, x1, y1 = cx - rw // 2, cy - rh // 2, cx + rw // 2, cy + rh // 2
        if not clear_of_keepout(x0, y0, x1, y1):
            continue
        colour = gray_bgr(int(rng.integers(0, 256)))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
        else:
            cv2.circle(image, (cx, cy), min(rw, rh) // 2, colour, -1)
        drawn += 1
    drawn = tries = 0
    while drawn < lines and tries < lines * 50:
        tries += 1
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        x0, x1 = sorted((p0[0], p1[0]))
        y0, y1 = sorted((p0[1], p1[1]))
        if not clear_of_keepout(x0, y0, x1, y1):
            continue
        cv2.line(image, p0, p1, gray_bgr(int(rng.integers(0, 256))), int(rng.integers(1, 4)))
        drawn += 1
    return image


def paste(image: np.ndarray, patch: np.ndarray, at: tuple[int, int]) -> Box:
    """Copies ``patch`` into ``image`` with its top-left at ``at`` = (x, y); returns where it went."""
    x, y = at
    ph, pw = patch.shape[:2]
    image[y:y + ph, x:x + pw] = patch
    return Box(x, y, x + pw, y + ph)


def cluttered_scene(
    plate: np.ndarray,
    *,
    size: tuple[int, int] = (480, 640),
    at: tuple[int, int] | None = None,
    seed: int = 0,
    noise: float = 10.0,
    shapes: int = 12,
    lines: int = 10,
    surround: int = 25,
    surround_grey: int = 60,
) -> tuple[np.ndarray, Box]:
    """``plate`` pasted on a noisy, cluttered background of ``size`` = (height, width).

    The plate sits on a darker "bumper" rectangle ``surround`` px wider on each side, which the
    clutter stays clear of, so the scene is busy but the plate's own outline is intact.
    ``at`` is the plate's top-left corner (default: centred, a little low like a car's plate).
    Returns the scene and the plate's box.
    """
    h, w = size
    ph, pw = plate.shape[:2]
    if at is None:
        at = ((w - pw) // 2, (h - ph) * 3 // 5)
    x, y = at
    if x < 0 or y < 0 or x + pw > w or y + ph > h:
        raise ValueError(f"plate {pw}x{ph} at {at} does not fit in a {w}x{h} scene")
    scene = noisy_background(size, seed=seed, noise=noise)
    bumper = Box(max(0, x - surround), max(0, y - surround), min(w, x + pw + surround), min(h, y + ph + surround))
    add_clutter(scene, seed=seed, shapes=shapes, lines=lines, keepout=bumper)
    cv2.rectangle(scene, (bumper.xmin, bumper.ymin), (bumper.xmax - 1, bumper.ymax - 1), gray_bgr(surround_grey), -1)
    return scene, paste(scene, plate, (x, y))


def draw_sign(
    lines: list[str], *, line_gap: int = 4, margin: tuple[int, int] = (4, 3), **plate_options: Any
) -> np.ndarray:
    """A light panel with several lines of dark text: a square-ish text block that is not a plate.

    Each line is drawn by ``draw_plate(line, **plate_options)``; inks are ``line_gap`` px apart
    vertically and ``margin`` = (x, y) from the panel edge.
    """
    rows = [draw_plate(line, margin=(margin[0], 0), **plate_options) for line in lines]
    width = max(r.shape[1] for r in rows)
    bg = gray_bgr(int(rows[0][0, 0, 0]))
    parts: list[np.ndarray] = []
    for i, row in enumerate(rows):
        top = margin[1] if i == 0 else line_gap
        bottom = margin[1] if i == len(rows) - 1 else 0
        pad = width - row.shape[1]
        parts.append(cv2.copyMakeBorder(row, top, bottom, 0, pad, cv2.BORDER_CONSTANT, value=bg))
    return np.vstack(parts)
