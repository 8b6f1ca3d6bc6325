"""CTC decoding in numpy: greedy, prefix beam search, per-character probabilities.

Probabilities are [T, C] with the blank at column ``blank`` (0) and column k+1 = charset[k]
for blank 0. Kept free of onnxruntime so region-constrained decoders can reuse it on the
matrices from ``CrnnRecognizer.recognize_probs``.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Decoded:
    text: str
    prob: float                     # P(text | image) summed over alignments (beam) or path prob
    char_probs: tuple[float, ...]   # per emitted character: max prob over the frames emitting it


def _label_of(k: int, charset: str, blank: int) -> str:
    return charset[k - 1] if blank == 0 else charset[k if k < blank else k - 1]


def greedy_decode(probs: np.ndarray, charset: str, blank: int = 0) -> Decoded:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    best = probs.argmax(1)
    text: list[str] = []
    cps: list[float] = []
    prev = blank
    path_p = 1.0
    for t, k in enumerate(best):
        p = float(probs[t, k])
        path_p *= p
        if k != blank:
            if k != prev:
                text.append(_label_of(int(k), charset, blank))
                cps.append(p)
            else:  # same character continued: keep the most confident frame
                cps[-1] = max(cps[-1], p)
        prev = k
    return Decoded("".join(text), path_p, tuple(cps))


def char_probs_for(probs: np.ndarray, text: str, charset: str, blank: int = 0) -> tuple[float, ...]:
    """Per-character probs of ``text`` from its best (Viterbi) alignment; empty if impossible."""
    if not text:
        return ()
    idx = [charset.index(c) + (1 if blank == 0 else (0 if charset.index(c) < blank else 1))
           for c in text]
    ext = [blank]
    for k in idx:
        ext += [k, blank]
    T, S = probs.shape[0], len(ext)
    ext_a = np.asarray(ext)
    lp = np.log(np.maximum(probs[:, ext_a], 1e-30))  # [T, S]
    skip_ok = np.zeros(S, bool)  # s-2 -> s allowed: a character that differs from the one before
    skip_ok[2:] = (ext_a[2:] != blank) & (ext_a[2:] != ext_a[:-2])
    score = np.full((T, S), -np.inf)
    back = np.zeros((T, S), np.int64)
    score[0, :2] = lp[0, :2]
    steps = np.arange(S)
    for t in range(1, T):
        prev = score[t - 1]
        c = np.full((3, S), -np.inf)
        c[0] = prev
        c[1, 1:] = prev[:-1]
        c[2, 2:] = np.where(skip_ok[2:], prev[:-2], -np.inf)
        k = c.argmax(0)
        score[t] = c[k, steps] + lp[t]
        back[t] = steps - k
    end = S - 1 if score[T - 1, S - 1] >= score[T - 1, S - 2] else S - 2
    if not np.isfinite(score[T - 1, end]):
        return ()
    best = [0.0] * len(idx)
    s = end
    for t in range(T - 1, -1, -1):
        if s % 2 == 1:
            best[s // 2] = max(best[s // 2], float(probs[t, ext[s]]))
        s = back[t, s] if t > 0 else s
    return tuple(best)


def beam_search(probs: np.ndarray, charset: str, beam_width: int = 5, top_n: int = 5,
                blank: int = 0, prune: float = 1e-4, all_char_probs: bool = False) -> list[Decoded]:
    """CTC prefix beam search; returns up to ``top_n`` readings, most probable first.

    Each prefix keeps P(ending in blank) and P(ending in a character), so "AA" needs a blank
    between the two A frames while "A" absorbs repeated A frames. Characters whose frame prob is
    under ``prune`` are not extended (speed; they cannot reach the top beams)."""
    T, C = probs.shape
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (1.0, 0.0)}  # prefix: (p_b, p_nb)
    live = probs >= prune
    live[:, blank] = False
    for t in range(T):
        row = probs[t].tolist()  # Python floats: scalar arithmetic on numpy values is far slower
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
        cands = np.flatnonzero(live[t]).tolist()
        for prefix, (pb, pnb) in beams.items():
            tot = pb + pnb
            e = nxt[prefix]
            e[0] += tot * row[blank]
            if prefix:
                e[1] += pnb * row[prefix[-1]]  # repeat collapses into the same character
            for k in cands:
                p = row[k]
                ext = prefix + (k,)
                e2 = nxt[ext]
                if prefix and k == prefix[-1]:
                    e2[1] += pb * p  # a repeated character needs a blank in between
                else:
                    e2[1] += tot * p
        ranked = sorted(nxt.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True)
        beams = {k: (v[0], v[1]) for k, v in ranked[:beam_width]}
    ranked_final = sorted(beams.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True)
    out = []
    for prefix, (pb, pnb) in ranked_final[:top_n]:
        if pb + pnb <= 0:  # impossible reading kept only to fill the beam
            continue
        text = "".join(_label_of(k, charset, blank) for k in prefix)
        # The Viterbi pass is most of the decode time: only the best reading needs it routinely;
        # callers wanting another candidate's per-character probs call char_probs_for.
        cps = char_probs_for(probs, text, charset, blank) if (not out or all_char_probs) else ()
        out.append(Decoded(text, float(pb + pnb), cps))
    return out
