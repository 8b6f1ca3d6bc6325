"""Training samples for the plate detector: real photos with boxes, synthetic plates composited
into them (exact corners), unlabelled non-plate text as negatives, heavy photometric noise.

Only ~1100 real training photos exist, too few for a detector from scratch, and none has corner
labels; compositing rendered plates into those same photos multiplies the plate appearances while
keeping real backgrounds (cars, roads, night frames), and gives the corner head exact targets.
Every photo is decoded once into RAM (long side <= 1280) before DataLoader workers fork, so the
workers share it copy-on-write and only do cheap per-sample work.
"""
from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..engines.learned.detector import match_boxes
from ..evaluation.dataset import load_index
from .render import PlateRenderer

#: Real sets with boxes usable for training, and whether some plates are left unlabelled.
TRAIN_SETS = {"openalpr-us": False, "openalpr-br": False, "ro-dashcam": False,
              "openimages-plates": True, "open-lpr": True, "uc3m-lp": False}
#: Sampling weight of each source: photos are drawn source first, so a set with many frames of
#: one camera (openalpr-us: 167 from one gantry) cannot dominate; varied, multi-country sets weigh
#: more than single-camera ones.
SOURCE_WEIGHTS = {"openalpr-us": 0.6, "openalpr-br": 0.5, "ro-dashcam": 0.8,
                  "openimages-plates": 1.3, "open-lpr": 1.6, "uc3m-lp": 1.2}
#: Photos of a ``dev`` split used for validation as they are (never trained on).
DEV_SETS = {"open-lpr": True}
MAX_SIDE = 1280
STRIDE = 4
SIZE_UNIT = 16.0
MAX_OBJECTS = 32
#: Random zoom of a photo around its letterbox scale: down to 0.4x, because plates far smaller
#: than the letterboxed photo gives them (a 1600 px phone photo of a street shrinks a 40 px
#: plate to 16 px) must still be found.
SCALE_RANGE = (0.4, 2.0)
CORNER_ORDER = ("top-left", "top-right", "bottom-right", "bottom-left")


@dataclass
class Photo:
    key: str                 # "set/image name": stable across machines, used for the hold-out hash
    image: np.ndarray        # BGR, long side <= MAX_SIDE
    boxes: np.ndarray        # N×4 x0, y0, x1, y1 in ``image`` pixels
    partial_labels: bool     # some plates in the photo may be unlabelled


@dataclass
class Obj:
    """A plate in a training canvas: its quad (TL, TR, BR, BL) and whether the quad is exact."""

    quad: np.ndarray         # 4×2
    exact: bool              # False: real box (quad = box corners, corner loss masked)

    @property
    def box(self) -> np.ndarray:
        return np.array([*self.quad.min(0), *self.quad.max(0)], np.float32)


def is_holdout(key: str, percent: int = 10) -> bool:
    """Stable ~10% validation hold-out, independent of set order or machine."""
    return zlib.crc32(key.encode("utf-8")) % 100 < percent


def load_photos(data_dir: str | Path, sets: dict[str, bool] | None = None,
                split: str | None = "train") -> list[Photo]:
    """Every photo of ``split`` (None: every split but ``test``) with at least one box, decoded
    and downscaled once."""
    photos = []
    for name, partial in (TRAIN_SETS if sets is None else sets).items():
        set_dir = Path(data_dir) / name
        if not (set_dir / "index.jsonl").is_file():
            continue
        for s in load_index(set_dir, split):
            if s.split == "test":
                continue
            boxes = [p.box for p in s.plates if p.box is not None]
            if not boxes:  # e.g. openalpr-br PAG5219.jpg (front view, no box)
                continue
            img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            scale = min(1.0, MAX_SIDE / max(img.shape[:2]))
            if scale < 1:
                img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            b = np.array([[bx.xmin, bx.ymin, bx.xmax, bx.ymax] for bx in boxes], np.float32) * scale
            key = f"{name}/{s.name}" if split in ("train", None) else f"{name}-{split}/{s.name}"
            photos.append(Photo(key, img, b, partial))
    return photos


def source_of(photo: Photo) -> str:
    return photo.key.split("/")[0]


def split_photos(photos: list[Photo]) -> tuple[list[Photo], list[Photo]]:
    train = [p for p in photos if not is_holdout(p.key)]
    return train, [p for p in photos if is_holdout(p.key)]


