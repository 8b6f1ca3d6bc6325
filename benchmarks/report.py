"""Shared by the benchmark scripts: machine description and in-place update of docs sections."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


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
