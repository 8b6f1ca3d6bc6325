"""Plate-format library and region-constrained CTC decoding, on hand-made probability tables."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plateread.engines.crnn.decode import beam_search
from plateread.formats import (ENV_VAR, FormatError, RegionDecoder, load_regions, parse_pattern,
                               resolve_regions)
from plateread.formats.loader import BUILTIN_DIR, LETTERS

CS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
REGIONS = load_regions()


def ctc(chars: list[str | dict[str, float]], blank_p: float = 0.02) -> np.ndarray:
    """A CTC matrix with one frame per character and a blank frame around each.

    A str is a sure character (0.97); a dict gives its distribution. Per character frame,
    ``blank_p`` goes to the blank and what is left is spread over the other characters, so
    every text has some (small) probability, as with a real softmax."""
    C = len(CS) + 1
    rows = [np.r_[1.0 - 1e-3, np.full(C - 1, 1e-3 / (C - 1))]]
    for ch in chars:
        d = {ch: 0.97} if isinstance(ch, str) else ch
        row = np.zeros(C)
        for c, p in d.items():
            row[CS.index(c) + 1] = p
        row[0] = blank_p
        rest = 1.0 - row.sum()
        free = row == 0
        row[free] = max(rest, 0.0) / free.sum()
        rows += [row / row.sum(), rows[0]]
    return np.asarray(rows)


# ---- the format library ------------------------------------------------------------------

def test_every_shipped_file_loads_and_has_examples() -> None:
    files = sorted(BUILTIN_DIR.glob("*.toml"))
    assert len(files) == len(REGIONS) >= 29
    for code in ("us", "ca", "mx", "br", "ar", "gb", "ie", "sk", "cz", "de", "pl", "at", "no",
                 "nl", "be", "fr", "it", "es", "pt", "ro", "hu", "dk", "se", "fi", "ch", "in",
                 "au", "ru", "ua"):
        assert code in REGIONS


@pytest.mark.parametrize("code", sorted(REGIONS))
def test_region_examples(code: str) -> None:
    region = REGIONS[code]
    assert region.layouts and region.examples_invalid, f"{code}: needs layouts and invalid examples"
    for lay in region.layouts:
        assert lay.examples_valid, f"{code}/{lay.name}: no valid example"
        for ex in lay.examples_valid:
            assert lay.matches(ex), f"{code}/{lay.name} should accept {ex}"
        for ex in lay.examples_invalid:
            assert not lay.matches(ex), f"{code}/{lay.name} should reject {ex}"
    for ex in region.examples_invalid:
        assert not region.matches(ex), f"{code} should reject {ex}: {region.matches(ex)}"


@pytest.mark.parametrize("code", sorted(REGIONS))
def test_automaton_agrees_with_regex(code: str) -> None:
    """The decoder's compiled automaton and the loader's regex are two readings of one pattern."""
    dec = RegionDecoder(code)
    region = REGIONS[code]
    samples = [e for lay in region.layouts for e in lay.examples_valid + lay.examples_invalid]
    for text in samples + list(region.examples_invalid):
        got = dec.classify(text, CS)[0]
        assert (got == code) == bool(region.matches(text)), text


def test_pattern_parsing() -> None:
    t = parse_pattern("LL N{1,3} [A-HJ-NP-Z]? \"E\" \\H 9 A")
    assert [(len(x.chars), x.lo, x.hi) for x in t] == [
        (26, 1, 1), (26, 1, 1), (10, 1, 3), (24, 0, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1), (36, 1, 1)]
    assert t[3].chars == frozenset(LETTERS) - {"I", "O"}
    assert t[4].chars == {"E"} and t[5].chars == {"H"} and t[6].chars == {"9"}
    assert parse_pattern("[^IOQ0-9]")[0].chars == frozenset(LETTERS) - {"I", "O", "Q"}
    quoted = parse_pattern("'BH'{2}")  # a repetition applies to the last character only
    assert [(sorted(x.chars), x.lo, x.hi) for x in quoted] == [(["B"], 1, 1), (["H"], 2, 2)]
    assert parse_pattern("LLL-NNNN") == parse_pattern("LLL NNNN")  # separators are cosmetic
    for bad in ("LLC", "[A-", "N{3,1}", "N{x}", "", "\"\"", "[Z-A]"):
        with pytest.raises(FormatError):
            parse_pattern(bad)


def test_layout_expansions_respect_length_limits() -> None:
    de = REGIONS["de"].layouts[0]
    lengths = {len(e) for e in de.expansions()}
    assert min(lengths) == 3 and max(lengths) == 8
    assert de.matches("BAB1234") and not de.matches("BERAB12345")


def test_region_names_aliases_groups_and_errors() -> None:
    assert resolve_regions("uk", REGIONS) == ["gb"]
    assert resolve_regions("BR, us", REGIONS) == ["br", "us"]
    eu = resolve_regions("eu", REGIONS)
    assert "de" in eu and "fr" in eu and "gb" not in eu and "us" not in eu
    assert resolve_regions("auto", REGIONS) == list(REGIONS)
    with pytest.raises(ValueError, match="known regions: .*br"):
        RegionDecoder("xx")
    with pytest.raises(ValueError, match="unknown region 'atlantis'"):
        RegionDecoder(["br", "atlantis"])


def test_user_formats_dir_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fleet.toml").write_text(
        'code = "fleet"\nname = "Our fleet"\nexamples_invalid = ["AB1"]\n'
        '[[layouts]]\nname = "vans"\npattern = "\\"VAN\\" NNN"\nexamples_valid = ["VAN123"]\n')
    (tmp_path / "br_extra.toml").write_text(
        'code = "br"\nextend = true\n[[layouts]]\nname = "diplomatic"\npattern = "\\"CD\\" NNNN"\n')
    regions = load_regions(tmp_path)
    assert "fleet" in regions and len(regions["br"].layouts) == len(REGIONS["br"].layouts) + 1
    assert "fleet" not in load_regions()  # built-ins unchanged
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    dec = RegionDecoder("fleet")
    r = dec.decode(ctc(["V", "A", "N", "1", {"2": 0.4, "Z": 0.55}, "3"]), CS)
    assert (r.text, r.region, r.layout) == ("VAN123", "fleet", "vans")
    with pytest.raises(FormatError):
        load_regions(tmp_path / "missing")


# ---- constrained decoding ----------------------------------------------------------------

def test_z7_fixed_to_letter() -> None:
    m = ctc(["L", "R", "6", "9", "X", "Y", {"7": 0.55, "Z": 0.43}])
    r = RegionDecoder("gb").decode(m, CS)
    assert r.unconstrained_text == "LR69XY7"
    assert (r.text, r.region, r.layout) == ("LR69XYZ", "gb", "current")
    assert r.constrained_prob == pytest.approx(r.unconstrained_prob * 0.43 / 0.55, rel=0.05)
    assert r.region_score > 0.9 and 0 < r.score <= 1
    assert r.char_probs[-1] == pytest.approx(0.43)
    assert r.candidates[0][:1] == ("LR69XYZ",) and r.candidates[0][2] == "gb"
    assert abs(sum(c[1] for c in r.candidates) - 1.0) < 1e-6


def test_constrained_prob_is_the_ctc_probability() -> None:
    m = ctc(["L", "R", "6", "9", "X", "Y", {"7": 0.55, "Z": 0.43}])
    ref = {d.text: d.prob for d in beam_search(m, CS, beam_width=16, top_n=16)}
    r = RegionDecoder("gb").decode(m, CS)
    assert r.constrained_prob == pytest.approx(ref["LR69XYZ"], rel=1e-6)
    assert r.unconstrained_prob == pytest.approx(ref["LR69XY7"], rel=1e-6)


def test_l_e_vowel_where_spain_needs_a_consonant() -> None:
    m = ctc(["1", "2", "3", "4", "B", {"E": 0.6, "L": 0.38}, "K"])
    r = RegionDecoder("es").decode(m, CS)
    assert r.unconstrained_text == "1234BEK"
    assert (r.text, r.region, r.layout) == ("1234BLK", "es", "current")


def test_o0_letter_in_a_digit_position() -> None:
    m = ctc(["A", "B", "1", {"O": 0.6, "0": 0.38}, "3", "C", "D"])
    r = RegionDecoder("it").decode(m, CS)
    assert (r.unconstrained_text, r.text, r.region) == ("AB1O3CD", "AB103CD", "it")


def test_vanity_plate_stays_as_read() -> None:
    m = ctc(list("GWAGEN"))
    for spec in ("de", "eu", "auto"):
        r = RegionDecoder(spec).decode(m, CS)
        assert r.text == "GWAGEN", spec
    r = RegionDecoder("de").decode(m, CS)
    assert r.region is None and r.region_score == 0.0
    assert r.constrained_prob < r.unconstrained_prob / 100  # the forced reading was far off
    # only an absurd closeness factor forces it into a German layout
    forced = RegionDecoder("de", max_ratio=1e9).decode(m, CS)
    assert forced.region == "de" and forced.text != "GWAGEN"


def test_two_line_plate_is_top_then_bottom() -> None:
    # Brazilian motorcycle: "ABC" over "1D23"; the CRNN emits row 0 frames then row 1 frames
    top = ctc(["A", "B", "C"])
    bottom = ctc([{"I": 0.6, "1": 0.38}, "D", "2", "3"])
    r = RegionDecoder("br").decode(np.vstack([top, bottom]), CS)
    assert r.unconstrained_text == "ABCID23"
    assert (r.text, r.region, r.layout) == ("ABC1D23", "br", "mercosur")


def test_region_list_prefers_its_regions() -> None:
    m = ctc(["A", "B", "C", "1", {"D": 0.52, "0": 0.45}, "2", "3"])
    auto = RegionDecoder("auto").decode(m, CS)
    assert (auto.text, auto.region) == ("ABC1D23", "br")
    na = RegionDecoder(["us", "ca"]).decode(m, CS)
    assert (na.text, na.region) == ("ABC1023", "us")
    assert RegionDecoder(["br", "us"]).decode(m, CS).text == "ABC1D23"


def test_ambiguous_region_score_is_shared() -> None:
    r = RegionDecoder(["br", "us"]).decode(ctc(list("ABC1234")), CS)
    assert r.text == "ABC1234" and r.region in ("br", "us")
    assert 0.5 <= r.region_score < 0.99


def test_no_region_only_tags() -> None:
    m = ctc(["L", "R", "6", "9", "X", "Y", {"7": 0.55, "Z": 0.43}])
    r = RegionDecoder(None).decode(m, CS)
    assert r.text == "LR69XY7" and r.region is None
    clean = RegionDecoder(None).decode(ctc(list("LR69XYZ")), CS)
    assert clean.text == "LR69XYZ" and clean.region == "gb"


def test_empty_and_blank_matrices() -> None:
    C = len(CS) + 1
    m = np.full((20, C), 1e-6)
    m[:, 0] = 1.0
    m /= m.sum(1, keepdims=True)
    r = RegionDecoder("br").decode(m, CS)
    assert r.text == "" and r.score == 0.0 and r.region is None


def test_precomputed_unconstrained_beams_give_the_same_decision() -> None:
    m = ctc(["L", "R", "6", "9", "X", "Y", {"7": 0.55, "Z": 0.43}])
    dec = RegionDecoder("gb")
    free = beam_search(m, CS, dec.beam_width, dec.top_n)
    assert dec.decode(m, CS, unconstrained=free) == dec.decode(m, CS)


def test_other_blank_index() -> None:
    m = ctc(["L", "R", "6", "9", "X", "Y", {"7": 0.55, "Z": 0.43}])
    moved = np.roll(m, -1, axis=1)  # blank becomes the last column
    r = RegionDecoder("gb").decode(moved, CS, blank=len(CS))
    assert r.text == "LR69XYZ"


def test_decoders_with_equal_but_distinct_layouts_share_the_automaton_cache():
    """Two threads loading the formats at once (cameras building their readers together) can get
    equal but distinct Layout objects; the module-wide automaton cache then hands one decoder an
    automaton built from the other's layouts. That must not matter (it raised KeyError)."""
    from plateread.formats import loader

    first = RegionDecoder("nl")
    loader._load.cache_clear()             # as if a second thread loaded the files concurrently
    second = RegionDecoder("nl")
    assert second.layouts == first.layouts and second.layouts[0] is not first.layouts[0]
    assert first.classify("XSZB23")[0] == "nl"
    assert second.classify("XSZB23")[0] == "nl"
