"""The client side of a batch: list, skip what is done, hand partitions to Dask, collect, report.

A thread lists the inputs and parks the partitions it cuts in a temporary file (so a listing of
millions of paths never sits in memory, and the total, hence the time left, is known long before
the last photo is read). The main thread keeps a few partitions per worker in flight, stores
finished ones when asked to, and draws the progress bar from the workers' progress events.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

from .inputs import Partition, iter_items, iter_partitions
from .worker import PART_FMT, TMP_MARK, ReaderPlugin, ReaderSpec, part_info, part_path, process_partition

JOB_FILE = "_plateread_batch.json"
STORED_DIR = "_stored"
DEFAULT_PARTITION_SIZE = 256


class BatchError(RuntimeError):
    """The job cannot start (or go on); the message says why."""


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class BatchSummary:
    out: str
    partitions: int = 0          # in the job
    computed: int = 0            # partitions read by this run
    kept: int = 0                # partitions already written by an earlier run, left as they were
    kept_images: int = 0
    images: int = 0              # read by this run (errors included)
    plates: int = 0
    errors: int = 0
    skipped: int = 0             # files found by a remote listing that were not images
    failed: list[tuple[int, str]] = field(default_factory=list)  # (partition, why) after Dask's retries
    stored: int = 0              # reads written into the store
    unstored: int = 0            # images whose reads the store refused
    workers: int = 0
    dashboard: str | None = None
    startup_s: float = 0.0       # cluster start and models loaded
    seconds: float = 0.0         # first partition handed out to last one back
    busy_ms: float = 0.0         # time the workers spent reading images (sum)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["images_per_s"] = round(self.images_per_s, 2)
        return d

    def lines(self) -> list[str]:
        n_parts = f"{self.partitions} partition{'s' * (self.partitions != 1)}"
        out = [f"{self.images} images read, {self.plates} plates, {self.errors} errors ({n_parts}) -> {self.out}"]
        if self.images:
            out.append(f"{self.images_per_s:.1f} images/s on {self.workers} worker(s): {self.seconds:.1f} s "
                       f"reading, {self.startup_s:.1f} s starting")
        if self.kept:
            out.append(f"{self.kept} partition(s) ({self.kept_images} images) were already done and kept")
        if self.skipped:
            out.append(f"{self.skipped} listed file(s) were not images and were skipped")
        if self.stored or self.unstored:
            out.append(f"{self.stored} read(s) stored" + (f", {self.unstored} image(s) refused by the store"
                                                         if self.unstored else ""))
        for index, why in self.failed:
            out.append(f"partition {index} failed: {why}")
        if self.failed:
            out.append("run the same command again to retry the failed partition(s)")
        return out


class _Spool:
    """Partitions from the listing thread, parked in a temporary file until they are handed out."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+b")
        self._lock = threading.Lock()
        self._written = self._read = 0
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.partitions = 0
        self.todo_images = 0   # in partitions that are not done yet

    def put(self, part: Partition, done: bool) -> None:
        line = json.dumps([done, part.to_json()]).encode() + b"\n"
        with self._lock:
            self._file.seek(self._written)
            self._file.write(line)
            self._written += len(line)
            self.partitions += 1
            if not done:
                self.todo_images += len(part.items)

    def get(self) -> tuple[Partition, bool] | None:
        with self._lock:
            if self._read >= self._written:
                return None
            self._file.seek(self._read)
            line = self._file.readline()
            self._read += len(line)
        done, text = json.loads(line)
        return Partition.from_json(text), done

    def drained(self) -> bool:
        """The listing has ended and every partition it cut has been taken."""
        with self._lock:
            return self.finished.is_set() and self._read >= self._written

    def close(self) -> None:
        self._file.close()


def _list(spool: _Spool, inputs: list[str], split: str | None, size: int, salt: str,
          existing: dict[int, dict[str, str]], stop: threading.Event) -> None:
    try:
        for part in iter_partitions(iter_items(inputs, split), size, salt):
            if stop.is_set():
                return
            info = existing.get(part.index)
            spool.put(part, info is not None and info.get("partition_key") == part.key)
    except BaseException as exc:  # handed to the main thread, which ends the job with it
        spool.error = exc
    finally:
        spool.finished.set()


