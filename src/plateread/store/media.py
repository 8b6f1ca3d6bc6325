"""Content-addressed image files: the name is the sha256 of the JPEG, so an image is stored once
however many reads point at it, and a path in the database can never point at different bytes."""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

JPEG_QUALITY = 90


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode an image of shape {image.shape} as JPEG")
    return buf.tobytes()


def media_name(data: bytes) -> str:
    """``ab/cd/abcd….jpg``: two shard levels keep folders small (65536 leaves) on any filesystem."""
    digest = hashlib.sha256(data).hexdigest()
    return f"{digest[:2]}/{digest[2:4]}/{digest}.jpg"


class MediaStore:
    """Crops and frames under one root; the database keeps paths relative to it, so the folder can move."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def path(self, rel: str) -> Path:
        return self.root / rel

    def save(self, image: np.ndarray) -> str:
        return self.save_bytes(encode_jpeg(image))

    def save_bytes(self, data: bytes) -> str:
        rel = media_name(data)
        dest = self.root / rel
        try:
            os.utime(dest)  # already stored; a fresh mtime makes a purge running now spare it
            return rel
        except FileNotFoundError:
            pass
        dest.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a reader or a crash never sees half a file under a final name
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return rel

    def files(self) -> Iterator[str]:
        """Relative paths of every stored image (not temporaries)."""
        if not self.root.is_dir():
            return
        for path in self.root.glob("??/??/*.jpg"):
            yield path.relative_to(self.root).as_posix()

    def delete(self, rels: Iterable[str], older_than_s: float = 0.0) -> int:
        """Deletes the given files; ``older_than_s`` spares files written moments ago, whose read
        another process may be about to commit."""
        now, n = time.time(), 0
        for rel in rels:
            p = self.root / rel
            try:
                if older_than_s and now - p.stat().st_mtime < older_than_s:
                    continue
                p.unlink()
                n += 1
            except FileNotFoundError:
                continue
            for parent in (p.parent, p.parent.parent):  # drop emptied shard folders
                try:
                    parent.rmdir()
                except OSError:
                    break
        return n
