"""Peak memory (max RSS) of `plateread read` on a folder of photos, as a user would run it.

    python benchmarks/memory.py                 # 100 photos from the labelled sets, default engine
    python benchmarks/memory.py --count 300 --engine classic-crnn

The photos are symlinked into a temporary folder and read by a fresh `plateread read` process
writing JSON lines; its peak resident memory comes from the kernel (getrusage of the child).
Prints the figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DEFAULT_DATA, stamp  # noqa: E402

from plateread.evaluation.dataset import load_index  # noqa: E402
from plateread.reader import DEFAULT_ENGINE  # noqa: E402

SETS = ("openalpr-us", "openalpr-eu", "openalpr-br", "ro-dashcam", "openimages-plates")


def pick_photos(data: Path, count: int) -> list[Path]:
    """Round-robin over the sets so the folder mixes sizes (800 px to 1280x720 and larger)."""
    per_set = []
    for name in SETS:
        if (data / name / "index.jsonl").is_file():
            per_set.append([s.path for s in load_index(data / name, None)])
    picked: list[Path] = []
    while len(picked) < count and any(per_set):
        for paths in per_set:
            if paths and len(picked) < count:
                picked.append(paths.pop(0))
    return picked


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding the sets (default ../shared/data)")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--engine", default=DEFAULT_ENGINE)
    args = ap.parse_args()
    photos = pick_photos(Path(args.data), args.count)
    if not photos:
        print(f"no photos under {args.data}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(photos):
            os.symlink(p.resolve(), Path(tmp) / f"{i:04d}{p.suffix.lower()}")
        cmd = [sys.executable, "-m", "plateread", "read", tmp, "--engine", args.engine, "--format", "jsonl"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: kB
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    print(stamp())
    print(f"`plateread read` on {len(photos)} photos, engine `{args.engine}`: exit {proc.returncode}, "
          f"{len(lines)} result lines, {wall:.1f} s, **peak RSS {peak_mb:.0f} MB**.")
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
