"""Video and live cameras: frame sources, plate tracking, one fused read per vehicle.

``watch(source, reader)`` yields one VehicleEvent per vehicle; ``PlateTracker`` does the same
for frames a service feeds itself. See docs/VIDEO.md.
"""
from .events import VehicleEvent
from .fusion import FusedRead, Observation, fuse
from .pipeline import PlateTracker, StatusLine, Watcher, watch
from .sources import Frame, VideoSource
from .tracker import ByteTracker

__all__ = ["ByteTracker", "Frame", "FusedRead", "Observation", "PlateTracker", "StatusLine",
           "VehicleEvent", "VideoSource", "Watcher", "fuse", "watch"]
