"""The runs behind a model: each fine-tune starts from another run's checkpoint (``--init``), so
what a model saw is the whole chain, not its last run. Model cards carry that chain, oldest run
first, with the minutes, threads and data of each, and the totals.

A run's facts come from its own checkpoint (``command``: the command line that trained it,
``elapsed``: seconds trained up to that checkpoint), so a model picked at its best checkpoint
counts the minutes up to that point only. Runs whose checkpoints were not kept are listed in
``EARLIER_RUNS`` from their logs as docs/MODELS.md reports them.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

#: Runs whose checkpoints are gone, keyed by the ``--out`` folder of the run that started from
#: them. The OCR fine-tune ``ocr2`` started from the OCR shipped in sessions 1-2, whose runs
#: (``runs/ocr``, ``runs/ocr_ft``) were not committed; their minutes are in docs/MODELS.md.
EARLIER_RUNS: dict[str, list[dict[str, Any]]] = {
    "training/checkpoints/ocr2": [
        {"command": "python -m plateread.training.train_ocr --data ../shared/data --out runs/ocr --minutes 92 --seed 1",
         "minutes": 92.0, "threads": 2, "data": "built-in sets of session 1 + synthetic"},
        {"command": "python -m plateread.training.train_ocr --data ../shared/data --out runs/ocr_ft "
                    "--init runs/ocr/best.pt --minutes 25 --lr 7e-4 --seed 2",
         "minutes": 25.0, "threads": 2, "data": "built-in sets of session 1 + synthetic"},
    ],
}
#: A flag's value when the command line does not give it (the trainers' defaults).
DEFAULT_THREADS = 2


def _flags(command: str) -> dict[str, list[str]]:
    args = shlex.split(command)
    out: dict[str, list[str]] = {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
            out.setdefault(a, []).append(value)
    return out


def run_record(ck: dict[str, Any]) -> dict[str, Any]:
    """One run's entry: its command, minutes trained up to ``ck``, threads and data."""
    command = str(ck.get("command", ""))
    f = _flags(command)
    sets = (f.get("--sets") or [""])[-1] or "the built-in sets of its day"
    extra = f.get("--extra", [])
    data = sets + (" + " + ", ".join(extra) if extra else "") + (" + synthetic" if "train_ocr" in command
                                                                 else " + rendered composites")
    return {"command": command, "minutes": round(float(ck.get("elapsed", 0.0)) / 60, 1),
            "threads": int((f.get("--threads") or [DEFAULT_THREADS])[-1] or DEFAULT_THREADS), "data": data}


def lineage(ck: dict[str, Any], load: Any = None) -> list[dict[str, Any]]:
    """The runs behind checkpoint ``ck``, oldest first, following each command's ``--init``.
    ``load(path)`` reads a checkpoint (default: ``torch.load``); an ``--init`` that is an ONNX
    model contributes the lineage in its card, when it has one."""
    if load is None:
        import torch

        def load(p: Path) -> dict[str, Any]:
            return torch.load(p, map_location="cpu", weights_only=False)  # our own training's checkpoints # nosec B614

    runs = [run_record(ck)]
    seen: set[str] = set()
    cur = ck
    while True:
        f = _flags(str(cur.get("command", "")))
        out, init = (f.get("--out") or [""])[-1], (f.get("--init") or [""])[-1]
        if out in EARLIER_RUNS:
            return EARLIER_RUNS[out] + runs
        if not init or init in seen:
            return runs
        seen.add(init)
        path = Path(init)
        if path.suffix == ".pt" and path.is_file():
            cur = load(path)
            runs.insert(0, run_record(cur))
            continue
        card = path.with_suffix(".json")
        prior = json.loads(card.read_text(encoding="utf-8")).get("lineage") if card.is_file() else None
        return (list(prior) if prior else [{"command": f"(not recorded: the runs behind {init})",
                                            "minutes": None, "threads": None, "data": None}]) + runs


def totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Minutes and CPU-core-hours over the runs whose figures are known."""
    known = [r for r in runs if r.get("minutes") is not None]
    return {"train_minutes_total": round(sum(r["minutes"] for r in known), 1),
            "cpu_core_hours_total": round(sum(r["minutes"] * (r.get("threads") or 1) for r in known) / 60, 2),
            "runs_not_recorded": len(runs) - len(known)}


def main(argv: list[str] | None = None) -> None:
    """Writes the lineage of ``--ckpt`` into an existing model card (a model exported before cards
    carried it, or one whose card was edited by hand, e.g. a tuned threshold)."""
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--ckpt", required=True, help="the checkpoint the model was exported from")
    ap.add_argument("--card", required=True, help="the model's .json card")
    a = ap.parse_args(argv)
    ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)  # our own training's checkpoint # nosec B614
    card = Path(a.card)
    meta = json.loads(card.read_text(encoding="utf-8"))
    if meta.get("step") not in (None, ck.get("step")):
        raise SystemExit(f"{a.card} was exported at step {meta.get('step')}, {a.ckpt} is step {ck.get('step')}")
    runs = lineage(ck)
    meta.update({**totals(runs), "lineage": runs})
    card.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{card}: {len(runs)} runs, {meta['train_minutes_total']} minutes, {meta['cpu_core_hours_total']} CPU-core-hours")


if __name__ == "__main__":
    main()
