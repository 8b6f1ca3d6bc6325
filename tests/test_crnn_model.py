"""The shipped CRNN model through CrnnRecognizer, and torch-vs-ONNX export parity."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plateread.engines.crnn.recognizer import DEFAULT_MODEL, CrnnRecognizer
from plateread.training.render import PlateRenderer, find_fonts

FONTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fonts"
have_model = pytest.mark.skipif(not DEFAULT_MODEL.is_file(),
                                reason=f"no trained model at {DEFAULT_MODEL} (train + export it)")
have_fonts = pytest.mark.skipif(not find_fonts(FONTS), reason=f"no fonts in {FONTS}")


@pytest.fixture(scope="module")
def recognizer() -> CrnnRecognizer:
    return CrnnRecognizer(threads=1)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CRNN model not found"):
        CrnnRecognizer(ocr_model=str(tmp_path / "nope.onnx"))


@have_model
def test_metadata_and_size() -> None:
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert meta["blank"] == 0 and len(set(meta["charset"])) == len(meta["charset"])
    assert DEFAULT_MODEL.stat().st_size <= 10_000_000  # issue 10: each model at most 10 MB


@have_model
@have_fonts
@pytest.mark.parametrize("layout,need", [("eu", 4), ("br", 4), ("us", 3)])
def test_reads_rendered_plates(recognizer: CrnnRecognizer, layout: str, need: int) -> None:
    ren = PlateRenderer(FONTS, seed=2024)
    plates = [ren.render(layout, decorate=False) for _ in range(5)]
    reads = recognizer.recognize([p.image for p in plates])
    hits = sum(r.text == p.text for r, p in zip(reads, plates))
    assert hits >= need, [(p.text, r.text) for r, p in zip(reads, plates)]
    for r in reads:
        assert 0.0 <= r.score <= 1.0 and len(r.char_scores) == len(r.text)
        assert r.candidates and r.candidates[0].plate == r.text


@have_model
@have_fonts
def test_reads_two_line_plates_top_then_bottom(recognizer: CrnnRecognizer) -> None:
    ren = PlateRenderer(FONTS, seed=7)
    plates = [ren.render(layout, decorate=False) for layout in ("moto2", "in2", "mercosur2", "moto2", "in2")]
    reads = recognizer.recognize([p.image for p in plates])
    hits = sum(r.text == p.text for r, p in zip(reads, plates))
    assert hits >= 3, [(p.text, r.text) for r, p in zip(reads, plates)]


@have_model
def test_probs_api(recognizer: CrnnRecognizer) -> None:
    crops = [np.full((40, 120, 3), 200, np.uint8), np.zeros((30, 30), np.uint8)]
    fps = recognizer.recognize_probs(crops)
    assert len(fps) == 2
    for fp in fps:
        assert fp.probs.shape[1] == len(fp.charset) + 1
        np.testing.assert_allclose(fp.probs.sum(1), 1.0, atol=1e-3)


def test_torch_onnx_parity(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from plateread.training.export_ocr import export
    from plateread.training.model import CRNN, DEFAULT_CHARSET

    torch.manual_seed(0)
    model = CRNN(len(DEFAULT_CHARSET) + 1)
    model.eval()
    ckpt = tmp_path / "m.pt"
    torch.save({"model": model.state_dict(), "charset": DEFAULT_CHARSET, "step": 0, "elapsed": 0.0,
                "config": {"hidden": 96, "height": 64, "width": 192}}, ckpt)
    export(ckpt, tmp_path / "ocr.onnx")
    rec = CrnnRecognizer(ocr_model=str(tmp_path / "ocr.onnx"))
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (50, 150, 3), dtype=np.uint8) for _ in range(3)]
    got = np.stack([fp.probs for fp in rec.recognize_probs(crops)])
    x = torch.from_numpy(np.stack([rec.preprocess(c) for c in crops]))
    with torch.no_grad():
        ref = model(x).exp().numpy()
    assert np.abs(got - ref).max() < 1e-4


@pytest.mark.parametrize("value", [None, "", "none", " OFF ", "None"])
def test_off_values_switch_off_the_second_model_and_formats(value):
    from plateread.engines.crnn.recognizer import CrnnRecognizer
    from plateread.registry import is_off

    assert is_off(value)
    rec = CrnnRecognizer(second_model=value, region=value)
    assert rec.second is None and rec.region_decoder is None


def test_a_path_or_region_is_not_off():
    from plateread.registry import is_off

    assert not is_off("models/ocr.onnx") and not is_off(["eu"]) and not is_off("auto")
