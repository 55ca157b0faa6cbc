"""Wall-clock time per named part of a step (stage 1's breakdown: decode, shots, detection, ...)."""
from __future__ import annotations

import contextlib
import time
from typing import Iterator


class StageTimer:
    """Sums ``time.perf_counter`` seconds per part; parts keep the order they first ran in."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def time(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start


def timed(timer: StageTimer | None, part: str) -> contextlib.AbstractContextManager:
    """``timer.time(part)``, or a no-op when there is no timer."""
    return contextlib.nullcontext() if timer is None else timer.time(part)
