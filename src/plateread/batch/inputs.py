"""Listing a batch's inputs lazily and cutting them into partitions.

An INPUT is a folder (recursive), a glob, a text file of paths or URLs (``.txt``, ``.lst``,
``.list``; one per line, ``#`` comments, relative entries taken from the list's folder), a
labelled set's ``index.jsonl``, or one image. Paths may be fsspec URLs (``https://…``,
``s3://bucket/prefix/``, …): remote folders and globs are listed with the URL's filesystem.

Local folders are scanned with ``plateread.imaging.iter_inputs`` (images by content, sorted), so
the listing finds exactly what ``plateread read`` finds. Remote files found by a listing are
checked by content on the worker that fetches them anyway (a non-image there is skipped without
a row); files named one by one always get a row, with an error when they are not images.

The order is deterministic (sorted walks), so partition N of a re-run holds the same images as
partition N of the first run, and a partition's key (a hash of its paths and the reader's
settings) tells whether a file already written belongs to this job.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import posixpath
from dataclasses import dataclass
from typing import Iterable, Iterator

from ..evaluation.dataset import load_index
from ..imaging import is_image_file, iter_inputs

LIST_SUFFIXES = (".txt", ".lst", ".list")
INDEX_NAME = "index.jsonl"
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Item:
    """One file to read. ``listed``: found by a remote folder or glob listing rather than named,
    so one that turns out not to be an image is skipped instead of reported (local listings are
    checked by content as they are made, so their files are never ``listed``)."""

    path: str
    listed: bool = False


@dataclass(frozen=True)
class Partition:
    index: int
    key: str
    items: tuple[Item, ...]

    def to_json(self) -> str:
        return json.dumps([self.index, self.key, [[i.path, int(i.listed)] for i in self.items]])

    @classmethod
    def from_json(cls, text: str | bytes) -> "Partition":
        index, key, items = json.loads(text)
        return cls(index, key, tuple(Item(p, bool(f)) for p, f in items))


def protocol(path: str) -> str:
    """The fsspec protocol of a path: 'file' for local paths and file:// URLs."""
    if "://" not in path:
        return "file"
    return path.split("://", 1)[0].lower() or "file"


def is_remote(path: str) -> bool:
    return protocol(path) != "file"


def local_path(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


def _has_glob(path: str) -> bool:
    return any(c in _GLOB_CHARS for c in path)


def _join(base: str, entry: str) -> str:
    """``entry`` as found in a list file at ``base``: absolute paths and URLs as they are,
    relative ones from the list's folder."""
    if "://" in entry or os.path.isabs(entry):
        return entry
    if is_remote(base):
        return posixpath.join(posixpath.dirname(base), entry)
    return os.path.join(os.path.dirname(base), entry)


def _list_file(path: str) -> Iterator[Item]:
    import fsspec

    with fsspec.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                yield Item(_join(path, entry))


def _remote(path: str) -> Iterator[Item]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(path)
    proto = protocol(path)
    if _has_glob(root):
        for found in sorted(fs.glob(root)):
            if not fs.isdir(found):
                yield Item(fs.unstrip_protocol(found), listed=True)
        return
    if path.lower().endswith(LIST_SUFFIXES):
        yield from _list_file(path)
        return
    # over http a folder is only a folder when its URL says so: asking would download each image
    folder = path.endswith("/") if proto in ("http", "https") else fs.isdir(root)
    if folder:
        for found in sorted(fs.find(root)):
            yield Item(found if proto in ("http", "https") else fs.unstrip_protocol(found), listed=True)
        return
    yield Item(path)


def _local(path: str, split: str | None) -> Iterator[Item]:
    path = local_path(path)
    if os.path.isdir(path):
        yield from (Item(p) for p in iter_inputs([path]))  # already checked by content
    elif os.path.basename(path) == INDEX_NAME and os.path.isfile(path):
        yield from (Item(str(s.path)) for s in load_index(os.path.dirname(path) or ".", split))
    elif os.path.isfile(path) and path.lower().endswith(LIST_SUFFIXES) and not is_image_file(path):
        yield from _list_file(path)
    elif _has_glob(path) and not os.path.exists(path):
        for found in sorted(glob.iglob(path, recursive=True)):
            if os.path.isdir(found):
                yield from (Item(p) for p in iter_inputs([found]))
            elif is_image_file(found):
                yield Item(found)
    else:
        yield Item(path)  # named: reported with an error if it is missing or not an image


def iter_items(inputs: Iterable[str], split: str | None = None) -> Iterator[Item]:
    """Every file of ``inputs``, lazily, in a deterministic order. ``split``: only that split of
    ``index.jsonl`` inputs."""
    for path in inputs:
        yield from (_remote(path) if is_remote(path) else _local(path, split))


def partition_key(items: Iterable[Item], salt: str) -> str:
    h = hashlib.sha1(salt.encode(), usedforsecurity=False)
    for item in items:
        h.update(b"\0" + item.path.encode("utf-8", "surrogateescape") + (b"\1" if item.listed else b"\2"))
    return h.hexdigest()[:20]


def iter_partitions(items: Iterable[Item], size: int, salt: str = "") -> Iterator[Partition]:
    """Consecutive runs of ``size`` items, cut as the listing goes: the listing never has to end
    (or fit in memory) before the first partition is handed out."""
    if size < 1:
        raise ValueError("partition size must be at least 1")
    chunk: list[Item] = []
    index = 0
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield Partition(index, partition_key(chunk, salt), tuple(chunk))
            chunk, index = [], index + 1
    if chunk:
        yield Partition(index, partition_key(chunk, salt), tuple(chunk))
