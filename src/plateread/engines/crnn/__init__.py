"""The learned CRNN plate reader (onnxruntime inference; no torch)."""
from .decode import Decoded, beam_search, greedy_decode

__all__ = ["Decoded", "beam_search", "greedy_decode"]
