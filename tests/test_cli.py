import csv
import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, fake_plate_image
from plateread.cli.main import main
from plateread.types import Box
from test_imaging import png_header_only


@pytest.fixture
def mixed_folder(tmp_path, write_image):
    """Two good images among every kind of bad input."""
    write_image("in/good1.png", fake_plate_image("AB123"))
    write_image("in/sub/good2.png", fake_plate_image("XY9", at=(120, 20)))
    bad = {
        "corrupt.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 40 + b"broken" * 20,
        "empty.jpg": b"",
        "text.jpg": b"hello, I am text\n",
        "tiny.png": cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes(),
        "huge.png": png_header_only(20000, 20000),
    }
    for name, data in bad.items():
        (tmp_path / "in" / name).write_bytes(data)
    return tmp_path / "in", bad


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_jsonl_shape_and_bad_inputs_do_not_stop_the_run(capsys, mixed_folder):
    folder, bad = mixed_folder
    paths = [str(folder / "good1.png")] + [str(folder / n) for n in bad] + [str(folder / "sub" / "good2.png")]
    code, out, err = run_cli(capsys, "read", "--engine", "fake", "--format", "jsonl", *paths)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and "5 of 7 input(s) could not be read" in err
    assert [r["image"] for r in lines] == paths
    first = lines[0]
    assert set(first) >= {"image", "width", "height", "processing_time", "error", "results"}
    assert (first["width"], first["height"], first["error"]) == (320, 200, None)
    plate = first["results"][0]
    assert plate["plate"] == "AB123" and 0 <= plate["score"] <= 1
    assert plate["box"] == {"xmin": 100, "ymin": 60, "xmax": 220, "ymax": 100}
    assert plate["candidates"][0] == {"plate": "AB123", "score": 0.8}
    assert lines[-1]["results"][0]["plate"] == "XY9"
    errors = {r["image"].rsplit("/", 1)[-1]: r["error"] for r in lines[1:-1]}
    assert "corrupt" in errors["corrupt.jpg"]
    assert errors["empty.jpg"] == "empty file"
    assert "not an image" in errors["text.jpg"]
    assert "too small" in errors["tiny.png"]
    assert "too large" in errors["huge.png"]
    assert all(r["results"] == [] for r in lines[1:-1])


def test_folder_scan_formats_and_annotations(capsys, mixed_folder, tmp_path):
    folder, _ = mixed_folder
    # folder scan picks image content only: text.jpg and empty.jpg are skipped, the rest tried
    code, out, _ = run_cli(capsys, "read", "--engine", "fake", "--format", "json",
                           "--annotate", str(tmp_path / "ann"), str(folder))
    data = json.loads(out)
    names = sorted(r["image"].rsplit("/", 1)[-1] for r in data)
    assert names == ["corrupt.jpg", "good1.png", "good2.png", "huge.png", "tiny.png"]
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["good1.jpg", "good2.jpg"]

    code, out, _ = run_cli(capsys, "read", "--engine", "fake", "--format", "csv", str(folder / "good1.png"))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["plate"] == "AB123" and rows[0]["xmax"] == "220"

    code, out, _ = run_cli(capsys, "read", "--engine", "fake", str(folder / "good1.png"), str(folder / "empty.jpg"))
    assert "AB123" in out and "ERROR" in out and "empty file" in out


def test_debug_folder_and_engine_errors(capsys, mixed_folder, tmp_path):
    folder, _ = mixed_folder
    code, _, _ = run_cli(capsys, "read", "--engine", "fake", "--debug", str(tmp_path / "dbg"), str(folder / "good1.png"))
    assert code == 0 and [p.name for p in (tmp_path / "dbg").iterdir()] == ["good1_01_mask.png"]
    # an option the engine does not take is a clear usage error, not a traceback
    code, _, err = run_cli(capsys, "read", "--engine", "fake", "--psm", "8", str(folder / "good1.png"))
    assert code == 2 and "unknown option(s) psm" in err


def test_eval_on_a_tiny_set(capsys, tmp_path, write_image):
    write_image("set/images/a.png", fake_plate_image("AB123"))
    write_image("set/images/b.png", fake_plate_image("CD45"))
    write_image("set/images/c.png", fake_plate_image("EF67"))
    rows = [
        {"image": "images/a.png", "split": "test", "width": 320, "height": 200,
         "plates": [{"text": "AB-123", "box": [100, 60, 120, 40]}]},
        {"image": "images/b.png", "split": "test", "width": 320, "height": 200,
         "plates": [{"text": "CD46", "box": [100, 60, 120, 40]}]},  # engine reads CD45: wrong
        {"image": "images/c.png", "split": "train", "width": 320, "height": 200,
         "plates": [{"text": "EF67", "box": [100, 60, 120, 40]}]},  # other split: not scored
    ]
    (tmp_path / "set" / "index.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, out, err = run_cli(capsys, "eval", str(tmp_path / "set"), "--engine", "fake",
                             "--json", str(tmp_path / "m.json"), "--errors", str(tmp_path / "wrong.png"))
    assert code == 0
    assert "set" in out and "50.0%" in out and "100.0%" in out  # accuracy, detection recall
    report = json.loads((tmp_path / "m.json").read_text())
    m = report["sets"]["set"]["metrics"]
    assert (m["images"], m["correct"], m["detected"], m["false_reads"]) == (2, 1, 2, 1)
    assert [i["labels"][0]["read"] for i in report["sets"]["set"]["images"]] == ["AB123", "CD45"]
    assert (tmp_path / "wrong.png").exists() and "1 wrong read" in err


