"""Learned (ONNX) engine parts: the CenterNet-style plate detector."""
