"""``plateread batch`` on a real Dask LocalCluster (worker processes, real kills, no mocks)."""
from __future__ import annotations

import _thread
import functools
import http.server
import json
import logging
import os
import signal
import threading
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("distributed", reason="batch needs the [dist] extra")
pq = pytest.importorskip("pyarrow.parquet", reason="batch needs the [dist] extra")

import fakes  # noqa: E402
import test_batch_support  # noqa: E402,F401  (registers fake-slow here; workers import it via preload)
from conftest import fake_plate_image  # noqa: E402
from plateread import Reader  # noqa: E402
from plateread.batch import (SCHEMA, BatchError, Item, Partition, ReaderSpec, iter_items,  # noqa: E402
                             iter_partitions, process_partition, results_from_table, run_batch)
from plateread.batch.inputs import partition_key  # noqa: E402
from plateread.cli.main import main  # noqa: E402
from plateread.store import Store  # noqa: E402

BAD = {"corrupt.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 40, "empty.png": b"", "notes.txt": b"not a photo\n"}


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def two_plates(a: str, b: str) -> np.ndarray:
    img = fake_plate_image(a, size=(240, 400), at=(20, 20))
    img[150:190, 200:320] = 255
    fakes.encode_text(img[150:190, 200:320], b)
    return img


def make_photos(folder, n: int, bad: bool = True) -> dict[str, str]:
    """``n`` photos, every fifth in a subfolder, each with one plate reading P<i>; returns path -> plate."""
    expected = {}
    for i in range(n):
        path = folder / ("sub" if i % 5 == 0 else "") / f"photo{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_png(fake_plate_image(f"P{i}")))
        expected[str(path)] = f"P{i}"
    if bad:
        for name, data in BAD.items():
            (folder / name).write_bytes(data)
    return expected


def rows_by_image(out) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in pq.read_table(str(out)).to_pylist():
        rows.setdefault(row["image"], []).append(row)
    return rows


def assert_exactly_once(out, expected: dict[str, str]) -> None:
    """Every expected image has exactly one image's worth of rows (one start row), read right."""
    rows = rows_by_image(out)
    photos = {k: v for k, v in rows.items() if k in expected}
    assert set(photos) == set(expected)
    for image, rs in photos.items():
        starts = [r for r in rs if r["plate_index"] in (None, 0)]
        assert len(starts) == 1, f"{image} appears {len(starts)} times"
        assert [r["plate"] for r in rs] == [expected[image]] and rs[0]["error"] is None


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, one thread each, on loopback; closed when the module is done."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as lc, Client(lc) as client:
        yield lc, client


@pytest.fixture
def two_workers(cluster):
    lc, client = cluster
    client.wait_for_workers(2, timeout=60)  # a worker killed by an earlier test is back
    return lc.scheduler_address, client


def slow_spec(delay: float = 0.05) -> ReaderSpec:
    return ReaderSpec.from_kwargs(engine="fake-slow", delay=delay, preload=("test_batch_support",))


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ---- without a cluster -----------------------------------------------------------------------

def test_partitions_are_cut_lazily_and_keyed_by_content():
    def endless():
        i = 0
        while True:
            yield Item(f"/photos/{i}.jpg")
            i += 1

    parts = iter_partitions(endless(), 3, salt="s")
    first, second = next(parts), next(parts)
    assert (first.index, second.index) == (0, 1)
    assert [i.path for i in second.items] == ["/photos/3.jpg", "/photos/4.jpg", "/photos/5.jpg"]
    assert first.key == partition_key(first.items, "s") != partition_key(first.items, "other settings")
    assert Partition.from_json(first.to_json()) == first


def test_inputs_folders_globs_lists_and_index(tmp_path):
    make_photos(tmp_path / "in", 6)
    lst = tmp_path / "paths.txt"
    lst.write_text("# a comment\nin/photo001.png\n\nhttps://example.invalid/x.jpg\n/nowhere/y.jpg\n")
    (tmp_path / "in" / "index.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"image": "photo001.png", "split": "test", "width": 320, "height": 200, "plates": []},
        {"image": "photo002.png", "split": "train", "width": 320, "height": 200, "plates": []}]))
    folder = [i.path[len(str(tmp_path / "in")) + 1:] for i in iter_items([str(tmp_path / "in")])]
    # images by content (corrupt.jpg starts like a JPEG; empty.png and notes.txt do not), sorted, recursive
    assert folder == ["corrupt.jpg", "photo001.png", "photo002.png", "photo003.png", "photo004.png",
                      "sub/photo000.png", "sub/photo005.png"]
    assert [i.path for i in iter_items([str(tmp_path / "in" / "photo00[12].png")])] == \
        [str(tmp_path / "in" / "photo001.png"), str(tmp_path / "in" / "photo002.png")]
    assert [i.path for i in iter_items([str(lst)])] == \
        [str(tmp_path / "in" / "photo001.png"), "https://example.invalid/x.jpg", "/nowhere/y.jpg"]
    assert [i.path for i in iter_items([str(tmp_path / "in" / "index.jsonl")], split="test")] == \
        [str(tmp_path / "in" / "photo001.png")]
    named = list(iter_items([str(tmp_path / "in" / "notes.txt"), str(tmp_path / "missing.png")]))
    assert [i.listed for i in named] == [False, False]  # named files always get a row


