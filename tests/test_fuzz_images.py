"""Hostile image bytes: the loader answers with an image or an ImageError, fast, never a crash.

A short, seeded, derandomized version of ``benchmarks/fuzz_images.py`` (docs/RELIABILITY.md).
"""
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from hostile_images import FUZZ_MAX_PIXELS, check_one, hostile_bytes, seeds
from plateread import ImageError, Reader
from plateread.imaging import load_image


@pytest.mark.parametrize("name", sorted(seeds()))
def test_every_seed_loads_or_is_refused_clearly(name):
    outcome = check_one(seeds()[name])
    assert outcome == ("error" if name.startswith("bomb") or name == "png_tiny" else "ok")


@pytest.mark.parametrize("name", [n for n in sorted(seeds()) if n.startswith("bomb")])
def test_decompression_bombs_refused_before_decoding(name):
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large|corrupt"):
        load_image(seeds()[name])  # the default limit, not the fuzz one
    assert time.perf_counter() - start < 0.5


def test_exif_orientation_16bit_and_alpha():
    assert load_image(seeds()["jpeg_exif6"]).shape == (64, 40, 3)  # rotated by its EXIF tag
    for name in ("png_16bit", "tiff_16bit", "png_rgba", "webp_alpha", "png_la"):
        img = load_image(seeds()[name])
        assert img.dtype == np.uint8 and img.shape == (40, 64, 3), name
    assert load_image(seeds()["png_wide"]).shape == (8, 20000, 3)


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_bytes())
def test_mutated_images_never_crash_the_loader(data):
    check_one(data)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_bytes())
def test_read_safe_puts_the_error_into_the_result(data):
    result = Reader(engine="fake", max_pixels=FUZZ_MAX_PIXELS).read_safe(data, name="fuzz")
    assert result.image == "fuzz"
    if result.error is not None:
        assert result.error and not result.results and "Error:" not in result.error


def test_png_chunk_declaring_gigabytes_is_refused_at_once():
    """Found by benchmarks/fuzz_images.py: OpenCV allocated the 4 GB this 69-byte file declares."""
    data = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
            b"\xff\x00\x00\x0cIDATx\x9cc```\x00\x00\x00\x04\x00\x01\xf6\x178U\x00\x00\x00\x00\x00END\xaeB`\x82")
    start = time.perf_counter()
    with pytest.raises(ImageError, match="runs past the end"):
        load_image(data)
    assert time.perf_counter() - start < 0.2
