"""Camera-like degradation of plate images, and the model's input preprocessing.

Synthetic plates are pasted into a fake scene and cut back out with a loose or tight box, since
detectors hand over crops with car body around them or with edges clipped. The degradations
(blur, low resolution, JPEG, light, noise) are the failure modes of real crops in the data sets.
"""
from __future__ import annotations

import random

import cv2
import numpy as np

INPUT_H, INPUT_W = 64, 192


def to_input(img: np.ndarray, h: int = INPUT_H, w: int = INPUT_W) -> np.ndarray:
    """BGR or gray uint8 -> gray uint8 [h, w], stretched (no aspect keeping, like inference)."""
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    interp = cv2.INTER_AREA if img.shape[1] > w else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def _scene(rng: random.Random, h: int, w: int) -> np.ndarray:
    """A fake car-body / bumper background around the plate."""
    c = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = c
    g = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    img += g * rng.uniform(-60, 60)
    for _ in range(rng.randint(0, 4)):  # bumper lines, grille bars, lamp edges
        y = rng.randint(0, h - 1)
        col = tuple(float(rng.randint(0, 255)) for _ in range(3))
        cv2.line(img, (0, y), (w - 1, y + rng.randint(-10, 10)), col, rng.randint(1, max(2, h // 12)))
    img = np.clip(img, 0, 255).astype(np.uint8)
    noise = np.empty((h, w, 3), np.int16)
    cv2.setRNGSeed(rng.randint(0, 2**31 - 1))  # cv2's generator is global: seed it per sample
    cv2.randn(noise, 0, rng.uniform(2, 12))
    return cv2.add(img.astype(np.int16), noise, dtype=cv2.CV_8U)


def _dirt(rng: random.Random, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    out = img.astype(np.float32)
    for _ in range(rng.randint(1, 6)):
        m = np.zeros((h, w), np.float32)
        cv2.ellipse(m, (rng.randint(0, w), rng.randint(0, h)),
                    (rng.randint(3, max(4, w // 8)), rng.randint(2, max(3, h // 6))),
                    rng.uniform(0, 180), 0, 360, 1.0, -1)
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(1, 4))[..., None] * rng.uniform(0.2, 0.6)
        out = out * (1 - m) + np.float32(rng.randint(30, 120)) * m
    return out.astype(np.uint8)


def _stray_text(rng: random.Random, scene: np.ndarray, ox: int, oy: int, pw: int, ph: int) -> None:
    txt = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(rng.randint(1, 3)))
    font = rng.choice((cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN))
    scale = ph * rng.uniform(0.25, 0.6) / 22
    thick = max(1, int(scale * 2))
    (tw, th), _ = cv2.getTextSize(txt, font, scale, thick)
    gap = int(pw * rng.uniform(0.01, 0.06))
    x = ox - gap - tw if rng.random() < 0.5 else ox + pw + gap
    y = oy + int(ph * rng.uniform(0.4, 0.9))
    col = tuple(float(rng.randint(0, 255)) for _ in range(3))
    cv2.putText(scene, txt, (x, y), font, scale, col, thick, cv2.LINE_AA)


def place_in_scene(rng: random.Random, plate: np.ndarray) -> np.ndarray:
    """Warps the plate (perspective, rotation) into a scene and crops it with box jitter."""
    ph, pw = plate.shape[:2]
    pad = 0.4
    H, W = int(ph * (1 + 2 * pad)), int(pw * (1 + 2 * pad))
    scene = _scene(rng, H, W)
    ox, oy = pw * pad, ph * pad
    if rng.random() < 0.15:  # text just outside the plate (a sign, a badge): not in the label
        _stray_text(rng, scene, int(ox), int(oy), pw, ph)
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    s = rng.uniform(0.0, 0.12)
    dst = src + np.float32([[rng.uniform(-s, s) * pw, rng.uniform(-s, s) * ph] for _ in range(4)])
    ang = np.deg2rad(rng.gauss(0, 3.5) if rng.random() < 0.9 else rng.uniform(-9, 9))
    c = np.float32([pw / 2, ph / 2])
    rot = np.float32([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = (dst - c) @ rot.T + c + np.float32([ox, oy])
    M = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(plate, M, (W, H), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), M, (W, H))
    scene[mask > 127] = warped[mask > 127]
    x0, y0 = dst.min(0)
    x1, y1 = dst.max(0)
    bw, bh = x1 - x0, y1 - y0
    mode = rng.random()
    if mode < 0.45:
        lo, hi = -0.03, 0.06   # tight
    elif mode < 0.85:
        lo, hi = -0.02, 0.18   # a little loose
    else:
        lo, hi = 0.05, 0.35    # loose, car body around
    j = [rng.uniform(lo, hi) for _ in range(4)]
    cx0, cx1 = int(max(0, x0 - j[0] * bw)), int(min(W, x1 + j[1] * bw))
    cy0, cy1 = int(max(0, y0 - j[2] * bh)), int(min(H, y1 + j[3] * bh))
    return scene[cy0:cy1, cx0:cx1]


#: Share of the low-resolution damage that goes down to 36-50 px wide (street and overview
#: cameras); 0 reproduces the damage of sessions 1-5 draw for draw (benchmarks/synthetic_styles.py).
SMALL_SHARE = 0.25


def degrade(rng: random.Random, img: np.ndarray, strength: float = 1.0, small: float = SMALL_SHARE) -> np.ndarray:
    """Photometric and resolution damage; returns gray uint8 at the model input size."""
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    if img.ndim == 3:
        if rng.random() < 0.15:  # night / IR: reflective sheeting bright, ink dark
            img = img.max(axis=2) if rng.random() < 0.5 else img[:, :, 2]
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    g = img.astype(np.float32)
    h, w = g.shape
    if rng.random() < 0.4 * strength:  # uneven light
        gx = np.linspace(rng.uniform(0.5, 1.2), rng.uniform(0.5, 1.2), w, dtype=np.float32)
        gy = np.linspace(rng.uniform(0.7, 1.2), rng.uniform(0.7, 1.2), h, dtype=np.float32)
        g *= gy[:, None] * gx[None, :]
    if rng.random() < 0.2 * strength:  # hard shadow edge
        m = np.zeros((h, w), np.float32)
        pts = np.int32([[rng.randint(0, w), 0], [rng.randint(0, w), h], [w * 2, h], [w * 2, 0]])
        cv2.fillPoly(m, [pts], 1.0)
        if rng.random() < 0.5:
            m = 1 - m
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.5, 3))
        g *= 1 - m * rng.uniform(0.3, 0.7)
    if rng.random() < 0.5 * strength:  # contrast / brightness
        a = rng.uniform(0.35, 1.3)
        g = (g - g.mean()) * a + g.mean() + rng.uniform(-50, 50)
    if rng.random() < 0.2:
        g = 255 * (np.clip(g, 0, 255) / 255) ** rng.uniform(0.5, 2.0)
    g = np.clip(g, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.25 * strength:
        g = cv2.GaussianBlur(g, (0, 0), rng.uniform(0.5, 1.8) * max(1.0, w / 250))
    elif r < 0.4 * strength:  # motion blur
        k = rng.randint(3, 9)
        ker = np.zeros((k, k), np.float32)
        ker[k // 2] = 1
        ker = cv2.warpAffine(ker, cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5),
                                                          rng.uniform(-30, 30), 1), (k, k))
        g = cv2.filter2D(g, -1, ker / max(ker.sum(), 1e-6))
    if rng.random() < 0.6 * strength:  # low resolution: many real plates are 60–120 px wide,
        # street and overview cameras give 35-50 px (the reader read 45% of such plates at 40-80 px
        # in validation street photos when training went down to 50 px only)
        tw = rng.randint(36, 50) if small and rng.random() < small else rng.randint(50, 160)
        th = max(10, int(h * tw / w))
        if tw < w:
            g = cv2.resize(g, (tw, th), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5 * strength:
        g = np.clip(g + nrng.normal(0, rng.uniform(2, 14), g.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.4 * strength:
        ok, buf = cv2.imencode(".jpg", g, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(15, 85)])
        if ok:
            g = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if rng.random() < 0.05:  # inverted sensors / negative plates
        g = 255 - g
    g = to_input(g)
    if g.std() < 12:  # unreadable after the damage: stretch it back like an AGC would
        g = cv2.normalize(g, None, 0, 255, cv2.NORM_MINMAX)
    return g


def synth_sample(rng: random.Random, plate: np.ndarray, dirt: bool = True, small: float = SMALL_SHARE) -> np.ndarray:
    """A rendered plate -> a model input, the way a detector + camera would deliver it."""
    ph, pw = plate.shape[:2]
    tw = rng.randint(110, 300)  # work at about the final resolution: 4x cheaper on 2 cores
    plate = cv2.resize(plate, (tw, max(8, round(ph * tw / pw))), interpolation=cv2.INTER_AREA)
    if dirt and rng.random() < 0.15:
        plate = _dirt(rng, plate)
    return degrade(rng, place_in_scene(rng, plate), small=small)


def jitter_crop(rng: random.Random, img: np.ndarray, box: tuple[float, float, float, float],
                lo: float = -0.04, hi: float = 0.2) -> np.ndarray:
    """Cuts ``box`` (x0,y0,x1,y1) from ``img`` with each side moved by [lo, hi] of the size;
    out-of-image parts are filled by replicating the border."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    cx0 = int(round(x0 - rng.uniform(lo, hi) * bw))
    cx1 = int(round(x1 + rng.uniform(lo, hi) * bw))
    cy0 = int(round(y0 - rng.uniform(lo, hi) * bh))
    cy1 = int(round(y1 + rng.uniform(lo, hi) * bh))
    H, W = img.shape[:2]
    pl, pt, pr, pb = max(0, -cx0), max(0, -cy0), max(0, cx1 - W), max(0, cy1 - H)
    if pl or pt or pr or pb:
        img = cv2.copyMakeBorder(img, pt, pb, pl, pr, cv2.BORDER_REPLICATE)
        cx0, cx1, cy0, cy1 = cx0 + pl, cx1 + pl, cy0 + pt, cy1 + pt
    out = img[max(0, cy0):max(cy0 + 2, cy1), max(0, cx0):max(cx0 + 2, cx1)]
    return out


def real_sample(rng: random.Random, img: np.ndarray,
                box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """A real crop (or a box in a larger image) -> a model input with mild augmentation."""
    if box is None:
        h, w = img.shape[:2]
        box = (0, 0, w, h)
        lo, hi = -0.04, 0.06
    else:
        lo, hi = -0.04, 0.22
    if rng.random() < 0.1:
        return to_input(jitter_crop(rng, img, box, 0, 0))
    crop = jitter_crop(rng, img, box, lo, hi)
    if rng.random() < 0.3:  # small rotation
        h, w = crop.shape[:2]
        M = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-4, 4), 1.0)
        crop = cv2.warpAffine(crop, M, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return degrade(rng, crop, strength=0.6)
