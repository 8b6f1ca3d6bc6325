"""Model cards count every run behind a model: the --init chain through checkpoints and cards."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")  # plateread.training needs the [train] extra

from plateread.training.lineage import lineage, totals  # noqa: E402


def test_lineage_follows_init_through_checkpoints_and_a_card(tmp_path):
    base = tmp_path / "base.onnx"
    base.with_suffix(".json").write_text(json.dumps({"lineage": [
        {"command": "train base", "minutes": 60.0, "threads": 2, "data": "x"}]}))
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    ckpts = {
        a: {"command": f"python -m plateread.training.train_ocr --out A --init {base} --threads 1 "
                       "--extra mine", "elapsed": 1800.0},
        b: {"command": f"python -m plateread.training.train_ocr --out B --init {a} --threads 1", "elapsed": 600.0},
    }
    for path in ckpts:
        path.write_bytes(b"")  # only their names are read here; ``load`` stands for torch.load
    final = {"command": f"python -m plateread.training.train_ocr --out C --init {b} --sets none --extra mine",
             "elapsed": 300.0}
    runs = lineage(final, load=lambda p: ckpts[p])
    assert [r["minutes"] for r in runs] == [60.0, 30.0, 10.0, 5.0]
    assert [r["threads"] for r in runs] == [2, 1, 1, 2]         # --threads absent: the trainers' default
    assert runs[1]["data"] == "the built-in sets of its day + mine + synthetic"
    assert runs[3]["data"] == "none + mine + synthetic"
    assert totals(runs) == {"train_minutes_total": 105.0, "cpu_core_hours_total": round((120 + 30 + 10 + 10) / 60, 2),
                            "runs_not_recorded": 0}


def test_an_init_without_a_record_is_said_so_and_a_cycle_ends(tmp_path):
    runs = lineage({"command": "train_detector --init nowhere.onnx", "elapsed": 60.0}, load=lambda p: {})
    assert runs[0]["minutes"] is None and "not recorded" in runs[0]["command"]
    assert totals(runs)["runs_not_recorded"] == 1 and totals(runs)["train_minutes_total"] == 1.0
    loop = tmp_path / "loop.pt"
    ck = {"command": f"train_ocr --init {loop}", "elapsed": 60.0}
    loop.write_bytes(b"")
    assert len(lineage(ck, load=lambda p: ck)) == 2             # the repeated --init is not followed again
