"""glibc malloc settings for processes that read one image after another.

With glibc's defaults a large buffer (a decoded photo, the detector's input tensor) may be
mapped fresh for every image and unmapped after it: thousands of page faults per image, a few
milliseconds of system CPU each time. Measured twice: Dask's nanny sets
``MALLOC_TRIM_THRESHOLD_=65536`` for its workers (about 3,000 faults and 6 ms per 1280x720
photo), and the server's forked inference workers mapped some 2,000 pages per request (about 2 ms
of system CPU; counted ad hoc from /proc during `benchmarks/serve_load.py`, the script not kept).
Keeping freed memory for the next image is the cheaper choice for such a process.
"""
from __future__ import annotations

import sys

#: buffers of up to 32 MiB (a decoded 4K photo is 25 MB) come from the heap, and up to 64 MiB
#: of freed heap is kept rather than handed back at once
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024


def tune_malloc() -> bool:
    """Applies ``MMAP_THRESHOLD`` and ``TRIM_THRESHOLD`` to this process (and to the processes it
    forks later). Returns whether it applied (glibc on Linux only)."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(-3, MMAP_THRESHOLD)) and bool(mallopt(-1, TRIM_THRESHOLD))  # M_MMAP_, M_TRIM_THRESHOLD
