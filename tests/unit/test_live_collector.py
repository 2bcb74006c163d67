"""live.collector: the GC thresholds setting's parser and the pause record health shows."""

from __future__ import annotations

import gc

import pytest

from live.collector import PauseRecord, parse_thresholds


def test_thresholds_parse_three_bounded_whole_numbers():
    assert parse_thresholds("50000,20,10") == (50_000, 20, 10)
    assert parse_thresholds(" 700 , 10,10 ") == (700, 10, 10)
    for bad in ("700,10", "700,10,10,1", "a,b,c", "-1,10,10", "700,0,10", "50,10,10", "700,10,1001", ""):
        with pytest.raises(ValueError):
            parse_thresholds(bad)


def test_the_record_counts_each_generation_s_collections_and_keeps_the_longest_pause():
    record = PauseRecord()
    gc.callbacks.append(record)
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        gc.callbacks.remove(record)
    snapshot = record.snapshot()
    # Automatic collections may run too while the test allocates: at least the ones asked for.
    assert snapshot["collections"][0] >= 1 and snapshot["collections"][2] >= 2
    assert snapshot["longestPauseMs"][2] > 0
    assert snapshot["totalPauseMs"] >= snapshot["longestPauseMs"][2]
    assert snapshot["thresholds"] == list(gc.get_threshold())
