"""The classic engine (tutorial locator + Tesseract) on scenes drawn in tests/drawing.py."""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from drawing import cluttered_scene, draw_plate, draw_sign, paste  # noqa: E402

import plateread  # noqa: E402
from plateread.debug import DebugSink  # noqa: E402
from plateread.engines.classic import locator  # noqa: E402
from plateread.engines.classic.locator import ClassicDetector  # noqa: E402
from plateread.engines.classic.tesseract import (  # noqa: E402
    TesseractRecognizer, clear_border_blobs, find_tessdata, threshold_roi,
)
from plateread.registry import EngineError  # noqa: E402
from plateread.types import Box  # noqa: E402

TEXT = "KX7B42"
#: The scale the tutorial's fixed kernels work at: ~18 px capitals, a condensed font, tight margins,
#: so the six-character text block has aspect ratio ~4.5 and the plate ~4.1.
PLATE = dict(char_height=18, stretch=0.9, margin=(6, 3))


def _tesseract_ready() -> bool:
    try:
        import tesserocr  # noqa: F401

        find_tessdata()
    except (ImportError, RuntimeError):
        return False
    return True


needs_tesseract = pytest.mark.skipif(
    not _tesseract_ready(),
    reason="needs tesserocr and eng.traineddata (pip install plateread[classic]; apt-get install tesseract-ocr-eng)",
)


@pytest.fixture(scope="module")
def recognizer():
    if not _tesseract_ready():
        pytest.skip("tesserocr or eng.traineddata not installed")
    rec = TesseractRecognizer()
    yield rec
    rec.close()


def scene(seed: int = 0, text: str = TEXT, **plate) -> tuple[np.ndarray, Box]:
    return cluttered_scene(draw_plate(text, **{**PLATE, **plate}), seed=seed)


def gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def rect_box(contour: np.ndarray) -> Box:
    return Box.from_xywh(*cv2.boundingRect(contour))


# --- locator stages ---------------------------------------------------------------------------

def test_blackhat_lights_up_dark_characters_on_a_light_plate():
    plate = gray(draw_plate(TEXT, **PLATE))
    ink = plate < 128
    black = locator.blackhat(cv2.copyMakeBorder(plate, 10, 10, 10, 10, cv2.BORDER_REPLICATE))[10:-10, 10:-10]
    assert black[ink].mean() > 100
    assert black[~ink].mean() < 30


def test_light_mask_covers_the_plate_but_not_the_dark_surround():
    image, box = scene()
    mask = locator.light_mask(gray(image))
    plate = mask[box.ymin:box.ymax, box.xmin:box.xmax]
    assert (plate > 0).mean() > 0.6  # the characters themselves are holes in it
    surround = mask[box.ymin - 20:box.ymin - 5, box.xmin:box.xmax]
    assert (surround == 0).all()


def test_gradient_is_uint8_full_range_and_zero_on_a_flat_image():
    image, _ = scene()
    grad = locator.gradient_x(locator.blackhat(gray(image)))
    assert grad.dtype == np.uint8 and grad.min() == 0 and grad.max() == 255
    flat = np.full((50, 80), 128, np.uint8)
    assert not locator.gradient_x(flat).any()
    assert ClassicDetector().detect(cv2.cvtColor(flat, cv2.COLOR_GRAY2BGR)) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_largest_candidate_lands_on_the_plate(seed):
    image, box = scene(seed)
    contours = ClassicDetector().candidates(gray(image))
    assert rect_box(contours[0]).iou(box) >= 0.5


def test_detection_box_crop_and_score():
    image, box = scene()
    (det,) = ClassicDetector().detect(image)
    assert det.box.iou(box) >= 0.5
    assert 4.0 <= det.box.width / det.box.height <= 5.0
    assert det.crop.shape == (det.box.height, det.box.width, 3)
    assert np.array_equal(det.crop, image[det.box.ymin:det.box.ymax, det.box.xmin:det.box.xmax])
    assert 0.0 < det.score <= 1.0


def test_grayscale_input_gives_the_same_detection():
    image, _ = scene()
    (a,), (b,) = ClassicDetector().detect(image), ClassicDetector().detect(gray(image))
    assert a.box == b.box and b.crop.shape[2] == 3


# --- pruning ----------------------------------------------------------------------------------