class _Out:
    """The output folder (any fsspec URL): the job file, finished partitions, store markers."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.root = self.root.rstrip("/")

    def prepare(self, job: dict[str, Any], overwrite: bool) -> dict[int, dict[str, str]]:
        """Checks (or writes) the job file, drops leftovers of killed writers, and returns the
        metadata of the partitions already written, by index."""
        fs, root = self.fs, self.root
        if fs.exists(root) and not fs.isdir(root):
            raise BatchError(f"--out {self.url} is a file; give a folder (it will hold one Parquet file per partition)")
        fs.makedirs(root, exist_ok=True)
        job_path = f"{root}/{JOB_FILE}"
        if fs.exists(job_path) and not overwrite:
            with fs.open(job_path, "rt") as fh:
                before = json.load(fh)
            changed = [k for k in ("reader_token", "partition_size") if before.get(k) != job.get(k)]
            if changed:
                raise BatchError(
                    f"{self.url} holds a batch run with other settings ({', '.join(changed)} changed: "
                    f"{', '.join(f'{before.get(k)} -> {job.get(k)}' for k in changed)}); "
                    "choose another --out, or pass --overwrite to start this one again")
        existing: dict[int, dict[str, str]] = {}
        self.remove_leftovers()
        for path in sorted(fs.glob(f"{root}/part-*.parquet")):
            if overwrite:
                fs.rm(path)
                continue
            info = part_info(fs, path)
            if info is not None and "partition" in info:
                existing[int(info["partition"])] = info
        if overwrite and fs.exists(f"{root}/{STORED_DIR}"):
            fs.rm(f"{root}/{STORED_DIR}", recursive=True)
        with fs.open(job_path, "wt") as fh:
            json.dump(job, fh, indent=1, sort_keys=True, default=repr)
        return existing

    def remove_leftovers(self) -> None:
        """Removes files half-written by workers that were killed (never read: their names start
        with a dot, which Parquet readers skip)."""
        for path in self.fs.glob(f"{self.root}/.part-*{TMP_MARK}*"):
            try:
                self.fs.rm(path)
            except FileNotFoundError:
                pass

    def stored_marker(self, index: int, key: str) -> str:
        return f"{self.root}/{STORED_DIR}/{index:06d}-{key}"

    def is_stored(self, index: int, key: str) -> bool:
        return self.fs.exists(self.stored_marker(index, key))

    def mark_stored(self, index: int, key: str) -> None:
        self.fs.makedirs(f"{self.root}/{STORED_DIR}", exist_ok=True)
        with self.fs.open(self.stored_marker(index, key), "wb"):
            pass

    def read_part(self, index: int) -> Any:
        import pyarrow.parquet as pq

        with self.fs.open(part_path(self.root, index), "rb") as fh:
            return pq.read_table(fh)

    def remove_beyond(self, count: int) -> int:
        """Removes partition files numbered ``count`` and up: left by an earlier, longer listing."""
        removed = 0
        for path in self.fs.glob(f"{self.root}/part-*.parquet"):
            name = path.rsplit("/", 1)[-1]
            try:
                index = int(name[len("part-"):-len(".parquet")])
            except ValueError:
                continue
            if index >= count and name == PART_FMT.format(index):
                self.fs.rm(path)
                removed += 1
        return removed


def _store_partition(out: _Out, part: Partition, store: Any, camera: str | None, summary: BatchSummary) -> None:
    """Writes one finished partition's reads into the store (reads only: the images stay where
    they are, so no crops are saved) and marks it stored, so a re-run does not store it twice."""
    from .schema import results_from_table

    if out.is_stored(part.index, part.key):
        return
    for result in results_from_table(out.read_part(part.index)):
        if not result.results:
            continue
        try:
            summary.stored += len(store.add_image_result(result, camera=camera))
        except Exception as exc:  # one image the store refuses must not end the job
            summary.unstored += 1
            print(f"plateread: not stored: {result.image}: {exc}", file=sys.stderr)
    out.mark_stored(part.index, part.key)


class _Bar:
    """Images per second and time left on stderr; nothing when it is not a terminal."""

    def __init__(self, enabled: bool | None) -> None:
        self._show = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None

    def start(self) -> None:
        """Starts the clock: once the workers are ready, so the rate is the reading rate."""
        if self._show and self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=None, desc="batch", unit="img", file=sys.stderr, dynamic_ncols=True,
                             smoothing=0.1)

    def set_total(self, total: int) -> None:
        if self._bar is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()

    def show(self, done: int, plates: int, errors: int) -> None:
        if self._bar is not None:
            if done > self._bar.n:
                self._bar.update(done - self._bar.n)
            self._bar.set_postfix(plates=plates, errors=errors, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _serves_dashboard(dask_scheduler: Any) -> bool:
    """Whether the scheduler serves the dashboard's pages: it always runs its HTTP server (health,
    metrics), but the pages need bokeh there and the dashboard turned on."""
    return bool(getattr(getattr(dask_scheduler, "http_application", None), "applications", None))


def _connect(scheduler: str | None, workers: int | None, dashboard_address: str | None) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            client.wait_for_workers(1, timeout=120)
        except TimeoutError:
            client.close()
            raise BatchError(f"no worker joined the scheduler at {scheduler} within 120 s") from None
        return client, None
    import dask

    n = workers or default_workers()
    # Dask's statistical profiler samples every worker thread each 10 ms under the GIL: CPU taken
    # from the reads, for a dashboard panel a batch job does not need (the nannies pass the
    # setting on to their worker processes)
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=dashboard_address, silence_logs=logging.ERROR)
    try:
        return Client(cluster), cluster
    except BaseException:
        cluster.close()
        raise


def run_batch(
    inputs: Iterable[str],
    out: str,
    *,
    spec: ReaderSpec | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    partition_size: int = DEFAULT_PARTITION_SIZE,
    split: str | None = None,
    retries: int = 2,
    overwrite: bool = False,
    store: Any = None,
    camera: str | None = None,
    progress: bool | None = None,
    dashboard_address: str | None = "127.0.0.1:8787",
    inflight_per_worker: int = 2,
) -> BatchSummary:
    """Reads every image of ``inputs`` on Dask into ``out`` (a folder of Parquet files, one per
    partition) and returns what was done.

    The cluster is ``client`` if given, else the scheduler at ``scheduler``, else a LocalCluster
    of ``workers`` processes (default: the cores) started and closed here. ``spec`` builds the
    Reader in each worker (default: ``Reader()``). Partitions already in ``out`` from an earlier
    run with the same settings are kept. ``store``: a ``plateread.store.Store`` that receives the
    reads of each finished partition. Raises BatchError when the job cannot start;
    KeyboardInterrupt passes through after the cluster is closed (re-run to resume).
    """
    from distributed import wait

    inputs = list(inputs)
    spec = spec or ReaderSpec.from_kwargs()
    if partition_size < 1:
        raise BatchError("--partition-size must be at least 1")
    started = time.perf_counter()
    target = _Out(out)
    job = {"reader": spec.describe(), "reader_token": spec.token, "partition_size": partition_size,
           "inputs": inputs, "split": split}
    existing = target.prepare(job, overwrite)
    summary = BatchSummary(out=out)

    spool, stop = _Spool(), threading.Event()
    lister = threading.Thread(target=_list, name="plateread-batch-list", daemon=True,
                              args=(spool, inputs, split, partition_size, spec.token, existing, stop))
    lister.start()

    cluster = None
    own_client = client is None
    bar = _Bar(progress)
    pending: dict[Any, Partition] = {}
    live: dict[int, tuple[str, int]] = {}
    live_lock = threading.Lock()
    topic = f"plateread-batch-{uuid.uuid4().hex[:8]}"
    finished_images = 0

    finished: set[int] = set()

    def on_event(event: Any) -> None:  # progress inside a partition, from the worker reading it
        msg = event[1] if isinstance(event, tuple) else event
        with live_lock:
            if msg["p"] not in finished:  # a late event must not count a finished partition twice
                live[msg["p"]] = (msg["a"], msg["n"])

    ready: float | None = None
    run = uuid.uuid4().hex[:6]
    subscribed = False
    plugins: list[str] = []

    def start() -> Any:
        """The cluster, started (or joined) when the first partition needs reading: a re-run
        that finds everything done starts none."""
        nonlocal client, cluster, ready, subscribed
        if own_client:
            client, cluster = _connect(scheduler, workers, dashboard_address)
        if client.run_on_scheduler(_serves_dashboard):
            summary.dashboard = client.dashboard_link
            print(f"plateread: dask dashboard at {summary.dashboard}", file=sys.stderr)
        plugin = ReaderPlugin(spec)
        plugins.append(plugin.name)
        try:
            client.register_plugin(plugin)  # each worker loads the models now, once
        except Exception as exc:  # raised on a worker: a module or model it cannot load
            raise BatchError(f"the workers could not build the reader: {type(exc).__name__}: {exc}") from exc
        client.subscribe_topic(topic, on_event)
        subscribed = True
        summary.workers = len(client.scheduler_info().get("workers", {}))
        ready = time.perf_counter()
        summary.startup_s = ready - started
        bar.start()
        return client

    try:
        while True:
            if spool.error is not None:
                raise BatchError(f"listing the inputs failed: {spool.error}") from spool.error
            n_workers = len(client.scheduler_info().get("workers", {})) if ready is not None else 1
            limit = max(2, inflight_per_worker * max(1, n_workers))
            while len(pending) < limit:
                got = spool.get()
                if got is None:
                    break
                part, done = got
                if done:
                    summary.kept += 1
                    summary.kept_images += int(existing[part.index].get("images", 0))
                    if store is not None:
                        _store_partition(target, part, store, camera, summary)
                    continue
                if ready is None:
                    start()
                fut = client.submit(process_partition, spec, part, out, topic, retries=retries, pure=False,
                                    key=f"plateread-part-{part.index:06d}-{run}")
                pending[fut] = part
            if spool.finished.is_set():
                bar.set_total(spool.todo_images)
            if not pending:
                if spool.drained():
                    break
                spool.finished.wait(0.05)
                continue
            try:
                wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            for fut in [f for f in pending if f.done()]:
                part = pending.pop(fut)
                with live_lock:
                    live.pop(part.index, None)
                    finished.add(part.index)
                finished_images += len(part.items)
                if fut.status == "finished":
                    r = fut.result()
                    summary.computed += 1
                    for k in ("images", "plates", "errors", "skipped"):
                        setattr(summary, k, getattr(summary, k) + r[k])
                    summary.busy_ms += r.get("busy_ms", 0.0)
                    if store is not None:
                        _store_partition(target, part, store, camera, summary)
                else:
                    exc = fut.exception()
                    why = f"{type(exc).__name__}: {exc}" if exc is not None else fut.status
                    summary.failed.append((part.index, why))
                    print(f"plateread: partition {part.index} failed: {why}", file=sys.stderr)
                fut.release()
            with live_lock:
                in_flight = sum(n for _, n in live.values())
            bar.show(finished_images + in_flight, summary.plates, summary.errors)
        summary.seconds = time.perf_counter() - ready if ready is not None else 0.0
        summary.partitions = spool.partitions
        removed = target.remove_beyond(spool.partitions)
        if removed:
            print(f"plateread: removed {removed} partition file(s) past the end of the listing "
                  "(left by an earlier run over more images)", file=sys.stderr)
        target.remove_leftovers()  # every task of this run has ended: any temporary file is an orphan
        return summary
    except KeyboardInterrupt:
        done = summary.kept + summary.computed
        print(f"plateread: interrupted with {done} of {spool.partitions or '?'} partition(s) done; "
              "run the same command again to resume", file=sys.stderr)
        raise
    finally:
        stop.set()
        bar.close()
        if client is not None:
            try:
                if pending:
                    client.cancel(list(pending))
                if subscribed:
                    client.unsubscribe_topic(topic)
                if cluster is None:  # a long-lived cluster: its later workers need not load this reader
                    for name in plugins:
                        client.unregister_worker_plugin(name)
            except Exception:
                pass
            if own_client:
                client.close()
        if cluster is not None:
            cluster.close()
        lister.join(timeout=5)
        spool.close()
