"""``plateread reads``: query the database of stored reads, purge old ones, keep the watchlist."""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import sys
from typing import Any, Sequence

from ..output import format_table
from ..store import Store, WatchItem
from ..store.store import KINDS

READ_FORMATS = ("table", "json", "csv")
CSV_FIELDS = ("id", "kind", "first_seen", "last_seen", "camera", "plate", "score", "frames", "region",
              "source", "crop_path", "frame_path", "event_id", "watchlist")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str) -> dt.datetime:
    """ISO date/time (UTC unless it carries an offset: the store shows UTC, so input matches it),
    'now', or an age like 30m, 2h, 7d, 1w meaning that long ago."""
    now = dt.datetime.now(dt.timezone.utc)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m:
        return now - dt.timedelta(**{_UNITS[m[2]]: float(m[1])})
    if text.strip().lower() == "now":
        return now
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date/time (2024-05-01, 2024-05-01T08:30, …+02:00) or an age (2h, 7d)") from None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if value < 0:
        raise argparse.ArgumentTypeError("days must be zero or more")
    return value


def add_db_options(p: argparse.ArgumentParser, nested: bool = False) -> None:
    """--db/--media/--retention-days; ``nested`` parsers leave unset values alone so the options
    work before or after a subcommand."""
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if nested else {"default": None}
    g = p.add_argument_group("database")
    g.add_argument("--db", metavar="URL", help="SQLAlchemy URL or SQLite file path (default: $PLATEREAD_DB, "
                   "else ~/.local/share/plateread/reads.db)", **d)
    g.add_argument("--media", metavar="DIR", help="folder for crops and frames (default: $PLATEREAD_MEDIA, "
                   "else media/ next to the SQLite file)", **d)
    g.add_argument("--retention-days", metavar="N", type=_days, help="delete reads older than N days "
                   "(and their images) when the store opens (default: $PLATEREAD_RETENTION_DAYS, else keep)", **d)


def add_store_options(p: argparse.ArgumentParser) -> None:
    """The options ``plateread read`` takes for writing its reads into the store."""
    p.add_argument("--store", action="store_true", help="store every plate read (with its crop) in the database")
    p.add_argument("--camera", metavar="NAME", help="with --store: camera name recorded with the reads")
    add_db_options(p)


def add_spool_option(p: argparse.ArgumentParser) -> None:
    """--spool, for the long-running writers (watch, serve) that must survive a database outage."""
    p.add_argument("--spool", metavar="DIR",
                   help="journal of reads not yet in the database (kept across outages and restarts; default: "
                        "$PLATEREAD_SPOOL, else spool/ next to the SQLite file, else per database in "
                        "~/.local/share/plateread/spool)")


def open_store(args: argparse.Namespace) -> Store:
    return Store.open(getattr(args, "db", None), getattr(args, "media", None),
                      retention_days=getattr(args, "retention_days", None))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reads", help="query stored reads; purge; watchlist",
                       description="Query the database of stored reads (newest first). Times are UTC. "
                                   "Subcommands: purge, watchlist, cameras.")
    p.add_argument("--plate", help="plate to find (spaces and dashes ignored)")
    p.add_argument("--fuzzy", nargs="?", type=int, const=1, default=0, metavar="N",
                   help="with --plate: also match plates up to N characters off (default N: 1)")
    p.add_argument("--camera", help="only this camera")
    p.add_argument("--since", type=parse_time, metavar="TIME", help="seen at or after TIME (ISO, or 2h, 7d ago)")
    p.add_argument("--until", type=parse_time, metavar="TIME", help="seen at or before TIME")
    p.add_argument("--kind", choices=KINDS, help="event (video, per vehicle) or image (plateread read --store)")
    p.add_argument("--hits", action="store_true", help="only reads that match the watchlist")
    p.add_argument("--limit", type=int, default=100, help="most reads to show, 0 for all (default: 100)")
    p.add_argument("--format", choices=READ_FORMATS, default="table", help="output format (default: table)")
    g = p.add_argument_group("privacy (logged in the store's privacy_log)")
    g.add_argument("--export-plate", metavar="PLATE", help="write everything stored about PLATE to --out")
    g.add_argument("--out", metavar="FILE.json", help="with --export-plate: the JSON file to write")
    g.add_argument("--spool", metavar="DIR", help="with --export-plate / --erase-plate: the writers' journal folder, if not "
                   "the default (reads waiting there for the database are erased too)")
    g.add_argument("--erase-plate", metavar="PLATE",
                   help="delete everything stored about PLATE: reads, alerts, watchlist entry, images")
    add_db_options(p)
    p.set_defaults(func=run_query)

    ss = p.add_subparsers(dest="reads_command", metavar="SUBCOMMAND")
    pp = ss.add_parser("purge", help="delete old reads and the images no read needs any more")
    pp.add_argument("--older-than", type=_days, required=True, metavar="DAYS", help="age in days (by last sighting)")
    add_db_options(pp, nested=True)
    pp.set_defaults(func=run_purge)

    cp = ss.add_parser("cameras", help="list cameras and their read counts")
    add_db_options(cp, nested=True)
    cp.set_defaults(func=run_cameras)

    wp = ss.add_parser("watchlist", help="plates to flag: add, remove, list")
    add_db_options(wp, nested=True)
    ws = wp.add_subparsers(dest="watch_command", metavar="ACTION", required=True)
    wa = ws.add_parser("add", help="add or update a plate")
    wa.add_argument("plate")
    wa.add_argument("--fuzzy", type=int, default=0, metavar="N", help="also flag plates N characters off (default 0)")
    wa.add_argument("--label", help="short tag shown with hits, e.g. 'stolen'")
    wa.add_argument("--reason", help="free text: why it is listed")
    wr = ws.add_parser("remove", help="remove a plate")
    wr.add_argument("plate")
    wl = ws.add_parser("list", help="list the watchlist")
    wl.add_argument("--format", choices=READ_FORMATS, default="table", help="output format (default: table)")
    for w in (wa, wr, wl):
        add_db_options(w, nested=True)
    wa.set_defaults(func=run_watch_add)
    wr.set_defaults(func=run_watch_remove)
    wl.set_defaults(func=run_watch_list)


