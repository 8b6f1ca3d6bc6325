"""Writing image results as a table, JSON, JSON lines or CSV.

jsonl and csv stream (a line per image / plate as soon as it is read, so nothing already read
is lost if a long run is stopped); table and json need every result and print at the end.
"""
from __future__ import annotations

import csv
import json
from typing import Any, Callable, Sequence, TextIO

from .types import ImageResult

FORMATS = ("table", "json", "jsonl", "csv")
CSV_FIELDS = ("image", "plate", "score", "xmin", "ymin", "xmax", "ymax", "width", "height",
              "processing_time", "error")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A plain-text table; ``align`` holds 'l' or 'r' per column (default: left)."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align.ljust(len(headers), "l")

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


class ResultWriter:
    def __init__(self, fmt: str, stream: TextIO) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        self.fmt = fmt
        self.stream = stream
        self._held: list[ImageResult] = []
        self._csv: Any = None
        self._write: Callable[[ImageResult], None] = getattr(self, f"_write_{fmt}")

    def write(self, result: ImageResult) -> None:
        self._write(result)

    def _write_table(self, result: ImageResult) -> None:
        self._held.append(result)

    _write_json = _write_table

    def _write_jsonl(self, result: ImageResult) -> None:
        self.stream.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        self.stream.flush()

    def _write_csv(self, result: ImageResult) -> None:
        if self._csv is None:
            self._csv = csv.DictWriter(self.stream, fieldnames=CSV_FIELDS, lineterminator="\n")
            self._csv.writeheader()
        base = {"image": result.image, "width": result.width, "height": result.height,
                "processing_time": round(result.processing_time, 2), "error": result.error or ""}
        if not result.results:
            self._csv.writerow({**base, "plate": "", "score": ""})
        for r in result.results:
            self._csv.writerow({**base, "plate": r.plate, "score": round(r.score, 4), **r.box.to_dict()})
        self.stream.flush()

    def close(self) -> None:
        if self.fmt == "json":
            json.dump([r.to_dict() for r in self._held], self.stream, indent=2, ensure_ascii=False)
            self.stream.write("\n")
        elif self.fmt == "table":
            rows = []
            for res in self._held:
                if res.error:
                    rows.append((res.image, "ERROR", "", "", f"{res.processing_time:.0f}", res.error))
                elif not res.results:
                    rows.append((res.image, "-", "", "", f"{res.processing_time:.0f}", ""))
                for r in res.results:
                    b = r.box
                    rows.append((res.image, r.plate, f"{r.score:.2f}", f"{b.xmin},{b.ymin},{b.xmax},{b.ymax}",
                                 f"{res.processing_time:.0f}", ""))
            self.stream.write(format_table(("image", "plate", "score", "box", "ms", "error"), rows, "llrrrl") + "\n")
        self.stream.flush()