def test_partition_file_schema_rows_and_round_trip(tmp_path):
    """One partition written in this process: the schema, one row per plate / empty / bad image,
    the metadata, no temporary file left, and rows that turn back into the same results."""
    (tmp_path / "a.png").write_bytes(_png(fake_plate_image("AB123")))
    (tmp_path / "two.png").write_bytes(_png(two_plates("CD45", "EF6")))
    (tmp_path / "empty.png").write_bytes(_png(np.full((200, 320, 3), 30, np.uint8)))
    (tmp_path / "bad.jpg").write_bytes(BAD["corrupt.jpg"])
    names = ["a.png", "two.png", "empty.png", "bad.jpg", "a.png"]  # listed twice: two images
    items = tuple(Item(str(tmp_path / n)) for n in names)
    spec = ReaderSpec.from_kwargs(engine="fake")
    out = tmp_path / "out"
    out.mkdir()
    report = process_partition(spec, Partition(3, "k3", items), str(out))
    assert report == {"index": 3, "images": 5, "plates": 4, "errors": 1, "skipped": 0,
                      "busy_ms": pytest.approx(report["busy_ms"]), "reused": False}
    assert sorted(p.name for p in out.iterdir()) == ["part-000003.parquet"]
    path = out / "part-000003.parquet"
    schema = pq.read_schema(path)
    assert schema.remove_metadata() == SCHEMA
    meta = {k.decode(): v.decode() for k, v in schema.metadata.items()}
    assert (meta["plateread.partition_key"], meta["plateread.images"], meta["plateread.errors"]) == ("k3", "5", "1")
    table = pq.read_table(path)
    rows = table.to_pylist()
    assert [(r["image"].rsplit("/", 1)[1], r["plate_index"], r["plate"]) for r in rows] == [
        ("a.png", 0, "AB123"), ("two.png", 0, "EF6"), ("two.png", 1, "CD45"), ("empty.png", None, None),
        ("bad.jpg", None, None), ("a.png", 0, "AB123")]
    assert rows[0]["box"] == {"xmin": 100, "ymin": 60, "xmax": 220, "ymax": 100}
    assert rows[0]["candidates"] == [{"plate": "AB123", "score": 0.8}, {"plate": "AB123X", "score": 0.1}]
    assert (rows[0]["width"], rows[0]["height"], rows[0]["partition"]) == (320, 200, 3)
    assert "corrupt" in rows[4]["error"] and rows[4]["width"] == 0
    reader = Reader("fake")
    back = list(results_from_table(table))
    direct = [reader.read_safe(str(tmp_path / n), name=str(tmp_path / n)) for n in names]
    strip = lambda r: {**r.to_dict(), "processing_time": None}  # noqa: E731
    assert [strip(r) for r in back] == [strip(r) for r in direct]
    # run again: the file is this partition's, so it is taken as it is
    assert process_partition(spec, Partition(3, "k3", items), str(out))["reused"] is True


