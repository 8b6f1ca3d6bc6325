"""benchmarks/validation.py: scoring rules, error causes and the detector tally on tiny generated
cases (fake engines); one quick run on the real validation crops where ../shared/data exists."""
from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import REPO, fake_plate_image, require_data
from fakes import FakeDetector, FakeRecognizer, encode_text
from plateread.types import Candidate, Recognition

sys.path.insert(0, str(REPO / "benchmarks"))
import validation as v  # noqa: E402


@pytest.mark.parametrize("read, label, ok", [
    ("AB-123", "AB123", True), ("AB123", "AB128", False),
    ("1234XBY", "1234?B?", True), ("1234BY", "1234?B?", False), ("1234XCY", "1234?B?", False),
])
def test_matches_scores_masked_labels_on_visible_positions(read, label, ok):
    assert v.matches(read, label) is ok


@pytest.mark.parametrize("read, label, cause", [
    ("R72LY", "72LY", "stray"), ("GAGGEDD", "GAGGED", "stray"), ("X1234AB?Y", "1234?B?", "stray"),
    ("EM0TI0N", "EMOTION", "confusion"), ("824B0J", "824BOJ", "confusion"), ("6814", "6714", "other"),
    ("1234BY", "1234?B?", "length"), ("", "AB123", "length"), ("AB12", "AB123", "length"),
    ("ALC998", "ACC998", "other"), ("B8O", "8B0", "confusion"),
])
def test_classify_names_the_cause(read, label, cause):
    assert v.classify(read, label) == cause


def test_score_photos_counts_hits_misses_false_and_width_bins():
    img = fake_plate_image("AB1", size=(200, 320), at=(60, 100), plate=(40, 120))  # box 100,60,220,100
    photos = [SimpleNamespace(key="s/a.jpg", image=img,
                              boxes=np.array([[100, 60, 220, 100], [10, 10, 25, 16]], np.float32)),
              SimpleNamespace(key="s/b.jpg", image=img, boxes=np.array([[0, 150, 30, 170]], np.float32))]
    tiles: list = []
    c = v.score_photos(FakeDetector(), photos, "s", tiles)
    assert (c["photos"], c["plates"], c["found"], c["false"]) == (2, 3, 1, 1)
    assert c["bins"] == {"<20": [0, 1], "20-40": [0, 1], "40-80": [0, 0], ">=80": [1, 1]}
    assert len(tiles) == len(c["misses"]) == 2 and c["misses"][0]["best_iou"] == 0.0
    r = v.det_figures(v.merge_det([c, c]))
    assert r["plates"] == 6 and r["recall"] == pytest.approx(1 / 3) and r["false_per_image"] == 0.5
    assert r["recall_by_width"]["40-80"] is None and r["missed"] == 4
    table = v.det_table({"s": r}, {"s": "full"})
    assert "| s | full | 4 | 6 | 33.3% | 0.50 | 0.0% (2) |" in table


def test_ocr_figures_and_cause_table():
    crops = []
    for text in ("AB123", "CD456", "EF789"):
        crop = np.full((30, 100, 3), 255, np.uint8)
        encode_text(crop, text)
        crops.append(crop)
    reads = FakeRecognizer().recognize(crops)  # score 0.8, candidates: text, text + "X"
    reads.append(Recognition("QQ1", 0.95, (Candidate("QQ1", 0.6), Candidate("QQ", 0.3))))
    ok, top, scores = v.judge(reads, ["AB123", "CD456X", "EF7?9", "QQ"])
    assert ok == [True, False, True, False] and top == [True, True, True, True]
    r = v.ocr_figures(ok, top, scores)
    assert r["exact"] == 0.5 and r["top_n"] == 1.0 and r["auroc"] == 0.25
    assert (r["above_0.9"], r["wrong_above_0.9"], r["wrong_share_above_0.9"]) == (1, 1, 1.0)
    errors = [{"source": "x", "label": "QQ", "read": "QQ1", "score": 0.95, "cause": v.classify("QQ1", "QQ")}]
    table = v.cause_table(errors, {"s": {"missed": 2, "missed_with_box_iou_0.3_0.5": 1}})
    assert "| missed (detector) | 2 | s 2 | 1 of them" in table
    assert "| stray (OCR) | 1 | x 1 | QQ → QQ1 0.95 |" in table
    assert v.spread({"a": [1, 2, 3], "b": [4]}, 3) == [1, 4, 2]


def test_quick_run_on_real_crops(tmp_path, capsys):
    data = require_data("uc3m-lp-crops", "br-crops")
    out = tmp_path / "v.json"
    assert v.main(["--data", str(data), "--parts", "ocr", "--limit", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| uc3m-lp-crops | 2 |" in text and "| all |" in text
    rows = json.loads(out.read_text())["ocr"]["sources"]
    assert rows["br-crops"]["n"] == 2 and 0 <= rows["all"]["exact"] <= 1


def test_reads_elsewhere_counts_reads_off_every_label_by_score():
    from plateread.types import Box, PlateRead

    def read(plate: str, score: float, box: tuple[int, int, int, int]) -> PlateRead:
        return PlateRead(plate=plate, score=score, box=Box(*box), detection_score=0.9)

    answers = {"s/a.jpg": [read("AB123", 0.95, (100, 60, 220, 100)),    # on the label: not counted
                           read("CAM01", 0.3, (0, 0, 80, 20)),           # a caption, unsure
                           read("CITROEN", 0.92, (300, 150, 380, 170))],  # a badge, confident
               "s/b.jpg": [read("X1", 0.6, (0, 150, 30, 170))]}          # IoU 1 with b's label
    photos = [SimpleNamespace(key=k, image=np.zeros((200, 400, 3), np.uint8),
                              boxes=np.array([[100, 60, 220, 100]] if k.endswith("a.jpg") else [[0, 150, 30, 170]],
                                             np.float32)) for k in answers]
    images = {id(p.image): p.key for p in photos}
    reader = SimpleNamespace(read=lambda image: SimpleNamespace(results=answers[images[id(image)]]))
    tiles: list = []
    counts, listed = v.reads_elsewhere(reader, photos, "s", tiles)
    assert counts == [2, 1, 1]  # bounds 0, 0.5, 0.9
    assert [r["plate"] for r in listed] == ["CAM01", "CITROEN"] and len(tiles) == 1
    table = v.reads_table({"s": {"photos": 2, "partial": False, "counts": counts}})
    assert "| s | full | 2 | 1.000 (2) | 0.500 (1) | 0.500 (1) |" in table


def test_score_e2e_counts_reads_candidates_boxes_and_widths():
    from plateread.types import Box, Candidate, PlateRead

    image = np.zeros((200, 400, 3), np.uint8)
    plates = [(Box(100, 60, 220, 100), "1234?BC"), (Box(10, 150, 40, 160), "AB123"), (Box(300, 10, 315, 15), "XY1")]
    reads = [PlateRead(plate="1234XBC", score=0.9, box=Box(102, 62, 218, 99)),                 # right (? = any)
             PlateRead(plate="A8123", score=0.4, box=Box(8, 148, 44, 163),                     # wrong, label in top-N
                       candidates=(Candidate("A8123", 0.4), Candidate("AB123", 0.3)))]
    reader = SimpleNamespace(read=lambda img: SimpleNamespace(results=reads))
    c = v.score_e2e(reader, [(image, plates)])
    assert (c["plates"], c["right"], c["top_n"], c["found"]) == (3, 1, 2, 2)
    assert c["by_width"] == {"<20": [0, 1], "20-40": [0, 1], "40-80": [0, 0], ">=80": [1, 1]}
