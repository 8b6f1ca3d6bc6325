"""Runs a benchmark command and files its printed markdown in docs/BENCHMARKS.md.

    python benchmarks/record.py ocr "OCR on labelled crops" -- python benchmarks/ocr_crops.py
    python benchmarks/record.py store "Store write throughput" -- python benchmarks/store_write.py

The section (between markers named after the key) gets a title, the date, the machine, the load
average and the exact command, then the command's stdout as printed. Other sections are left
alone, so each figure in the file stays next to the command that produced it.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPO, machine, update_section  # noqa: E402


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") < 2:
        print(__doc__, file=sys.stderr)
        return 2
    key, title = argv[0], argv[1]
    cmd = argv[argv.index("--") + 1:]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        print(f"record: command failed with exit code {proc.returncode}; docs left untouched", file=sys.stderr)
        return proc.returncode
    import datetime as dt
    command = f"Command: `{' '.join(shlex.quote(c) for c in cmd)}`"
    if any(line.startswith("Measured ") for line in proc.stdout.splitlines()):
        head = f"Load average {load:.1f} at start. {command}"   # the benchmark stamps date and machine itself
    else:
        head = (f"Measured {dt.date.today().isoformat()} on {machine()} (load average {load:.1f} at start).\n"
                + command)
    body = f"## {title}\n\n{head}\n\n" + proc.stdout.strip() + "\n"
    update_section(REPO / "docs" / "BENCHMARKS.md", key, body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
