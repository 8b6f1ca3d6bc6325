"""The Parquet rows of a batch: one per plate read, one per image with no plate or an error.

The columns follow the JSON of ``plateread read --format jsonl`` (``box`` and ``candidates`` keep
their shape as a struct and a list of structs), flattened to one row per plate so that a query
engine (DuckDB, Spark, Athena, pandas) can filter and group plates without unnesting.

``results_from_table`` turns rows back into ``ImageResult`` objects (for the store, or any code
written against the Python API).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import pyarrow as pa

from ..types import Box, Candidate, ImageResult, PlateRead

_BOX = pa.struct([("xmin", pa.int32()), ("ymin", pa.int32()), ("xmax", pa.int32()), ("ymax", pa.int32())])
_CANDIDATE = pa.struct([("plate", pa.string()), ("score", pa.float64())])

#: One row per plate read; an image without plates (or that could not be read) has one row whose
#: ``plate`` and ``plate_index`` are null (and ``error`` says why, for a failure).
SCHEMA = pa.schema([
    pa.field("image", pa.string(), nullable=False),   # the path or URL as listed
    pa.field("width", pa.int32()),                     # 0 when the image could not be read
    pa.field("height", pa.int32()),
    pa.field("plate_index", pa.int16()),               # 0, 1, ... within the image; null: no plate
    pa.field("plate", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("box", _BOX),
    pa.field("candidates", pa.list_(_CANDIDATE)),
    pa.field("detection_score", pa.float64()),
    pa.field("char_scores", pa.list_(pa.float64())),
    pa.field("region", pa.string()),
    pa.field("region_score", pa.float64()),
    pa.field("corners", pa.list_(pa.list_(pa.float64()))),  # TL, TR, BR, BL as [x, y] when known
    pa.field("error", pa.string()),
    pa.field("processing_time", pa.float64()),         # ms for the whole image (fetch excluded)
    pa.field("partition", pa.int32()),
])

#: Keys of the file-level metadata of each partition file.
META_PREFIX = "plateread."


def result_rows(result: ImageResult, partition: int) -> list[dict[str, Any]]:
    """The rows of one image."""
    base = {"image": result.image, "width": result.width, "height": result.height,
            "error": result.error, "processing_time": float(result.processing_time), "partition": partition}
    if not result.results:
        return [base]
    rows = []
    for i, r in enumerate(result.results):
        rows.append({
            **base, "plate_index": i, "plate": r.plate, "score": float(r.score), "box": r.box.to_dict(),
            "candidates": [{"plate": c.plate, "score": float(c.score)} for c in r.candidates],
            "detection_score": float(r.detection_score),
            "char_scores": [float(s) for s in r.char_scores] if r.char_scores else None,
            "region": r.region, "region_score": None if r.region_score is None else float(r.region_score),
            "corners": [[float(x), float(y)] for x, y in r.corners] if r.corners else None,
        })
    return rows


def to_table(rows: list[dict[str, Any]], metadata: dict[str, str] | None = None) -> pa.Table:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    if metadata:
        table = table.replace_schema_metadata({f"{META_PREFIX}{k}": v for k, v in metadata.items()})
    return table


def read_metadata(schema: pa.Schema) -> dict[str, str]:
    """The plateread keys of a partition file's metadata, without their prefix."""
    raw = schema.metadata or {}
    n = len(META_PREFIX)
    return {k.decode()[n:]: v.decode() for k, v in raw.items() if k.decode().startswith(META_PREFIX)}


def _plate(row: dict[str, Any]) -> PlateRead:
    b = row["box"]
    return PlateRead(
        plate=row["plate"], score=row["score"],
        box=Box(b["xmin"], b["ymin"], b["xmax"], b["ymax"]) if b else Box(0, 0, 0, 0),
        candidates=tuple(Candidate(c["plate"], c["score"]) for c in row["candidates"] or ()),
        detection_score=row["detection_score"] if row["detection_score"] is not None else 1.0,
        char_scores=tuple(row["char_scores"] or ()),
        region=row["region"], region_score=row["region_score"],
        corners=tuple((x, y) for x, y in row["corners"]) if row["corners"] else None,
    )


def results_from_rows(rows: Iterable[dict[str, Any]]) -> Iterator[ImageResult]:
    """Groups rows (in file order) back into one ``ImageResult`` per image. A row without a plate
    is a whole image; a plate row with index 0 starts one (so an image listed twice stays two)."""
    current: dict[str, Any] | None = None
    plates: list[PlateRead] = []

    def done() -> ImageResult:
        assert current is not None
        return ImageResult(current["image"], current["width"], current["height"], current["processing_time"],
                           tuple(plates), current["error"])

    for row in rows:
        if row["plate_index"] is None or row["plate_index"] == 0:
            if current is not None:
                yield done()
            current, plates = row, []
        if row["plate_index"] is not None:
            plates.append(_plate(row))
    if current is not None:
        yield done()


def results_from_table(table: pa.Table) -> Iterator[ImageResult]:
    """``results_from_rows`` over a table, a record batch at a time."""
    def rows() -> Iterator[dict[str, Any]]:
        for batch in table.to_batches():
            yield from batch.to_pylist()
    return results_from_rows(rows())