def test_changed_settings_need_overwrite(tmp_path):
    make_photos(tmp_path / "in", 1, bad=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "_plateread_batch.json").write_text(json.dumps({"reader_token": "x", "partition_size": 9}))
    with pytest.raises(BatchError, match="other settings.*--overwrite"):
        run_batch([str(tmp_path / "in")], str(tmp_path / "out"), spec=ReaderSpec.from_kwargs(engine="fake"))


def test_help_and_defaults():
    from plateread.batch import job
    from plateread.cli import batch_cmd

    assert batch_cmd.DEFAULT_PARTITION_SIZE == job.DEFAULT_PARTITION_SIZE
    with pytest.raises(SystemExit) as exc:
        main(["batch", "--help"])
    assert exc.value.code == 0
    assert main(["batch", "x", "--out", "y", "--camera", "gate-1"]) == 2  # --camera needs --store


def test_no_images_is_an_error_and_starts_no_cluster(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "batch", str(tmp_path / "empty"), "--out", str(tmp_path / "out"),
                           "--engine", "fake")
    assert code == 1 and "no images found" in err and "dashboard" not in err


# ---- on Dask ---------------------------------------------------------------------------------

def test_cli_on_its_own_local_cluster_reads_every_image_exactly_once(capsys, tmp_path):
    expected = make_photos(tmp_path / "in", 23)
    out = tmp_path / "reads.parquet"
    code, stdout, err = run_cli(capsys, "batch", str(tmp_path / "in"), "--out", str(out), "--workers", "2",
                                "--engine", "fake", "--preload", "fakes", "--partition-size", "5",
                                "--dashboard", "none", "--summary-json", str(tmp_path / "s.json"))
    assert code == 1 and "1 of 24 image(s) could not be read" in err  # corrupt.jpg; empty.png and notes.txt
    assert_exactly_once(out, expected)                                 # are not images by content
    rows = rows_by_image(out)
    assert "corrupt" in rows[str(tmp_path / "in" / "corrupt.jpg")][0]["error"]
    assert sorted(p.name for p in out.glob("part-*")) == [f"part-00000{i}.parquet" for i in range(5)]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["images"], summary["plates"], summary["errors"], summary["workers"]) == (24, 23, 1, 2)
    assert (summary["partitions"], summary["computed"], summary["kept"]) == (5, 5, 0)
    assert "24 images read, 23 plates, 1 errors (5 partitions)" in stdout
    # the same command again keeps every partition and starts no cluster
    code, stdout, _ = run_cli(capsys, "batch", str(tmp_path / "in"), "--out", str(out), "--workers", "2",
                              "--engine", "fake", "--preload", "fakes", "--partition-size", "5",
                              "--dashboard", "none")
    assert code == 0 and "5 partition(s) (24 images) were already done and kept" in stdout


def test_killed_worker_partition_is_retried_and_every_image_read_once(tmp_path, two_workers):
    address, client = two_workers
    expected = make_photos(tmp_path / "in", 48, bad=False)
    out = tmp_path / "out"
    killed: dict = {}

    def kill_one_mid_partition():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if len(list(out.glob("part-*.parquet"))) >= 1 and busy:
                worker, keys = next(iter(busy.items()))
                pid = client.run(os.getpid, workers=[worker])[worker]
                time.sleep(0.1)  # well inside the partition (6 images x 80 ms)
                os.kill(pid, signal.SIGKILL)
                killed.update(worker=worker, pid=pid, keys=list(keys))
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_mid_partition)
    killer.start()
    summary = run_batch([str(tmp_path / "in")], str(out), spec=slow_spec(0.08), scheduler=address,
                        partition_size=6, progress=False)
    killer.join()
    assert killed, "no worker was killed: the job ended before the kill"
    assert summary.failed == [] and (summary.computed, summary.images) == (8, 48)
    assert_exactly_once(out, expected)
    # the scheduler ran the killed worker's partition again elsewhere
    story = client.story(*killed["keys"])
    assert sum(1 for t in story if t[2] == "processing") >= 2, story


