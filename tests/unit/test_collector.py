"""The server and the worker settle the garbage collector once they have started."""

from __future__ import annotations

import gc

from attain_service.process import YOUNG_THRESHOLD, settle_collector


def test_settle_collector_freezes_start_up_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
        settle_collector()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