@pytest.mark.parametrize("command", [[], ["read"], ["eval"], ["engines"]])
def test_help_on_every_command(command):
    out = subprocess.run([sys.executable, "-m", "plateread.cli.main", *command, "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "usage: plateread" in out


#: `plateread` in a subprocess with the fake engine registered (a real pipe, not capsys)
FAKE_CLI = [sys.executable, "-c", "import sys; sys.path.insert(0, 'tests'); import fakes; "
            "from plateread.cli.main import main; sys.exit(main(sys.argv[1:]))"]


def test_piped_output_has_no_progress_bar(tmp_path, write_image):
    for i in range(3):
        write_image(f"many/{i}.png", fake_plate_image("AB1"))
    proc = subprocess.run(
        [*FAKE_CLI, "read", "--engine", "fake", "--format", "jsonl", str(tmp_path / "many")],
        capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stderr == "" and len(proc.stdout.splitlines()) == 3


def test_classic_engine_from_the_command_line(capsys, tmp_path, write_image):
    from drawing import cluttered_scene, draw_plate
    from test_classic import PLATE, TEXT, _tesseract_ready

    if not _tesseract_ready():  # tesserocr alone is not enough: it needs Tesseract's eng data
        pytest.skip("the classic engine needs tesserocr and eng.traineddata "
                    "(pip install plateread[classic]; apt-get install tesseract-ocr-eng)")

    scene, box = cluttered_scene(draw_plate(TEXT, **PLATE), seed=1)
    good = write_image("scene.png", scene)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    code, out, _ = run_cli(capsys, "read", "--engine", "classic", "--format", "jsonl", str(good), str(broken))
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 1 and second["error"] and second["results"] == []
    assert [r["plate"] for r in first["results"]] == [TEXT]
    b = first["results"][0]["box"]
    assert Box(b["xmin"], b["ymin"], b["xmax"], b["ymax"]).iou(box) >= 0.5


def test_show_without_a_display_is_a_clear_error(capsys, monkeypatch, tmp_path, write_image):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    path = write_image("a.png", fake_plate_image("AB1"))
    code, _, err = run_cli(capsys, "read", "--engine", "fake", "--show", str(path))
    assert code == 2 and "--show needs" in err


def test_engine_flags_reach_only_the_parts_that_take_them():
    import argparse

    from plateread.cli.engine_options import add_engine_options, engine_options

    p = argparse.ArgumentParser()
    add_engine_options(p)
    assert engine_options(p.parse_args([])) == {}  # defaults belong to the engines, not the CLI
    opts = engine_options(p.parse_args(["--no-rectify", "--threads", "2", "--threshold", "0.5"]))
    assert opts == {"rectify": False, "threads": 2, "threshold": 0.5}


def test_plate_corners_reach_the_json_and_the_annotation():
    from plateread import Reader
    from plateread.annotate import annotate
    from plateread.types import Detection

    quad = ((12.0, 10.0), (90.0, 14.0), (88.0, 40.0), (10.0, 36.0))

    class QuadDetector:
        name = "quad"

        def detect(self, image, debug=None):
            return [Detection(Box(10, 10, 90, 40), 0.9, image[10:40, 10:90].copy(), corners=quad)]

    img = np.full((60, 100, 3), 255, np.uint8)
    res = Reader("fake", detector=QuadDetector()).read(img)
    assert res.results[0].corners == quad
    assert res.results[0].to_dict()["corners"][1] == [90.0, 14.0]
    drawn = annotate(img, res.results)
    assert (np.abs(drawn.astype(int) - (0, 200, 255)).sum(axis=2) < 60).any()  # the quad's colour


def test_output_into_a_closed_pipe_ends_quietly(tmp_path, write_image):
    """`plateread read ... | head -1`: the reader goes away; no traceback, exit status 141."""
    for i in range(40):
        write_image(f"many/{i}.png", fake_plate_image("AB1"))
    proc = subprocess.Popen(
        [*FAKE_CLI, "read", "--engine", "fake", "--format", "jsonl", str(tmp_path / "many")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout.readline()
    proc.stdout.close()  # like `head -1` exiting
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err, err
