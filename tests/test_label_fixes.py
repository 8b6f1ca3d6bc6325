"""Audited label fixes: applied to train and dev samples, never to test ones."""
from __future__ import annotations

import json

import pytest

from plateread.evaluation.dataset import label_fixes, load_index
from plateread.text import normalize_plate

from conftest import require_data


def _write_set(root, name: str, split: str, image: str, text: str):
    d = root / name
    d.mkdir()
    (d / "index.jsonl").write_text(json.dumps({"image": image, "split": split, "width": 10, "height": 10,
                                               "plates": [{"text": text, "box": None}]}) + "\n")
    return d


@pytest.mark.parametrize("split, expected", [("train", "FBZ9581"), ("dev", "FBZ9581"), ("test", "FZB9581")])
def test_fix_applies_to_train_and_dev_only(tmp_path, split, expected):
    d = _write_set(tmp_path, "openalpr-br", split, "images/FZB9581.jpg", "FZB9581")
    assert load_index(d)[0].plates[0].text == expected


def test_fix_needs_the_upstream_text_and_the_set(tmp_path):
    # another label on that image (the upstream set changed) or the same image name in another set
    a = _write_set(tmp_path, "openalpr-br", "train", "images/FZB9581.jpg", "ABC1234")
    (tmp_path / "other").mkdir()
    b = _write_set(tmp_path / "other", "my-set", "train", "images/FZB9581.jpg", "FZB9581")
    assert load_index(a)[0].plates[0].text == "ABC1234"
    assert load_index(b)[0].plates[0].text == "FZB9581"


def test_fixes_are_well_formed():
    fixes = label_fixes()
    assert fixes
    for rows in fixes.values():
        for upstream, fixed, why in rows.values():
            assert upstream != fixed and normalize_plate(fixed) == fixed and why


def test_every_fix_names_a_train_image_with_its_upstream_text():
    data = require_data(*label_fixes())
    for set_name, rows in label_fixes().items():
        raw = {}
        for line in (data / set_name / "index.jsonl").read_text().splitlines():
            row = json.loads(line)
            raw[row["image"]] = row
        for image, (upstream, fixed, _) in rows.items():
            row = raw[image]
            assert row["split"] != "test"
            assert [normalize_plate(p["text"]) for p in row["plates"]] == [upstream]
            assert [p.text for s in load_index(data / set_name, row["split"]) if s.name == image
                    for p in s.plates] == [fixed]
