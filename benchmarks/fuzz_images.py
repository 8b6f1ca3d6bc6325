"""Long fuzz run of the image loader: mutated/truncated/bomb images in every accepted format.

    python benchmarks/fuzz_images.py --minutes 5

Runs Hypothesis rounds of ``--per-round`` examples (each round its own seed) until the time is up,
and prints the inputs tried, how they ended (image / ImageError), the slowest input, the peak
memory of the process and every distinct failure (any other exception, a hang over 2 s, an
out-of-contract image), saving each failing input under ``--save``. The contract and the
mutations are those of tests/hostile_images.py; the test suite runs a short version
(tests/test_fuzz_images.py). Exit status 1 when anything failed.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
# libtiff/libpng complaints about each broken input are expected noise
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

import hostile_images as H  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--per-round", type=int, default=2000)
    ap.add_argument("--save", default="fuzz-failures", help="folder for failing inputs")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # Pillow's per-input "truncated file" warnings, likewise
    outcomes: collections.Counter[str] = collections.Counter()
    failures: collections.Counter[str] = collections.Counter()
    slowest = [0.0]
    end = time.monotonic() + args.minutes * 60

    def one(data: bytes) -> None:
        if time.monotonic() > end:
            return
        start = time.perf_counter()
        try:
            outcomes[H.check_one(data)] += 1
        except Exception as exc:  # the finding: record it, keep fuzzing
            key = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:160]}"
            if not failures[key]:
                Path(args.save).mkdir(exist_ok=True)
                (Path(args.save) / f"failure{len(failures)}.bin").write_bytes(data)
            failures[key] += 1
            outcomes["failure"] += 1
        slowest[0] = max(slowest[0], time.perf_counter() - start)

    rounds = 0
    while time.monotonic() < end:
        test = settings(max_examples=args.per_round, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))(given(H.hostile_bytes())(one))
        seed(rounds)(test)()
        rounds += 1
    report = {"inputs": sum(outcomes.values()), "rounds": rounds, "outcomes": dict(outcomes),
              "seeds": len(H.seeds()), "slowest_s": round(slowest[0], 3),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
              "failures": dict(failures.most_common())}
    print(json.dumps(report, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