def test_interrupted_run_resumes_with_only_the_missing_partitions(tmp_path, two_workers):
    address, client = two_workers
    expected = make_photos(tmp_path / "in", 60, bad=False)
    out = tmp_path / "out"
    args = {"spec": slow_spec(0.2), "scheduler": address, "partition_size": 5, "progress": False}

    def interrupt_after_two_partitions():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(out.glob("part-*.parquet"))) < 2:
            time.sleep(0.01)
        _thread.interrupt_main()  # as Ctrl-C would

    # a shell starts background jobs with SIGINT ignored, and then Python raises nothing on it:
    # Ctrl-C's own handler, whatever the runner inherited
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_after_two_partitions, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run_batch([str(tmp_path / "in")], str(out), **args)
    finally:
        signal.signal(signal.SIGINT, previous)
    # partitions already running when the client stopped may still finish: wait for the workers
    deadline = time.monotonic() + 30
    while any(client.run(lambda dask_worker: len(dask_worker.state.executing)).values()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert 2 <= len(before) < 12  # the partitions in flight when it stopped may have finished
    summary = run_batch([str(tmp_path / "in")], str(out), **args)
    assert (summary.kept, summary.computed) == (len(before), 12 - len(before))
    assert summary.images == 5 * (12 - len(before))
    assert {p: out.joinpath(p).stat().st_mtime_ns for p in before} == before  # untouched
    assert_exactly_once(out, expected)
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_store_round_trip_and_no_double_store_on_rerun(capsys, tmp_path, two_workers):
    address, _ = two_workers
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        (folder / f"one{i}.png").write_bytes(_png(fake_plate_image(f"AB{i}")))
    (folder / "two.png").write_bytes(_png(two_plates("CD45", "EF6")))
    (folder / "empty.png").write_bytes(_png(np.full((200, 320, 3), 30, np.uint8)))
    out, db = tmp_path / "out", tmp_path / "reads.db"
    cmd = ["batch", str(folder), "--out", str(out), "--scheduler", address, "--engine", "fake", "--preload",
           "fakes", "--partition-size", "3", "--store", "--db", str(db), "--media", str(tmp_path / "media"),
           "--camera", "archive"]
    code, stdout, err = run_cli(capsys, *cmd)
    assert code == 0, err
    assert "7 read(s) stored" in stdout
    results = [r for r in results_from_table(pq.read_table(str(out))) if r.results]
    with Store.open(str(db)) as store:
        stored = store.query(limit=None)
    want = sorted((r.image, p.plate, round(p.score, 4), p.box, tuple(c.to_dict()["plate"] for c in p.candidates))
                  for r in results for p in r.results)
    got = sorted((s.source, s.plate, round(s.score, 4), s.box, tuple(c.plate for c in s.candidates))
                 for s in stored)
    assert got == want and len(got) == 7
    assert {s.camera for s in stored} == {"archive"} and {s.kind for s in stored} == {"image"}
    code, stdout, _ = run_cli(capsys, *cmd)  # all kept, all already stored: nothing twice
    assert code == 0 and "stored" not in stdout
    with Store.open(str(db)) as store:
        assert len(store.query(limit=None)) == 7


@pytest.fixture
def http_folder(tmp_path):
    """A loopback HTTP server over tmp_path/www, with folder listings."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))

    class Quiet(handler.func):  # type: ignore[name-defined]
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_urls_listed_and_named(tmp_path, two_workers, http_folder):
    address, _ = two_workers
    www, base = http_folder
    (www / "cam").mkdir()
    for i in range(3):
        (www / "cam" / f"p{i}.png").write_bytes(_png(fake_plate_image(f"H{i}")))
    (www / "cam" / "readme.txt").write_bytes(b"listed, not an image: skipped without a row\n")
    (www / "x.png").write_bytes(_png(fake_plate_image("X1")))
    lst = tmp_path / "urls.txt"
    lst.write_text(f"{base}/x.png\n{base}/gone.png\n")
    out = tmp_path / "out"
    summary = run_batch([f"{base}/cam/", str(lst)], str(out), spec=ReaderSpec.from_kwargs(engine="fake", preload=("fakes",)),
                        scheduler=address, partition_size=2, progress=False)
    rows = rows_by_image(out)
    assert {k: [r["plate"] for r in v] for k, v in rows.items() if not v[0]["error"]} == {
        f"{base}/cam/p0.png": ["H0"], f"{base}/cam/p1.png": ["H1"], f"{base}/cam/p2.png": ["H2"],
        f"{base}/x.png": ["X1"]}
    assert "no such file" in rows[f"{base}/gone.png"][0]["error"] or "404" in rows[f"{base}/gone.png"][0]["error"]
    assert (summary.images, summary.skipped, summary.errors) == (5, 1, 1)


def _malloc_tuned() -> bool:
    from plateread.batch import worker
    return worker._TUNED


def test_workers_keep_freed_memory_but_the_callers_process_is_left_alone(two_workers, tmp_path):
    """Dask's MALLOC_TRIM_THRESHOLD_ costs ~3,000 page faults per photo; workers undo it."""
    address, client = two_workers
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(_png(fake_plate_image("AB1")))
    run_batch([str(tmp_path / "in")], str(tmp_path / "out"), scheduler=address, progress=False,
              spec=ReaderSpec.from_kwargs(engine="fake", preload=("fakes",)))
    assert all(client.run(_malloc_tuned).values())
    assert not _malloc_tuned()  # process_partition ran in this process above, without touching it


def test_a_reader_the_workers_cannot_build_is_a_clear_error(tmp_path, two_workers):
    address, client = two_workers
    make_photos(tmp_path / "in", 2, bad=False)
    spec = ReaderSpec.from_kwargs(engine="fake", preload=("no_such_module_anywhere",))
    with pytest.raises(BatchError, match="workers could not build the reader.*no_such_module_anywhere"):
        run_batch([str(tmp_path / "in")], str(tmp_path / "out"), spec=spec, scheduler=address, progress=False)
    # the failed plugin is not left on the scheduler for the workers that join later
    assert not [n for n in client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.worker_plugins))
                if n.startswith("plateread-reader-")]


def test_rerun_over_fewer_images_redoes_changed_partitions_and_drops_stale_ones(tmp_path, two_workers):
    address, _ = two_workers
    expected = make_photos(tmp_path / "in", 11, bad=False)  # sorted: photo001..photo009, then sub/
    args = {"spec": ReaderSpec.from_kwargs(engine="fake", preload=("fakes",)), "scheduler": address,
            "partition_size": 3, "progress": False}
    first = run_batch([str(tmp_path / "in")], str(tmp_path / "out"), **args)
    assert (first.partitions, first.computed) == (4, 4)
    for name in ("photo008.png", "photo009.png"):  # the third partition changes, the fourth goes
        (tmp_path / "in" / name).unlink()
        del expected[str(tmp_path / "in" / name)]
    again = run_batch([str(tmp_path / "in")], str(tmp_path / "out"), **args)
    assert (again.partitions, again.kept, again.computed) == (3, 2, 1)
    assert sorted(p.name for p in (tmp_path / "out").glob("part-*")) == [f"part-00000{i}.parquet" for i in range(3)]
    assert_exactly_once(tmp_path / "out", expected)
