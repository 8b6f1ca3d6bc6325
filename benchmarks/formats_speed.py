"""Time of region-constrained decoding per plate, on synthetic CRNN-like matrices (T=96).

    python benchmarks/formats_speed.py [--n 50]

"peaky" mimics a trained CRNN (blank ~1 between characters, one or two look-alikes above 1e-4);
"noisy" puts ~30 characters above the 1e-4 prune threshold in every frame, a worst case.
Reports the full decode (which runs decode.beam_search itself) and the added cost when the
caller passes the beam-search readings it already has (``unconstrained=``)."""
from __future__ import annotations

import argparse
import time

import numpy as np

from plateread.engines.crnn.decode import beam_search
from plateread.formats import RegionDecoder

CS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PLATES = ["ABC1D23", "LR69XYZ", "1234BCD", "MH12AB1234", "GWAGEN", "BAB1234"]


def matrix(text: str, rng: np.random.Generator, noisy: bool, T: int = 96) -> np.ndarray:
    C = len(CS) + 1
    logits = rng.normal(0, 1, (T, C)) + (0 if noisy else -4)
    logits[:, 0] = 6 if noisy else 8
    for i, c in enumerate(text):
        t0 = int((i + 0.5) * T / len(text))
        for dt in (-1, 0, 1):
            logits[t0 + dt, CS.index(c) + 1] = 14 - 3 * abs(dt)
            logits[t0 + dt, CS.index("7") + 1] += 10 - 3 * abs(dt)  # a look-alike runner-up
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30, help="repetitions per plate")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for kind in ("peaky", "noisy"):
        mats = [matrix(p, rng, kind == "noisy") for p in PLATES]
        for spec in ("auto", "eu", "br"):
            dec = RegionDecoder(spec)
            dec.decode(mats[0], CS)  # compile the automaton outside the timing
            free = [beam_search(m, CS, dec.beam_width, dec.top_n) for m in mats]
            t0 = time.perf_counter()
            for _ in range(args.n):
                for m in mats:
                    dec.decode(m, CS)
            full = (time.perf_counter() - t0) / (args.n * len(mats)) * 1e3
            t0 = time.perf_counter()
            for _ in range(args.n):
                for m, f in zip(mats, free):
                    dec.decode(m, CS, unconstrained=f)
            added = (time.perf_counter() - t0) / (args.n * len(mats)) * 1e3
            print(f"{kind:5s} regions={spec:4s} layouts={len(dec.layouts):3d}  "
                  f"decode {full:6.2f} ms/plate   with precomputed beams {added:6.2f} ms/plate")


if __name__ == "__main__":
    main()
