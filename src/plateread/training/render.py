"""Synthetic plate renderer for OCR training.

Renders clean, frontal plates (BGR uint8, layout-specific size) with a label of A–Z0–9 only;
``augment.py`` turns them into camera-like crops. Decorations that a reader must ignore (state
names, slogans, country codes, seals, stacked small characters) are drawn but not labelled, the
way the real label conventions of the data sets leave them out. Glyphs are rasterised once per
font and cached, because PIL text drawing would otherwise dominate the cost on 2 CPU cores.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

LETTERS = string.ascii_uppercase
DIGITS = string.digits
_SYSTEM_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype")
_PLATE_FONTS = ("OSP-DIN.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono-Bold.ttf",
                "DejaVuSansCondensed-Bold.ttf", "osifont.ttf")
_DECOR_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSans-BoldOblique.ttf",
                "DejaVuSans.ttf", "OSP-DIN.ttf", "DejaVuSerifCondensed-Bold.ttf")
_STATES = ("CALIFORNIA", "TEXAS", "FLORIDA", "NEW YORK", "OHIO", "ILLINOIS", "ARIZONA", "NEVADA",
           "GEORGIA", "MICHIGAN", "OREGON", "UTAH", "COLORADO", "VIRGINIA", "KANSAS", "MAINE",
           "IOWA", "INDIANA", "New Jersey", "Pennsylvania", "Washington", "Montana", "Idaho")
_SLOGANS = ("Land of Lincoln", "Sunshine State", "Garden State", "dmv.ca.gov", "Empire State",
            "Grand Canyon State", "Great Lakes", "Wild Wonderful", "Peach State", "Lone Star",
            "Famous Potatoes", "Live Free", "America's Dairyland", "Keystone State", "Big Sky")
_BR_CITIES = ("SP SAO PAULO", "RJ RIO DE JANEIRO", "MG BELO HORIZONTE", "PR CURITIBA",
              "SC JOINVILLE", "RS PORTO ALEGRE", "BA SALVADOR", "GO GOIANIA")

# layout name -> sampling weight; two-line layouts end in "2"
LAYOUTS: dict[str, float] = {
    "us": 0.17, "eu": 0.15, "gb": 0.04, "nl": 0.03, "br": 0.07, "mercosur": 0.06,
    "inverse": 0.08, "in": 0.05, "moto2": 0.06, "in2": 0.06, "mercosur2": 0.03, "us2": 0.04,
    "es": 0.04, "ua": 0.04, "kz": 0.03, "ru": 0.03, "ar": 0.02, "il": 0.03, "dashed": 0.02,
    "vanity": 0.05,
}
#: Share of plates (any layout) drawn with a frame, screws, stray text or an emblem around or on
#: them: none of it is in the label, and readers used to turn it into leading/trailing characters.
DECORATE = 0.35
_DEALERS = ("AUTOHAUS", "MOTORS", "TOYOTA", "HONDA OF", "www.cars.com", "FORD", "AUTO CENTER",
            "DEALER", "BMW", "MERCEDES-BENZ", "NISSAN", "KIA", "VW ZENTRUM", "GARAGE", "AUTOS",
            "SUBARU", "CHEVROLET", "RENAULT", "CITROEN", "PEUGEOT", "OPEL", "Autocentrum")
#: Letters that a digit habit turns into look-alike digits; vanity texts use them often.
_CONFUSABLE_LETTERS = "OIBSZDQGTLEA"


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray  # BGR uint8, the whole plate
    text: str          # label: A–Z0–9, top line then bottom line
    layout: str
    lines: int = 1


def _fmt(rng: random.Random, pattern: str) -> str:
    """'L' letter, 'N' digit, anything else literal."""
    return "".join(rng.choice(LETTERS) if c == "L" else rng.choice(DIGITS) if c == "N" else c
                   for c in pattern)


def _label(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())


def find_fonts(fonts_dir: str | Path | None) -> dict[str, Path]:
    """Font file name -> path, from ``fonts_dir`` first, then Debian's font folders."""
    found: dict[str, Path] = {}
    dirs = [Path(fonts_dir)] if fonts_dir else []
    dirs += [Path(d) for d in _SYSTEM_FONT_DIRS]
    for d in dirs:
        if d.is_dir():
            for p in sorted(d.rglob("*.ttf")):
                found.setdefault(p.name, p)
    return found


#: Widest a zero may be, as a share of the O of its font (OSP-DIN 0.97 -> 0.8; the others are
#: near it: DejaVu Sans Bold 0.81, osifont 0.83, DejaVu Sans Mono 0.98 but with a dotted zero).
ZERO_TO_O_WIDTH = 0.8


