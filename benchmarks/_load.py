"""The ``--busy`` load of the benchmarks: one CPU-bound process beside the timing."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator


def _spin() -> None:
    """Spin one core forever."""
    x = 0
    while True:
        x = (x * 1103515245 + 12345) % 2147483648


@contextlib.contextmanager
def cpu_load(enabled: bool = True) -> Iterator[None]:
    """Run the block with one CPU-bound process beside it (none when not
    ``enabled``); the process is stopped when the block ends, however it ends."""
    proc = multiprocessing.Process(target=_spin, daemon=True) if enabled else None
    if proc is not None:
        proc.start()
    try:
        yield
    finally:
        if proc is not None:
            proc.terminate()
            proc.join()
