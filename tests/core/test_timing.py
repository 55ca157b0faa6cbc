"""StageTimer: seconds per named part, summed over repeats, kept when the part raises."""
from __future__ import annotations

import time

import pytest

from vcn_plugin.core.timing import StageTimer, timed


def test_parts_are_summed_in_first_run_order_and_kept_on_errors():
    timer = StageTimer()
    for _ in range(2):
        with timer.time("b"):
            time.sleep(0.01)
        with timed(timer, "a"):
            pass
    with pytest.raises(RuntimeError):
        with timer.time("c"):
            raise RuntimeError("boom")
    assert list(timer.seconds) == ["b", "a", "c"]
    assert timer.seconds["b"] >= 0.02 and timer.seconds["a"] < timer.seconds["b"]
    with timed(None, "ignored"):
        pass
