"""The service's TOML file: what it accepts, and the clear errors it gives for what it does not."""
from __future__ import annotations

from pathlib import Path

import pytest

from plateread.cameras.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "plateread.toml"
    p.write_text(text)
    return p


def test_full_config_with_relative_paths_and_env_secrets(tmp_path, monkeypatch):
    (tmp_path / "frames").mkdir()
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    cfg = load_config(write(tmp_path, """
[server]
port = 9090
auth = false
allow_url_hosts = ["cam.local"]
[store]
db = "data/reads.db"
retention_days = 30
[engine]
name = "fake"
threshold = 0.4
[watchdog]
stall_s = 5
[[camera]]
name = "gate-1"
source = "rtsp://user:pw@10.0.0.5/stream1"
region = "nl"
zone = [[0, 100], [320, 100], [320, 240], [0, 240]]
min_plate = [40, 10]
max_fps = 5
[[camera]]
name = "yard"
source = "frames"
fps = 12
loop = true
realtime = true
[[camera]]
name = "spare"
source = "missing.mp4"
enabled = false
[[alerts.webhook]]
name = "ops"
url = "https://example.org/hook"
secret_env = "HOOK_SECRET"
events = "all"
[alerts.mqtt]
host = "127.0.0.1"
[[watchlist]]
plate = "AB-123"
fuzzy = 1
label = "stolen"
"""))
    assert cfg.server == {"port": 9090, "no_auth": True, "allow_url_host": ["cam.local"]}
    assert cfg.store == {"db": str(tmp_path / "data" / "reads.db"), "retention_days": 30.0}
    assert cfg.engine == {"engine": "fake", "threshold": 0.4}
    assert [c.name for c in cfg.cameras] == ["gate-1", "yard"]          # disabled ones are left out
    gate, yard = cfg.cameras
    assert gate.zone == ((0, 100), (320, 100), (320, 240), (0, 240)) and gate.min_plate == (40, 10)
    assert gate.max_fps == 5.0 and gate.region == "nl" and not gate.is_file
    assert yard.source == str(tmp_path / "frames") and yard.loop and yard.realtime and yard.is_file
    hook = cfg.alerts.webhooks[0]
    assert hook.secret == "from-env" and hook.target == "webhook:ops" and hook.wants("event")
    assert "from-env" not in repr(hook)                                 # secrets stay out of logs
    assert cfg.alerts.mqtt.target == "mqtt" and cfg.alerts.mqtt.port == 1883
    assert cfg.watchdog.stall_s == 5.0 and cfg.watchlist[0].fuzzy == 1


@pytest.mark.parametrize("text, message", [
    ("[[camera]]\nname = 'a b'\nsource = 'rtsp://x'", r"camera\[1\]\.name: 'a b': use 1-64 letters"),
    ("[[camera]]\nname = 'a'", r"camera\[1\] \(a\)\.source: required"),
    ("[[camera]]\nname = 'a'\nsource = 'nope.mp4'", r"camera\[1\] \(a\)\.source: no such file or folder"),
    ("[[camera]]\nname = 'a'\nsource = 'rtsp://x'\nzone = [[0, 0], [1, 1]]", r"\(a\)\.zone: needs at least 3"),
    ("[[camera]]\nname = 'a'\nsource = 'rtsp://x'\nmax_fps = 0", r"\(a\)\.max_fps: must be a positive number"),
    ("[[camera]]\nname = 'a'\nsource = 'rtsp://x'\ntrack_timout = 2",
     r"track_timout: unknown setting \(did you mean 'track_timeout'\?\)"),
    ("[[camera]]\nname = 'a'\nsource = 'rtsp://x'\n[[camera]]\nname = 'a'\nsource = 'rtsp://y'",
     "two cameras are named 'a'"),
    ("[[alerts.webhook]]\nname = 'ops'\nurl = 'http://x/'", r"alerts\.webhook\[1\] \(ops\)\.secret: required"),
    ("[[alerts.webhook]]\nname = 'ops'\nurl = 'ftp://x/'\nsecret = 's'", r"\(ops\)\.url: required: an http"),
    ("[[alerts.webhook]]\nname = 'ops'\nurl = 'http://x/'\nsecret_env = 'PLATEREAD_NOPE_XYZ'",
     "PLATEREAD_NOPE_XYZ is not set"),
    ("[alerts.mqtt]\nport = 1883", r"alerts\.mqtt\.host: required"),
    ("[alerts.mqtt]\nhost = 'h'\nevents = 'some'", "must be one of hits, all"),
    ("[server]\nport = 'eighty'", r"server\.port: expected int, got str"),
    ("[serverr]\nport = 1", r"serverr: unknown setting \(did you mean 'server'\?\)"),
    ("[[camera]\nname = 'x'", "not valid TOML"),
])
def test_errors_name_the_table_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_file_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "absent.toml")


def test_the_example_config_loads():
    cfg = load_config(REPO / "examples" / "plateread.toml")
    assert cfg.cameras and all(c.is_file for c in cfg.cameras)


def test_engine_second_ocr_model_is_a_path_or_none(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"")
    base = "[[camera]]\nname = \"a\"\nsource = \"x.mp4\"\n[engine]\n"
    cfg = load_config(write(tmp_path, base + 'second_ocr_model = "models/b.onnx"\n'))
    assert cfg.engine == {"second_ocr_model": str(tmp_path / "models" / "b.onnx")}
    assert load_config(write(tmp_path, base + 'second_ocr_model = "none"\n')).engine == {"second_ocr_model": "none"}