def _hit_names(items: Sequence[WatchItem]) -> str:
    return ",".join(w.label or w.plate for w in items)


def _time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def run_privacy(args: argparse.Namespace) -> int:
    """--export-plate / --erase-plate: the right of access and of erasure, for one plate."""
    actor = os.environ.get("USER") or None
    with open_store(args) as store:
        if args.export_plate:
            from ..store.spool import journalled_reads

            data = store.export_plate(args.export_plate, actor=actor)
            # reads an outage or a crash left in a journal are stored data too, if not yet in the database
            data["waiting"] = journalled_reads(store, args.export_plate, getattr(args, "spool", None))
            data["counts"]["waiting"] = len(data["waiting"])
            with open(args.out, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
            waiting = len(data["waiting"])
            print(f"exported {_counts(data['counts'])} about {data['plate']}"
                  + (f", and {waiting} read(s) waiting in the spool" if waiting else "") + f" to {args.out}")
        if args.erase_plate:
            from ..store.spool import erase_from_journals

            counts = store.erase_plate(args.erase_plate, actor=actor)
            waiting = erase_from_journals(store, args.erase_plate, getattr(args, "spool", None))
            print(f"erased {_counts(counts)}" + (f", and {waiting} read(s) waiting in the spool" if waiting else ""))
    return 0


def _counts(c: dict[str, int]) -> str:
    return (f"{c['reads']} read(s), {c['alerts']} alert(s), {c['watchlist']} watchlist entr"
            f"{'y' if c['watchlist'] == 1 else 'ies'} and {c['media']} media file(s)")


def run_query(args: argparse.Namespace) -> int:
    if args.export_plate or args.erase_plate:
        if args.export_plate and not args.out:
            print("plateread: error: --export-plate needs --out FILE.json", file=sys.stderr)
            return 2
        return run_privacy(args)
    if args.fuzzy and not args.plate:
        print("plateread: error: --fuzzy needs --plate", file=sys.stderr)
        return 2
    limit = args.limit or None
    filters = {"camera": args.camera, "since": args.since, "until": args.until, "kind": args.kind}
    with open_store(args) as store:
        watch = store.watchlist()
        if args.hits and args.plate:  # a plate query is narrow: fetch it all, keep the hits
            reads = [r for r in store.query(plate=args.plate, fuzzy=args.fuzzy, limit=None, **filters)
                     if store.watchlist_match(r.plate, watch)][:limit]
        elif args.hits:  # one indexed query per listed plate beats matching every read in Python
            found = {r.id: r for w in watch
                     for r in store.query(plate=w.plate, fuzzy=w.fuzzy, limit=limit, **filters)}
            reads = sorted(found.values(), key=lambda r: (r.first_seen, r.id), reverse=True)[:limit]
        else:
            reads = store.query(plate=args.plate, fuzzy=args.fuzzy, limit=limit, **filters)
        hits = {r.id: store.watchlist_match(r.plate, watch) for r in reads}
    out = sys.stdout
    if args.format == "json":
        json.dump([{**r.to_dict(), "watchlist": [w.label or w.plate for w in hits[r.id]]} for r in reads],
                  out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif args.format == "csv":
        w = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in reads:
            w.writerow({**r.to_dict(), "score": round(r.score, 4), "watchlist": _hit_names(hits[r.id])})
    else:
        rows = [(r.id, _time(r.first_seen), r.kind, r.camera or "", r.plate, f"{r.score:.2f}", r.frames,
                 _hit_names(hits[r.id]), r.crop_path or "") for r in reads]
        out.write(format_table(("id", "first_seen (UTC)", "kind", "camera", "plate", "score", "frames",
                                "watchlist", "crop"), rows, "rllllrrll") + "\n")
    return 0


def run_purge(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        rep = store.purge(args.older_than)
    print(f"deleted {rep.reads} read(s) and {rep.files} media file(s)")
    return 0


def run_cameras(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        rows = [(c["name"], c["reads"], c["description"] or "") for c in store.cameras()]
    print(format_table(("camera", "reads", "description"), rows, "lrl"))
    return 0


def run_watch_add(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        item = store.watchlist_add(args.plate, fuzzy=args.fuzzy, label=args.label, reason=args.reason)
    print(f"watching {item.plate}" + (f" (±{item.fuzzy})" if item.fuzzy else ""))
    return 0


def run_watch_remove(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        removed = store.watchlist_remove(args.plate)
    if not removed:
        print(f"plateread: {args.plate} is not on the watchlist", file=sys.stderr)
        return 1
    print(f"removed {args.plate}")
    return 0


def run_watch_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        items = store.watchlist()
    if args.format == "json":
        print(json.dumps([w.to_dict() for w in items], indent=2, ensure_ascii=False))
    elif args.format == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=("plate", "fuzzy", "label", "reason", "created_at"),
                           lineterminator="\n")
        w.writeheader()
        w.writerows(i.to_dict() for i in items)
    else:
        print(format_table(("plate", "fuzzy", "label", "reason", "added (UTC)"),
                           [(w.plate, w.fuzzy, w.label, w.reason, _time(w.created_at) if w.created_at else "")
                            for w in items], "lrlll"))
    return 0
