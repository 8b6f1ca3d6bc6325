"""A bounded pool of inference workers, each with one ``Reader`` (models loaded once).

Workers are processes by default (``plateread serve``): forked when the server starts, before it
runs any other thread, each with its own reader, store connection and journal, fed through a
pipe by a thread of the server. Threads (``processes=False``, ``--worker-threads``) share the
GIL with the HTTP side: decoding and the models release it, but the Python glue of a read (the
beam search, post-processing) and of a request (parsing, routing, JSON) then wait for each
other; measured on 2 cores, threads cost a quarter of the throughput against reading in-process,
separate processes about half of that (docs/BENCHMARKS.md, serve). A worker process that dies
(a crash in native code) fails its one request with a 500 and is started again.

Admission is bounded *before* a request's body is read: at most ``workers + queue`` requests hold
a slot (running, waiting, or still uploading), so memory cannot grow with a backlog; past that a
request is refused at once (``Busy``) and the client retries.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import multiprocessing
import queue
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ..heap import tune_malloc
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
LOAD_TIMEOUT_S = 300.0  # a worker process that has not loaded its models by then is killed


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
    answer: bool = False                  # also build the Snapshot API's ``results`` (mmc: ``answer_mmc``)
    answer_mmc: bool = False


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
    kind: str = "ok"                      # for the images metric: ok, bad_image, error, expired
    health: dict[str, Any] | None = None  # a worker process's journal and media state
    answer: list[dict[str, Any]] | None = None  # the Snapshot API's ``results``, built by the worker


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


class JobRunner:
    """What a worker does with a job (decode, read, select, store, annotate), wherever its reader
    lives: in a worker thread or in a worker process."""

    def __init__(self, reader: Reader, writer: SpooledWriter | None) -> None:
        self.reader, self.writer = reader, writer
        self.decoders: dict[tuple[str, ...], Any] = {}

    def run(self, job: ReadJob) -> ReadOutcome:
        if time.monotonic() > job.deadline:  # its client has been answered (timeout); skip the work
            return ReadOutcome(504, error="timed out waiting for a worker", kind="expired")
        reader, start, opts = self.reader, time.perf_counter(), job.options
        try:
            bgr = load_image(job.data, max_pixels=reader.max_pixels)
        except ImageError as exc:
            msg = str(exc)
            return ReadOutcome(413 if "too large" in msg else 400, error=msg, kind="bad_image")
        with overrides(reader, opts, self.decoders):
            result, image = reader.read_keep(bgr, name=job.name)
        if result.error is not None or image is None:
            log.error("engine failed on %s: %s", job.name, result.error)
            return ReadOutcome(500, error=f"the engine failed on this image: {result.error}", kind="error")
        reads = select_reads(result.results, opts)
        elapsed = (time.perf_counter() - start) * 1000.0
        result = dataclasses.replace(result, results=reads, processing_time=elapsed)
        outcome = ReadOutcome(201, result=result, elapsed_ms=elapsed)
        if job.answer:  # here rather than on the event loop, which every request shares
            from .compat import plate_result

            outcome.answer = [plate_result(r, job.answer_mmc) for r in reads]
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
        return outcome


def _process_main(conn: Any, index: int, make_reader: Callable[[], Reader], parent_store: Store | None,
                  spool: str | None) -> None:
    """A worker process: its own reader, store connection and journal (``api-INDEX``), one job
    at a time from the pipe until it closes or sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the server stops its workers itself
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    start = time.perf_counter()
    store = writer = None
    try:
        if parent_store is not None:
            # the parent's pooled connections came along with the fork: forget them without
            # closing them (closing would end the parent's sessions), and open our own
            parent_store.engine.dispose(close=False)
            store = Store.open(parent_store.engine.url.render_as_string(hide_password=False),
                               parent_store.media.root, migrate=False)
            writer = SpooledWriter(store, spool, f"api-{index}").start()
        reader = make_reader()
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", time.perf_counter() - start))
    runner = JobRunner(reader, writer)
    try:
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                break
            if job is None:
                break
            try:
                outcome = runner.run(job)
            except Exception as exc:  # never lose a worker to one request
                log.exception("inference worker %d failed on %s", index, job.name)
                outcome = ReadOutcome(500, error=f"internal error: {type(exc).__name__}", kind="error")
            if writer is not None:
                outcome.health = {**writer.health(), "dir": str(writer.journal.dir)}
            conn.send(outcome)
    finally:
        if writer is not None:
            writer.close(5.0)
        if store is not None:
            store.close()


