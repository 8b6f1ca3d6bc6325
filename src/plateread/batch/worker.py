"""What runs in the Dask worker processes: one Reader per process, and the partition task.

Each worker process builds its Reader once (``ReaderPlugin`` warms it when the worker joins,
including a replacement for a killed worker; the task builds it itself if the plugin has not) and
runs one inference at a time. A partition's images are read one by one and only their rows are
kept; the rows go to one Parquet file, written under a temporary name and renamed into place, so a
file that exists is a whole partition.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import __version__
from ..heap import tune_malloc
from ..imaging import DEFAULT_MAX_BYTES, looks_like_image
from ..types import ImageResult
from .inputs import Item, Partition, is_remote, local_path
from .schema import read_metadata, result_rows, to_table

log = logging.getLogger("plateread.batch")

PART_FMT = "part-{:06d}.parquet"
TMP_MARK = ".tmp-"
#: Workers report progress at most this often (seconds) while reading a partition.
PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class ReaderSpec:
    """How to build the Reader in a worker: ``factory`` ('module:callable') called with ``args``
    and ``kwargs``, after importing ``preload`` (modules that register custom engines).
    ``token`` identifies the settings: partitions written with other settings are not reused."""

    factory: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    preload: tuple[str, ...] = ()
    crop: bool = False   # every image is one plate: read it whole (``plateread read --crops``)

    @classmethod
    def from_kwargs(cls, preload: tuple[str, ...] = (), crop: bool = False, **kwargs: Any) -> "ReaderSpec":
        """A spec for ``plateread.Reader(**kwargs)``."""
        return cls("plateread.reader:Reader", (), dict(kwargs), tuple(preload), crop)

    def describe(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:  # an argparse.Namespace of engine flags as its dict
            return vars(value) if hasattr(value, "__dict__") and not isinstance(value, type) else value

        return {"factory": self.factory, "args": [plain(a) for a in self.args],
                "kwargs": {k: plain(v) for k, v in sorted(self.kwargs.items())},
                "preload": list(self.preload), "crop": self.crop, "plateread": __version__}

    @property
    def token(self) -> str:
        text = json.dumps(self.describe(), sort_keys=True, default=repr)
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]

    def build(self) -> Any:
        for module in self.preload:
            importlib.import_module(module)
        module_name, _, attr = self.factory.partition(":")
        factory: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
        return factory(*self.args, **self.kwargs)


_READERS: dict[str, Any] = {}
_BUILD_LOCK = threading.Lock()
_READ_LOCK = threading.Lock()   # one inference at a time per process, whatever the worker's threads


_TUNED = False  # whether tune_malloc applied in this process


def _in_worker() -> bool:
    try:
        from distributed import get_worker
        get_worker()
        return True
    except (ImportError, ValueError):
        return False


def _prepare_process(in_worker: bool | None = None) -> None:
    """Process-wide settings, made only in Dask worker processes (never in a caller's own)."""
    global _TUNED
    if _TUNED or not (in_worker if in_worker is not None else _in_worker()):
        return
    _TUNED = tune_malloc()
    try:
        import cv2
        cv2.setNumThreads(1)  # the worker processes are the parallelism
    except ImportError:
        pass


def get_reader(spec: ReaderSpec) -> Any:
    """The process's Reader for ``spec``, built on first use."""
    token = spec.token
    reader = _READERS.get(token)
    if reader is None:
        with _BUILD_LOCK:
            reader = _READERS.get(token)
            if reader is None:
                _prepare_process()
                reader = _READERS[token] = spec.build()
    return reader


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # the [dist] extra is not installed: the module still imports for its helpers
    WorkerPlugin = object  # type: ignore[assignment,misc]


class ReaderPlugin(WorkerPlugin):  # type: ignore[misc,valid-type]
    """Loads the models into each worker process as it joins, before it gets a partition."""

    idempotent = False

    def __init__(self, spec: ReaderSpec) -> None:
        self.spec = spec
        self.name = f"plateread-reader-{spec.token}"

    def setup(self, worker: Any) -> None:
        if getattr(worker.state, "nthreads", 1) > 1:
            log.warning("plateread batch: worker %s has %s threads; its partitions take turns on one "
                        "Reader (start workers with --nthreads 1 and more --nworkers)",
                        worker.address, worker.state.nthreads)
        _prepare_process(in_worker=True)
        get_reader(self.spec)

    def teardown(self, worker: Any) -> None:
        _READERS.pop(self.spec.token, None)


# ---- output files ----------------------------------------------------------------------------

def part_path(root: str, index: int) -> str:
    return f"{root.rstrip('/')}/{PART_FMT.format(index)}"


def part_info(fs: Any, path: str) -> dict[str, str] | None:
    """The metadata of a finished partition file, or None when there is none (or it is unreadable)."""
    import pyarrow.parquet as pq

    try:
        with fs.open(path, "rb") as fh:
            return read_metadata(pq.read_schema(fh))
    except Exception:  # missing, foreign or damaged: the partition is done again
        return None


def _write_atomic(fs: Any, path: str, table: Any) -> None:
    import pyarrow.parquet as pq

    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}{TMP_MARK}{uuid.uuid4().hex[:10]}"
    try:
        with fs.open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
        if protocol_is_local(fs):
            os.replace(tmp, path)
        else:
            fs.mv(tmp, path)
    except BaseException:
        try:
            fs.rm(tmp)
        except Exception:
            pass
        raise


