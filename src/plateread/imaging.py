"""Turning whatever the caller hands us (path, bytes, array) into a BGR image, or a clear error."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Union

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from .types import Box

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

#: Larger images are refused before decoding: a 16k×16k photo would take over 700 MB as BGR.
DEFAULT_MAX_PIXELS = 60_000_000
#: Larger files are refused before being read into memory.
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
MIN_SIDE = 8

# Leading bytes of the formats OpenCV decodes; lets folders be scanned by content.
_MAGIC: tuple[tuple[bytes, int], ...] = (
    (b"\xff\xd8\xff", 0),          # JPEG
    (b"\x89PNG\r\n\x1a\n", 0),     # PNG
    (b"BM", 0),                    # BMP
    (b"II*\x00", 0), (b"MM\x00*", 0),  # TIFF
    (b"WEBP", 8),                  # WebP (RIFF....WEBP)
    (b"GIF8", 0),
    (b"P5", 0), (b"P6", 0),        # PGM / PPM
)


class ImageError(ValueError):
    """The input is not an image we can read; the message says why."""


def looks_like_image(head: bytes) -> bool:
    return any(head[off:off + len(sig)] == sig for sig, off in _MAGIC)


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file's first bytes belong to an image format, whatever its extension."""
    try:
        with open(path, "rb") as fh:
            return looks_like_image(fh.read(16))
    except OSError:
        return False


def iter_inputs(paths: list[str]) -> Iterator[str]:
    """Expands folders (recursively, images by content, sorted) and passes files through as given.

    Files named explicitly are yielded even when they are not images, so that they are reported
    with an error rather than silently dropped.
    """
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    if is_image_file(full):
                        yield full
        else:
            yield p


def _decode(data: bytes, max_pixels: int) -> np.ndarray:
    if not data:
        raise ImageError("empty file")
    if not looks_like_image(data[:16]):
        raise ImageError("not an image (unrecognised file content)")
    # The size comes from Pillow's header parse, before any pixel is decoded: OpenCV would
    # allocate whatever a (hostile) header declares, up to 2^30 pixels. Pillow knows every
    # format in _MAGIC, so a header it cannot parse is refused rather than handed to OpenCV.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit applies
            with Image.open(io.BytesIO(data)) as probe:
                w, h = probe.size
    except Image.DecompressionBombError:
        raise ImageError(f"image too large (over {max_pixels:,} pixels)") from None
    except UnidentifiedImageError:
        raise ImageError("corrupt or unsupported image header") from None
    except Exception as exc:  # truncated headers and the like
        raise ImageError(f"corrupt image header: {exc}") from None
    if w * h > max_pixels:
        raise ImageError(f"image too large: {w}x{h} pixels (limit {max_pixels:,})")
    if data.startswith(b"\x89PNG"):
        _check_png_chunks(data)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # decoder assertions on inconsistent headers
        raise ImageError(f"corrupt image data: {str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        raise ImageError("corrupt or unsupported image data")
    return image


def _check_png_chunks(data: bytes) -> None:
    """Refuses a PNG whose chunk lengths run past the end of the file. OpenCV's reader allocates
    what a chunk declares first: a 69-byte file declaring a 4 GB IDAT took 4 GB and 3 s (found by
    benchmarks/fuzz_images.py)."""
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if pos + 12 + length > len(data):
            raise ImageError(f"corrupt PNG: a chunk of {length:,} bytes runs past the end of the file")
        if data[pos + 4:pos + 8] == b"IEND":
            return
        pos += 12 + length


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Gray and BGRA arrays as 3-channel BGR; BGR passes through untouched."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"unsupported array shape {image.shape}; expected HxW, HxWx3 or HxWx4")
    return image


def crop_padded(image: np.ndarray, box: "Box", pad_x: float, pad_y: float) -> np.ndarray:
    """A copy of ``box`` grown by ``pad_x``/``pad_y`` of its width/height, clipped to the image.

    An empty intersection gives an 8×8 black crop rather than an empty array, which every
    downstream resize would reject.
    """
    h, w = image.shape[:2]
    dx, dy = round(box.width * pad_x), round(box.height * pad_y)
    x0, y0 = max(0, box.xmin - dx), max(0, box.ymin - dy)
    x1, y1 = min(w, box.xmax + dx), min(h, box.ymax + dy)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((8, 8) + image.shape[2:], image.dtype)
    return image[y0:y1, x0:x1].copy()


def _check(image: np.ndarray, max_pixels: int) -> np.ndarray:
    image = as_bgr(image)
    h, w = image.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ImageError(f"image too small: {w}x{h} pixels (minimum {MIN_SIDE}x{MIN_SIDE})")
    if h * w > max_pixels:
        raise ImageError(f"image too large: {w}x{h} pixels (limit {max_pixels:,})")
    if image.dtype != np.uint8:
        if image.dtype.kind == "f" and image.size and float(image.max()) <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def load_image(
    source: ImageSource,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Returns a BGR uint8 image from a path, encoded bytes or an array.

    Raises ImageError with a reason a user can act on for anything else.
    """
    if isinstance(source, np.ndarray):
        return _check(source, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise ImageError(f"image data too large: {len(data):,} bytes (limit {max_bytes:,})")
        return _check(_decode(data, max_pixels), max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"no such file: {path}")
        if path.is_dir():
            raise ImageError(f"is a folder, not an image: {path}")
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageError(f"file too large: {size:,} bytes (limit {max_bytes:,})")
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
        return _check(_decode(data, max_pixels), max_pixels)
    raise ImageError(f"cannot read an image from a {type(source).__name__}")
