"""One text per track from many noisy per-frame reads.

The rule (docs/VIDEO.md):

1. Each read r gets a weight w_r = detection score × (0.1 + 0.9 × read score) × sqrt(height_r / max height ×
   sharpness_r / max sharpness) over the track (a big, sharp, confident crop counts most).
2. Text vote: each read spreads *at most* w_r over its candidate texts (candidate shares
   normalised to sum 1). The consensus length L is the length with the most vote mass; its share
   of all mass is the *agreement*. A single frame can move the result by at most its own weight,
   so one noisy read cannot beat several consistent ones.
3. Per-character vote among reads of length L: each read gives, per position, a probability
   distribution over characters — from the CTC matrix (the frames greedy decoding emits that
   position from) when the recognizer exposes it, else from its length-L candidates — weighted
   by w_r × its mass on length L. The weighted mean is one distribution per position, so a
   plate no single frame read fully right can still come out right.
4. Region formats: the L distributions become a CTC matrix (character rows between certain
   blank rows) and go through the RegionDecoder — the same ratio test as for one image decides
   whether a layout-fitting look-alike (Z for 7) beats the plain per-position argmax. Without a
   region set the decoder only tags the region the text fits.
5. Score = agreement × the decoder's score (its candidate share × weakest position probability).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..formats import RegionDecoder
from ..formats.decoder import DEFAULT_CHARSET
from ..types import Candidate

CharDist = dict[str, float]


@dataclass(frozen=True)
class Observation:
    """One per-frame read of a track, as fusion needs it."""

    text: str
    score: float                    # the recognizer's read score, 0–1
    weight: float = 1.0             # read quality (see module docstring); 0 = ignore
    candidates: tuple[Candidate, ...] = ()
    char_dists: tuple[CharDist, ...] | None = None   # per position, from the CTC matrix


@dataclass(frozen=True)
class FusedRead:
    text: str
    score: float
    candidates: tuple[Candidate, ...] = ()
    region: str | None = None
    region_score: float | None = None
    agreement: float = 0.0          # share of the vote mass on the consensus length
    reads: int = 0                  # reads that voted


def ctc_char_dists(probs: np.ndarray, charset: str, blank: int = 0) -> tuple[CharDist, ...]:
    """Per emitted character of the greedy path, the character distribution (blank removed,
    renormalised) at its most confident frame: where a look-alike's runner-up shows."""
    best = probs.argmax(1)
    out: list[CharDist] = []
    prev, best_p, best_t = blank, -1.0, -1
    labels = [c for c in charset]
    cols = [k for k in range(probs.shape[1]) if k != blank]

    def close() -> None:
        if best_t >= 0:
            row = probs[best_t, cols].astype(float)
            row = row / row.sum() if row.sum() > 0 else row
            out.append({labels[i]: float(p) for i, p in enumerate(row) if p >= 1e-4})

    for t, k in enumerate(best):
        if k != blank and k != prev:
            close()
            best_p, best_t = -1.0, -1
        if k != blank and probs[t, k] > best_p:
            best_p, best_t = float(probs[t, k]), t
        prev = k
    close()
    return tuple(out)


@lru_cache(maxsize=1)
def _tagging_decoder() -> RegionDecoder:
    return RegionDecoder(None)


def _shares(o: Observation) -> dict[str, float]:
    cands: dict[str, float] = {}
    for c in o.candidates:
        if c.plate:
            cands[c.plate] = cands.get(c.plate, 0.0) + max(0.0, float(c.score))
    if o.text and o.text not in cands:
        cands[o.text] = max(float(o.score), 1e-3)
    total = sum(cands.values())
    if total <= 0:  # scores not reported (Tesseract): the candidates share equally
        return {t: 1.0 / len(cands) for t in cands}
    return {t: p / total for t, p in cands.items()}


def fuse(observations: Sequence[Observation], region_decoder: RegionDecoder | None = None,
         top_n: int = 5) -> FusedRead:
    """Fuses a track's reads; see the module docstring. Empty text when nothing was read."""
    obs = [(o, _shares(o)) for o in observations if o.weight > 0 and (o.text or o.candidates)]
    obs = [(o, s) for o, s in obs if s]
    if not obs:
        return FusedRead("", 0.0)
    votes: dict[str, float] = {}
    for o, shares in obs:
        for t, p in shares.items():
            votes[t] = votes.get(t, 0.0) + o.weight * p
    by_len: dict[int, float] = {}
    for t, v in votes.items():
        by_len[len(t)] = by_len.get(len(t), 0.0) + v
    total = sum(by_len.values())
    length = max(by_len, key=lambda n: (by_len[n], max(v for t, v in votes.items() if len(t) == n)))
    agreement = by_len[length] / total

    acc = [dict[str, float]() for _ in range(length)]
    mass = 0.0
    for o, shares in obs:
        on_len = sum(p for t, p in shares.items() if len(t) == length)
        if on_len <= 0:
            continue
        w = o.weight * on_len
        if o.char_dists is not None and len(o.char_dists) == length:
            dists = o.char_dists
        else:
            dists = tuple({} for _ in range(length))
            for t, p in shares.items():
                if len(t) == length:
                    for i, ch in enumerate(t):
                        dists[i][ch] = dists[i].get(ch, 0.0) + p / on_len
        for i, d in enumerate(dists):
            for ch, p in d.items():
                acc[i][ch] = acc[i].get(ch, 0.0) + w * p
        mass += w
    dists_f = [{ch: p / mass for ch, p in d.items()} for d in acc]

    charset = DEFAULT_CHARSET + "".join(sorted({ch for d in dists_f for ch in d}
                                               - set(DEFAULT_CHARSET)))
    col = {ch: i + 1 for i, ch in enumerate(charset)}
    m = np.zeros((2 * length + 1, len(charset) + 1))
    m[0::2, 0] = 1.0  # certain blanks between positions: a doubled character stays doubled
    for i, d in enumerate(dists_f):
        for ch, p in d.items():
            m[2 * i + 1, col[ch]] = p
        s = m[2 * i + 1].sum()
        if s > 0:
            m[2 * i + 1] /= s
    decoder = region_decoder if region_decoder is not None else _tagging_decoder()
    dec = decoder.decode(m, charset, 0)
    if not dec.text:
        return FusedRead("", 0.0, agreement=agreement, reads=len(obs))
    cands = [Candidate(t, sc * agreement) for t, sc, _ in dec.candidates]
    cands += [Candidate(t, v / total) for t, v in sorted(votes.items(), key=lambda kv: -kv[1])
              if len(t) != length]
    cands.sort(key=lambda c: -c.score)
    return FusedRead(dec.text, float(dec.score * agreement), tuple(cands[:top_n]), dec.region,
                     dec.region_score if dec.region else None, float(agreement), len(obs))