class InferencePool:
    def __init__(self, make_reader: Callable[[], Reader], *, workers: int, queue_size: int,
                 store: Store | None, metrics: Metrics, spool: str | None = None,
                 processes: bool = False) -> None:
        self.make_reader, self.workers, self.capacity = make_reader, workers, workers + queue_size
        self.store, self.metrics, self.spool = store, metrics, spool
        self.processes = processes and "fork" in multiprocessing.get_all_start_methods()
        # threads share one writer; each worker process has its own (api-0, api-1, ...)
        self.writer = SpooledWriter(store, spool, "api") if store is not None and not self.processes else None
        self._jobs: queue.Queue[tuple[ReadJob, Slot, Callable[[ReadOutcome], None]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._used = 0
        self._threads: list[threading.Thread] = []
        self._loaded = 0
        self._health: dict[int, dict[str, Any]] = {}
        self.restarts = 0
        self.ready = threading.Event()
        self.load_error: str | None = None
        metrics.queue_depth.set_function(self._jobs.qsize)
        metrics.in_flight.set_function(lambda: self._used)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        # every upload, image and tensor is a large buffer: keep freed ones for the next request
        # (plateread.heap) here and, inherited, in the worker processes forked below
        tune_malloc()
        if self.writer is not None:
            self.writer.start()   # first stores what an outage or a crash left in the journal
        if self.processes:
            # every worker forked now, from this thread, before the proxy threads exist
            children = [self._fork(i) for i in range(self.workers)]
            targets = [(self._proxy, (i, *children[i])) for i in range(self.workers)]
        else:
            targets = [(self._worker, (i,)) for i in range(self.workers)]
        for i, (fn, args) in enumerate(targets):
            t = threading.Thread(target=fn, args=args, name=f"plateread-infer-{i}", daemon=True)
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

    def spool_health(self) -> dict[str, Any] | None:
        """The API's journal(s): one writer's health, or the workers' summed (pending from disk)."""
        if self.writer is not None:
            return self.writer.health()
        if not self.processes or self.store is None:
            return None
        snaps = list(self._health.values())
        if not snaps:
            return {"pending": 0, "stored": 0, "journalled": 0, "set_aside": 0, "last_error": None,
                    "outage_s": None, "media_errors": 0, "last_media_error": None}
        from ..store.spool import Journal

        outages = [h["outage_s"] for h in snaps if h.get("outage_s")]
        errors = [h["last_error"] for h in snaps if h.get("last_error")]
        media = [h["last_media_error"] for h in snaps if h.get("last_media_error")]
        return {"pending": sum(len(Journal(h["dir"])) for h in snaps),
                **{k: sum(h[k] for h in snaps) for k in ("stored", "journalled", "set_aside", "media_errors")},
                "last_error": errors[-1] if errors else None, "outage_s": max(outages) if outages else None,
                "last_media_error": media[-1] if media else None}

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

    def submit(self, slot: Slot, job: ReadJob) -> "asyncio.Future[ReadOutcome]":
        """Queues the job; its outcome arrives in the returned future (of the running loop), which
        can be awaited with a timeout directly (no task to wrap it). Cancelling it (a timeout)
        leaves the job to finish or expire in its worker, which then gives the slot back."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ReadOutcome] = loop.create_future()

        def deliver(outcome: ReadOutcome) -> None:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(outcome))

        slot.submitted = True
        self._jobs.put((job, slot, deliver))
        return fut

    # ---- workers -------------------------------------------------------------------------------

    def _loaded_one(self, index: int, seconds: float) -> None:
        self.metrics.model_load.labels(str(index)).set(seconds)
        with self._lock:
            self._loaded += 1
            if self._loaded == self.workers:
                self.ready.set()

    def _failed(self, index: int, error: str) -> None:
        self.load_error = error
        log.error("inference worker %d cannot load its models: %s", index, error)
        self.ready.set()

    def _record(self, outcome: ReadOutcome) -> None:
        self.metrics.images.labels(outcome.kind).inc()
        if outcome.kind == "ok":
            self.metrics.inference.observe(outcome.elapsed_ms / 1000.0)

    def _serve(self, index: int, handle: Callable[[ReadJob], ReadOutcome]) -> None:
        """Takes jobs until the pool closes."""
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, slot, deliver = item
            try:
                outcome = handle(job)
            except _WorkerLost as exc:
                outcome = ReadOutcome(exc.status, error=str(exc), kind="error")
            except Exception as exc:  # never lose a worker to one request
                log.exception("inference worker %d failed on %s", index, job.name)
                outcome = ReadOutcome(500, error=f"internal error: {type(exc).__name__}", kind="error")
            finally:
                slot.release()
            self._record(outcome)
            deliver(outcome)

    def _worker(self, index: int) -> None:
        start = time.perf_counter()
        try:
            reader = self.make_reader()
        except Exception as exc:  # the server reports it on /healthz instead of dying in a thread
            self._failed(index, f"{type(exc).__name__}: {exc}")
            return
        self._loaded_one(index, time.perf_counter() - start)
        self._serve(index, JobRunner(reader, self.writer).run)

    def _fork(self, index: int) -> tuple[Any, Any]:
        ctx = multiprocessing.get_context("fork")
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_process_main, args=(theirs, index, self.make_reader, self.store, self.spool),
                           name=f"plateread-worker-{index}", daemon=True)
        proc.start()
        theirs.close()
        return proc, ours

    def _proxy(self, index: int, proc: Any, conn: Any) -> None:
        """Feeds one worker process; starts it again when it dies or hangs."""
        worker = {"proc": proc, "conn": conn}

        def wait_ready(first: bool) -> bool:
            # bounded: a child forked while another thread held a lock it needs (a restart forks
            # from this thread, in a server that runs others) could wait for it forever
            try:
                if worker["conn"].poll(LOAD_TIMEOUT_S):
                    kind, value = worker["conn"].recv()
                else:
                    kind, value = "error", f"worker process not ready after {LOAD_TIMEOUT_S:g} s"
                    worker["proc"].kill()
            except (EOFError, OSError):
                kind, value = "error", f"worker process exited with {worker['proc'].exitcode} while loading"
            if kind == "error":
                if first:
                    self._failed(index, value)
                else:
                    log.error("inference worker %d cannot restart: %s", index, value)
                return False
            if first:
                self._loaded_one(index, value)
            return True

        def stop(kill: bool) -> None:
            p, c = worker["proc"], worker["conn"]
            if not kill and p.is_alive():
                try:
                    c.send(None)
                except OSError:
                    pass
                p.join(10.0)
            if p.is_alive():
                p.kill()
            p.join(5.0)
            c.close()

        def restart() -> None:
            stop(kill=True)
            self.restarts += 1
            log.error("inference worker %d lost (exit code %s); starting it again", index, worker["proc"].exitcode)
            worker["proc"], worker["conn"] = self._fork(index)
            if not wait_ready(first=False):
                raise _WorkerLost(500, "the inference worker could not be restarted")

        def handle(job: ReadJob) -> ReadOutcome:
            try:
                worker["conn"].send(job)
            except OSError:          # it died while idle: the job never reached it, so it can go again
                restart()
                worker["conn"].send(job)
            # a worker that answers nothing well past the job's deadline is hung
            wait = None if job.deadline == float("inf") else max(0.0, job.deadline - time.monotonic()) + 30.0
            try:
                if not worker["conn"].poll(wait):
                    restart()
                    raise _WorkerLost(504, "the inference worker hung; it was restarted")
                outcome: ReadOutcome = worker["conn"].recv()
            except (EOFError, OSError) as exc:   # it died on this job: not retried (it may have stored it)
                restart()
                raise _WorkerLost(500, f"the inference worker died ({type(exc).__name__}); it was restarted") \
                    from None
            if outcome.health is not None:
                self._health[index] = outcome.health
            return outcome

        if not wait_ready(first=True):
            stop(kill=True)
            return
        try:
            self._serve(index, handle)
        finally:
            stop(kill=False)


class _WorkerLost(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
