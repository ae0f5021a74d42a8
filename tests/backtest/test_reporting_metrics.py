"""Report metrics on sparse curves, data gaps and very short runs, hand-computed on tiny recorders."""

from __future__ import annotations

from dataclasses import replace

import pytest

from desk.backtest import RunRecorder
from desk.core.events import EquitySampled, PositionClosed, PositionOpened, PositionReduced
from desk.core.types import DAY_MS, MINUTE_MS
from desk.reporting import build_report, format_summary
from tests.backtest.test_reporting import T0, trade


def closed(worker: str, entry_ts: int, exit_ts: int, net_pnl: float) -> PositionClosed:
    """A closed trade with no fees (the report's trade helper, fee-free)."""
    return trade(worker, entry_ts, exit_ts, net_pnl, fees=0.0)


def minutes(*ks: int) -> list[int]:
    return [T0 + k * MINUTE_MS for k in ks]


def test_build_report_when_a_worker_loses_long_after_its_peak_then_its_drawdown_time_starts_at_the_loss() -> None:
    # 30 days of flat account samples; the worker's ledger: +10 at minute 2 (peak 110), -5 at day 10,
    # +10 at day 20 (115, a new high). It sits at 110 until the day-10 exit, so it is below its peak
    # from that exit's minute (day 10 - 1 min) to the day-20 exit: 10 days and 1 minute, not the
    # ~20 days from its previous ledger point.
    ts = minutes(*range(1, 30 * 1440 + 1))
    trades = [
        closed("w", T0 + MINUTE_MS, T0 + 2 * MINUTE_MS, 10.0),
        closed("w", T0 + 10 * DAY_MS - 5 * MINUTE_MS, T0 + 10 * DAY_MS, -5.0),
        closed("w", T0 + 20 * DAY_MS - 5 * MINUTE_MS, T0 + 20 * DAY_MS, 10.0),
    ]
    run = RunRecorder(equity_ts=ts, equity=[100.0] * len(ts), exposed=[False] * len(ts), trades=trades)
    worker = build_report(run, 100.0).by_worker["w"]
    assert worker.max_drawdown == pytest.approx(5 / 110)
    assert worker.max_drawdown_duration_ms == 10 * DAY_MS + MINUTE_MS


def test_build_report_when_the_account_falls_right_after_a_data_gap_then_the_gap_is_not_drawdown_time() -> None:
    # Samples at minutes 1 (110), then nothing until 1001 (99) and 1002 (120). Equity is carried forward
    # over the gap, as for returns, so it left its peak in the minute closing at 1001 (from 1000) and
    # was back above it at 1002: 2 minutes, not the 1001 minutes since the sample at minute 1.
    run = RunRecorder(equity_ts=minutes(1, 1001, 1002), equity=[110.0, 99.0, 120.0], exposed=[False] * 3, trades=[])
    total = build_report(run, 100.0).total
    assert total.max_drawdown == pytest.approx(0.1)
    assert total.max_drawdown_duration_ms == 2 * MINUTE_MS


def test_build_report_when_a_position_is_held_across_a_data_gap_then_account_exposure_counts_the_gap() -> None:
    # Samples at minutes 1..10 and 1001..1010; one position entered at minute 5, closed at minute 1005.
    # The run spans minute 0 (opening balance) to 1010 = 1010 minutes, of which 1000 are held, for the
    # worker and for the account alike: 1000 / 1010. Counting samples instead gives 10 / 20 = 0.5.
    ks = [*range(1, 11), *range(1001, 1011)]
    run = RunRecorder(
        equity_ts=minutes(*ks),
        equity=[100.0] * len(ks),
        exposed=[5 <= k < 1005 for k in ks],
        trades=[closed("w", T0 + 5 * MINUTE_MS, T0 + 1005 * MINUTE_MS, 0.0)],
    )
    report = build_report(run, 100.0)
    assert report.by_worker["w"].exposure == pytest.approx(1000 / 1010)
    assert report.total.exposure == pytest.approx(1000 / 1010)


