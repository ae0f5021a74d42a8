"""The backtest report: metrics hand-computed on tiny recorders, and the text, HTML and JSON outputs."""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from desk.backtest import RunRecorder
from desk.core.events import PositionClosed
from desk.core.types import MINUTE_MS
from desk.reporting import (
    BacktestReport,
    account_curve,
    build_report,
    downsample,
    format_summary,
    period_returns,
    read_json,
    write_html,
    write_json,
)

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def trade(worker: str, entry_ts: int, exit_ts: int, net_pnl: float, fees: float) -> PositionClosed:
    return PositionClosed(
        ts_event=exit_ts,
        worker=worker,
        symbol="BTC/USD",
        position_id=f"p-{worker}-{exit_ts}",
        qty=1.0,
        entry_ts=entry_ts,
        entry_price=100.0,
        exit_price=100.0 + net_pnl + fees,
        realized_pnl=net_pnl + fees,
        fees=fees,
        net_pnl=net_pnl,
        r_multiple=net_pnl / 5.0,
        exit_reason="signal",
    )


def recorder(ts: list[int], equity: list[float], exposed: list[bool], trades: list[PositionClosed]) -> RunRecorder:
    return RunRecorder(equity_ts=list(ts), equity=list(equity), exposed=list(exposed), trades=list(trades))


@pytest.fixture
def minute_run() -> RunRecorder:
    """Opening 100, then samples 110 → 99 → 120 one minute apart; worker a wins 10, worker b loses 5."""
    return recorder(
        [T0 + MINUTE_MS, T0 + 2 * MINUTE_MS, T0 + 3 * MINUTE_MS],
        [110.0, 99.0, 120.0],
        [True, False, True],
        [trade("a", T0, T0 + MINUTE_MS, 10.0, 1.0), trade("b", T0 + MINUTE_MS, T0 + 3 * MINUTE_MS, -5.0, 0.5)],
    )


def test_minute_run_total_metrics_match_hand_computation(minute_run: RunRecorder) -> None:
    report = build_report(minute_run, 100.0)
    total = report.total
    assert report.period == "minute"
    assert (report.start_ms, report.end_ms) == (T0, T0 + 3 * MINUTE_MS)
    assert total.start_equity == 100.0 and total.end_equity == 120.0
    assert total.total_return == pytest.approx(0.2)
    assert total.max_drawdown == pytest.approx(0.1)  # 110 → 99
    assert total.max_drawdown_duration_ms == 2 * MINUTE_MS  # at the peak at minute 1, back above at minute 3
    returns = [0.1, -0.1, 120 / 99 - 1]
    mean = sum(returns) / 3
    assert total.sharpe == pytest.approx(mean / statistics.stdev(returns) * math.sqrt(525_600))
    downside = math.sqrt((0.0 + 0.01 + 0.0) / 3)
    assert total.sortino == pytest.approx(mean / downside * math.sqrt(525_600))
    assert total.cagr is None  # 20 % in three minutes compounds past float range: no meaningful rate
    assert total.trade_count == 2
    assert total.win_rate == 0.5
    assert total.expectancy == pytest.approx(2.5)
    assert total.profit_factor == pytest.approx(2.0)
    assert total.net_pnl == pytest.approx(5.0)
    assert total.fees == pytest.approx(1.5)
    # Each sample's state holds until the next: held after minute 1 (to 2), flat after minute 2 (to 3); the
    # state after minute 3 holds for no time. 1 of the 3 minutes.
    assert total.exposure == pytest.approx(1 / 3)


def test_per_worker_metrics_come_from_each_sub_ledger(minute_run: RunRecorder) -> None:
    report = build_report(minute_run, 100.0, workers=["a", "b", "idle"])
    a, b, idle = report.by_worker["a"], report.by_worker["b"], report.by_worker["idle"]
    # a: 100, then 110 from its exit at minute 1 to the end.
    assert a.total_return == pytest.approx(0.1) and a.end_equity == pytest.approx(110.0)
    assert a.max_drawdown == 0.0 and a.max_drawdown_duration_ms == 0
    assert a.exposure == pytest.approx(1 / 3)  # held minute 0 → 1 of a three-minute run
    assert a.win_rate == 1.0 and a.profit_factor is None  # no losing trade: infinite, reported as None
    # b: 100 until its exit at minute 3, then 95; never recovers. Its ledger is at 100 until the minute
    # closing at 3, so it is below its peak from minute 2 to the end at 3.
    assert b.total_return == pytest.approx(-0.05)
    assert b.max_drawdown == pytest.approx(0.05)
    assert b.max_drawdown_duration_ms == MINUTE_MS
    assert b.exposure == pytest.approx(2 / 3)
    assert (b.win_rate, b.expectancy, b.profit_factor, b.fees) == (0.0, -5.0, 0.0, 0.5)
    assert idle.trade_count == 0 and idle.total_return == 0.0 and idle.win_rate is None


