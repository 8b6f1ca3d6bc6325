"""plateread: automatic number/license plate recognition."""
from .debug import DebugSink
from .imaging import ImageError, load_image
from .reader import Reader
from .registry import EngineError, engines
from .types import Box, Candidate, Detection, ImageResult, PlateRead, Recognition

__version__ = "0.1.0"

__all__ = [
    "Box", "Candidate", "DebugSink", "Detection", "EngineError", "ImageError", "ImageResult",
    "PlateRead", "Reader", "Recognition", "engines", "load_image", "__version__",
]