def test_build_report_when_samples_are_contiguous_then_exposure_is_the_time_after_entry_until_exit() -> None:
    # Samples at minutes 1..4; the state after each sample holds until the next one. Held after minute 2
    # and 3 (entered at 2, closed at 4): minutes 2 → 4, i.e. 2 of the 4 minutes from the opening at 0.
    run = RunRecorder(
        equity_ts=minutes(1, 2, 3, 4),
        equity=[100.0] * 4,
        exposed=[False, True, True, False],
        trades=[closed("w", T0 + 2 * MINUTE_MS, T0 + 4 * MINUTE_MS, 0.0)],
    )
    report = build_report(run, 100.0)
    assert report.total.exposure == pytest.approx(0.5)
    assert report.by_worker["w"].exposure == pytest.approx(0.5)


@pytest.mark.parametrize("last", [100.1, 99.9])
def test_build_report_when_the_run_is_shorter_than_a_day_then_cagr_is_undefined(last: float) -> None:
    # +-0.1 % over 3 minutes compounded over 365 days is 1.001^175200 ~ 1e76 or 0.999^175200 ~ 1e-76:
    # "1.12e+76x" or "-100.0%", numbers that say nothing about the strategy. Total return says it.
    run = RunRecorder(equity_ts=minutes(1, 2, 3), equity=[100.0, 100.0, last], exposed=[False] * 3, trades=[])
    report = build_report(run, 100.0)
    assert report.total.cagr is None
    assert report.total.total_return == pytest.approx(last / 100.0 - 1.0)
    assert "e+" not in format_summary(report) and "-100.0%" not in format_summary(report)


def test_build_report_when_the_run_spans_a_day_then_cagr_is_annualised() -> None:
    # One day exactly, 100 → 101: 1.01^365 - 1.
    run = RunRecorder(equity_ts=minutes(1, 1440), equity=[100.0, 101.0], exposed=[False] * 2, trades=[])
    assert build_report(run, 100.0).total.cagr == pytest.approx(1.01**365 - 1.0)


def test_build_report_when_the_data_ends_with_a_position_open_then_its_fees_and_time_in_market_count() -> None:
    run = RunRecorder()
    # Ten minutes of samples (the opening balance sits one minute before the first: a 10-minute span).
    for k in range(1, 11):
        held = int(k > 5)
        marks = dict(equity=100.0, cash=100.0, positions_value=0.0, high_water_mark=100.0, drawdown_pct=0.0)
        run.apply(EquitySampled(ts_event=T0 + k * MINUTE_MS, open_positions=held, **marks))
    # Worker "a" closes one trade over minutes 1-3, paying 1.5 in fees; worker "b" enters at minute 5
    # paying 2.6, sells half at minute 8 paying 1.0, and still holds the rest when the data ends.
    run.apply(replace(closed("a", T0 + MINUTE_MS, T0 + 3 * MINUTE_MS, 4.0), fees=1.5))
    position = dict(worker="b", symbol="BTC/USD", position_id="pb")
    run.apply(
        PositionOpened(
            ts_event=T0 + 5 * MINUTE_MS, qty=2.0, entry_price=100.0, stop_price=95.0, take_profit=None,
            entry_fee=2.6, risk_usd=10.0, **position,
        )
    )  # fmt: skip
    run.apply(
        PositionReduced(
            ts_event=T0 + 8 * MINUTE_MS, qty_closed=1.0, price=101.0, fee=1.0, remaining_qty=1.0, **position
        )
    )

    report = build_report(run, 100.0, workers=["a"])

    # Fees paid: 1.5 on a's closed trade + 2.6 + 1.0 on b's open one = 5.1, in total and by worker.
    assert report.total.fees == pytest.approx(5.1)
    assert report.by_worker["a"].fees == pytest.approx(1.5)
    assert report.by_worker["b"].fees == pytest.approx(3.6)
    # b held from minute 5 to the end (minute 10): 5 of the 10 minutes, with no trade closed.
    assert (report.by_worker["b"].exposure, report.by_worker["b"].trade_count) == (pytest.approx(0.5), 0)
    assert report.by_worker["a"].exposure == pytest.approx(0.2)
