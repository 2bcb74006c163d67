"""The benchmarks' pure arithmetic: percentiles, summaries, ratios, series, verdicts."""

from __future__ import annotations

import math

import pytest

from bench.measure import Batch, Series, Summary, interleave, percentile, ratio
from bench.report import Line, Outcome, fmt_ratio, table


def test_percentile_interpolates_between_closest_ranks_like_numpy_linear():
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 25) == pytest.approx(1.75)
    assert percentile(list(range(101)), 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_percentile_refuses_nothing_and_out_of_range():
    with pytest.raises(ValueError):
        percentile([], 50)
    for q in (-1, 101, math.nan):
        with pytest.raises(ValueError):
            percentile([1.0], q)


def test_summary_is_a_percentile_pair_that_scales():
    summary = Summary.of([0.001, 0.002, 0.003])
    assert summary.count == 3
    assert summary.p50 == 0.002
    scaled = summary.scaled(1000)
    assert scaled.p50 == pytest.approx(2.0)
    assert scaled.p99 == pytest.approx(2.98)


def test_ratio_guards_a_zero_or_missing_denominator():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) is None
    assert ratio(1.0, -1.0) is None
    assert ratio(math.nan, 1.0) is None
    assert fmt_ratio(None) == "n/a"
    assert fmt_ratio(1.234) == "1.23x"


def test_series_accumulates_rounds_and_counts_only_successes_as_throughput():
    series = Series("side")
    series.add(Batch(latencies_s=[0.1, 0.2], errors=1, elapsed_s=1.0, error_messages=["boom"]))
    series.add(Batch(latencies_s=[0.3], errors=0, elapsed_s=0.5, error_messages=["boom", "bang"]))
    assert series.completed == 3
    assert series.errors == 1
    assert series.throughput == pytest.approx(2.0)
    assert series.error_messages == ["boom", "bang"]
    assert series.summary_ms().p50 == pytest.approx(200.0)
    assert Series("empty").throughput == 0.0


def test_interleave_alternates_sides_round_by_round():
    order: list[str] = []
    interleave(3, [lambda: order.append("A"), lambda: order.append("B")])
    assert order == ["A", "B", "A", "B", "A", "B"]


def test_outcome_verdicts_never_claim_a_figure_that_was_not_measured():
    outcome = Outcome(9, "x", "X", "goal")
    outcome.add(Line("a", "1 ms", goal="< 2 ms", met=True))
    assert outcome.verdict == "met"
    outcome.add(Line("b", goal="< 10 s", unavailable="no watchdog"))
    assert outcome.verdict == "met (partly not available: no watchdog)"
    outcome.add(Line("c", "3 ms", goal="< 2 ms", met=False))
    assert outcome.verdict.startswith("MISSED")

    missing = Outcome(8, "y", "Y", "goal")
    missing.add(Line("run", goal="(see goal)", unavailable="route missing"))
    assert missing.verdict == "not available: route missing"
    rendered = table([missing])
    assert "not available: route missing" in rendered
    assert "| 8 | Y |" in rendered


def test_the_open_loop_generator_reads_status_length_and_close_from_a_response_head():
    from bench.open_loop import _parse_head

    head = b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nContent-Type: application/json"
    assert _parse_head(head) == (200, 42, False)
    assert _parse_head(b"HTTP/1.1 503 Service Unavailable\r\nconnection: Close\r\ncontent-length: 0") == (
        503,
        0,
        True,
    )
    assert _parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 1") == (200, 1, True)
    with pytest.raises(ValueError):
        _parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")
