"""Progress bars that appear on a terminal and stay silent when output is piped or logged."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], total: int | None = None, desc: str = "", enabled: bool | None = None) -> Iterator[T]:
    """Wraps ``items`` in a bar on stderr when stderr is a terminal (or ``enabled`` forces it)."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield from items
        return
    yield from tqdm(items, total=total, desc=desc, unit="img", file=sys.stderr, leave=False, dynamic_ncols=True)