def test_daily_returns_use_utc_closes_and_a_midnight_stamp_closes_the_previous_day() -> None:
    minutes = np.arange(1, 3 * 1440 + 1)
    # Each sample's value is its day's level; the sample stamped at midnight belongs to the day it closes.
    levels = np.array([110.0, 99.0, 120.0])[(minutes - 1) // 1440]
    run = recorder((T0 + minutes * MINUTE_MS).tolist(), levels.tolist(), [False] * minutes.size, [])
    report = build_report(run, 100.0)
    assert report.period == "daily"
    curve = account_curve(run, 100.0)
    np.testing.assert_allclose(period_returns(curve, "daily"), [0.1, -0.1, 120 / 99 - 1])
    returns = [0.1, -0.1, 120 / 99 - 1]
    assert report.total.sharpe == pytest.approx(sum(returns) / 3 / statistics.stdev(returns) * math.sqrt(365))
    assert report.total.cagr == pytest.approx(1.2 ** (365 / 3) - 1)
    # Last at 110 at minute 1440, back above it at minute 2881.
    assert report.total.max_drawdown_duration_ms == 1441 * MINUTE_MS
    assert report.total.exposure == 0.0


def test_a_run_without_trades_has_defined_metrics_and_renders(tmp_path: Path) -> None:
    run = recorder([T0 + k * MINUTE_MS for k in range(1, 61)], [100.0] * 60, [False] * 60, [])
    report = build_report(run, 100.0)
    total = report.total
    assert (total.total_return, total.max_drawdown, total.max_drawdown_duration_ms) == (0.0, 0.0, 0)
    assert total.cagr is None  # an hour is too short to annualise, even a flat one
    assert (total.trade_count, total.net_pnl, total.fees, total.exposure) == (0, 0.0, 0.0, 0.0)
    # Flat curve and no trades: the ratios are undefined, not zero and not an exception.
    assert (total.sharpe, total.sortino, total.win_rate, total.expectancy, total.profit_factor) == (None,) * 5
    assert report.by_worker == {}
    assert "TOTAL" in format_summary(report) and "—" in format_summary(report)
    write_json(report, tmp_path / "r.json")
    write_html(report, run, tmp_path / "r.html")
    assert read_json(tmp_path / "r.json") == report


def test_a_run_that_never_sampled_equity_still_reports() -> None:
    report = build_report(RunRecorder(), 1000.0)
    assert report.total.end_equity == 1000.0 and report.total.sharpe is None and report.total.cagr is None


def test_summary_is_an_aligned_table_with_the_account_first(minute_run: RunRecorder) -> None:
    text = format_summary(build_report(minute_run, 100.0))
    lines = text.splitlines()
    header, rows = lines[1], [line for line in lines[2:] if not line.startswith("-")]
    assert [row.split()[0] for row in rows] == ["TOTAL", "a", "b"]
    assert "Sharpe" in header and "max DD" in header
    assert "+20.0%" in rows[0] and "2.00" in rows[0]  # return and profit factor
    assert len({len(line) for line in lines[1:] if not line.startswith("-")}) <= 2  # columns line up


def test_html_is_self_contained(minute_run: RunRecorder, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_html(build_report(minute_run, 100.0), minute_run, path)
    text = path.read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", text, re.IGNORECASE)
    assert "Plotly.newPlot" in text and len(text) > 1_000_000  # plotly.js is inline
    assert "Sharpe" in text and "<td>TOTAL</td>" in text


def test_json_round_trips_and_writes_non_finite_numbers_as_null(minute_run: RunRecorder, tmp_path: Path) -> None:
    report = build_report(minute_run, 100.0)
    path = tmp_path / "report.json"
    write_json(report, path)
    assert read_json(path) == report
    broken = BacktestReport(
        total=replace(report.total, sharpe=math.nan, profit_factor=math.inf),
        by_worker={},
        start_ms=report.start_ms,
        end_ms=report.end_ms,
        period=report.period,
    )
    write_json(broken, path)
    data = json.loads(path.read_text())
    assert data["total"]["sharpe"] is None and data["total"]["profit_factor"] is None


def test_downsampling_keeps_at_most_the_limit_and_the_extremes() -> None:
    ts = np.arange(100_000, dtype=np.int64) * MINUTE_MS
    values = np.sin(np.arange(100_000) / 1000.0)
    values[54_321] = -5.0
    kept_ts, kept = downsample(ts, values, 5_000)
    assert kept.size <= 5_000
    assert kept.min() == -5.0 and kept_ts[0] == 0 and kept_ts[-1] == ts[-1] and np.all(np.diff(kept_ts) > 0)
    assert downsample(ts[:10], values[:10], 5_000)[1].size == 10