def protocol_is_local(fs: Any) -> bool:
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return proto in ("file", "local")


# ---- the task --------------------------------------------------------------------------------

def _fetch(item: Item) -> tuple[bytes | None, str | None]:
    """The bytes of a remote file, or the reason it could not be fetched."""
    import fsspec

    try:
        with fsspec.open(item.path, "rb") as fh:
            return fh.read(DEFAULT_MAX_BYTES + 1), None  # one byte over: read_safe names the limit
    except FileNotFoundError:
        return None, f"no such file: {item.path}"
    except Exception as exc:
        return None, f"cannot fetch: {type(exc).__name__}: {exc}"


def read_item(reader: Any, item: Item, crop: bool = False) -> ImageResult | None:
    """One image's result (errors included); None for a listed remote file that is not an image."""
    start = time.perf_counter()
    source: Any
    if is_remote(item.path):
        source, error = _fetch(item)
        if error is not None:
            return ImageResult(item.path, 0, 0, (time.perf_counter() - start) * 1000.0, (), error)
        if item.listed and not looks_like_image(source[:16]):
            return None
    else:
        source = local_path(item.path)
    with _READ_LOCK:
        return reader.read_keep(source, name=item.path, crop=crop)[0]


def _report(topic: str | None, index: int, attempt: str, done: int) -> None:
    if topic is None:
        return
    try:
        from distributed import get_worker
        get_worker().log_event(topic, {"p": index, "a": attempt, "n": done})
    except (ImportError, ValueError):  # not inside a worker (called directly): nothing to report to
        pass


def process_partition(spec: ReaderSpec, part: Partition, out: str, topic: str | None = None) -> dict[str, Any]:
    """Reads one partition into ``out``/part-NNNNNN.parquet; returns its counts. A file already
    there with this partition's key is taken as it is (the task ran before and its report was
    lost with its worker)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(out)
    path = part_path(root, part.index)
    info = part_info(fs, path)
    if info is not None and info.get("partition_key") == part.key:
        return {**_counts(info), "index": part.index, "reused": True}
    reader = get_reader(spec)
    attempt = uuid.uuid4().hex[:8]
    rows: list[dict[str, Any]] = []
    images = plates = errors = skipped = 0
    busy = 0.0
    last = time.monotonic()
    for n, item in enumerate(part.items, 1):
        result = read_item(reader, item, spec.crop)
        if result is None:
            skipped += 1
        else:
            images += 1
            plates += len(result.results)
            errors += result.error is not None
            busy += result.processing_time
            rows.extend(result_rows(result, part.index))
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            _report(topic, part.index, attempt, n)
            last = time.monotonic()
    meta = {"partition": str(part.index), "partition_key": part.key, "images": str(images),
            "plates": str(plates), "errors": str(errors), "skipped": str(skipped),
            "reader": json.dumps(spec.describe(), sort_keys=True, default=repr), "version": __version__}
    _write_atomic(fs, path, to_table(rows, meta))
    return {"index": part.index, "images": images, "plates": plates, "errors": errors, "skipped": skipped,
            "busy_ms": busy, "reused": False}


def _counts(info: dict[str, str]) -> dict[str, int]:
    return {k: int(info.get(k, 0)) for k in ("images", "plates", "errors", "skipped")}
