"""Shared by the benchmark scripts: machine description and in-place update of docs sections."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
#: The labelled test splits every accuracy benchmark reports, and the photo sizes timings use.
TEST_SETS = ("openalpr-us", "openalpr-eu", "openalpr-br")
SIZES = ((1280, 720), (1920, 1080))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {mem_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        mem = ""
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, {platform.system()}"


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])


def stamp() -> str:
    return (f"Measured {_dt.date.today().isoformat()} on {machine()}.\n"
            f"Command: `{command_line()}`\n")


def update_section(path: str | Path, key: str, body: str, title: str = "# plateread benchmarks\n") -> None:
    """Replaces (or appends) the block between BEGIN/END markers named ``key`` in a markdown file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else title
    block = f"<!-- BEGIN {key} -->\n{body.rstrip()}\n<!-- END {key} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(key)} -->.*?<!-- END {re.escape(key)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def timing_table(timing: dict[str, dict[str, float]], extra: tuple[str, str] | None = None) -> str:
    """Markdown rows for {"WxH/threads": {"median_ms", "p95_ms", ...}}; ``extra`` = (key, heading)."""
    head = "| image size | threads | median ms | p95 ms |" + (f" {extra[1]} |" if extra else "")
    lines = [head, "|---|---:|---:|---:|" + ("---:|" if extra else "")]
    for key, t in timing.items():
        size, threads = key.split("/")
        more = f" {t[extra[0]]:.2f} |" if extra else ""
        lines.append(f"| {size} | {threads} | {t['median_ms']:.1f} | {t['p95_ms']:.1f} |{more}")
    return "\n".join(lines)


def write_json(path: str | Path, data: object) -> None:
    import json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def test_photos(data: str | Path, per_set: int, sets: Sequence[str] = TEST_SETS, split: str = "test") -> list:
    """The first ``per_set`` decodable photos of each set's split (BGR arrays), for timings."""
    import cv2

    from plateread.evaluation.dataset import load_index

    imgs = []
    for name in sets:
        set_dir = Path(data) / name
        if not (set_dir / "index.jsonl").is_file():
            continue
        for s in load_index(set_dir, split)[:per_set]:
            img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
            if img is not None:
                imgs.append(img)
    return imgs


def time_calls(fn: Callable[[Any], Any], inputs: Sequence[Any], runs: int, warmup: int = 2) -> tuple[dict[str, float], list]:
    """Median and p95 ms of ``runs`` calls cycling through ``inputs`` after ``warmup`` untimed ones
    (the first calls allocate onnxruntime arenas); also returns the calls' results."""
    import numpy as np

    for x in inputs[:warmup]:
        fn(x)
    times, outs = [], []
    for k in range(runs):
        t = time.perf_counter()
        outs.append(fn(inputs[k % len(inputs)]))
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}, outs
