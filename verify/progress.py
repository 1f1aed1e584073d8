"""Progress display for long runs (tasks done, rate, ETA) on standard error."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(total: int, description: str, unit: str = "task") -> Iterator[tqdm]:
    """A tqdm bar over the tasks (a grid point, or one repetition of it); quiet when nothing
    is to be trained."""
    bar = tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        disable=total == 0,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    try:
        yield bar
    finally:
        bar.close()
