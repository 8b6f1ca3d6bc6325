"""Training of the learned OCR (synthetic renderer, real-crop loader, CRNN, export).

Only ``model``, ``train_ocr`` and ``export_ocr`` import torch; plateread's inference never does.
"""
