"""Right of access and of erasure for one plate: export and erase everything stored about it, logged."""
from __future__ import annotations

import hashlib
import json

from plateread.cli.main import main
from plateread.store import Store
from plateread.store.store import OutboxEntry
from test_store import crop, db_url, event, media_files, store  # noqa: F401  (db_url, store: fixtures)


def fill(s: Store) -> None:
    s.watchlist_add("AB 123", label="stolen")
    s.add_event(event("AB123", crop=crop(1)), outbox=[OutboxEntry("k1", "webhook:x", "hit", {"plate": "AB123"})])
    s.add_event(event("AB123", crop=crop(2)))
    s.add_event(event("ZZ999", crop=crop(3)))  # someone else: must survive


def test_export_then_erase_one_plate(store, tmp_path):
    fill(store)
    data = store.export_plate("ab-123", actor="dpo")
    assert data["counts"] == {"reads": 2, "alerts": 1, "watchlist": 1, "media": 2}
    assert {r["plate"] for r in data["reads"]} == {"AB123"} and data["alerts"][0]["payload"]["plate"] == "AB123"
    assert all(m["exists"] for m in data["media"])
    json.dumps(data)  # JSON-ready
    before = media_files(tmp_path / "media")
    assert store.erase_plate("AB123", actor="dpo") == {"reads": 2, "alerts": 1, "watchlist": 1, "media": 2}
    assert store.query(plate="AB123") == [] and store.watchlist() == [] and store.outbox() == []
    assert [r.plate for r in store.query()] == ["ZZ999"]
    assert len(media_files(tmp_path / "media")) == len(before) - 2
    assert store.export_plate("AB123")["counts"] == {"reads": 0, "alerts": 0, "watchlist": 0, "media": 0}
    log = store.privacy_log()
    assert [e["action"] for e in log] == ["export", "erase", "export"]
    assert log[1]["plate_sha256"] == hashlib.sha256(b"AB123").hexdigest() and log[1]["actor"] == "dpo"
    assert "AB123" not in json.dumps(log)  # the log does not keep the erased plate


def test_cli_export_and_erase(tmp_path):
    db = str(tmp_path / "reads.db")
    with Store.open(db, tmp_path / "media") as s:
        fill(s)
    out = tmp_path / "ab.json"
    assert main(["reads", "--db", db, "--media", str(tmp_path / "media"), "--export-plate", "AB123", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["counts"]["reads"] == 2
    assert main(["reads", "--db", db, "--export-plate", "AB123"]) == 2  # needs --out
    assert main(["reads", "--db", db, "--media", str(tmp_path / "media"), "--erase-plate", "AB 123"]) == 0
    with Store.open(db, tmp_path / "media") as s:
        assert s.query(plate="AB123") == [] and len(s.query()) == 1
        assert [e["action"] for e in s.privacy_log()] == ["erase", "export"]


def test_server_purges_on_a_schedule(tmp_path):
    """retain_every purges without any read being added (serve's lifespan runs it hourly)."""
    import asyncio

    from plateread.server.retention import retain_every

    s = Store.open(str(tmp_path / "r.db"), tmp_path / "media")
    s.add_event(event("AB123"))            # from 2024: past any retention
    s.retention_days = 30

    async def run() -> None:
        task = asyncio.create_task(retain_every(s, every_s=0.01))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if not await asyncio.to_thread(s.query):
                break
        task.cancel()

    asyncio.run(run())
    assert s.query() == []
    s.close()
