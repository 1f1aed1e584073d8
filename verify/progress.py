"""Progress display for long runs (points done, rate, ETA) on standard error."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[tqdm]:
    """A tqdm bar over grid points; quiet when nothing is to be trained."""
    bar = tqdm(
        total=total,
        desc=description,
        unit="point",
        file=sys.stderr,
        disable=total == 0,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    try:
        yield bar
    finally:
        bar.close()
