"""Small plates in large photos (the zoom pass), images that are a plate, and the second look."""
from pathlib import Path

import cv2
import numpy as np

from plateread import Reader
from plateread.cli.main import main
from plateread.engines.learned import detector as det_mod
from plateread.engines.learned.detector import LearnedDetector
from plateread.reader import looks_like_plate
from plateread.second_look import alternate_crops, fuse_recognitions
from plateread.types import Box, Candidate, Detection, Recognition

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "car.jpg"
PLATE = (569, 430, 716, 462)  # the example's plate box, YO76317


def _counting(det: LearnedDetector) -> list[int]:
    runs = [0]
    inner = det._run

    def counted(*a, **k):
        runs[0] += 1
        return inner(*a, **k)

    det._run = counted
    return runs


def _far_away(scale: float = 0.3) -> tuple[np.ndarray, tuple[float, ...]]:
    """The example car shrunk into a 3200×2400 street-sized photo: a ~44 px plate that the
    first pass sees at ~9 px."""
    car = cv2.resize(cv2.imread(str(EXAMPLE)), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    big = np.full((2400, 3200, 3), 100, np.uint8)
    big[1000:1000 + car.shape[0], 1500:1500 + car.shape[1]] = car
    return big, tuple(v * scale + o for v, o in zip(PLATE, (1500, 1000, 1500, 1000)))


def test_zoom_pass_finds_a_distant_plate_where_it_is():
    big, (x0, y0, x1, y1) = _far_away()
    det = LearnedDetector()
    runs = _counting(det)
    found = det.detect(big)
    assert 1 < runs[0] <= 1 + det_mod.ZOOM_MAX_WINDOWS
    assert any(abs(d.box.xmin - x0) < 6 and abs(d.box.xmax - x1) < 6 and abs(d.box.ymin - y0) < 6
               for d in found), found
    # and the reader reads it from the full-resolution pixels
    reads = Reader().read(big).results
    assert any(r.plate == "YO76317" for r in reads), reads


def test_zoom_off_runs_once_and_small_photos_never_zoom():
    big, _ = _far_away()
    det = LearnedDetector(zoom=False)
    runs = _counting(det)
    det.detect(big)
    assert runs[0] == 1
    det = LearnedDetector()
    runs = _counting(det)
    det.detect(cv2.resize(cv2.imread(str(EXAMPLE)), (640, 360)))  # at input scale: nothing to gain
    assert runs[0] == 1


def test_looks_like_plate():
    assert looks_like_plate(120, 30) and looks_like_plate(160, 74) and looks_like_plate(200, 160)
    assert looks_like_plate(160, 97)       # one line with a margin (aspect 1.65)
    assert not looks_like_plate(640, 480)   # a photo
    assert not looks_like_plate(300, 250)   # a square-ish thumbnail too big for a two-line plate
    assert looks_like_plate(1200, 300)      # one line as a 4K camera cuts it
    assert not looks_like_plate(2400, 600)  # too large for a crop
    assert not looks_like_plate(1280, 720)  # a frame (aspect 1.78)


def _plate_crop() -> np.ndarray:
    x0, y0, x1, y1 = PLATE
    return cv2.imread(str(EXAMPLE))[y0 - 3:y1 + 3, x0 - 4:x1 + 4]


def test_an_image_that_is_a_plate_is_read_whole():
    crop = cv2.resize(_plate_crop(), (120, 30), interpolation=cv2.INTER_AREA)
    reads = Reader().read(crop).results
    assert [r.plate for r in reads] == ["YO76317"]
    assert reads[0].box == Box(0, 0, 120, 30)
    # the detector alone misses it or finds part of it (a plate that fills its input)
    assert "YO76317" not in [r.plate for r in Reader(plate_images=False).read(crop).results]


def test_a_large_plate_image_is_read_whole_and_a_large_strip_of_scene_is_not():
    crop = cv2.resize(_plate_crop(), (800, 170), interpolation=cv2.INTER_CUBIC)
    assert "YO76317" not in [r.plate for r in Reader(plate_images=False).read(crop).results]  # it fills the input
    reads = Reader().read(crop).results
    assert [r.plate for r in reads] == ["YO76317"] and reads[0].box == Box(0, 0, 800, 170)
    strip = cv2.imread(str(EXAMPLE))[40:290, 0:800]           # car body and background, no plate
    assert looks_like_plate(*strip.shape[1::-1]) and Reader().read(strip).results == ()


def test_read_plate_and_cli_crops(tmp_path, capsys):
    crop = _plate_crop()
    r = Reader().read_plate(crop)
    assert [p.plate for p in r.results] == ["YO76317"] and r.width == crop.shape[1]
    path = tmp_path / "plate.png"
    cv2.imwrite(str(path), crop)
    assert main(["read", "--crops", "--format", "jsonl", str(path)]) == 0
    assert '"plate": "YO76317"' in capsys.readouterr().out


def test_alternate_crops_cover_the_plate_differently():
    img = cv2.imread(str(EXAMPLE))
    box = Box(*PLATE)
    corners = ((569.0, 430.0), (716.0, 430.0), (716.0, 462.0), (569.0, 462.0))
    for d in (Detection(box, 0.9, img[430:462, 569:716]), Detection(box, 0.9, img[430:462, 569:716], corners)):
        crops = alternate_crops(img, d)
        assert len(crops) == 2
        assert crops[0].shape != crops[1].shape


def test_fusion_outvotes_one_bad_crop():
    a = Recognition("AB1234", 0.4, (Candidate("AB1234", 0.6), Candidate("A81234", 0.4)))
    b = Recognition("A81234", 0.5, (Candidate("A81234", 0.55), Candidate("AB1234", 0.45)))
    c = Recognition("A81234", 0.7, (Candidate("A81234", 0.9),))
    assert fuse_recognitions([a, b, c]).text == "A81234"
    assert fuse_recognitions([a, Recognition("", 0.0)]).text == "AB1234"


def test_second_look_only_for_unsure_reads(monkeypatch):
    reader = Reader()
    looks = []
    real = reader._second_look
    monkeypatch.setattr(reader, "_second_look", lambda *a: looks.append(1) or real(*a))
    reader.read(str(EXAMPLE))  # a clear plate, read at 0.99: no second look
    assert looks == []
    reader.second_look = 1.01  # every read is "unsure"
    assert [r.plate for r in reader.read(str(EXAMPLE)).results] == ["YO76317"]
    assert looks == [1]


def test_second_look_asks_the_second_model_about_the_same_crop():
    from plateread.engines.crnn.recognizer import DEFAULT_SECOND_MODEL, CrnnRecognizer

    assert DEFAULT_SECOND_MODEL.is_file()
    rec = CrnnRecognizer()
    assert rec.second is not None and rec.second.model_path == DEFAULT_SECOND_MODEL
    # a replaced first model was not paired with the shipped second one; "none" turns it off
    assert CrnnRecognizer(ocr_model=str(rec.model_path)).second is None
    assert CrnnRecognizer(second_model="none").second is None and CrnnRecognizer(second_model="none").second_opinion([]) == []
    asked: list[int] = []
    real = rec.second.recognize
    rec.second.recognize = lambda crops, debug=None: asked.append(len(crops)) or real(crops)
    reader = Reader(recognizer=rec, second_look=1.01)   # every read is "unsure"
    assert [r.plate for r in reader.read(str(EXAMPLE)).results] == ["YO76317"]
    assert asked == [1]                                  # the plate's own crop, once
    reader.second_look = None
    reader.read(str(EXAMPLE))
    assert asked == [1]


def test_second_opinion_is_one_vote_among_the_crops():
    class Two:
        name = "two"
        region_decoder = None
        other = Recognition("A81234", 0.8, (Candidate("A81234", 0.95),))

        def recognize(self, crops, debug=None):     # the first model on the other crops
            return [self.other for _ in crops]

        def second_opinion(self, crops):
            return [Recognition("AB1234", 0.6, (Candidate("AB1234", 0.7), Candidate("A81234", 0.3)))
                    for _ in crops]

    img = cv2.imread(str(EXAMPLE))
    det = Detection(Box(*PLATE), 0.9, img[430:462, 569:716])
    first = Recognition("A81234", 0.3, (Candidate("A81234", 0.5), Candidate("AB1234", 0.5)))
    reader = Reader(recognizer=Two())
    assert reader._second_look(img, det, first).text == "A81234"     # a surer other cut outvotes it
    reader.recognizer.other = Recognition("", 0.0)
    assert reader._second_look(img, det, first).text == "AB1234"     # alone, it settles a tie


def test_second_ocr_model_flag(capsys):
    assert main(["read", str(EXAMPLE), "--second-ocr-model", "none", "--format", "json"]) == 0
    assert "YO76317" in capsys.readouterr().out
