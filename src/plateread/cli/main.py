"""The ``plateread`` command."""
from __future__ import annotations

import argparse
import os
import sys

from .. import __version__, registry
from ..imaging import ImageError
from ..reader import DEFAULT_ENGINE
from . import batch_cmd, eval_cmd, finetune_cmd, read_cmd, reads_cmd, redact_cmd, serve_cmd, tokens_cmd, watch_cmd


def _engines(args: argparse.Namespace) -> int:
    for name, spec in sorted(registry.engines().items()):
        mark = " (default)" if name == DEFAULT_ENGINE else ""
        print(f"{name:14s} detector={spec.detector:10s} recognizer={spec.recognizer:10s} {spec.description}{mark}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plateread", description="Automatic number/licence plate recognition.")
    parser.add_argument("--version", action="version", version=f"plateread {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    read_cmd.add_parser(sub)
    batch_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    reads_cmd.add_parser(sub)
    watch_cmd.add_parser(sub)
    finetune_cmd.add_parser(sub)
    serve_cmd.add_parser(sub)
    tokens_cmd.add_parser(sub)
    redact_cmd.add_parser(sub)
    p = sub.add_parser("engines", help="list the available engines")
    p.set_defaults(func=_engines)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (registry.EngineError, ImageError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"plateread: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("plateread: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `plateread read ... | head`: the reader of our output went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
