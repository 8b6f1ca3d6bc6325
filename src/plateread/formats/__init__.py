"""Region-aware plate formats: a TOML format library and a CTC decoder constrained by it.

See docs/FORMATS.md. Typical use on the CRNN's frame probabilities::

    dec = RegionDecoder("br")
    decision = dec.decode(fp.probs, fp.charset, fp.blank)
"""
from .decoder import DEFAULT_MAX_RATIO, RegionDecision, RegionDecoder, format_classifier
from .loader import (ENV_VAR, FormatError, Layout, Region, load_regions, parse_pattern,
                     resolve_regions)

__all__ = ["DEFAULT_MAX_RATIO", "ENV_VAR", "FormatError", "Layout", "Region", "RegionDecision",
           "RegionDecoder", "format_classifier", "load_regions", "parse_pattern", "resolve_regions"]