class _Glyphs:
    """Per-font glyph masks at one size, sharing a baseline so strings line up."""

    SIZE = 96

    def __init__(self, path: Path) -> None:
        self.font = ImageFont.truetype(str(path), self.SIZE)
        self.cache: dict[str, np.ndarray] = {}
        asc, desc = self.font.getmetrics()
        self.h = asc + desc

    def glyph(self, ch: str) -> np.ndarray:
        g = self.cache.get(ch)
        if g is None:
            w = max(int(self.font.getlength(ch)) + 8, 8)
            im = Image.new("L", (w, self.h + 8), 0)
            ImageDraw.Draw(im).text((4, 4), ch, font=self.font, fill=255)
            g = np.asarray(im)
            cols = np.where(g.max(0) > 0)[0]
            g = g[:, cols[0]:cols[-1] + 1] if len(cols) else np.zeros((self.h + 8, self.SIZE // 3),
                                                                       np.uint8)
            if ch == "0":
                g = self._narrow_zero(g)
            self.cache[ch] = g
        return g

    def _narrow_zero(self, zero: np.ndarray) -> np.ndarray:
        """A zero as plate fonts draw it (FE-Schrift, Charles Wright, DIN 1451): clearly
        narrower than the O. Some fonts here (OSP-DIN) draw the two 3% apart: rendered with
        them, O and 0 cannot be told apart by shape, only by a digit habit."""
        o = self.glyph("O")
        if zero.shape[1] <= ZERO_TO_O_WIDTH * o.shape[1] or zero.shape[0] != o.shape[0]:
            return zero
        w = max(2, round(ZERO_TO_O_WIDTH * o.shape[1]))
        return cv2.resize(zero, (w, zero.shape[0]), interpolation=cv2.INTER_AREA)

    def string(self, text: str, spacing: float) -> np.ndarray:
        """Ink mask of ``text`` cropped to its ink; ``spacing`` is the gap in glyph heights."""
        gap = max(1, int(spacing * self.SIZE * 0.5))
        space = int(self.SIZE * 0.3)
        parts: list[np.ndarray] = []
        for ch in text:
            if ch == " ":
                parts.append(np.zeros((self.h + 8, space), np.uint8))
            else:
                parts.append(self.glyph(ch))
            parts.append(np.zeros((self.h + 8, gap), np.uint8))
        m = np.concatenate(parts[:-1], 1)
        rows = np.where(m.max(1) > 0)[0]
        cols = np.where(m.max(0) > 0)[0]
        if not len(rows):
            return m
        return m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


class PlateRenderer:
    """Seeded renderer of labelled plates; ``render()`` picks a layout by ``LAYOUTS`` weights."""

    def __init__(self, fonts_dir: str | Path | None = None, seed: int = 0) -> None:
        fonts = find_fonts(fonts_dir)
        self.plate_fonts = [_Glyphs(fonts[n]) for n in _PLATE_FONTS if n in fonts]
        self.decor_fonts = [_Glyphs(fonts[n]) for n in _DECOR_FONTS if n in fonts]
        if not self.plate_fonts:
            raise FileNotFoundError(f"no plate fonts ({', '.join(_PLATE_FONTS)}) in {fonts_dir} "
                                    f"or {_SYSTEM_FONT_DIRS}")
        self.decor_fonts = self.decor_fonts or self.plate_fonts
        self.din = next((g for n, g in zip([n for n in _PLATE_FONTS if n in fonts],
                                           self.plate_fonts) if n == "OSP-DIN.ttf"),
                        self.plate_fonts[0])
        self.rng = random.Random(seed)

    # ---- drawing helpers -------------------------------------------------------------
    def _text(self, img: np.ndarray, box: tuple[int, int, int, int], text: str,
              color: tuple[int, int, int], font: _Glyphs, spacing: float = 0.12,
              squeeze: float = 1.0, emboss: bool = False, align: str = "center") -> None:
        """Draws text fitted into box (x0,y0,x1,y1), height-filling; width scaled by squeeze."""
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        if bw < 2 or bh < 2:
            return
        m = font.string(text, spacing)
        w = int(round(m.shape[1] * bh / max(m.shape[0], 1) * squeeze))
        h = bh
        if w > bw:  # too wide for the box: condense (keeps the full height like real fonts)
            w = bw
        if align == "left":
            ox = x0
        elif align == "right":
            ox = x1 - w
        else:
            ox = x0 + (bw - w) // 2
        mask = cv2.resize(m, (max(w, 1), h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        H, W = img.shape[:2]
        ox, oy = max(0, min(ox, W - w)), max(0, min(y0, H - h))
        roi = img[oy:oy + h, ox:ox + w].astype(np.float32)
        mask = mask[: roi.shape[0], : roi.shape[1], None]
        if emboss:  # raised characters: light edge up-left, dark edge down-right
            d = max(1, h // 30)
            sh = np.roll(np.roll(mask, d, 0), d, 1)
            hl = np.roll(np.roll(mask, -d, 0), -d, 1)
            roi = roi * (1 - 0.45 * sh * (1 - mask)) + 255 * 0.35 * hl * (1 - mask)
        roi = roi * (1 - mask) + np.array(color, np.float32) * mask
        img[oy:oy + roi.shape[0], ox:ox + roi.shape[1]] = np.clip(roi, 0, 255).astype(np.uint8)

    def _bg(self, w: int, h: int, color: tuple[int, int, int], vary: float = 12.0) -> np.ndarray:
        """Plate background: a colour with a faint gradient (reflective sheeting is never flat)."""
        r = self.rng
        img = np.empty((h, w, 3), np.float32)
        img[:] = color
        g = np.linspace(-1, 1, h if r.random() < 0.5 else w, dtype=np.float32)
        g = g[:, None] if g.shape[0] == h else g[None, :]
        img += (g * r.uniform(-vary, vary))[..., None]
        return np.clip(img, 0, 255).astype(np.uint8)

    def _border(self, img: np.ndarray, color: tuple[int, int, int], t: int) -> None:
        h, w = img.shape[:2]
        cv2.rectangle(img, (t // 2, t // 2), (w - 1 - t // 2, h - 1 - t // 2), color, t,
                      cv2.LINE_AA)

    def _eu_band(self, img: np.ndarray, x0: int, x1: int, code: str,
                 blue: tuple[int, int, int] = (153, 51, 0)) -> None:
        h = img.shape[0]
        img[:, x0:x1] = blue
        cx, cy, rad = (x0 + x1) // 2, int(h * 0.3), int((x1 - x0) * 0.28)
        for k in range(12):  # the ring of stars, as dots
            a = k * np.pi / 6
            cv2.circle(img, (int(cx + rad * np.cos(a)), int(cy + rad * np.sin(a))),
                       max(1, h // 45), (0, 204, 255), -1)
        if code:
            self._text(img, (x0 + 3, int(h * 0.58), x1 - 3, int(h * 0.88)), code,
                       (255, 255, 255), self.decor_fonts[0], squeeze=0.9)

    def _shield(self, img: np.ndarray, x0: int, y0: int, w: int, h: int) -> None:
        """A coat-of-arms shield (Slovak style: red field, white double cross, blue hills).

        Real SK plates carry it at the left edge or between the district code and the number; with
        no emblem in training the OCR read it as a leading Q, O or R.
        """
        r = self.rng
        if w < 4 or h < 5:
            return
        red = (r.randint(20, 60), r.randint(20, 60), r.randint(170, 230))
        pts = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + int(h * 0.6)], [x0 + w // 2, y0 + h],
                        [x0, y0 + int(h * 0.6)]], np.int32)
        cv2.fillPoly(img, [pts], red, cv2.LINE_AA)
        cv2.polylines(img, [pts], True, (235, 235, 235), max(1, w // 10), cv2.LINE_AA)
        cx, t = x0 + w // 2, max(1, w // 8)
        cv2.line(img, (cx, y0 + h // 8), (cx, y0 + int(h * 0.68)), (250, 250, 250), t, cv2.LINE_AA)
        for fy, fw in ((0.25, 0.3), (0.42, 0.4)):  # the two cross bars, the lower one longer
            y = y0 + int(h * fy)
            cv2.line(img, (cx - int(w * fw), y), (cx + int(w * fw), y), (250, 250, 250), t, cv2.LINE_AA)
        cv2.ellipse(img, (cx, y0 + int(h * 0.86)), (max(1, w // 3), max(1, h // 7)), 0, 180, 360,
                    (170, 80, 20), -1, cv2.LINE_AA)

    def _color_dark(self) -> tuple[int, int, int]:
        r = self.rng
        return r.choice([(20, 20, 20), (30, 30, 30), (90, 30, 10), (30, 20, 120), (20, 70, 20),
                         (110, 40, 40), (10, 10, 10)])

    # ---- layouts ---------------------------------------------------------------------
    def _us(self) -> Rendered:
        r = self.rng
        w, h = 300, 150
        base = r.choice([(245, 245, 245), (235, 240, 250), (200, 230, 250), (230, 230, 200),
                         (250, 250, 255), (180, 220, 240), (210, 240, 230)])
        img = self._bg(w, h, base, 30)
        for _ in range(r.randint(0, 3)):  # picture-like backdrops (mountains, sun, waves)
            c = tuple(int(v) for v in np.clip(np.array(base) + r.randint(-70, 10), 0, 255))
            cv2.ellipse(img, (r.randint(0, w), r.randint(h // 2, h + 40)),
                        (r.randint(40, 160), r.randint(20, 70)), 0, 180, 360, c, -1)
        if r.random() < 0.5:
            self._border(img, self._color_dark(), r.randint(2, 6))
        decor = r.choice(self.decor_fonts)
        state = r.choice(_STATES)
        self._text(img, (20, 8, w - 20, 8 + r.randint(20, 32)), state, self._color_dark(), decor,
                   spacing=0.15)
        pattern = r.choice(["NLLLNNN", "LLLNNNN", "NNNLLL", "LLNNNN", "LLL NNNN", "NNN NNN",
                            "NLLNNN", "LLLNNN", "NNNNNN", "LNNNNN", "NLNNNNN", "LL NNNNN",
                            "NNNLNN", "LLLL NN", "LLLLL", "LLLLLL", "LLLLLLL", "LLLNLL"])
        if r.random() < 0.25:  # dashes and separators are printed but not labelled
            pattern = pattern.replace(" ", "-")
        text = _fmt(r, pattern)
        font = r.choice(self.plate_fonts)
        x0, x1 = 18, w - 18
        if r.random() < 0.2:  # small stacked characters on the left, not in the label
            sfont = r.choice(self.decor_fonts)
            a, b = _fmt(r, "LL")
            self._text(img, (16, 52, 34, 74), a, (40, 40, 40), sfont)
            self._text(img, (16, 78, 34, 100), b, (40, 40, 40), sfont)
            x0 = 40
        top = r.randint(42, 52)
        self._text(img, (x0, top, x1, top + r.randint(60, 76)), text, self._color_dark(), font,
                   spacing=r.uniform(0.05, 0.25), squeeze=r.uniform(0.8, 1.1),
                   emboss=r.random() < 0.5)
        if r.random() < 0.8:
            self._text(img, (40, h - 26, w - 40, h - 10), r.choice(_SLOGANS), self._color_dark(),
                       decor, spacing=0.1)
        return Rendered(img, _label(text), "us")

    _EU_FORMATS = {"SK": ["LL NNNLL", "LL-NNNLL"], "CZ": ["NLN NNNN", "NLL NNNN"],
                   "D": ["L LL NNNN", "LL L NNN", "LLL LL NN", "L L NNNN"],
                   "PL": ["LL NNNNN", "LLL NNNNL", "LL NNNLL"], "N": ["LL NNNNN"],
                   "A": ["L NNNNL", "LL NNNLL"], "F": ["LL-NNN-LL"], "I": ["LL NNNLL"],
                   "E": ["NNNN LLL"], "RO": ["LL NN LLL", "L NNN LLL"], "H": ["LLL-NNN"],
                   "LT": ["LLL NNN"], "B": ["N-LLL-NNN"]}

    def _eu(self) -> Rendered:
        r = self.rng
        w, h = 520, 112
        white = r.choice([(250, 250, 250), (240, 245, 245), (235, 235, 235)])
        img = self._bg(w, h, white, 15)
        self._border(img, (20, 20, 20), r.randint(2, 5))
        cc = r.choice(list(self._EU_FORMATS))
        pattern = r.choice(self._EU_FORMATS[cc])
        band = r.randint(40, 52)
        emblem = cc == "SK" or r.random() < 0.06
        if emblem and r.random() < 0.3:  # pre-2004 style: no blue band, only the shield at the left
            self._shield(img, 10, 16, band - 14, int(h * 0.5))
        else:
            self._eu_band(img, 3, 3 + band, cc)
            if emblem and r.random() < 0.6:  # the shield over the band, "SK" below it
                self._shield(img, 10, 10, band - 14, int(h * 0.45))
        x1 = w - 10
        if cc in ("F", "I"):
            self._eu_band(img, w - 3 - band, w - 3, "")
            x1 = w - band - 8
        text = _fmt(r, pattern)
        if r.random() < 0.5 and " " in pattern:  # seal / sticker gap between groups
            text = text.replace(" ", "  ", 1)
        self._text(img, (band + 12, 14, x1, h - 14), text, (20, 20, 20),
                   self.din if r.random() < 0.75 else r.choice(self.plate_fonts),
                   spacing=r.uniform(0.06, 0.18), squeeze=r.uniform(0.85, 1.05))
        if "  " in text and emblem and r.random() < 0.7:  # the shield between district and number
            x = band + 12 + int((text.index("  ") + 1) / len(text) * (x1 - band - 12))
            self._shield(img, x - 12, h // 2 - 22, 24, 40)
        elif "  " in text and r.random() < 0.8:
            x = band + 12 + int((text.index("  ") + 1) / len(text) * (x1 - band - 12))
            cv2.circle(img, (x, h // 2 - 14), 13, r.choice([(40, 40, 200), (60, 120, 60),
                                                             (200, 120, 40)]), -1)
            cv2.circle(img, (x, h // 2 + 16), 12, (60, 60, 60), -1)
        if cc == "A":  # red-white-red edges
            img[:8], img[-8:] = (30, 30, 200), (30, 30, 200)
        return Rendered(img, _label(text), "eu")

    def _gb(self) -> Rendered:
        r = self.rng
        w, h = 520, 112
        bg = (20, 200, 250) if r.random() < 0.5 else (245, 245, 245)
        img = self._bg(w, h, bg, 15)
        x0 = 14
        if r.random() < 0.5:
            self._eu_band(img, 3, 48, r.choice(["GB", "UK", ""]))
            x0 = 58
        text = _fmt(r, "LLNN LLL")
        self._text(img, (x0, 16, w - 14, h - 16), text, (15, 15, 15), r.choice(self.plate_fonts),
                   spacing=0.1, squeeze=r.uniform(0.85, 1.0))
        return Rendered(img, _label(text), "gb")

    def _nl(self) -> Rendered:
        r = self.rng
        w, h = 520, 112
        img = self._bg(w, h, (0, 190, 245), 15)
        self._border(img, (20, 20, 20), r.randint(2, 4))
        self._eu_band(img, 3, 48, "NL")
        text = _fmt(r, r.choice(["LL-LL-NN", "NN-LLL-N", "L-NNN-LL", "LL-NNN-L", "NN-LL-LL",
                                 "LLL-NN-L", "N-LLL-NN"]))
        self._text(img, (60, 16, w - 14, h - 16), text, (15, 15, 15),
                   self.din if r.random() < 0.7 else r.choice(self.plate_fonts), spacing=0.1)
        return Rendered(img, _label(text), "nl")

    def _br(self) -> Rendered:
        r = self.rng
        w, h = 400, 130
        g = r.randint(150, 215)
        img = self._bg(w, h, (g, g, g + r.randint(-8, 8)), 20)
        self._border(img, (40, 40, 40), r.randint(3, 6))
        self._text(img, (60, 8, w - 60, 30), r.choice(_BR_CITIES), (30, 30, 30),
                   self.decor_fonts[0], spacing=0.15)
        text = _fmt(r, "LLL-NNNN" if r.random() < 0.85 else "LLL NNNN")
        self._text(img, (14, 36, w - 14, h - 10), text, (25, 25, 25),
                   r.choice(self.plate_fonts), spacing=0.08, squeeze=r.uniform(0.8, 1.0),
                   emboss=r.random() < 0.4)
        return Rendered(img, _label(text), "br")

    def _mercosur(self) -> Rendered:
        r = self.rng
        w, h = 400, 130
        img = self._bg(w, h, (245, 245, 245), 15)
        img[:30] = (140, 60, 0)
        self._text(img, (130, 5, 270, 25), r.choice(["BRASIL", "ARGENTINA", "URUGUAY"]),
                   (255, 255, 255), self.decor_fonts[0], spacing=0.2)
        self._border(img, (20, 20, 20), 3)
        text = _fmt(r, r.choice(["LLLNLNN", "LLLNLNN", "LLNNNLLL"]))
        self._text(img, (16, 40, w - 16, h - 12), text, (15, 15, 15),
                   r.choice(self.plate_fonts), spacing=0.08, squeeze=r.uniform(0.8, 1.0))
        return Rendered(img, _label(text), "mercosur")

    def _inverse(self) -> Rendered:
        r = self.rng
        w, h = r.choice([(440, 140), (520, 112), (400, 130), (300, 150)])
        bg = r.choice([(20, 20, 20), (150, 60, 10), (40, 110, 30), (30, 30, 150), (90, 40, 10)])
        fg = r.choice([(250, 250, 250), (240, 240, 240), (0, 210, 250)])
        img = self._bg(w, h, bg, 20)
        self._border(img, fg, r.randint(2, 5))
        text = _fmt(r, r.choice(["LLNNNNN", "L NNNNN", "LL NNNN", "NNN LLL", "LLL NNNN",
                                 "LNNLLNN", "LL-NNNN", "NLLNNN"]))
        self._text(img, (14, int(h * 0.15), w - 14, int(h * 0.85)), text, fg,
                   r.choice(self.plate_fonts), spacing=r.uniform(0.08, 0.2),
                   squeeze=r.uniform(0.8, 1.05), emboss=r.random() < 0.3)
        return Rendered(img, _label(text), "inverse")

    def _in(self) -> Rendered:
        r = self.rng
        w, h = 500, 110
        bg = (245, 245, 245) if r.random() < 0.6 else (0, 200, 250)
        img = self._bg(w, h, bg, 15)
        self._border(img, (20, 20, 20), r.randint(2, 5))
        text = _fmt(r, r.choice(["LL NN LL NNNN", "LLNNLLNNNN", "LL NN L NNNN", "LL NN NNNN"]))
        self._text(img, (14, 16, w - 14, h - 16), text, (15, 15, 15), r.choice(self.plate_fonts),
                   spacing=0.08)
        return Rendered(img, _label(text), "in")

    def _two(self, layout: str) -> Rendered:
        """Two-line plates: label is top line then bottom line."""
        r = self.rng
        if layout == "in2":
            w, h = r.choice([(260, 150), (200, 140), (300, 180)])
            top, bot = _fmt(r, r.choice(["LLNN", "LL NN"])), _fmt(r, r.choice(
                ["LLNNNN", "LNNNN", "LL NNNN", "NNNN"]))
            bg = (245, 245, 245) if r.random() < 0.6 else (0, 200, 250)
            fg = (15, 15, 15)
        elif layout == "mercosur2":
            w, h = 200, 170
            top, bot = _fmt(r, "LLL"), _fmt(r, "NLNN")
            bg, fg = (245, 245, 245), (15, 15, 15)
        elif layout == "us2":
            w, h = r.choice([(300, 150), (200, 140)])
            top, bot = _fmt(r, r.choice(["NNN", "LL", "NNNN", "LNN"])), _fmt(r, r.choice(
                ["LLLN", "NNNN", "LNNN", "NNLL"]))
            bg = r.choice([(245, 245, 245), (200, 230, 250), (220, 240, 240)])
            fg = self._color_dark()
        else:  # moto2: European / generic motorcycle plates
            w, h = r.choice([(220, 200), (280, 200), (240, 130), (180, 160)])
            top, bot = _fmt(r, r.choice(["LL", "LLL", "LN", "L LL", "NLN", "LLN"])), _fmt(
                r, r.choice(["NNN", "NNNN", "NNNNN", "LL NNN", "NNNL", "LLNN"]))
            inv = r.random() < 0.2
            bg = (20, 20, 20) if inv else r.choice([(245, 245, 245), (0, 200, 250)])
            fg = (245, 245, 245) if inv else (15, 15, 15)
        img = self._bg(w, h, bg, 15)
        self._border(img, fg, r.randint(2, 5))
        y = 8
        if layout == "mercosur2":
            img[:28] = (140, 60, 0)
            self._text(img, (50, 5, 150, 23), "BRASIL", (255, 255, 255), self.decor_fonts[0])
            y = 34
        elif layout == "us2" and r.random() < 0.7:
            self._text(img, (20, 6, w - 20, 24), r.choice(_STATES), self._color_dark(),
                       r.choice(self.decor_fonts))
            y = 28
        font = r.choice(self.plate_fonts)
        gap = r.randint(4, 12)
        lh = (h - y - 8 - gap) // 2
        sp = r.uniform(0.06, 0.2)
        self._text(img, (12, y, w - 12, y + lh), top, fg, font, spacing=sp,
                   squeeze=r.uniform(0.8, 1.1))
        self._text(img, (10, y + lh + gap, w - 10, y + 2 * lh + gap), bot, fg, font, spacing=sp,
                   squeeze=r.uniform(0.8, 1.1))
        return Rendered(img, _label(top) + _label(bot), layout, lines=2)

    # ---- national layouts added for unseen countries --------------------------------------
    def _flag_band(self, img: np.ndarray, x0: int, x1: int, colors: list[tuple[int, int, int]],
                   code: str, vertical: bool = False) -> None:
        """A country band: a small flag (horizontal stripes) above a country code, unlabelled."""
        h = img.shape[0]
        fy0, fy1 = int(h * 0.12), int(h * 0.52)
        n = len(colors)
        for k, c in enumerate(colors):
            if vertical:
                xa, xb = x0 + 3 + (x1 - x0 - 6) * k // n, x0 + 3 + (x1 - x0 - 6) * (k + 1) // n
                img[fy0:fy1, xa:xb] = c
            else:
                ya, yb = fy0 + (fy1 - fy0) * k // n, fy0 + (fy1 - fy0) * (k + 1) // n
                img[ya:yb, x0 + 3:x1 - 3] = c
        if code:
            self._text(img, (x0 + 2, int(h * 0.58), x1 - 2, int(h * 0.88)), code, (30, 30, 30),
                       self.decor_fonts[0], squeeze=0.9)

    def _es(self) -> Rendered:
        """Spanish: blue E band, NNNN LLL (older provincial M NNNN LL)."""
        r = self.rng
        w, h = 520, 112
        img = self._bg(w, h, (245, 245, 245), 12)
        self._border(img, (20, 20, 20), r.randint(2, 4))
        self._eu_band(img, 3, 48, "E")
        pattern = r.choice(["NNNN LLL"] * 6 + ["L NNNN LL", "LL NNNN L", "LL NNNN LL"])
        text = _fmt(r, pattern)
        self._text(img, (58, 14, w - 12, h - 14), text, (20, 20, 20),
                   self.din if r.random() < 0.6 else r.choice(self.plate_fonts),
                   spacing=r.uniform(0.06, 0.2), squeeze=r.uniform(0.85, 1.05))
        return Rendered(img, _label(text), "es")

    def _ua(self) -> Rendered:
        """Ukrainian: LL NNNN LL after a blue-over-yellow flag and UA."""
        r = self.rng
        w, h = 520, 112
        img = self._bg(w, h, (245, 245, 245), 12)
        self._border(img, (20, 20, 20), r.randint(2, 5))
        band = r.randint(40, 52)
        if r.random() < 0.5:
            img[:, 3:3 + band] = (153, 51, 0)
            self._flag_band(img, 3, 3 + band, [(183, 91, 0), (0, 213, 255)], "")
            self._text(img, (6, int(h * 0.58), band, int(h * 0.88)), "UA", (255, 255, 255),
                       self.decor_fonts[0])
        else:
            self._flag_band(img, 3, 3 + band, [(183, 91, 0), (0, 213, 255)], "UA")
        text = _fmt(r, "LL NNNN LL")
        self._text(img, (band + 12, 14, w - 12, h - 14), text, (20, 20, 20), r.choice(self.plate_fonts),
                   spacing=r.uniform(0.06, 0.2), squeeze=r.uniform(0.85, 1.05))
        return Rendered(img, _label(text), "ua")

    def _kz(self) -> Rendered:
        """Kazakh: NNN LLL NN (region in a box at the right) after a flag and KZ."""
        r = self.rng
        w, h = 520, 112
        img = self._bg(w, h, (245, 245, 245), 12)
        self._border(img, (20, 20, 20), r.randint(2, 5))
        band = r.randint(40, 52)
        self._flag_band(img, 3, 3 + band, [(200, 170, 0)], "KZ")
        cv2.circle(img, (3 + band // 2, int(h * 0.32)), max(2, band // 6), (0, 200, 250), -1)
        main, reg = _fmt(r, r.choice(["NNN LLL", "NNN LL"])), _fmt(r, "NN")
        split = w - 110
        cv2.line(img, (split, 6), (split, h - 6), (20, 20, 20), 3)
        self._text(img, (band + 12, 14, split - 8, h - 14), main, (20, 20, 20), r.choice(self.plate_fonts),
                   spacing=r.uniform(0.06, 0.2), squeeze=r.uniform(0.85, 1.05))
        self._text(img, (split + 10, 14, w - 12, h - 14), reg, (20, 20, 20), r.choice(self.plate_fonts),
                   spacing=0.1)
        return Rendered(img, _label(main + reg), "kz")

    def _ru(self) -> Rendered:
        """Russian: LNNNLL, then the region digits over RUS and a tricolour."""
        r = self.rng
        w, h = 520, 112
        img = self._bg(w, h, (245, 245, 245), 12)
        self._border(img, (20, 20, 20), r.randint(3, 6))
        split = w - 120
        cv2.line(img, (split, 4), (split, h - 4), (20, 20, 20), 3)
        main, reg = _fmt(r, "L NNN LL"), _fmt(r, r.choice(["NN", "NNN"]))
        font = r.choice(self.plate_fonts)
        self._text(img, (14, 12, split - 8, h - 10), main, (20, 20, 20), font,
                   spacing=r.uniform(0.06, 0.2), squeeze=r.uniform(0.85, 1.05))
        self._text(img, (split + 10, 8, w - 10, int(h * 0.68)), reg, (20, 20, 20), font, spacing=0.08)
        self._text(img, (split + 8, int(h * 0.74), split + 60, h - 8), "RUS", (20, 20, 20),
                   self.decor_fonts[0])
        for k, c in enumerate([(255, 255, 255), (160, 60, 0), (30, 30, 200)]):
            y0 = int(h * 0.74) + k * (h - 8 - int(h * 0.74)) // 3
            img[y0:y0 + max(2, (h - 8 - int(h * 0.74)) // 3), split + 66:w - 12] = c
        return Rendered(img, _label(main + reg), "ru")

    def _ar(self) -> Rendered:
        """Argentine pre-2016: white on black LLL NNN under ARGENTINA."""
        r = self.rng
        w, h = 400, 130
        img = self._bg(w, h, (25, 25, 25), 10)
        self._border(img, (230, 230, 230), r.randint(2, 4))
        self._text(img, (110, 6, 290, 26), "ARGENTINA", (230, 230, 230), self.decor_fonts[0], spacing=0.2)
        text = _fmt(r, "LLL NNN")
        self._text(img, (16, 34, w - 16, h - 12), text, (240, 240, 240), r.choice(self.plate_fonts),
                   spacing=r.uniform(0.08, 0.2), squeeze=r.uniform(0.8, 1.0))
        return Rendered(img, _label(text), "ar")

    def _il(self) -> Rendered:
        """Israeli-style: yellow, numeric groups with dashes, a blue IL band."""
        r = self.rng
        w, h = 520, 112
        img = self._bg(w, h, (0, 205, 250), 12)
        self._border(img, (20, 20, 20), r.randint(2, 4))
        x0 = 12
        if r.random() < 0.8:
            self._eu_band(img, 3, 48, "IL", blue=(150, 60, 10))
            x0 = 58
        text = _fmt(r, r.choice(["NN-NNN-NN", "NNN-NN-NNN", "NNNNNNN"]))
        self._text(img, (x0, 14, w - 12, h - 14), text, (20, 20, 20), r.choice(self.plate_fonts),
                   spacing=r.uniform(0.06, 0.2), squeeze=r.uniform(0.85, 1.05))
        return Rendered(img, _label(text), "il")

    def _dashed(self) -> Rendered:
        """Numeric (and Palestinian/Gulf-style mixed) plates with dashes and a side code."""
        r = self.rng
        w, h = r.choice([(520, 112), (440, 140)])
        bg = r.choice([(245, 245, 245), (240, 240, 240), (0, 200, 250), (230, 240, 245)])
        img = self._bg(w, h, bg, 12)
        self._border(img, (20, 20, 20), r.randint(2, 5))
        x0 = 12
        if r.random() < 0.5:
            self._flag_band(img, 3, 50, [(40, 120, 20), (245, 245, 245), (20, 20, 20)],
                            r.choice(["P", "PS", "Q", "UAE", "KSA", "OM", ""]))
            x0 = 58
        text = _fmt(r, r.choice(["N-NNNN-N", "NNN-NNNN", "NN-NNNN", "NNNNN", "N-NNNNN-L", "NN-NNNNN",
                                 "L-NNNNN", "NNNN-NN"]))
        self._text(img, (x0, 14, w - 12, h - 14), text, (20, 20, 20), r.choice(self.plate_fonts),
                   spacing=r.uniform(0.06, 0.22), squeeze=r.uniform(0.8, 1.05))
        return Rendered(img, _label(text), "dashed")

    def _vanity_text(self) -> str:
        """Letter-only or letter-heavy texts, rich in letters that look like digits."""
        r = self.rng
        n = r.randint(3, 7)
        out = []
        for _ in range(n):
            u = r.random()
            out.append(r.choice(_CONFUSABLE_LETTERS) if u < 0.45 else r.choice(LETTERS) if u < 0.92
                       else r.choice(DIGITS))
        return "".join(out)

    def _vanity(self) -> Rendered:
        """Personalised plates (US, GB, EU looks) whose text is mostly letters: EMOTION, FORDGT."""
        r = self.rng
        text = self._vanity_text()
        style = r.random()
        if style < 0.5:
            w, h = 300, 150
            img = self._bg(w, h, r.choice([(245, 245, 245), (200, 230, 250), (230, 230, 200)]), 30)
            self._text(img, (20, 8, w - 20, 8 + r.randint(20, 30)), r.choice(_STATES), self._color_dark(),
                       r.choice(self.decor_fonts), spacing=0.15)
            self._text(img, (18, 44, w - 18, 44 + r.randint(60, 76)), text, self._color_dark(),
                       r.choice(self.plate_fonts), spacing=r.uniform(0.05, 0.25), squeeze=r.uniform(0.8, 1.1),
                       emboss=r.random() < 0.4)
            if r.random() < 0.7:
                self._text(img, (40, h - 26, w - 40, h - 10), r.choice(_SLOGANS), self._color_dark(),
                           r.choice(self.decor_fonts), spacing=0.1)
        else:
            w, h = 520, 112
            img = self._bg(w, h, (20, 200, 250) if r.random() < 0.3 else (245, 245, 245), 15)
            self._border(img, (20, 20, 20), r.randint(2, 5))
            x0 = 14
            if r.random() < 0.6:
                self._eu_band(img, 3, 48, r.choice(["D", "GB", "IRL", "F", "NL", "CY", "LV", ""]))
                x0 = 58
            self._text(img, (x0, 14, w - 14, h - 14), text, (20, 20, 20),
                       self.din if r.random() < 0.5 else r.choice(self.plate_fonts),
                       spacing=r.uniform(0.06, 0.2), squeeze=r.uniform(0.8, 1.05))
        return Rendered(img, _label(text), "vanity")

    # ---- things around and on a plate that are not its text -------------------------------
    def _decorate(self, p: Rendered) -> Rendered:
        """Adds, unlabelled: screws, a dealer frame (text above/below, a badge, letters at the
        sides); the label stays the plate's own characters."""
        r = self.rng
        img = p.image.copy()
        h, w = img.shape[:2]
        if r.random() < 0.5:  # screws / rivets, often between characters
            rad = max(2, h // r.randint(14, 24))
            ys = [int(h * r.uniform(0.08, 0.2)), int(h * r.uniform(0.8, 0.92))]
            xs = [int(w * r.uniform(0.12, 0.3)), int(w * r.uniform(0.7, 0.88))]
            for y in ys[: r.choice((1, 2))]:
                for x in xs:
                    col = r.choice([(150, 150, 150), (60, 60, 60), (200, 200, 200), (30, 30, 30)])
                    cv2.circle(img, (x, y), rad, col, -1, cv2.LINE_AA)
                    cv2.circle(img, (x, y), rad, (20, 20, 20), 1, cv2.LINE_AA)
        if r.random() < 0.6:  # a dealer frame around the plate
            t_top, t_bot = int(h * r.uniform(0.08, 0.35)), int(h * r.uniform(0.1, 0.45))
            t_side = int(h * r.uniform(0.04, 0.25))
            color = r.choice([(15, 15, 15), (40, 40, 40), (200, 200, 200), (30, 30, 120), (160, 160, 170)])
            img = cv2.copyMakeBorder(img, t_top, t_bot, t_side, t_side, cv2.BORDER_CONSTANT, value=color)
            ink = (235, 235, 235) if sum(color) < 300 else (20, 20, 20)
            H, W = img.shape[:2]
            font = r.choice(self.decor_fonts)
            if t_bot > 8 and r.random() < 0.8:
                self._text(img, (t_side + int(w * 0.15), H - t_bot + 2, W - t_side - int(w * 0.15), H - 2),
                           r.choice(_DEALERS), ink, font, spacing=0.15)
            if t_top > 8 and r.random() < 0.4:
                self._text(img, (t_side + int(w * 0.2), 2, W - t_side - int(w * 0.2), t_top - 2),
                           r.choice(_DEALERS), ink, font, spacing=0.15)
            if t_top > 10 and r.random() < 0.3:  # a round dealer badge on the frame
                cv2.circle(img, (int(W * r.uniform(0.1, 0.9)), t_top // 2), t_top // 2 - 1,
                           _rand_color(r), -1, cv2.LINE_AA)
            if t_side > 6 and r.random() < 0.35:  # a letter of the frame's side text
                side = r.choice((0, 1))
                x0 = 1 if side == 0 else W - t_side + 1
                self._text(img, (x0, H // 3, x0 + t_side - 2, 2 * H // 3), r.choice(LETTERS + DIGITS), ink, font)
        return Rendered(img, p.text, p.layout, p.lines)

    def render(self, layout: str | None = None, decorate: bool | None = None) -> Rendered:
        """One plate; ``layout`` is a key of ``LAYOUTS`` or None for a weighted random pick;
        ``decorate`` forces (or forbids) the unlabelled frame/screw/emblem extras."""
        if layout is None:
            layout = self.rng.choices(list(LAYOUTS), weights=list(LAYOUTS.values()))[0]
        fn = {"us": self._us, "eu": self._eu, "gb": self._gb, "nl": self._nl, "br": self._br,
              "mercosur": self._mercosur, "inverse": self._inverse, "in": self._in,
              "es": self._es, "ua": self._ua, "kz": self._kz, "ru": self._ru, "ar": self._ar,
              "il": self._il, "dashed": self._dashed, "vanity": self._vanity}.get(layout)
        if fn is not None:
            out = fn()
        elif layout in LAYOUTS:
            out = self._two(layout)
        else:
            raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
        if decorate if decorate is not None else self.rng.random() < DECORATE:
            out = self._decorate(out)
        return out


def _rand_color(r: random.Random) -> tuple[int, int, int]:
    return r.randint(0, 255), r.randint(0, 255), r.randint(0, 255)
