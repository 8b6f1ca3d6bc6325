"""A webhook receiver for plateread alerts that checks each delivery's signature and drops
duplicates by their idempotency key (delivery is at least once).

    python examples/webhook_receiver.py [--port 9000] [--secret change-me]

Prints one line per new alert. The ``verify`` function is all a receiver in any framework needs:
the HMAC-SHA256, with the shared secret, of ``"{X-Plateread-Timestamp}.{raw body}"``, compared in
constant time with ``X-Plateread-Signature`` (``sha256=<hex>``), and a timestamp no older than
five minutes (a captured request cannot be replayed later).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import http.server
import json
import time


def verify(secret: str, timestamp: str, signature: str, body: bytes, tolerance_s: float = 300) -> bool:
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--secret", default="change-me")
    args = ap.parse_args()
    seen: set[str] = set()   # a real receiver keeps these in its database, e.g. a unique column

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not verify(args.secret, self.headers.get("X-Plateread-Timestamp", ""),
                          self.headers.get("X-Plateread-Signature", ""), body):
                self.send_response(401)
                self.end_headers()
                return
            key = self.headers.get("Idempotency-Key", "")
            if key not in seen:
                seen.add(key)
                a = json.loads(body)
                names = ", ".join(w["label"] or w["plate"] for w in a.get("watchlist", []))
                print(f"{a['last_seen']} {a['camera']}: {a['plate']} ({a['type']}{': ' + names if names else ''})",
                      flush=True)
            self.send_response(200)   # a duplicate is acknowledged too, or it would be sent again
            self.end_headers()

    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
