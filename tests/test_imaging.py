import struct
import zlib

import cv2
import numpy as np
import pytest

from plateread.imaging import ImageError, is_image_file, iter_inputs, load_image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose valid header claims a huge size, without the pixels (cheap 'huge image')."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def encoded(image: np.ndarray, ext: str = ".jpg") -> bytes:
    return cv2.imencode(ext, image)[1].tobytes()


def test_loads_path_bytes_and_arrays(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    p = tmp_path / "a.png"
    p.write_bytes(encoded(img, ".png"))
    assert np.array_equal(load_image(p), img)
    assert np.array_equal(load_image(str(p)), img)
    assert np.array_equal(load_image(p.read_bytes()), img)
    assert load_image(img[:, :, 0]).shape == (40, 60, 3)  # gray arrays become BGR
    rgba = np.dstack([img, np.full((40, 60), 255, np.uint8)])
    assert load_image(rgba).shape == (40, 60, 3)
    assert load_image(img.astype(np.float32) / 255.0).dtype == np.uint8


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (b"this is just text, not a picture\n", "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20 + b"garbage" * 10, "corrupt"),
        (png_header_only(30000, 30000), "too large"),
    ],
)
def test_bad_bytes_give_clear_errors(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_tiny_and_bad_arrays_and_types(tmp_path):
    with pytest.raises(ImageError, match="too small"):
        load_image(encoded(np.zeros((1, 1, 3), np.uint8), ".png"))
    with pytest.raises(ImageError, match="unsupported array shape"):
        load_image(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ImageError, match="cannot read an image from a int"):
        load_image(42)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_byte_limit(tmp_path):
    p = tmp_path / "big.jpg"
    p.write_bytes(encoded(np.zeros((20, 20, 3), np.uint8)))
    with pytest.raises(ImageError, match="file too large"):
        load_image(p, max_bytes=10)


def test_folders_are_scanned_by_content(tmp_path):
    img = encoded(np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "b.jpg").write_bytes(img)
    (tmp_path / "sub" / "deeper" / "no_extension").write_bytes(img)
    (tmp_path / "sub" / "fake.jpg").write_text("not an image")
    (tmp_path / "notes.txt").write_text("hello")
    found = list(iter_inputs([str(tmp_path)]))
    assert [p.split("/")[-1] for p in found] == ["b.jpg", "no_extension"]
    assert is_image_file(tmp_path / "b.jpg") and not is_image_file(tmp_path / "sub" / "fake.jpg")
    # a file named explicitly is passed through, so it can be reported rather than dropped
    assert list(iter_inputs([str(tmp_path / "notes.txt")])) == [str(tmp_path / "notes.txt")]
