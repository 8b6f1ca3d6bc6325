"""``plateread batch``: archives of photos on a Dask cluster, into Parquet (and the store)."""
from __future__ import annotations

import argparse
import json
import sys

from .engine_options import add_engine_options
from .reads_cmd import add_store_options, open_store

DEFAULT_PARTITION_SIZE = 256  # plateread.batch.job.DEFAULT_PARTITION_SIZE; not imported: dask is optional


def _engine_dests() -> list[str]:
    """The attributes ``add_engine_options`` defines: what ``reader_from_args`` needs on a worker."""
    p = argparse.ArgumentParser(add_help=False)
    add_engine_options(p)
    return list(vars(p.parse_args([])))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="read archives of photos on a Dask cluster into Parquet",
        description="Read every photo of INPUT on Dask (a local cluster of --workers processes, or the "
                    "cluster at --scheduler) into --out, a folder of Parquet files: one per partition, one "
                    "row per plate read and one per image without a plate or with an error. A re-run with "
                    "the same --out keeps the partitions already written. Needs the [dist] extra. "
                    "See docs/BATCH.md.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="folders (recursive), globs, text files of paths or URLs (.txt/.lst/.list), a "
                        "labelled set's index.jsonl, or images; any fsspec URL (https://, s3://, ...)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (or fsspec URL) of part-NNNNNN.parquet files, e.g. reads.parquet")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive, metavar="N",
                       help="worker processes of the local cluster, one inference thread each (default: the cores)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="use the running Dask cluster at ADDRESS (tcp://host:8786) instead of a local one")
    p.add_argument("--partition-size", type=_positive, default=DEFAULT_PARTITION_SIZE, metavar="N",
                   help=f"images per partition and Parquet file (default {DEFAULT_PARTITION_SIZE})")
    p.add_argument("--split", help="index.jsonl inputs: only this split (train, dev, test)")
    p.add_argument("--crops", action="store_true",
                   help="every input is already a plate crop: read it whole, without detection")
    p.add_argument("--preload", action="append", default=[], metavar="MODULE",
                   help="import MODULE in every worker before the reader is built (one that registers "
                        "your own engine); repeatable")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="times Dask retries a partition whose task failed (default 2; a partition lost "
                        "with a killed worker is rescheduled anyway)")
    p.add_argument("--overwrite", action="store_true",
                   help="start again: delete the partitions in --out (needed when the engine settings changed)")
    p.add_argument("--dashboard", default="127.0.0.1:8787", metavar="ADDRESS",
                   help="local cluster: where to serve the Dask dashboard (default 127.0.0.1:8787; "
                        "'none' for no dashboard)")
    p.add_argument("--summary-json", metavar="FILE", help="also write the summary as JSON to FILE")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="force the progress bar on or off (default: on when stderr is a terminal)")
    add_engine_options(p)
    add_store_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.store and (args.db or args.media or args.camera or args.retention_days is not None):
        print("plateread: error: --db, --media, --camera and --retention-days need --store", file=sys.stderr)
        return 2
    try:
        from ..batch import BatchError, ReaderSpec, run_batch
    except ImportError as exc:
        print(f"plateread: error: batch needs the [dist] extra (pip install 'plateread[dist]'): {exc}",
              file=sys.stderr)
        return 2
    from .engine_options import reader_from_args

    reader_from_args(args)  # fails here, before a cluster starts, on a bad engine flag or model
    for module in args.preload:
        __import__(module)  # the same modules as the workers: a typo fails here too
    engine_args = argparse.Namespace(**{d: getattr(args, d) for d in _engine_dests()})
    spec = ReaderSpec("plateread.cli.engine_options:reader_from_args", (engine_args,),
                      preload=tuple(args.preload), crop=args.crops)
    store = open_store(args) if args.store else None
    try:
        summary = run_batch(
            args.inputs, args.out, spec=spec, workers=args.workers, scheduler=args.scheduler,
            partition_size=args.partition_size, split=args.split, retries=args.retries,
            overwrite=args.overwrite, store=store, camera=args.camera, progress=args.progress,
            dashboard_address=None if args.dashboard.lower() == "none" else args.dashboard)
    except BatchError as exc:
        print(f"plateread: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if store is not None:
            store.close()
    if summary.partitions == 0:
        print("plateread: no images found", file=sys.stderr)
        return 1
    for line in summary.lines():
        print(line)
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as fh:
            json.dump(summary.to_dict(), fh, indent=1)
            fh.write("\n")
    if summary.errors:
        print(f"plateread: {summary.errors} of {summary.images} image(s) could not be read "
              "(their rows carry the error)", file=sys.stderr)
    return 1 if summary.errors or summary.failed or summary.unstored else 0
