"""The classic engine: the PyImageSearch tutorial's morphology locator and Tesseract OCR.

Submodules are not imported here so that the locator works without tesserocr installed.
"""
