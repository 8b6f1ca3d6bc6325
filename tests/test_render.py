"""The synthetic plate renderer: sizes, labels, two-line layouts, seeded determinism."""
from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from plateread.training.augment import INPUT_H, INPUT_W, synth_sample
from plateread.training.render import LAYOUTS, PlateRenderer, find_fonts

FONTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fonts"

pytestmark = pytest.mark.skipif(
    not any(n in find_fonts(FONTS) for n in ("OSP-DIN.ttf", "DejaVuSans-Bold.ttf")),
    reason=f"no plate fonts in {FONTS} or /usr/share/fonts (renderer needs OSP-DIN or DejaVu Bold)",
)


@pytest.fixture(scope="module")
def renderer() -> PlateRenderer:
    return PlateRenderer(FONTS, seed=3)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_layout_renders_labelled_plate(renderer: PlateRenderer, layout: str) -> None:
    rng = random.Random(0)
    for _ in range(3):
        r = renderer.render(layout)
        assert r.layout == layout
        assert r.image.dtype == np.uint8 and r.image.ndim == 3 and r.image.shape[2] == 3
        assert re.fullmatch(r"[A-Z0-9]{2,12}", r.text), r.text
        assert r.image.std() > 10  # something drawn
        x = synth_sample(rng, r.image)
        assert x.shape == (INPUT_H, INPUT_W) and x.dtype == np.uint8


def test_two_line_layouts_are_marked() -> None:
    ren = PlateRenderer(FONTS, seed=1)
    for layout in LAYOUTS:
        r = ren.render(layout)
        assert r.lines == (2 if layout.endswith("2") else 1)
        if r.lines == 2:  # two-line plates are squarer than one-line ones
            assert r.image.shape[1] / r.image.shape[0] < 2.2


def test_seeded_determinism() -> None:
    a, b = PlateRenderer(FONTS, seed=42), PlateRenderer(FONTS, seed=42)
    ra, rb = random.Random(5), random.Random(5)
    for _ in range(5):
        pa, pb = a.render(), b.render()
        assert pa.text == pb.text and np.array_equal(pa.image, pb.image)
        assert np.array_equal(synth_sample(ra, pa.image), synth_sample(rb, pb.image))
    c = PlateRenderer(FONTS, seed=43)
    assert [c.render().text for _ in range(5)] != [PlateRenderer(FONTS, seed=42).render().text
                                                    for _ in range(5)]


def test_unknown_layout_is_an_error(renderer: PlateRenderer) -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        renderer.render("martian")


def test_every_plate_font_draws_the_zero_narrower_than_the_o(renderer: PlateRenderer) -> None:
    """Round O, narrow 0 in every plate font, so the OCR learns to tell them apart by shape."""
    from plateread.training.render import ZERO_TO_O_WIDTH

    for font in renderer.plate_fonts:
        o, zero = font.glyph("O"), font.glyph("0")
        assert zero.shape[1] <= round(ZERO_TO_O_WIDTH * o.shape[1]) + 1, font.font.getname()
        assert zero.shape[0] == o.shape[0] and zero.max() > 0
