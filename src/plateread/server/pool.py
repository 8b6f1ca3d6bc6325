"""A bounded pool of inference workers: one thread and one ``Reader`` (models loaded once) each.

Threads, not processes: decoding (OpenCV) and both models (onnxruntime) release the GIL, which
leaves the Python glue, measured at under a fifth of a read, so threads use the cores while the
worker shares the store and needs no copy of the image to cross a process boundary.

Admission is bounded *before* a request's body is read: at most ``workers + queue`` requests hold
a slot (running, waiting, or still uploading), so memory cannot grow with a backlog; past that a
request is refused at once (``Busy``) and the client retries.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ..imaging import ImageError, load_image
from ..reader import Reader
from ..store import Store
from ..store.media import encode_jpeg
from ..store.spool import SpooledWriter
from ..types import ImageResult, PlateRead
from .metrics import Metrics

log = logging.getLogger("plateread.server")

#: mode "redaction": the detection threshold used to find every plate that may need blurring
REDACTION_THRESHOLD = 0.15
_DECODER_CACHE = 16   # region decoders kept per worker (one per distinct `regions` a client sends)


class Busy(Exception):
    """Every slot is taken; the request should be refused now rather than queued."""


@dataclass(frozen=True)
class ReadOptions:
    """Per-request knobs (Plate Recognizer's ``regions`` and ``config``)."""

    threshold_d: float | None = None     # detection threshold
    threshold_o: float | None = None     # read-score threshold
    regions: tuple[str, ...] = ()        # plate-format region codes to fit
    strict: bool = False                 # keep only reads that fit ``regions``
    fast: bool = False                   # no second pass (zoom, second look)
    redaction: bool = False              # every plate box, with a low detection threshold
    annotate: bool = False               # also return the image with the reads drawn (dashboard)


@dataclass(frozen=True)
class ReadJob:
    data: bytes
    name: str
    options: ReadOptions = ReadOptions()
    store: bool = False
    camera: str | None = None
    seen: dt.datetime | None = None
    keep_frame: bool = False
    deadline: float = float("inf")        # time.monotonic() after which nobody waits for the answer


@dataclass
class ReadOutcome:
    """What a worker made of a job. ``status`` is the HTTP status the API answers with."""

    status: int
    result: ImageResult | None = None
    error: str | None = None
    read_ids: list[int] = field(default_factory=list)
    store_error: str | None = None
    spooled: bool = False                 # kept in the journal; stored once the database is back
    annotated: bytes | None = None        # JPEG
    elapsed_ms: float = 0.0               # decode + read, in the worker
    waited_ms: float = 0.0                # in the queue


class Slot:
    """A place in the pool, taken before the body is read and given back exactly once: by the
    worker when a submitted job ends, or by the request when it never submits one."""

    def __init__(self, pool: "InferencePool") -> None:
        self._pool, self._released, self.submitted = pool, False, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release()

    def abandon(self) -> None:
        """The request ends without (or before) submitting: free the slot now."""
        if not self.submitted:
            self.release()


class InferencePool:
    def __init__(self, make_reader: Callable[[], Reader], *, workers: int, queue_size: int,
                 store: Store | None, metrics: Metrics, spool: str | None = None) -> None:
        self.make_reader, self.workers, self.capacity = make_reader, workers, workers + queue_size
        self.store, self.metrics = store, metrics
        self.writer = SpooledWriter(store, spool, "api") if store is not None else None
        self._jobs: queue.Queue[tuple[ReadJob, Slot, Callable[[ReadOutcome], None]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._used = 0
        self._threads: list[threading.Thread] = []
        self._loaded = 0
        self.ready = threading.Event()
        self.load_error: str | None = None
        metrics.queue_depth.set_function(self._jobs.qsize)
        metrics.in_flight.set_function(lambda: self._used)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self.writer is not None:
            self.writer.start()   # first stores what an outage or a crash left in the journal
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, args=(i,), name=f"plateread-infer-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout)
        if self.writer is not None:
            self.writer.close(timeout)

    @property
    def used(self) -> int:
        return self._used

    # ---- admission -----------------------------------------------------------------------------

    def acquire(self) -> Slot:
        """A slot, or ``Busy`` at once when ``workers + queue`` requests already hold one."""
        with self._lock:
            if self._used >= self.capacity:
                raise Busy(f"server busy: {self._used} requests in progress")
            self._used += 1
        return Slot(self)

    def _release(self) -> None:
        with self._lock:
            self._used -= 1

    async def run(self, slot: Slot, job: ReadJob) -> ReadOutcome:
        """Queues the job and waits for it. Cancelling the wait (a timeout) leaves the job to
        finish or expire in its worker, which then gives the slot back."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ReadOutcome] = loop.create_future()

        def deliver(outcome: ReadOutcome) -> None:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(outcome))

        slot.submitted = True
        self._jobs.put((job, slot, deliver))
        return await fut

    # ---- workers -------------------------------------------------------------------------------

    def _worker(self, index: int) -> None:
        start = time.perf_counter()
        try:
            reader = self.make_reader()
        except Exception as exc:  # the server reports it on /healthz instead of dying in a thread
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("inference worker %d cannot load its models: %s", index, self.load_error)
            self.ready.set()
            return
        self.metrics.model_load.labels(str(index)).set(time.perf_counter() - start)
        with self._lock:
            self._loaded += 1
            if self._loaded == self.workers:
                self.ready.set()
        decoders: dict[tuple[str, ...], Any] = {}
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, slot, deliver = item
            try:
                outcome = self._handle(reader, decoders, job)
            except Exception as exc:  # never lose a worker to one request
                log.exception("inference worker %d failed on %s", index, job.name)
                outcome = ReadOutcome(500, error=f"internal error: {type(exc).__name__}")
            finally:
                slot.release()
            deliver(outcome)

    def _handle(self, reader: Reader, decoders: dict[tuple[str, ...], Any], job: ReadJob) -> ReadOutcome:
        if time.monotonic() > job.deadline:  # its client has been answered (timeout); skip the work
            self.metrics.images.labels("expired").inc()
            return ReadOutcome(504, error="timed out waiting for a worker")
        start = time.perf_counter()
        opts = job.options
        try:
            bgr = load_image(job.data, max_pixels=reader.max_pixels)
        except ImageError as exc:
            self.metrics.images.labels("bad_image").inc()
            msg = str(exc)
            return ReadOutcome(413 if "too large" in msg else 400, error=msg)
        with overrides(reader, opts, decoders):
            result, image = reader.read_keep(bgr, name=job.name)
        if result.error is not None or image is None:
            self.metrics.images.labels("error").inc()
            log.error("engine failed on %s: %s", job.name, result.error)
            return ReadOutcome(500, error=f"the engine failed on this image: {result.error}")
        reads = select_reads(result.results, opts)
        elapsed = (time.perf_counter() - start) * 1000.0
        result = dataclasses.replace(result, results=reads, processing_time=elapsed)
        outcome = ReadOutcome(201, result=result, elapsed_ms=elapsed)
        stored = dataclasses.replace(result, results=tuple(r for r in reads if r.plate))  # unread boxes: not reads
        if job.store and stored.results and self.writer is not None:
            try:
                ids = self.writer.add_image_result(stored, camera=job.camera, image=image,
                                                   seen=job.seen, keep_frame=job.keep_frame)
                outcome.read_ids, outcome.spooled = ids or [], ids is None
            except Exception as exc:  # the read still answers; the client learns it was not kept
                outcome.store_error = str(exc)
                log.error("not stored: %s: %s", job.name, exc)
        if opts.annotate:
            from ..annotate import annotate

            outcome.annotated = encode_jpeg(annotate(image, reads), quality=85)
        self.metrics.images.labels("ok").inc()
        self.metrics.inference.observe(elapsed / 1000.0)
        return outcome


def select_reads(reads: Sequence[PlateRead], opts: ReadOptions) -> tuple[PlateRead, ...]:
    """The reads a request asked for: above its thresholds, and fitting its regions when strict."""
    out = []
    for r in reads:
        if opts.threshold_d is not None and r.detection_score < opts.threshold_d:
            continue
        if opts.threshold_o is not None and not opts.redaction and r.score < opts.threshold_o:
            continue
        if opts.strict and opts.regions and r.region not in opts.regions:
            continue
        out.append(r)
    return tuple(out)


@contextmanager
def overrides(reader: Reader, opts: ReadOptions, decoders: dict[tuple[str, ...], Any]) -> Iterator[None]:
    """Applies a request's knobs to this worker's own reader for one read, then restores them.

    Safe because a worker's reader serves one request at a time. The knobs are engine attributes
    (the learned detector's ``threshold`` and ``zoom``, the reader's ``second_look``, the CRNN's
    ``region_decoder``); an engine without one simply ignores that knob (a raised detection
    threshold still applies, as a filter on the results)."""
    saved: list[tuple[Any, str, Any]] = []

    def put(obj: Any, attr: str, value: Any) -> None:
        if hasattr(obj, attr):
            saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, value)

    det, rec = reader.detector, reader.recognizer
    threshold = opts.threshold_d
    if opts.redaction:
        threshold = min(threshold if threshold is not None else 1.0, REDACTION_THRESHOLD)
        put(reader, "keep_unread", True)  # a box the OCR cannot read still needs blurring
    if threshold is not None:
        put(det, "threshold", float(threshold))
    if opts.fast:
        put(reader, "second_look", None)
        put(det, "zoom", False)
    if opts.regions and hasattr(rec, "region_decoder"):
        put(rec, "region_decoder", _decoder(decoders, opts.regions, getattr(rec, "top_n", 5)))
    try:
        yield
    finally:
        for obj, attr, value in reversed(saved):
            setattr(obj, attr, value)


def _decoder(cache: dict[tuple[str, ...], Any], regions: tuple[str, ...], top_n: int) -> Any:
    dec = cache.get(regions)
    if dec is None:
        from ..formats import RegionDecoder

        if len(cache) >= _DECODER_CACHE:
            cache.pop(next(iter(cache)))
        dec = cache[regions] = RegionDecoder(list(regions), top_n=top_n)
    return dec
