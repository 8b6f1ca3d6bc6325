import json
from pathlib import Path

from plateread.evaluation.dataset import LabelledPlate, Sample, load_index
from plateread.evaluation.metrics import score_image, score_plate, summarize
from plateread.text import normalize_plate
from plateread.types import Box, Candidate, ImageResult, PlateRead


def sample(*plates: LabelledPlate) -> Sample:
    return Sample(Path("x.jpg"), "x.jpg", "test", 100, 100, plates)


def read(text: str, box: Box, *alts: str) -> PlateRead:
    cands = (Candidate(text, 0.9),) + tuple(Candidate(a, 0.1) for a in alts)
    return PlateRead(text, 0.9, box, cands)


def result(*reads: PlateRead, ms: float = 10.0, error: str | None = None) -> ImageResult:
    return ImageResult("x.jpg", 100, 100, ms, reads, error)


BOX = Box(10, 10, 50, 30)


def test_normalisation_convention():
    assert normalize_plate("ab-123") == "AB123" == normalize_plate("AB 123")
    assert normalize_plate("O0I1") == "O0I1"  # no look-alike merging
    assert normalize_plate(None) == ""


def test_correct_read_needs_text_and_overlap():
    label = LabelledPlate("AB123", BOX)
    ok = score_image(sample(label), result(read("AB-123", Box(12, 12, 52, 32))))
    assert ok.plates[0].correct and ok.plates[0].detected and ok.false_reads == 0
    # right text, far away box: not a correct read, not detected, and a false read of nothing
    far = score_image(sample(label), result(read("AB123", Box(60, 60, 99, 99))))
    assert not far.plates[0].correct and far.plates[0].detected is False
    # IoU between 0.3 and 0.5 counts for the read but not for detection recall
    loose = score_image(sample(label), result(read("AB123", Box(10, 10, 90, 40))))
    assert 0.3 <= Box(10, 10, 90, 40).iou(BOX) < 0.5
    assert loose.plates[0].correct and loose.plates[0].detected is False


def test_top_n_false_reads_and_summary():
    label = LabelledPlate("AB123", BOX)
    outcomes = [
        score_image(sample(label), result(read("AB128", BOX, "AB123"), read("ZZZ9", Box(70, 70, 90, 80)))),
        score_image(sample(label), result(read("AB123", BOX), ms=30.0)),
        score_image(sample(LabelledPlate("CD456", None)), result(read("CD456", Box(0, 0, 99, 99)))),
        score_image(sample(label), result(error="corrupt image")),
    ]
    assert outcomes[0].plates[0].in_top_n and not outcomes[0].plates[0].correct
    assert outcomes[0].false_reads == 2  # the wrong read and the stray one
    m = summarize(outcomes)
    assert (m.images, m.plates, m.correct, m.top_n) == (4, 4, 2, 3)
    assert (m.boxed, m.detected) == (3, 2)
    assert m.false_reads == 2 and m.failed_images == 1
    assert m.median_ms == 10.0  # failed images do not count towards timing
    assert abs(m.accuracy - 0.5) < 1e-9


def test_boxes_without_text_count_only_detection():
    s = sample(LabelledPlate(None, BOX))
    o = score_image(s, result(read("XYZ", BOX), read("QQ1", Box(70, 70, 95, 90))))
    assert o.plates[0].detected and o.false_reads == 1
    m = summarize([o])
    assert m.plates == 0 and m.boxed == 1 and m.accuracy != m.accuracy  # nan: nothing to read


def test_load_index_filters_split_and_normalises(tmp_path):
    rows = [
        {"image": "images/a.jpg", "split": "test", "width": 10, "height": 10,
         "plates": [{"text": "ab-12", "box": [1, 2, 3, 4]}]},
        {"image": "images/b.jpg", "split": "train", "width": 10, "height": 10,
         "plates": [{"text": None, "box": None, "lines": 2}]},
    ]
    (tmp_path / "index.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    test = load_index(tmp_path, "test")
    assert len(test) == 1 and test[0].plates[0].text == "AB12" and test[0].plates[0].box == Box(1, 2, 4, 6)
    assert load_index(tmp_path)[1].plates[0].lines == 2


def test_score_plate_takes_the_matching_rule():
    """Validation's masked labels (`?` = a greyed-out character) go through the same scoring."""
    from plateread.training.data import matches

    label = LabelledPlate("AB1?3", Box(0, 0, 40, 10))
    reads = [read("AB123", Box(0, 0, 40, 10), "AB1Z3")]
    assert not score_plate(label, reads).correct           # the default rule is exact
    o = score_plate(label, reads, matches)
    assert o.correct and o.in_top_n and o.detected
    miss = score_plate(label, [read("AB12", Box(0, 0, 40, 10), "XB193")], matches)
    assert not miss.correct and not miss.in_top_n and miss.read == "AB12"
