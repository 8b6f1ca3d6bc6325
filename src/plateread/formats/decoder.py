"""Region-aware CTC decoding: the best reading that fits a plate layout, weighed against the best
reading at all.

A look-alike error (7 for Z, 0 for O) usually leaves the right character as the runner-up in the
frames that emit it, so the layout-fitting text keeps most of the CTC probability of the
unconstrained one. A vanity or foreign plate has no such near neighbour: forcing it into a layout
costs orders of magnitude. Comparing the two CTC probabilities (both summed over alignments)
tells these cases apart without rewriting strings.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..engines.crnn.decode import Decoded, _label_of, beam_search, char_probs_for
from .loader import Layout, Region, load_regions, resolve_regions

#: Default closeness factor: a layout-fitting reading wins while it keeps >= 1/20 of the
#: probability of the best reading. One confusable character typically costs a factor 1.1–10;
#: forcing a vanity plate into a layout costs 100s–1000s.
DEFAULT_MAX_RATIO = 20.0
DEFAULT_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class RegionDecision:
    """The decoder's reading of one plate and why.

    ``score``: the chosen text's share of the re-ranked candidate mass times its weakest
    character probability (same recipe as the CRNN recognizer's score). ``region_score``:
    P(region | text) under the layout priors (0 when the text fits no layout).
    ``candidates``: (text, renormalised score, region or None), best first."""

    text: str
    score: float
    region: str | None
    layout: str | None
    region_score: float
    unconstrained_text: str
    unconstrained_prob: float
    constrained_prob: float
    candidates: tuple[tuple[str, float, str | None], ...]
    char_probs: tuple[float, ...]
    constrained_text: str | None = None


class _Automaton:
    """The layouts of some regions compiled against one charset.

    Each layout is expanded to fixed-length position lists; identical lists from different
    layouts are merged. A prefix's state is a Python int bitset of the expansions it still fits:
    extending it by column k at position i is one AND with ``bits[i][k]``, which keeps the
    constrained beam search in the same cost class as the unconstrained one."""

    def __init__(self, layouts: Sequence[Layout], charset: str, blank: int) -> None:
        col = {c: (i if i < blank else i + 1) for i, c in enumerate(charset)}
        self.n_cols = len(charset) + 1
        self.layouts = tuple(layouts)
        exps: dict[tuple[frozenset[str], ...], list[int]] = {}
        for li, lay in enumerate(layouts):
            for e in lay.expansions():
                if all(any(c in col for c in s) for s in e):  # else unwritable in this charset
                    exps.setdefault(e, []).append(li)
        self.exp_layouts = [tuple(v) for v in exps.values()]
        self.max_len = max((len(e) for e in exps), default=0)
        self.bits = [[0] * self.n_cols for _ in range(self.max_len)]
        self.len_bits = [0] * (self.max_len + 1)
        for j, e in enumerate(exps):
            b = 1 << j
            self.len_bits[len(e)] |= b
            for pos, chars in enumerate(e):
                row = self.bits[pos]
                for c in chars:
                    if c in col:
                        row[col[c]] |= b
        self.all = (1 << len(exps)) - 1
        used = np.zeros(self.n_cols, bool)
        for row in self.bits:
            used |= np.array([x != 0 for x in row])
        used[blank] = False
        digit = np.zeros(self.n_cols, bool)
        digit[[k for c, k in col.items() if c.isdigit()]] = True
        self.kinds = [k for k in (np.flatnonzero(used & digit), np.flatnonzero(used & ~digit))
                      if len(k)]
        self.col = col

    def fits(self, text: str) -> list[int]:
        """Indices of the layouts that accept ``text`` (empty if none)."""
        alive = self.all
        if len(text) > self.max_len or not text:
            return []
        for pos, ch in enumerate(text):
            k = self.col.get(ch)
            if k is None:
                return []
            alive &= self.bits[pos][k]
            if not alive:
                return []
        alive &= self.len_bits[len(text)]
        out: set[int] = set()
        while alive:
            low = alive & -alive
            out.update(self.exp_layouts[low.bit_length() - 1])
            alive ^= low
        return sorted(out)


@lru_cache(maxsize=1)
def format_classifier() -> "RegionDecoder":
    """One shared decoder over every region, for telling which formats a text fits."""
    return RegionDecoder("auto")


@lru_cache(maxsize=32)
def _automaton(layouts: tuple[Layout, ...], charset: str, blank: int) -> _Automaton:
    return _Automaton(layouts, charset, blank)


class RegionDecoder:
    """Decodes CTC probability matrices with national plate formats.

    ``regions``: "auto" (every region shipped or loaded), one code ("br": only its layouts), a
    list of codes/aliases/groups (["br", "us"], "eu"), or None (no correction: readings are only
    tagged with a region when they already fit). ``max_ratio``: a layout-fitting text is chosen
    when P(fitting) >= P(best) / max_ratio. ``beam_width``: prefix beams kept in both searches
    (the constrained one also keeps up to beam_width/2 complete layouts beyond them).
    ``max_cands``: characters per frame the constrained search tries, per kind (digits /
    others), above ``prune``."""

    def __init__(self, regions: str | Sequence[str] | None = "auto", *,
                 formats_dir: str | Path | Sequence[str | Path] | None = None,
                 max_ratio: float = DEFAULT_MAX_RATIO, beam_width: int = 8, top_n: int = 5,
                 prune: float = 1e-4, max_cands: int = 4) -> None:
        if max_ratio < 1:
            raise ValueError("max_ratio must be >= 1")
        self.all_regions: dict[str, Region] = load_regions(formats_dir)
        self.regions = resolve_regions(regions, self.all_regions)
        self.max_ratio = 1.0 if regions is None else float(max_ratio)
        self.beam_width, self.top_n, self.prune = max(1, beam_width), max(1, top_n), prune
        self.max_cands = max(1, max_cands)
        self.layouts: tuple[Layout, ...] = tuple(
            lay for code in self.regions for lay in self.all_regions[code].layouts)
        # per-layout likelihood weight: P(layout | region) * P(text | layout) = w/W_r / size
        self._lik: dict[int, float] = {}
        self._autos: dict[tuple[str, int], _Automaton] = {}
        for code in self.regions:
            r = self.all_regions[code]
            total = sum(lay.weight for lay in r.layouts)
            for lay in r.layouts:
                self._lik[id(lay)] = r.prior * lay.weight / total / lay.size

    def __repr__(self) -> str:
        return (f"RegionDecoder(regions={self.regions}, layouts={len(self.layouts)}, "
                f"max_ratio={self.max_ratio})")

    def classify(self, text: str, charset: str | None = None, blank: int = 0
                 ) -> tuple[str | None, str | None, float]:
        """(region, layout, P(region | text)) for a text, or (None, None, 0.0) if it fits no
        layout of the chosen regions. Region posterior: prior(r) * sum over r's fitting layouts
        of weight share / layout size, normalised over regions."""
        return self._classify(self._automaton(charset or DEFAULT_CHARSET, blank), text)

    def _automaton(self, charset: str, blank: int) -> _Automaton:
        auto = self._autos.get((charset, blank))
        if auto is None:  # shared through the module cache by decoders of the same regions
            auto = self._autos[(charset, blank)] = _automaton(self.layouts, charset, blank)
        return auto

    def _classify(self, auto: _Automaton, text: str) -> tuple[str | None, str | None, float]:
        hits = auto.fits(text)
        if not hits:
            return None, None, 0.0
        per_region: dict[str, float] = {}
        best: dict[str, tuple[float, str]] = {}
        for li in hits:
            # this decoder's own layout at that index: the cached automaton may have been built
            # from an equal tuple of other Layout objects (two threads loading the formats at once)
            lay = self.layouts[li]
            w = self._lik[id(lay)]
            per_region[lay.region] = per_region.get(lay.region, 0.0) + w
            if w > best.get(lay.region, (-1.0, ""))[0]:
                best[lay.region] = (w, lay.name)
        total = sum(per_region.values())
        region = max(per_region, key=lambda r: (per_region[r], -self.regions.index(r)))
        return region, best[region][1], per_region[region] / total

    def _constrained(self, probs: np.ndarray, auto: _Automaton, blank: int
                     ) -> list[tuple[tuple[int, ...], float]]:
        """Prefix beam search over label sequences the automaton allows; complete layouts only.

        Same recurrences as decode.beam_search (P(ends in blank), P(ends in char)), so the
        resulting P(text) is a sum over alignments comparable with the unconstrained one."""
        if auto.max_len == 0:
            return []
        # Per frame, at most max_cands digits and max_cands other characters: the look-alike a
        # layout needs is near the top of its own kind (a layout mostly asks "letter or digit"),
        # and the noise tail is what makes a Python beam search slow.
        tops = []
        for cols in auto.kinds:
            sub = probs[:, cols]
            kk = min(self.max_cands, len(cols))
            top = np.argpartition(-sub, kk - 1, axis=1)[:, :kk]
            tops.append((cols[top], np.take_along_axis(sub, top, 1) >= self.prune))
        cand_rows = [sum((c[t][k[t]].tolist() for c, k in tops), []) for t in range(len(probs))]
        rows = probs.tolist()
        bits, max_len, len_bits = auto.bits, auto.max_len, auto.len_bits
        width = self.beam_width
        beams: dict[tuple[int, ...], tuple[float, float, int]] = {(): (1.0, 0.0, auto.all)}
        for row, cands in zip(rows, cand_rows):
            pblank = row[blank]
            nxt: dict[tuple[int, ...], list] = {}
            for prefix, (pb, pnb, alive) in beams.items():
                tot = pb + pnb
                e = nxt.get(prefix)
                if e is None:
                    e = nxt[prefix] = [0.0, 0.0, alive]
                e[0] += tot * pblank
                if prefix:
                    e[1] += pnb * row[prefix[-1]]
                pos = len(prefix)
                if pos >= max_len or not cands:
                    continue
                bpos = bits[pos]
                last = prefix[-1] if prefix else -1
                for k in cands:
                    na = alive & bpos[k]
                    if not na:
                        continue
                    ext = prefix + (k,)
                    e2 = nxt.get(ext)
                    if e2 is None:
                        e2 = nxt[ext] = [0.0, 0.0, na]
                    e2[1] += (pb if k == last else tot) * row[k]
            if len(nxt) > width:
                ranked = sorted(nxt.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True)
                # Complete layouts get reserved seats: near the end, prefixes that can no longer
                # complete (one deletion away from the best reading) would crowd them out.
                done = [kv for kv in ranked[width:]
                        if kv[1][2] & len_bits[len(kv[0])]][:width // 2]
                beams = {p: (v[0], v[1], v[2]) for p, v in ranked[:width] + done}
            else:
                beams = {p: (v[0], v[1], v[2]) for p, v in nxt.items()}
        done = [(p, pb + pnb) for p, (pb, pnb, alive) in beams.items()
                if p and alive & auto.len_bits[len(p)] and pb + pnb > 0]
        return sorted(done, key=lambda x: x[1], reverse=True)

    def decode(self, probs: np.ndarray, charset: str, blank: int = 0, *,
               unconstrained: Sequence[Decoded] | None = None) -> RegionDecision:
        """Reads one plate's [T, C] CTC probabilities (rows sum to 1).

        ``unconstrained``: the ``decode.beam_search`` readings of the same matrix if the caller
        already has them (the CRNN recognizer does), which saves most of the time."""
        probs = np.asarray(probs, dtype=np.float64)
        auto = self._automaton(charset, blank)
        free: list[Decoded] = list(unconstrained) if unconstrained is not None else beam_search(
            probs, charset, self.beam_width, self.top_n, blank, self.prune)
        fitted = self._constrained(probs, auto, blank)
        cands: dict[str, float] = {d.text: d.prob for d in free}
        for prefix, p in fitted[:self.top_n]:
            t = "".join(_label_of(k, charset, blank) for k in prefix)
            cands[t] = max(cands.get(t, 0.0), p)
        u_text, u_prob = (free[0].text, free[0].prob) if free else ("", 0.0)
        c_text = "".join(_label_of(k, charset, blank) for k in fitted[0][0]) if fitted else None
        c_prob = fitted[0][1] if fitted else 0.0
        # The decision rule as a re-ranking: fitting texts are worth max_ratio times their
        # probability, so the top is the constrained best iff P_c >= P_u / max_ratio.
        tagged = []
        for t, p in cands.items():
            region, layout, rscore = self._classify(auto, t) if t else (None, None, 0.0)
            tagged.append((p * (self.max_ratio if region else 1.0), t, p, region, layout, rscore))
        tagged.sort(key=lambda x: (x[0], x[3] is not None), reverse=True)
        total = sum(x[0] for x in tagged)
        if not tagged or not tagged[0][1] or total <= 0:
            return RegionDecision("", 0.0, None, None, 0.0, u_text, u_prob, c_prob,
                                  tuple((x[1], x[0] / total if total else 0.0, x[3])
                                        for x in tagged if x[1]), (), c_text)
        _, text, _, region, layout, rscore = tagged[0]
        cps = next((d.char_probs for d in free if d.text == text and d.char_probs), None)
        if cps is None:
            cps = char_probs_for(probs, text, charset, blank)
        share = tagged[0][0] / total
        return RegionDecision(
            text=text, score=float(share * (min(cps) if cps else 0.0)), region=region,
            layout=layout, region_score=float(rscore), unconstrained_text=u_text,
            unconstrained_prob=float(u_prob), constrained_prob=float(c_prob),
            candidates=tuple((x[1], float(x[0] / total), x[3]) for x in tagged if x[1]),
            char_probs=tuple(float(c) for c in cps), constrained_text=c_text)
