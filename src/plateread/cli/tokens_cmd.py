"""``plateread tokens``: API tokens for ``plateread serve``. Secrets are shown once, at creation;
the store keeps only their hashes."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from ..output import format_table
from .reads_cmd import add_db_options, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokens", help="API tokens for plateread serve: create, list, revoke",
                       description="API tokens for `plateread serve` (clients send `Authorization: Token KEY`). "
                                   "The secret is printed once, when the token is created; the store keeps "
                                   "only its SHA-256.")
    add_db_options(p)
    ts = p.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    c = ts.add_parser("create", help="make a token and print its secret (once)")
    c.add_argument("name", help="a name for who uses it, e.g. home-assistant")
    c.add_argument("--rate", type=float, metavar="N", help="requests per second for this token "
                   "(default: the server's --rate-limit)")
    c.add_argument("--format", choices=("text", "json"), default="text")
    ls = ts.add_parser("list", help="list tokens (never their secrets) with this month's calls")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    rv = ts.add_parser("revoke", help="delete a token; clients using it get 403 from then on")
    rv.add_argument("name")
    for s, func in ((c, run_create), (ls, run_list), (rv, run_revoke)):
        add_db_options(s, nested=True)
        s.set_defaults(func=func)


def run_create(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        info, secret = store.token_create(args.name, rate=args.rate)
    if args.format == "json":
        print(json.dumps({**info.to_dict(), "token": secret}))
    else:
        print(secret)
        print(f"plateread: token {info.name!r} created; this is the only time its secret is shown. "
              f"Clients send it as 'Authorization: Token {info.prefix}…'.", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        items = store.tokens()
    if args.format == "json":
        print(json.dumps([t.to_dict() for t in items], indent=2))
        return 0
    def when(t: dt.datetime | None) -> str:
        return t.strftime("%Y-%m-%d %H:%M") if t else ""

    rows = [(t.name, t.prefix + "…", "" if t.rate is None else f"{t.rate:g}/s", t.calls, when(t.created_at),
             when(t.last_used_at)) for t in items]
    print(format_table(("name", "prefix", "rate", "calls (month)", "created (UTC)", "last used (UTC)"), rows, "llrrll"))
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if not store.token_revoke(args.name):
            print(f"plateread: no token named {args.name!r}", file=sys.stderr)
            return 1
    print(f"revoked {args.name}")
    return 0
