"""Seed images and byte mutations for fuzzing ``load_image``; shared by the test and the long run.

Seeds cover every format the loader accepts in the shapes that break loaders: alpha, 16-bit,
palette, animation, EXIF orientation, extreme aspect ratios and headers that declare huge sizes
(decompression bombs) without the pixels to match.
"""
from __future__ import annotations

import io
import struct
import time
import zlib
from functools import lru_cache

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from plateread.imaging import ImageError, load_image

#: What the fuzz runs pass as ``max_pixels``: small enough that a mutated header that lands just
#: under it still decodes in milliseconds, so every example stays cheap.
FUZZ_MAX_PIXELS = 4_000_000
#: Seconds one input may take before it counts as a hang.
TIME_LIMIT_S = 2.0


def _enc(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width``×``height`` over a few bytes of pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


@lru_cache(maxsize=1)
def seeds() -> dict[str, bytes]:
    """Named seed files, built in memory (deterministic)."""
    rng = np.random.default_rng(14)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 64, 3), np.uint8))
    g16 = Image.fromarray((rng.integers(0, 65535, (40, 64))).astype(np.uint16))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: the loader must apply it, the result is 64 high
    out: dict[str, bytes] = {
        "jpeg": _enc(rgb, "JPEG", quality=80),
        "jpeg_exif6": _enc(rgb, "JPEG", exif=exif),
        "jpeg_progressive": _enc(rgb, "JPEG", progressive=True),
        "png": _enc(rgb, "PNG"),
        "png_rgba": _enc(rgb.convert("RGBA"), "PNG"),
        "png_la": _enc(rgb.convert("LA"), "PNG"),
        "png_16bit": _enc(g16, "PNG"),
        "png_palette": _enc(rgb.convert("P"), "PNG"),
        "webp": _enc(rgb, "WEBP"),
        "webp_alpha": _enc(rgb.convert("RGBA"), "WEBP", lossless=True),
        "tiff": _enc(rgb, "TIFF"),
        "tiff_16bit": _enc(g16, "TIFF"),
        "tiff_lzw_multipage": _enc(rgb, "TIFF", compression="tiff_lzw", save_all=True,
                                   append_images=[rgb.rotate(90)]),
        "bmp": _enc(rgb, "BMP"),
        "bmp_rgba": _enc(rgb.convert("RGBA"), "BMP"),
        "gif": _enc(rgb, "GIF"),
        "gif_animated": _enc(rgb, "GIF", save_all=True, append_images=[rgb.rotate(180)]),
        "png_wide": _enc(Image.new("RGB", (20000, 8)), "PNG"),
        "png_tall": _enc(Image.new("L", (8, 20000)), "PNG"),
        "png_tiny": _enc(Image.new("RGB", (1, 1)), "PNG"),
        "ppm": _enc(rgb, "PPM"),
        # decompression bombs: headers that declare far more pixels than the file holds
        "bomb_png": png_bomb(100_000, 100_000),
        "bomb_png_just_over": png_bomb(2001, 2000),
        "bomb_gif": (b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00,\x00\x00\x00\x00"
                     + struct.pack("<HH", 65535, 65535) + b"\x00\x02\x02D\x01\x00;"),
    }
    out["bomb_bmp"] = _patch(out["bmp"], 18, "<ii", 100_000, -100_000)
    sof = out["jpeg"].find(b"\xff\xc0")
    out["bomb_jpeg"] = _patch(out["jpeg"], sof + 5, ">HH", 65000, 65000)
    out["bomb_webp_vp8l"] = _webp_vp8l_bomb(out["webp_alpha"])
    out["bomb_tiff"] = _tiff_bomb(out["tiff"])
    return out


def _webp_vp8l_bomb(data: bytes) -> bytes:
    i = data.find(b"VP8L")
    if i < 0:
        return data
    bits = (16383) | (16383 << 14) | (1 << 28)  # 16384×16384, alpha
    return _patch(data, i + 9, "<I", bits)


def _tiff_bomb(data: bytes) -> bytes:
    """Sets ImageWidth/ImageLength (tags 256/257) of the first IFD to 70000."""
    out = bytearray(data)
    ifd = struct.unpack_from("<I", out, 4)[0]
    for k in range(struct.unpack_from("<H", out, ifd)[0]):
        e = ifd + 2 + 12 * k
        tag = struct.unpack_from("<H", out, e)[0]
        if tag in (256, 257):
            struct.pack_into("<HHI", out, e, tag, 4, 1)
            struct.pack_into("<I", out, e + 8, 70000)
    return bytes(out)


@st.composite
def hostile_bytes(draw) -> bytes:
    """A seed, then a few random mutations: bit flips, overwrites, inserts, deletions, truncation."""
    name = draw(st.sampled_from(sorted(seeds())))
    data = bytearray(seeds()[name])
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "int"]))
        if not data:
            break
        # mutations favour the header, where the parser decisions are
        pos = draw(st.one_of(st.integers(0, min(len(data), 64) - 1), st.integers(0, len(data) - 1)))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 32))]
        elif op == "truncate":
            del data[pos:]
        elif op == "int" and pos + 4 <= len(data):
            struct.pack_into(">I", data, pos, draw(st.sampled_from([0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])))
    return bytes(data)


def check_one(data: bytes, max_pixels: int = FUZZ_MAX_PIXELS) -> str:
    """Loads ``data``; returns 'ok' or 'error', raises AssertionError on anything the contract forbids.

    The contract: a BGR uint8 image within the limits, or an ``ImageError`` with a message, in
    bounded time. Any other exception propagates (it is the bug).
    """
    start = time.perf_counter()
    try:
        image = load_image(data, max_pixels=max_pixels)
        outcome = "ok"
    except ImageError as exc:
        assert str(exc).strip(), "ImageError without a message"
        outcome = "error"
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, image.shape
        h, w = image.shape[:2]
        assert min(h, w) >= 8 and h * w <= max_pixels, (w, h)
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT_S, f"took {elapsed:.2f} s"
    return outcome