def sign_and_plate(seed: int = 0) -> tuple[np.ndarray, Box, Box]:
    """A plate plus a bigger three-line sign, whose text block is square-ish (aspect ~1.5)."""
    image, box = cluttered_scene(draw_plate(TEXT, **PLATE), seed=seed, at=(380, 300))
    sign = paste(image, draw_sign(["ABC123", "XYZ789", "PQR456"], char_height=18, stretch=0.9), (60, 60))
    return image, box, sign


def test_aspect_filter_rejects_the_square_ish_sign_and_takes_the_plate():
    image, box, sign = sign_and_plate()
    first = ClassicDetector().candidates(gray(image))[0]
    assert rect_box(first).iou(sign) >= 0.5  # the sign is the largest blob ...
    (det,) = ClassicDetector().detect(image)
    assert det.box.iou(box) >= 0.5  # ... but the aspect test passes over it


def test_only_the_first_qualifying_blob_is_returned():
    image, box, sign = sign_and_plate()
    (det,) = ClassicDetector(min_ar=1.0, max_ar=5.0).detect(image)
    assert det.box.iou(sign) >= 0.5  # largest qualifying wins; the plate is never reported


def test_min_ar_and_max_ar_are_honoured():
    image, box = scene()
    assert ClassicDetector(min_ar=4.0, max_ar=5.0).detect(image)
    assert ClassicDetector(min_ar=3.0, max_ar=4.0).detect(image) == []
    assert ClassicDetector(min_ar=5.0, max_ar=6.0).detect(image) == []


def test_keep_limits_the_candidates_examined():
    image, box, sign = sign_and_plate()
    assert len(ClassicDetector(keep=1).candidates(gray(image))) == 1
    assert len(ClassicDetector(keep=2).candidates(gray(image))) <= 2
    assert ClassicDetector(keep=1).detect(image) == []  # only the sign is looked at
    assert ClassicDetector(keep=2).detect(image)


def test_a_long_text_line_is_outside_the_default_aspect_range():
    image, box = scene(text="KX7B42AB")  # eight characters: text block aspect ~6
    assert ClassicDetector().detect(image) == []
    assert ClassicDetector(max_ar=7.0).detect(image)


# --- debug ------------------------------------------------------------------------------------

LOCATOR_STAGES = ["blackhat", "light_mask", "gradient", "gradient_closed", "gradient_thresh",
                  "erode_dilate", "final_mask", "candidates", "roi"]


def stage_names(sink: DebugSink) -> list[str]:
    return [key.split("_", 1)[1] for key in sink.stages]


def test_detector_debug_stages(tmp_path):
    image, _ = scene()
    sink = DebugSink(tmp_path)
    ClassicDetector().detect(image, debug=sink)
    assert stage_names(sink) == LOCATOR_STAGES
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f"{k}.png" for k in sink.stages)
    candidates = sink.stages["08_candidates"]
    green = (candidates == (0, 255, 0)).all(axis=2)
    assert candidates.shape == image.shape and green.any()  # the chosen contour


def test_no_roi_stage_when_nothing_qualifies():
    image, _ = scene()
    sink = DebugSink()
    ClassicDetector(min_ar=9, max_ar=10).detect(image, debug=sink)
    assert stage_names(sink) == LOCATOR_STAGES[:-1]


@needs_tesseract
def test_reader_debug_writes_every_stage(tmp_path):
    image, _ = scene()
    sink = DebugSink(tmp_path)
    plateread.Reader("classic", clear_border=True).read(image, debug=sink)
    assert stage_names(sink) == LOCATOR_STAGES + ["roi_thresh", "roi_cleared"]
    assert len(list(tmp_path.glob("*.png"))) == len(LOCATOR_STAGES) + 2


# --- recognizer -------------------------------------------------------------------------------

def test_threshold_roi_makes_dark_characters_white():
    plate = draw_plate(TEXT, **PLATE)
    roi = threshold_roi(plate)
    ink = gray(plate) < 128
    assert roi[ink].mean() > 250 and roi[~ink].mean() < 5


def test_clear_border_removes_edge_touching_blobs():
    pytest.importorskip("skimage")
    binary = np.zeros((30, 100), np.uint8)
    binary[:, :4] = 255            # touches the left edge: a plate frame or bolt
    binary[10:20, 40:50] = 255     # a character in the middle
    cleared = clear_border_blobs(binary)
    assert cleared.dtype == np.uint8
    assert not cleared[:, :4].any()
    assert (cleared[10:20, 40:50] == 255).all()


