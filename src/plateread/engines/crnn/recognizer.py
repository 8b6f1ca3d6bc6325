"""The learned plate reader: a CRNN (ONNX, run by onnxruntime) + CTC beam search.

No torch here: the shipped model is ``plateread/models/ocr.onnx`` with its ``ocr.json``
(charset, input size, blank index), so the charset can grow without touching this code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ...debug import DebugSink
from ...registry import is_off
from ...types import Candidate, Recognition
from ...formats import RegionDecoder
from .calibration import Calibration
from .decode import beam_search, greedy_decode

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "ocr.onnx"
#: A second model for the reader's second look at unsure reads (docs/MODELS.md): its errors
#: differ from the first one's often enough that fusing the two readings wins.
DEFAULT_SECOND_MODEL = DEFAULT_MODEL.with_name("ocr-second.onnx")


@dataclass(frozen=True)
class FrameProbs:
    """Per-frame class probabilities of one crop, for constrained decoders."""

    probs: np.ndarray  # [T, C] float32, rows sum to 1; column ``blank`` is the CTC blank
    charset: str       # column k+1 is charset[k] when blank == 0
    blank: int = 0


def read_score(cands: list, probs: np.ndarray) -> float:
    """Score in 0–1 of the top reading: its beam probability normalised over the beams times its
    weakest character. Both halves fail differently: an ambiguous image spreads mass across
    beams, a single smudged character shows only in its own frames."""
    if not cands:
        return 0.0
    total = sum(c.prob for c in cands)
    share = cands[0].prob / total if total > 0 else 0.0
    weakest = min(cands[0].char_probs) if cands[0].char_probs else 0.0
    return float(share * weakest)


class CrnnRecognizer:
    """Reads BGR plate crops (one or two text lines) with the shipped CRNN model."""

    name = "crnn"

    def __init__(self, *, ocr_model: str | None = None, beam_width: int = 5, top_n: int = 5,
                 batch_size: int = 32, threads: int = 1,
                 region: str | Sequence[str] | None = None, second_model: str | None = "auto") -> None:
        """``second_model``: the model asked for a second opinion on unsure reads ("auto": the
        shipped one, unless ``ocr_model`` replaces the first, whose errors it was not chosen
        against; None or "none": no second opinion)."""
        path = Path(ocr_model) if ocr_model else DEFAULT_MODEL
        meta_path = path.with_suffix(".json")
        if not path.is_file() or not meta_path.is_file():
            raise FileNotFoundError(
                f"CRNN model not found: need {path} and {meta_path}. Train and export it with "
                "`python -m plateread.training.train_ocr` (see training/README.md) or pass "
                "ocr_model=")
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - dependency is declared
            raise ImportError("the crnn recognizer needs onnxruntime (pip install onnxruntime)") from exc
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.charset: str = meta["charset"]
        self.blank: int = int(meta.get("blank", 0))
        self.height: int = int(meta["input"]["height"])
        self.width: int = int(meta["input"]["width"])
        self.meta = meta
        self.model_path = path
        self.calibration = Calibration.from_card(meta)  # None: raw scores (an uncalibrated model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.beam_width, self.top_n, self.batch_size = beam_width, top_n, max(1, batch_size)
        # Plate formats settle look-alikes (Z/7, O/0...) from the frame probabilities; "none"
        # keeps the plain reading (still tagged with the region it happens to fit).
        if is_off(region):
            region = None
        self.region_decoder = RegionDecoder(region, top_n=top_n) if region is not None else None
        if second_model == "auto":
            second_model = str(DEFAULT_SECOND_MODEL) if not ocr_model and DEFAULT_SECOND_MODEL.is_file() else None
        if is_off(second_model):
            second_model = None
        self.second: CrnnRecognizer | None = (
            CrnnRecognizer(ocr_model=second_model, beam_width=beam_width, top_n=top_n, batch_size=batch_size,
                           threads=threads, second_model=None) if second_model else None)

    def preprocess(self, crop: np.ndarray) -> np.ndarray:
        """BGR/gray uint8 -> float32 [1, H, W] in [0, 1], stretched like in training."""
        g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
        if g.size == 0:
            g = np.zeros((self.height, self.width), np.uint8)
        interp = cv2.INTER_AREA if g.shape[1] > self.width else cv2.INTER_LINEAR
        g = cv2.resize(g, (self.width, self.height), interpolation=interp)
        return (g.astype(np.float32) / 255.0)[None]

    def recognize_probs(self, crops: Sequence[np.ndarray]) -> list[FrameProbs]:
        """The [T, C] probability matrix of each crop (same order)."""
        out: list[FrameProbs] = []
        for i in range(0, len(crops), self.batch_size):
            x = np.stack([self.preprocess(c) for c in crops[i:i + self.batch_size]])
            logp = self.session.run(None, {self.input_name: x})[0]
            for m in np.exp(logp.astype(np.float64)).astype(np.float32):
                out.append(FrameProbs(m, self.charset, self.blank))
        return out

    def decode(self, fp: FrameProbs) -> Recognition:
        rec = self._decode(fp)
        if self.calibration is None or not rec.text:
            return rec
        return Recognition(rec.text, self.calibration(rec.score, rec.char_scores), rec.candidates,
                           rec.char_scores, rec.region, rec.region_score)

    def _decode(self, fp: FrameProbs) -> Recognition:
        if self.beam_width <= 1:
            d = greedy_decode(fp.probs, fp.charset, fp.blank)
            cands = [d]
        else:
            cands = beam_search(fp.probs, fp.charset, self.beam_width, self.top_n, fp.blank)
        if not cands or not cands[0].text:
            return Recognition("", 0.0)
        if self.region_decoder is not None:
            d = self.region_decoder.decode(fp.probs, fp.charset, fp.blank, unconstrained=cands)
            if not d.text:
                return Recognition("", 0.0)
            return Recognition(
                text=d.text,
                score=d.score,
                candidates=tuple(Candidate(t, sc) for t, sc, _ in d.candidates if t)[:self.top_n],
                char_scores=tuple(float(p) for p in d.char_probs),
                region=d.region,
                region_score=d.region_score,
            )
        total = sum(c.prob for c in cands) or 1.0
        return Recognition(
            text=cands[0].text,
            score=read_score(cands, fp.probs),
            candidates=tuple(Candidate(c.text, c.prob / total) for c in cands if c.text),
            char_scores=tuple(float(p) for p in cands[0].char_probs),
        )

    def recognize(self, crops: Sequence[np.ndarray], debug: DebugSink | None = None
                  ) -> list[Recognition]:
        return [self.decode(fp) for fp in self.recognize_probs(crops)]

    def second_opinion(self, crops: Sequence[np.ndarray]) -> list[Recognition]:
        """The second model's readings of ``crops`` (with the same plate formats), or [] without one."""
        if self.second is None:
            return []
        self.second.region_decoder = self.region_decoder   # a request may have changed the formats
        return self.second.recognize(crops)