def match(dets: np.ndarray, gts: np.ndarray, iou: float = 0.5) -> tuple[int, int]:
    """(labels found, detections matching no label); each label and detection used once."""
    found, used = match_boxes(dets, gts, iou)
    return int(found.sum()), int(len(dets) - used.sum())


# ---- geometry helpers ---------------------------------------------------------------------
def box_quad(b: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = b
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _overlaps(box: np.ndarray, others: list[np.ndarray], grow: float = 0.15) -> bool:
    w, h = box[2] - box[0], box[3] - box[1]
    g = np.array([-w * grow, -h * grow, w * grow, h * grow])
    bb = box + g
    return any(bb[0] < o[2] and o[0] < bb[2] and bb[1] < o[3] and o[1] < bb[3] for o in others)


def random_quad(rng: random.Random, w: float, h: float) -> np.ndarray:
    """A plate-shaped quad centred at 0: yaw/pitch foreshortening, roll, shear, corner jitter."""
    yaw, pitch = rng.uniform(-0.3, 0.3), rng.uniform(-0.12, 0.12)
    w *= 1 - abs(yaw) * rng.uniform(0.3, 1.0)
    hl, hr = h * (1 - yaw) / 2, h * (1 + yaw) / 2
    wt, wb = w * (1 + pitch) / 2, w * (1 - pitch) / 2
    q = np.array([[-wt, -hl], [wt, -hr], [wb, hr], [-wb, hl]], np.float64)
    q[:, 0] += q[:, 1] * rng.uniform(-0.15, 0.15)
    a = math.radians(max(-25.0, min(25.0, rng.gauss(0, 6))))
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    q = q @ rot.T + np.array([[rng.gauss(0, 0.015 * w), rng.gauss(0, 0.015 * w)] for _ in range(4)])
    return q.astype(np.float32)


def paste(dst: np.ndarray, src: np.ndarray, quad: np.ndarray, inner: tuple[float, float, float, float] | None = None,
          mask: np.ndarray | None = None) -> None:
    """Perspective-pastes ``src`` so that its ``inner`` rect (x0,y0,x1,y1; default: all of it)
    lands on ``quad``; parts of src outside ``inner`` (a frame) spill outside the quad.

    The source is first shrunk near the target size with INTER_AREA: warping a 500-px plate
    straight to 40 px would alias the characters into noise no camera produces.
    """
    sh, sw = src.shape[:2]
    x0, y0, x1, y1 = inner if inner is not None else (0.0, 0.0, float(sw), float(sh))
    target_w = max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3]))
    f = min(1.0, 1.5 * target_w / max(x1 - x0, 1))
    if f < 1:
        src = cv2.resize(src, (max(2, round(sw * f)), max(2, round(sh * f))), interpolation=cv2.INTER_AREA)
        if mask is not None:
            mask = cv2.resize(mask, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_AREA)
        fx, fy = src.shape[1] / sw, src.shape[0] / sh
        x0, x1, y0, y1 = x0 * fx, x1 * fx, y0 * fy, y1 * fy
        sh, sw = src.shape[:2]
    m = cv2.getPerspectiveTransform(box_quad(np.array([x0, y0, x1, y1], np.float32)), quad.astype(np.float32))
    outer = cv2.perspectiveTransform(box_quad(np.array([0, 0, sw, sh], np.float32))[None], m)[0]
    H, W = dst.shape[:2]
    bx0, by0 = max(0, int(outer[:, 0].min()) - 1), max(0, int(outer[:, 1].min()) - 1)
    bx1, by1 = min(W, int(outer[:, 0].max()) + 2), min(H, int(outer[:, 1].max()) + 2)
    if bx1 - bx0 < 2 or by1 - by0 < 2:
        return
    m = np.array([[1, 0, -bx0], [0, 1, -by0], [0, 0, 1]], np.float64) @ m
    size = (bx1 - bx0, by1 - by0)
    warped = cv2.warpPerspective(src, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = np.full((sh, sw), 255, np.uint8) if mask is None else mask
    alpha = cv2.warpPerspective(a, m, size, flags=cv2.INTER_LINEAR).astype(np.float32)[..., None] / 255
    roi = dst[by0:by1, bx0:bx1].astype(np.float32)
    dst[by0:by1, bx0:bx1] = (roi * (1 - alpha) + warped.astype(np.float32) * alpha).astype(np.uint8)


def match_light(rng: random.Random, patch: np.ndarray, surround: np.ndarray) -> np.ndarray:
    """Pulls a rendered patch's brightness and colour cast toward the photo around it, partly:
    a pasted plate at full studio brightness in a night frame is trivially easy to spot."""
    p = patch.astype(np.float32)
    if surround.size == 0:
        return patch
    ms = surround.reshape(-1, 3).mean(0) + 1
    mp = p.reshape(-1, 3).mean(0) + 1
    a = rng.uniform(0.2, 0.9)
    gain = (1 - a) + a * ms.mean() / mp.mean() * rng.uniform(1.0, 1.6)
    cast = (ms / ms.mean()) ** rng.uniform(0.0, 0.8)
    p = p * np.clip(gain, 0.25, 1.6) * cast
    if rng.random() < 0.3:  # a shadow or glare gradient across the plate
        g = np.linspace(rng.uniform(0.4, 1.2), rng.uniform(0.6, 1.3), p.shape[1], dtype=np.float32)
        p *= g[None, :, None]
    return np.clip(p, 0, 255).astype(np.uint8)


# ---- negatives: text and patterns that are not plates -------------------------------------
_WORDS = ("stop", "exit", "parking", "open", "SALE", "Pizza", "hotel", "BUS", "taxi", "market",
          "Street", "AVENUE", "one way", "caution", "service", "www.shop.com", "Tel 555 0199",
          "no entry", "DELIVERY", "coffee", "Bank", "24h", "SCHOOL", "km", "Police", "logistics",
          "express", "toyota", "ford", "pharmacy", "centre", "Main St", "speed limit", "diesel")
_HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
            cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)