@needs_tesseract
def test_clear_border_drops_a_dark_bar_at_the_crop_edge(recognizer):
    pytest.importorskip("skimage")
    crop = draw_plate(TEXT, **PLATE)
    crop[:, :4] = 25
    crop[:, -4:] = 25
    sink = DebugSink()
    with TesseractRecognizer(clear_border=True) as rec:
        (result,) = rec.recognize([crop], debug=sink)
    assert result.text == TEXT
    cleared = sink.stages["02_roi_cleared"]
    assert not cleared[:, :4].any() and not cleared[:, -4:].any()


@needs_tesseract
def test_recognizer_reads_a_plate_crop(recognizer):
    crop = draw_plate(TEXT, **PLATE)
    (result,) = recognizer.recognize([crop])
    assert result.text == TEXT
    assert 0.0 <= result.score <= 1.0
    assert result.candidates[0].plate == TEXT and result.candidates[0].score == result.score
    assert len(result.char_scores) == len(TEXT) and all(0 <= s <= 1 for s in result.char_scores)


@needs_tesseract
def test_recognizer_handles_empty_and_blank_crops(recognizer):
    blank = np.full((20, 90, 3), 230, np.uint8)
    empty, nothing = recognizer.recognize([np.zeros((0, 0, 3), np.uint8), blank])
    assert empty.text == "" and empty.score == 0.0 and empty.candidates == ()
    assert nothing.text == "" and nothing.score == 0.0


@needs_tesseract
def test_recognizer_is_safe_to_share_between_threads(recognizer):
    crop = draw_plate(TEXT, **PLATE)
    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(lambda _: recognizer.recognize([crop])[0].text, range(12)))
    assert texts == [TEXT] * 12


@needs_tesseract
def test_close_is_idempotent_and_final():
    rec = TesseractRecognizer()
    rec.close()
    rec.close()
    with pytest.raises(RuntimeError, match="closed"):
        rec.recognize([draw_plate(TEXT, **PLATE)])


# --- end to end -------------------------------------------------------------------------------

@needs_tesseract
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_reader_finds_and_reads_the_plate_in_a_cluttered_scene(seed):
    image, box = scene(seed)
    result = plateread.Reader(engine="classic").read(image)
    assert len(result.results) == 1
    (read,) = result.results
    assert read.plate == TEXT
    assert read.box.iou(box) >= 0.5
    assert 0.0 <= read.score <= 1.0 and 0.0 < read.detection_score <= 1.0


# --- options and installation errors ----------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (dict(keep=0), "keep"),
    (dict(keep=2.5), "keep"),
    (dict(min_ar=0.0), "min_ar"),
    (dict(min_ar=-1.0), "min_ar"),
    (dict(min_ar=5.0, max_ar=4.0), "min_ar <= max_ar"),
])
def test_detector_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        ClassicDetector(**options)


def test_detector_accepts_equal_bounds():
    assert ClassicDetector(min_ar=4.5, max_ar=4.5).min_ar == 4.5


@needs_tesseract
@pytest.mark.parametrize("options", [dict(psm=14), dict(psm=-1), dict(whitelist="")])
def test_recognizer_rejects_bad_options(options):
    with pytest.raises(ValueError):
        TesseractRecognizer(**options)


@needs_tesseract
def test_reader_routes_options_to_each_half():
    reader = plateread.Reader("classic", min_ar=3.0, keep=3, psm=8)
    assert (reader.detector.min_ar, reader.detector.keep, reader.recognizer.psm) == (3.0, 3, 8)
    with pytest.raises(EngineError, match="min_aspect"):
        plateread.Reader("classic", min_aspect=3.0)


def test_missing_tessdata_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="apt-get install tesseract-ocr tesseract-ocr-eng"):
        find_tessdata(tmp_path)


def test_tessdata_prefix_is_used_and_not_second_guessed(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    with pytest.raises(RuntimeError, match=str(tmp_path)):
        find_tessdata()
    (tmp_path / "tessdata").mkdir()
    (tmp_path / "tessdata" / "eng.traineddata").touch()
    assert find_tessdata() == tmp_path / "tessdata"  # a Tesseract 3 style parent folder works too


def test_missing_tesserocr_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tesserocr", None)  # makes `import tesserocr` fail
    with pytest.raises(RuntimeError, match=r"pip install plateread\[classic\]"):
        TesseractRecognizer()
