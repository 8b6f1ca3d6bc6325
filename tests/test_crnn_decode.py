"""CTC decoding on hand-made probability matrices (blank = column 0)."""
from __future__ import annotations

import numpy as np
import pytest

from plateread.engines.crnn.decode import beam_search, char_probs_for, greedy_decode

CS = "AB"  # column 1 = A, column 2 = B


def mat(rows: list[list[float]]) -> np.ndarray:
    m = np.asarray(rows, np.float32)
    return m / m.sum(1, keepdims=True)


def test_greedy_merges_repeats_and_drops_blanks() -> None:
    m = mat([[0.1, 0.8, 0.1], [0.1, 0.9, 0.0], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    d = greedy_decode(m, CS)
    assert d.text == "AB"
    assert d.char_probs == pytest.approx((0.9, 0.8))


def test_repeated_char_needs_blank_between() -> None:
    m = mat([[0.0, 0.9, 0.1], [0.9, 0.1, 0.0], [0.0, 0.7, 0.3]])
    assert greedy_decode(m, CS).text == "AA"
    assert beam_search(m, CS, beam_width=5)[0].text == "AA"
    m2 = mat([[0.0, 0.9, 0.1], [0.0, 0.8, 0.2]])
    assert greedy_decode(m2, CS).text == "A"
    assert beam_search(m2, CS, beam_width=5)[0].text == "A"


def test_beam_sums_alignments_where_greedy_cannot() -> None:
    # best path is blank-blank (""), but "A" has more total mass over its alignments
    m = mat([[0.4, 0.35, 0.25], [0.4, 0.35, 0.25]])
    assert greedy_decode(m, CS).text == ""
    best = beam_search(m, CS, beam_width=5)
    # P("A") = 0.4*.35 + .35*.4 + .35*.35 = 0.4025 > P("") = 0.16
    assert best[0].text == "A"
    assert best[0].prob == pytest.approx(0.4025, abs=1e-4)


def test_beam_top_n_probabilities_sum_to_at_most_one() -> None:
    rng = np.random.default_rng(0)
    m = mat(rng.random((8, 3)).tolist())
    cands = beam_search(m, CS, beam_width=10, top_n=5)
    assert len({c.text for c in cands}) == len(cands)
    assert sum(c.prob for c in cands) <= 1.0 + 1e-6
    assert [c.prob for c in cands] == sorted((c.prob for c in cands), reverse=True)


def test_exact_probability_small_case() -> None:
    # two frames: enumerate all 9 paths and sum per collapsed label
    m = mat([[0.5, 0.3, 0.2], [0.2, 0.6, 0.2]])
    import itertools
    exact: dict[str, float] = {}
    for path in itertools.product(range(3), repeat=2):
        s, prev = "", 0
        for k in path:
            if k and k != prev:
                s += CS[k - 1]
            prev = k
        exact[s] = exact.get(s, 0) + float(m[0, path[0]] * m[1, path[1]])
    for c in beam_search(m, CS, beam_width=10, top_n=10, prune=0):
        assert c.prob == pytest.approx(exact[c.text], abs=1e-6)


def test_char_probs_from_best_alignment() -> None:
    m = mat([[0.1, 0.6, 0.3], [0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.1, 0.7], [0.6, 0.2, 0.2]])
    assert char_probs_for(m, "AB", CS) == pytest.approx((0.7, 0.7))
    assert beam_search(m, CS)[0].char_probs == pytest.approx((0.7, 0.7))
    assert char_probs_for(m, "", CS) == ()