def _rand_text(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -.:"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 16)))


def _color(rng: random.Random) -> tuple[int, int, int]:
    return rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)


def render_negative(rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """A non-plate patch (BGR, alpha mask): sign, loose text, stripes, grille or barcode."""
    kind = rng.choice(("sign", "sign", "text", "stripes", "grille", "barcode"))
    h = rng.randint(40, 140)
    w = int(h * rng.uniform(0.6, 5.0))
    img = np.empty((h, w, 3), np.uint8)
    img[:] = _color(rng)
    mask = np.full((h, w), 255, np.uint8)
    if kind in ("sign", "text"):
        if kind == "text":
            mask[:] = 0
        lines = rng.randint(1, 4)
        lh = h / lines
        fg = _color(rng)
        for i in range(lines):
            txt, font = _rand_text(rng), rng.choice(_HERSHEY)
            (tw, th), _ = cv2.getTextSize(txt, font, 1.0, 2)
            scale = min(0.8 * lh / max(th, 1), 0.95 * w / max(tw, 1))
            thick = max(1, int(scale * rng.uniform(1, 3)))
            org = (rng.randint(0, max(0, w - int(tw * scale))), int((i + 0.8) * lh))
            cv2.putText(img, txt, org, font, scale, fg, thick, cv2.LINE_AA)
            cv2.putText(mask, txt, org, font, scale, 255, thick, cv2.LINE_AA)
        if kind == "sign" and rng.random() < 0.5:
            cv2.rectangle(img, (2, 2), (w - 3, h - 3), fg, rng.randint(1, 4))
    elif kind == "stripes":
        period, fg = rng.randint(4, 30), _color(rng)
        for x in range(0, w + h, period):
            if rng.random() < 0.5:
                cv2.line(img, (x, 0), (x, h), fg, max(1, period // 2))
            else:
                cv2.line(img, (x, 0), (x - h, h), fg, max(1, period // 2))
    elif kind == "grille":
        img[:] = rng.randint(0, 60)
        period, fg = rng.randint(5, 20), rng.randint(120, 240)
        for y in range(0, h, period):
            cv2.line(img, (0, y), (w, y), (fg, fg, fg), max(1, period // 3))
        if rng.random() < 0.5:
            for x in range(0, w, period):
                cv2.line(img, (x, 0), (x, h), (fg, fg, fg), max(1, period // 3))
    else:
        img[:] = 245
        x = rng.randint(2, 8)
        while x < w - 4:
            bw = rng.randint(1, 4)
            img[int(h * 0.05):int(h * 0.85), x:x + bw] = 15
            x += bw + rng.randint(1, 4)
    return img, mask


# ---- sample generation -------------------------------------------------------------------
class SampleGenerator:
    """Seeded source of (canvas BGR H×W, plates, ignore boxes, partial-labels flag).

    ``scale_ref`` (W, H) is the network input the photo is scaled for; a canvas smaller than it
    is a crop of that scaled photo, mostly around a plate. Training on such crops keeps the plate
    sizes of inference while spending compute on far fewer background pixels per sample.
    """

    def __init__(self, photos: list[Photo], fonts_dir: str | Path | None, width: int = 640,
                 height: int = 384, seed: int = 0, synthetic: float = 0.65,
                 scale_ref: tuple[int, int] | None = None, crop_focus: float = 0.5,
                 weights: dict[str, float] | None = None) -> None:
        if not photos:
            raise ValueError("no training photos")
        self.photos, self.width, self.height = photos, width, height
        by_src: dict[str, list[Photo]] = {}
        for p in photos:
            by_src.setdefault(source_of(p), []).append(p)
        self.sources = sorted(by_src)
        self.by_src = by_src
        w = SOURCE_WEIGHTS if weights is None else weights
        self.source_weights = [w.get(s, 1.0) for s in self.sources]
        self.scale_ref = scale_ref or (width, height)
        self.crop_focus = crop_focus  # share of crops placed around a plate (the rest: anywhere)
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        self.renderer = PlateRenderer(fonts_dir, seed)
        self.synthetic = synthetic

    # -- compositing on the photo (photo pixels) --
    def _plate(self) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """A rendered plate, sometimes inside a frame or bumper strip that is not the plate."""
        r = self.rng
        img = self.renderer.render(decorate=False).image  # the box must be the plate, not a frame
        h, w = img.shape[:2]
        if r.random() < 0.45:
            t = int(h * r.uniform(0.04, 0.25))
            color = r.choice([(15, 15, 15), (40, 40, 40), (170, 170, 170), _color(r)])
            img = cv2.copyMakeBorder(img, t, t, t, t, cv2.BORDER_CONSTANT, value=color)
            return img, (t, t, t + w, t + h)
        return img, (0, 0, w, h)

    def _place(self, img: np.ndarray, taken: list[np.ndarray], quad0: np.ndarray) -> np.ndarray | None:
        r = self.rng
        H, W = img.shape[:2]
        span = quad0.max(0) - quad0.min(0)
        for _ in range(12):
            cx = r.uniform(span[0] / 2, W - span[0] / 2)
            lo = H * 0.4 if r.random() < 0.6 else span[1] / 2
            cy = r.uniform(max(lo, span[1] / 2), max(lo, H - span[1] / 2) + 1e-3)
            q = quad0 + np.array([cx, cy], np.float32)
            b = np.array([*q.min(0), *q.max(0)])
            if b[0] >= 0 and b[1] >= 0 and b[2] <= W and b[3] <= H and not _overlaps(b, taken):
                return q
        return None

    def _composite(self, img: np.ndarray, objs: list[Obj]) -> None:
        r = self.rng
        taken = [o.box for o in objs]
        # replace some real plates by rendered ones warped into their boxes
        for o in list(objs):
            b = o.box
            if not o.exact and b[2] - b[0] >= 16 and r.random() < 0.3:
                src, inner = self._plate()
                quad = o.quad
                paste(img, match_light(r, src, img[int(b[1]):int(b[3]), int(b[0]):int(b[2])]), quad, inner)
                o.exact = True  # the box is now exactly the plate's quad
        for _ in range(r.choice((1, 1, 2, 2, 3, 4))):
            src, inner = self._plate()
            aspect = (inner[3] - inner[1]) / (inner[2] - inner[0])
            pw = math.exp(r.uniform(math.log(40), math.log(400))) * max(img.shape[1], 640) / 1280
            quad0 = random_quad(r, pw, pw * aspect)
            q = self._place(img, taken, quad0)
            if q is None:
                continue
            b = np.array([*q.min(0), *q.max(0)]).astype(int)
            surround = img[max(0, b[1] - 20):b[3] + 20, max(0, b[0] - 20):b[2] + 20]
            paste(img, match_light(r, src, surround), q, inner)
            objs.append(Obj(q, True))
            taken.append(objs[-1].box)

    def _negatives(self, img: np.ndarray, objs: list[Obj]) -> None:
        r = self.rng
        taken = [o.box for o in objs]
        for _ in range(r.choice((1, 1, 2, 3))):
            src, mask = render_negative(r)
            pw = math.exp(r.uniform(math.log(30), math.log(500))) * max(img.shape[1], 640) / 1280
            quad0 = random_quad(r, pw, pw * src.shape[0] / src.shape[1])
            q = self._place(img, taken, quad0)
            if q is None:
                continue
            b = np.array([*q.min(0), *q.max(0)]).astype(int)
            paste(img, match_light(r, src, img[b[1]:b[3], b[0]:b[2]]), q, None, mask)
            taken.append(np.array([*q.min(0), *q.max(0)]))

    # -- canvas geometry and photometry (canvas pixels) --
    def _to_canvas(self, img: np.ndarray, objs: list[Obj]) -> tuple[np.ndarray, list[Obj], list[np.ndarray]]:
        r = self.rng
        H, W = img.shape[:2]
        ref_w, ref_h = self.scale_ref
        s = min(ref_w / W, ref_h / H) * math.exp(r.uniform(*(math.log(v) for v in SCALE_RANGE)))
        a = math.radians(r.uniform(-4, 4))
        sw, shh = W * s, H * s
        tx = r.uniform(min(0, self.width - sw), max(0, self.width - sw))
        ty = r.uniform(min(0, self.height - shh), max(0, self.height - shh))
        if objs and (self.width, self.height) != (ref_w, ref_h) and r.random() < self.crop_focus:
            # a crop: put a random plate's centre somewhere inside it (the rotation is small)
            cx, cy = r.choice(objs).quad.mean(0) * s
            tx = r.uniform(0.1, 0.9) * self.width - cx
            ty = r.uniform(0.1, 0.9) * self.height - cy
        c = np.array([W / 2, H / 2])
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * s
        m = np.zeros((2, 3))
        m[:, :2] = rot
        m[:, 2] = np.array([tx + sw / 2, ty + shh / 2]) - rot @ c
        border = (114, 114, 114) if r.random() < 0.85 else _color(r)
        interp = cv2.INTER_AREA if s < 0.8 else cv2.INTER_LINEAR
        canvas = cv2.warpAffine(img, m, (self.width, self.height), flags=interp,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        keep, ignore = [], []
        for o in objs:
            q = o.quad @ m[:, :2].T + m[:, 2]
            if not o.exact:  # a real box stays an axis-aligned box after the small rotation
                q = box_quad(np.array([*q.min(0), *q.max(0)], np.float32))
            o2 = Obj(q.astype(np.float32), o.exact)
            b = o2.box
            vis = np.clip(b, [0, 0, 0, 0], [self.width, self.height, self.width, self.height])
            area = (b[2] - b[0]) * (b[3] - b[1])
            vis_area = max(0, vis[2] - vis[0]) * max(0, vis[3] - vis[1])
            if vis_area <= 0:
                continue
            if vis_area < 0.6 * area or b[2] - b[0] < 6 or b[3] - b[1] < 3:
                ignore.append(vis)  # cut off or too small to be fair either way
            else:
                keep.append(o2)
        if r.random() < 0.3:  # mirrored plates still look like plates; corner order swaps
            canvas = canvas[:, ::-1].copy()
            flipped = []
            for o in keep:
                q = o.quad.copy()
                q[:, 0] = self.width - q[:, 0]
                flipped.append(Obj(q[[1, 0, 3, 2]], o.exact))
            keep = flipped
            ignore = [np.array([self.width - b[2], b[1], self.width - b[0], b[3]]) for b in ignore]
        return canvas, keep, ignore

    def _overlay(self, canvas: np.ndarray, objs: list[Obj]) -> None:
        """A camera's burnt-in caption (date/time, camera name) in screen space: CCTV and
        gantry frames carry them, and a model trained on plate-centred crops fired on them."""
        r = self.rng
        y, m, d = r.randint(2005, 2030), r.randint(1, 12), r.randint(1, 28)
        hh, mm, ss = r.randint(0, 23), r.randint(0, 59), r.randint(0, 59)
        text = r.choice([f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}",
                         f"{d:02d}/{m:02d}/{y} {hh:02d}:{mm:02d}:{ss:02d}",
                         f"{m:02d}-{d:02d}-{y} {hh % 12 + 1:02d}:{mm:02d}:{ss:02d} {r.choice(['AM', 'PM'])}",
                         f"CAM{r.randint(1, 16):02d} {hh:02d}:{mm:02d}:{ss:02d}", f"{hh:02d}:{mm:02d}:{ss:02d}",
                         f"{_rand_text(r)[:10]} {d:02d}.{m:02d}.{y}"])
        font = r.choice(_HERSHEY)
        lines = [text] if r.random() < 0.6 else text.split(" ", 1)
        scale = r.uniform(10, 28) / 22.0
        thick = max(1, int(round(scale * r.uniform(1, 2.5))))
        sizes = [cv2.getTextSize(t, font, scale, thick)[0] for t in lines]
        tw, lh = max(s[0] for s in sizes), max(s[1] for s in sizes) + 6
        if tw >= self.width - 8:
            return
        x = r.choice((4, self.width - tw - 4, r.randint(4, self.width - tw - 4)))
        y0 = r.choice((4, self.height - lh * len(lines) - 4, r.randint(4, max(4, self.height - lh * len(lines) - 4))))
        box = np.array([x - 4, y0 - 4, x + tw + 4, y0 + lh * len(lines) + 4], np.float32)
        if _overlaps(box, [o.box for o in objs], 0.0):
            return
        fg = r.choice([(255, 255, 255), (0, 255, 255), (240, 240, 240), (0, 0, 0), _color(r)])
        if r.random() < 0.3:
            cv2.rectangle(canvas, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])),
                          (0, 0, 0) if sum(fg) > 300 else (255, 255, 255), -1)
        for i, t in enumerate(lines):
            org = (x, y0 + lh * (i + 1) - 4)
            if r.random() < 0.4:  # outlined captions
                cv2.putText(canvas, t, org, font, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
            cv2.putText(canvas, t, org, font, scale, fg, thick, cv2.LINE_AA)

    def _occlude(self, canvas: np.ndarray, objs: list[Obj]) -> None:
        r = self.rng
        for o in objs:
            if r.random() < 0.15:
                b = o.box
                w, h = b[2] - b[0], b[3] - b[1]
                ow, oh = w * r.uniform(0.1, 0.3), h * r.uniform(0.3, 1.0)
                x0 = b[0] + r.uniform(-0.1, 1.0) * w - ow / 2
                y0 = b[1] + r.uniform(0, 1.0) * h - oh / 2
                cv2.rectangle(canvas, (int(x0), int(y0)), (int(x0 + ow), int(y0 + oh)), _color(r), -1)

    def _photometric(self, canvas: np.ndarray) -> np.ndarray:
        r, nr = self.rng, self.nprng
        img = canvas.astype(np.float32)
        u = r.random()
        if u < 0.12:  # grayscale camera
            img[:] = img.mean(2, keepdims=True)
        elif u < 0.18:  # IR night camera: gray, high contrast, bright retro-reflective plates
            g = img.mean(2, keepdims=True)
            img[:] = np.clip((g - g.mean()) * r.uniform(1.3, 2.2) + g.mean() * r.uniform(0.5, 1.0), 0, 255)
        elif u < 0.28:  # plates come in every colour: yellow, blue, green, red backgrounds
            img = img[:, :, r.sample(range(3), 3)]
        if r.random() < 0.05:  # light-on-dark plates (black Malaysian, old Dutch, taxi) from dark-on-light ones
            img = 255 - img
        img = img * np.array([r.uniform(0.75, 1.25) for _ in range(3)], np.float32)  # colour cast
        img = img * r.uniform(0.55, 1.4) + r.uniform(-35, 35)
        img = np.clip(img, 0, 255)
        if r.random() < 0.3:
            img = 255 * (img / 255) ** r.uniform(0.6, 1.7)
        if r.random() < 0.3:
            k = r.choice((3, 5))
            img = cv2.GaussianBlur(img, (k, k), r.uniform(0.4, 1.4))
        elif r.random() < 0.1:  # motion blur
            k = r.randint(3, 9)
            kern = np.zeros((k, k), np.float32)
            kern[k // 2] = 1 / k
            rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), r.uniform(-30, 30), 1)
            img = cv2.filter2D(img, -1, cv2.warpAffine(kern, rot, (k, k)))
        if r.random() < 0.3:
            img = img + nr.normal(0, r.uniform(2, 12), img.shape).astype(np.float32)
        out = np.clip(img, 0, 255).astype(np.uint8)
        if r.random() < 0.3:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, r.randint(20, 90)])
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out
        return out

    def sample(self) -> tuple[np.ndarray, list[Obj], list[np.ndarray], bool]:
        r = self.rng
        src = r.choices(self.sources, weights=self.source_weights)[0]
        photo = r.choice(self.by_src[src])
        img = photo.image.copy()
        objs = [Obj(box_quad(b), False) for b in photo.boxes]
        if r.random() < self.synthetic:
            self._composite(img, objs)
        if r.random() < 0.5:
            self._negatives(img, objs)
        canvas, objs, ignore = self._to_canvas(img, objs)
        if r.random() < 0.25:
            self._overlay(canvas, objs)
        self._occlude(canvas, objs)
        return self._photometric(canvas), objs[:MAX_OBJECTS], ignore, photo.partial_labels


# ---- targets -----------------------------------------------------------------------------
def build_targets(objs: list[Obj], ignore: list[np.ndarray], width: int, height: int,
                  stride: int = STRIDE) -> dict[str, np.ndarray]:
    """CenterNet targets: an elliptical Gaussian heat-map per plate (TTFNet-style, sized by the
    box, so wide plates get wide peaks) and regression targets at each plate's centre cell."""
    hh, ww = height // stride, width // stride
    heat = np.zeros((1, hh, ww), np.float32)
    ign = np.zeros((1, hh, ww), np.float32)
    ind = np.zeros(MAX_OBJECTS, np.int64)
    mask = np.zeros(MAX_OBJECTS, np.float32)
    size = np.zeros((MAX_OBJECTS, 2), np.float32)
    off = np.zeros((MAX_OBJECTS, 2), np.float32)
    corners = np.zeros((MAX_OBJECTS, 8), np.float32)
    cmask = np.zeros(MAX_OBJECTS, np.float32)
    ys, xs = np.mgrid[0:hh, 0:ww].astype(np.float32)
    for b in ignore:
        x0, y0 = int(b[0] // stride), int(b[1] // stride)
        x1, y1 = int(math.ceil(b[2] / stride)), int(math.ceil(b[3] / stride))
        ign[0, max(0, y0):y1, max(0, x0):x1] = 1
    for k, o in enumerate(objs[:MAX_OBJECTS]):
        b = o.box
        w, h = b[2] - b[0], b[3] - b[1]
        cx, cy = (b[0] + b[2]) / 2 / stride, (b[1] + b[3]) / 2 / stride
        ix, iy = min(ww - 1, max(0, int(cx))), min(hh - 1, max(0, int(cy)))
        sx, sy = max(0.54 * w / stride / 6, 0.6), max(0.54 * h / stride / 6, 0.6)
        g = np.exp(-((xs - ix) ** 2 / (2 * sx * sx) + (ys - iy) ** 2 / (2 * sy * sy)))
        np.maximum(heat[0], g, out=heat[0])
        heat[0, iy, ix] = 1.0
        ind[k], mask[k] = iy * ww + ix, 1
        size[k] = np.log(max(w, 1) / SIZE_UNIT), np.log(max(h, 1) / SIZE_UNIT)
        off[k] = cx - ix, cy - iy
        centre = np.array([cx * stride, cy * stride])
        corners[k] = ((o.quad - centre) / np.array([w, h])).reshape(-1)
        cmask[k] = float(o.exact)
    ign[heat >= 0.999] = 0  # a plate's own centre is never ignored
    return {"heat": heat, "ignore": ign, "ind": ind, "mask": mask, "size": size, "offset": off,
            "corners": corners, "cmask": cmask}


def draw_sample(canvas: np.ndarray, objs: list[Obj], ignore: list[np.ndarray]) -> np.ndarray:
    """Canvas with plate quads (red: exact corners, yellow: box only; blue dot = top-left) and
    ignore regions (grey), for eyeballing the composites."""
    vis = canvas.copy()
    for b in ignore:
        cv2.rectangle(vis, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (160, 160, 160), 1)
    for o in objs:
        color = (0, 0, 255) if o.exact else (0, 255, 255)
        cv2.polylines(vis, [o.quad.astype(np.int32).reshape(-1, 1, 2)], True, color, 1, cv2.LINE_AA)
        cv2.circle(vis, (int(o.quad[0, 0]), int(o.quad[0, 1])), 2, (255, 0, 0), -1)
    return vis
