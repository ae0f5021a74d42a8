"""StoreReader on a tiny hand-built store whose answers are worked out by hand (see read_store.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from dashboard.common import StoreLocationError, ledger_csv, resolve_store
from desk.backtest import RunRecorder, run_backtest
from desk.config import parse_config
from desk.services.feed.replay import ReplayFeed, ReplaySource
from desk.services.feed.simulated import SimulatedMarket
from desk.services.store import recent
from desk.services.store.journal import Journal
from desk.services.store.queries import StoreReader
from desk.services.store.readonly import StoreReadError, readonly_url
from desk.services.store.recent import read_recent
from tests.conftest import config_data_for_tests
from tests.dashboard.read_store import DAY, T0, at, build_tiny_store, equity_at


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_store(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def backtest_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StoreReader, RunRecorder]]:
    """A real backtest of 3,000 simulated BTC minutes: its equity marks are in EquitySeries chunks."""
    out = tmp_path_factory.mktemp("backtest")
    market = SimulatedMarket(["BTC/USD"], 11, T0)
    rows = (market.next_candles()[0] for _ in range(3_000))
    data = out / "btc.csv"
    data.write_text("".join(f"{c.ts},{c.open},{c.high},{c.low},{c.close},{c.volume}\n" for c in rows))
    config_data = config_data_for_tests()
    config_data["feed"]["symbols"] = ["BTC/USD"]
    config_data["workers"] = [w for w in config_data["workers"] if w["symbol"] == "BTC/USD"]
    source = ReplaySource(data, "BTC/USD")
    result = run_backtest(parse_config(config_data), ReplayFeed([source]), [source], out / "run")
    reader = StoreReader(f"sqlite:///{out / 'run' / 'desk.db'}", out / "run" / "journal")
    yield reader, result.recorder
    reader.close()


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> StoreReader:
    reader = StoreReader(f"sqlite:///{tiny_dir / 'desk.db'}", tiny_dir / "journal")
    yield reader
    reader.close()


# --- equity ----------------------------------------------------------------------------------


def test_equity_curve_when_more_samples_than_max_points_then_at_most_max_points_with_first_and_last(tiny) -> None:
    for max_points in (2, 3, 7, 10, 59):
        curve = tiny.equity_curve(max_points=max_points)
        assert 2 <= len(curve) <= max_points
        assert curve["ts"].iloc[0] == at(0) and curve["equity"].iloc[0] == 10_000.0
        assert curve["ts"].iloc[-1] == at(59) and curve["equity"].iloc[-1] == 10_230.0
        assert curve["seq"].is_monotonic_increasing
        assert curve["equity_max"].max() == 10_470.0 and curve["equity_min"].min() == 10_000.0
        assert (curve["equity_min"] <= curve["equity"]).all() and (curve["equity"] <= curve["equity_max"]).all()


def test_equity_curve_when_two_buckets_then_last_min_max_and_worst_drawdown_of_each(tiny) -> None:
    # Three points: the first sample, then two buckets of 30 slots each (0-29 and 30-59).
    curve = tiny.equity_curve(max_points=3)
    assert curve["ts"].tolist() == [at(0), at(29), at(59)]
    assert curve["equity"].tolist() == [10_000.0, 10_290.0, 10_230.0]
    assert curve["equity_min"].tolist() == [10_000.0, 10_000.0, 10_230.0]
    assert curve["equity_max"].tolist() == [10_000.0, 10_290.0, 10_470.0]
    assert curve["drawdown_max"].tolist() == pytest.approx([0.0, 0.0, 240 / 10_470])
    assert str(curve["time"].iloc[1]) == "2026-01-01 14:30:00+00:00"


def test_equity_curve_when_fewer_samples_than_max_points_then_every_sample(tiny) -> None:
    curve = tiny.equity_curve(max_points=2000)
    assert curve["equity"].tolist() == [equity_at(slot) for slot in range(60)]


def test_equity_curve_when_range_given_then_only_samples_inside(tiny) -> None:
    curve = tiny.equity_curve(start_ms=at(10), end_ms=at(19))
    assert curve["ts"].tolist() == [at(slot) for slot in range(10, 20)]
    assert tiny.drawdown(start_ms=at(50), end_ms=at(50))["drawdown_pct"].tolist() == pytest.approx([60 / 10_470])


def test_equity_curve_when_the_store_is_a_backtest_then_it_is_the_runs_marks_in_time_order(
    backtest_store: tuple[StoreReader, RunRecorder],
) -> None:
    reader, recorder = backtest_store

    curve = reader.equity_curve(max_points=100_000)
    stats = reader.period_stats()
    summary = reader.summary()

    assert curve["ts"].tolist() == recorder.equity_ts and curve["equity"].tolist() == recorder.equity
    assert len(recorder.equity) == 3_000 - 120  # every minute after the warm-up, in 1440-mark chunks
    assert (curve["open_positions"] > 0).tolist() == recorder.exposed
    assert (stats.start_equity, stats.end_equity) == (recorder.equity[0], recorder.equity[-1])
    assert summary is not None and (summary.as_of_ms, summary.equity) == (recorder.equity_ts[-1], recorder.equity[-1])
    assert reader.equity_bounds() == (recorder.equity_ts[0], recorder.equity_ts[-1])
    assert len(reader.equity_curve(max_points=100)) <= 100


def test_equity_curve_when_the_database_predates_equity_series_then_its_rows_still_read(
    tiny_dir: Path, tmp_path: Path
) -> None:
    # A control room upgraded before the daemon rebuilt its database: the chunk table is missing.
    shutil.copytree(tiny_dir, tmp_path / "old")
    with sqlite3.connect(tmp_path / "old" / "desk.db") as connection:
        connection.execute("DROP TABLE equity_series")
    reader = StoreReader(f"sqlite:///{tmp_path / 'old' / 'desk.db'}", tmp_path / "old" / "journal")

    curve = reader.equity_curve(max_points=2000)

    assert curve["equity"].tolist() == [equity_at(slot) for slot in range(60)]
    assert reader.equity_bounds() == (at(0), at(59)) and reader.period_stats().end_equity == 10_230.0
    summary = reader.summary()
    assert summary is not None and summary.equity == 10_230.0
    reader.close()


def test_summary_when_latest_sample_on_second_day_then_today_pnl_since_previous_day_close(tiny) -> None:
    summary = tiny.summary()
    assert summary is not None
    assert (summary.as_of_ms, summary.equity, summary.cash) == (at(59), 10_230.0, 9_180.0)
    assert (summary.positions_value, summary.open_positions) == (1_050.0, 1)
    assert summary.today_start_ms == T0 + DAY
    assert summary.today_pnl == pytest.approx(-240.0)
    assert summary.today_pnl_pct == pytest.approx(-240.0 / 10_470.0)
    assert summary.high_water_mark == 10_470.0
    assert summary.drawdown_pct == pytest.approx(240 / 10_470)
    assert (summary.trade_count, summary.realized_net_pnl) == (6, pytest.approx(-2.0))


def test_period_stats_when_day_two_then_change_and_worst_drawdown_inside(tiny) -> None:
    stats = tiny.period_stats(T0 + DAY, T0 + 2 * DAY - 1)
    assert (stats.start_equity, stats.end_equity, stats.change) == (10_450.0, 10_230.0, -220.0)
    assert stats.max_drawdown_pct == pytest.approx(240 / 10_470)


def test_lifecycle_marks_when_restarted_and_halted_then_start_stop_start_halt(tiny) -> None:
    marks = tiny.lifecycle_marks()
    assert marks["kind"].tolist() == ["start", "stop", "start", "halt"]
    assert marks["ts"].tolist() == [at(0), at(40), at(41), at(55)]
    assert "max_drawdown" in marks["detail"].iloc[-1]
    assert tiny.lifecycle_marks(start_ms=at(41))["kind"].tolist() == ["start", "halt"]


# --- state, feed, positions ----------------------------------------------------------------------


def test_risk_state_when_halted_then_state_rule_reason_and_since(tiny) -> None:
    risk = tiny.risk_state()
    assert (risk.state, risk.previous, risk.rule, risk.since_ms) == ("HALTED", "REDUCING", "max_drawdown", at(55))
    assert "20.50%" in risk.reason


def test_heartbeat_when_beaten_long_ago_then_stale_and_not_stopped(tiny) -> None:
    beat = tiny.heartbeat()
    assert beat is not None and (beat.pid, beat.stopped) == (4242, False)
    assert beat.age_s(now_wall_ms=beat.wall_ms + 45_000) == 45.0


def test_feed_status_when_symbols_end_at_different_minutes_then_last_close_each_and_lag(tiny) -> None:
    feed = tiny.feed_status()
    assert feed[["symbol", "ts", "close", "behind_ms"]].values.tolist() == [
        ["BTC/USD", at(59), 43_000.0, 0],
        ["ETH/USD", at(58), 2_100.0, 1_800_000],
    ]


def test_open_positions_when_one_open_then_unrealised_pnl_against_last_close(tiny) -> None:
    positions = tiny.open_positions()
    assert len(positions) == 1
    row = positions.iloc[0]
    assert (row.position_id, row.worker, row.entry_price, row.stop_price, row.take_profit) == (
        "p-open",
        "beta",
        2_000.0,
        1_900.0,
        2_200.0,
    )
    assert (row.last_close, row.unrealized_pnl, row.unrealized_r) == (2_100.0, 50.0, 1.0)


# --- ledger --------------------------------------------------------------------------------------


def test_closed_trades_when_filtered_then_sql_filters_apply(tiny) -> None:
    def ids(**filters: object) -> list[str]:
        return tiny.closed_trades(limit=None, **filters)["position_id"].tolist()

    assert ids() == ["p-b2", "p-b1", "p-a4", "p-a3", "p-a2", "p-a1"]  # newest exit first
    assert ids(workers=["alpha"]) == ["p-a4", "p-a3", "p-a2", "p-a1"]
    assert ids(symbols=["ETH/USD"]) == ["p-b2", "p-b1"]
    assert ids(start_ms=T0 + DAY) == ["p-b2", "p-b1"]
    assert ids(start_ms=at(8), end_ms=at(12)) == ["p-a3", "p-a2"]
    assert ids(exit_reasons=["stop_loss"]) == ["p-b2", "p-a3", "p-a2"]
    assert ids(exit_reasons=["signal", "operator flatten"]) == ["p-b1", "p-a4"]
    assert ids(workers=["alpha"], exit_reasons=["stop_loss"], symbols=["BTC/USD"]) == ["p-a3", "p-a2"]
    assert ids(workers=["nobody"]) == []


def test_closed_trades_when_paginated_then_pages_follow_newest_first(tiny) -> None:
    assert tiny.closed_trades(limit=2, offset=0)["position_id"].tolist() == ["p-b2", "p-b1"]
    assert tiny.closed_trades(limit=2, offset=2)["position_id"].tolist() == ["p-a4", "p-a3"]
    assert tiny.closed_trades(limit=2, offset=6).empty


def test_ledger_totals_when_filtered_then_count_wins_net_and_fees(tiny) -> None:
    everything = tiny.ledger_totals()
    assert (everything.trades, everything.wins, everything.net_pnl, everything.fees) == (6, 2, -2.0, 6.0)
    assert everything.win_rate == pytest.approx(1 / 3)
    stops = tiny.ledger_totals(exit_reasons=["stop_loss"])
    assert (stops.trades, stops.wins, stops.net_pnl) == (3, 0, -42.0)


def test_trade_filter_options_when_trades_exist_then_values_and_exit_range(tiny) -> None:
    options = tiny.trade_filter_options()
    assert options.workers == ("alpha", "beta")
    assert options.symbols == ("BTC/USD", "ETH/USD")
    assert options.exit_reasons == ("operator flatten", "signal", "stop_loss", "take_profit")
    assert (options.first_exit_ms, options.last_exit_ms) == (at(4), at(54))


def test_ledger_csv_when_filtered_then_every_matching_trade_with_exit_kind(tiny) -> None:
    lines = ledger_csv(tiny, {"workers": ["alpha"]}).decode().splitlines()
    assert len(lines) == 1 + 4
    header = lines[0].split(",")
    assert header[-2:] == ["exit_kind", "exit_reason"] and "net_pnl" in header
    assert lines[-1].startswith("p-a1,alpha,BTC/USD")
    assert ",signal,signal: RSI 71.0 crossed above 70" in lines[1]


# --- workers -------------------------------------------------------------------------------------


def test_worker_attribution_when_trades_known_then_win_rate_expectancy_and_drawdown_by_hand(tiny) -> None:
    table = tiny.worker_attribution().set_index("worker")
    assert list(table.index) == ["alpha", "gamma", "beta"]  # best net PnL first
    alpha, beta, gamma = table.loc["alpha"], table.loc["beta"], table.loc["gamma"]
    # alpha: nets 30, -10, -25, 15 -> cumulative 30, 20, -5, 10: peak 30, trough -5.
    assert (alpha.trades, alpha.wins, alpha.win_rate) == (4, 2, 0.5)
    assert (alpha.net_pnl, alpha.fees, alpha.realized_pnl) == (10.0, 4.0, 14.0)
    assert (alpha.expectancy, alpha.avg_win, alpha.avg_loss) == (2.5, 22.5, -17.5)
    assert alpha.expectancy_r == pytest.approx(0.25)
    assert alpha.max_drawdown == 35.0
    # beta: nets -5, -7 -> the curve starts at 0, so the drawdown is the whole 12.
    assert (beta.trades, beta.win_rate, beta.expectancy, beta.max_drawdown, beta.open_positions) == (
        2,
        0.0,
        -6.0,
        12,
        1,
    )
    assert (gamma.trades, gamma.faults, gamma.state, gamma.state_reason) == (0, 2, "disabled", "2 consecutive faults")


def test_worker_attribution_when_workers_named_then_idle_ones_listed_with_zeros(tiny) -> None:
    table = tiny.worker_attribution(workers=("alpha", "eth-rsi")).set_index("worker")
    assert set(table.index) == {"alpha", "beta", "gamma", "eth-rsi"}
    idle = table.loc["eth-rsi"]
    assert (idle.trades, idle.wins, idle.net_pnl, idle.max_drawdown, idle.faults, idle.state) == (
        0,
        0,
        0.0,
        0.0,
        0,
        "active",
    )
    assert pd.isna(idle.win_rate) and pd.isna(idle.expectancy) and pd.isna(idle.avg_win)
    assert table.loc["alpha", "trades"] == 4  # naming a worker changes nothing about its figures


def test_learner_summary_when_workers_named_then_idle_ones_listed_with_zero_counts(tiny) -> None:
    summary = tiny.learner_summary(workers=["gamma", "alpha"]).set_index("worker")
    assert list(summary.index) == ["alpha", "beta", "gamma"]
    assert summary.loc["gamma", ["intents", "scored", "vetoed", "outcomes", "wins"]].tolist() == [0, 0, 0, 0, 0]
    assert pd.isna(summary.loc["gamma", "mean_score"])
    assert summary.loc["alpha", "intents"] == tiny.learner_summary().set_index("worker").loc["alpha", "intents"]


def test_reader_when_database_driver_missing_then_store_read_error_without_password(tmp_path: Path) -> None:
    reader = StoreReader("postgresql+nosuchdriver://desk:canary-pg-secret-99@127.0.0.1/desk", tmp_path / "journal")
    with pytest.raises(StoreReadError) as caught:
        reader.summary()
    assert "canary-pg-secret-99" not in str(caught.value) and "cannot open" in str(caught.value)


def test_worker_attribution_when_period_given_then_only_trades_exiting_inside(tiny) -> None:
    table = tiny.worker_attribution(start_ms=at(10), end_ms=at(20)).set_index("worker")
    # alpha's trades exiting at slots 12 and 16 net -25, +15: the curve -25, -10 falls 25 from 0.
    assert (table.loc["alpha", "trades"], table.loc["alpha", "net_pnl"], table.loc["alpha", "max_drawdown"]) == (
        2,
        -10.0,
        25.0,
    )


def test_worker_equity_when_downsampled_then_cumulative_net_keeps_first_and_last(tiny) -> None:
    assert tiny.worker_equity("alpha")["cum_net_pnl"].tolist() == [30.0, 20.0, -5.0, 10.0]
    assert tiny.worker_equity("alpha")["trades"].tolist() == [1, 2, 3, 4]
    coarse = tiny.worker_equity("alpha", max_points=2)
    assert (coarse["cum_net_pnl"].tolist(), coarse["ts"].tolist()) == ([30.0, 10.0], [at(4), at(16)])
    assert tiny.worker_equity("nobody").empty


def test_worker_faults_when_worker_faulted_then_newest_first(tiny) -> None:
    faults = tiny.worker_faults()
    assert faults[["worker", "error_type", "consecutive"]].values.tolist() == [
        ["gamma", "ValueError", 2],
        ["gamma", "ValueError", 1],
    ]
    assert tiny.worker_faults(worker="alpha").empty
    assert len(tiny.worker_faults(limit=1)) == 1


def test_learner_scores_when_scored_vetoed_and_denied_then_each_outcome_shown(tiny) -> None:
    alpha = tiny.learner_scores(worker="alpha")
    assert alpha["intent_id"].tolist() == ["i-denied", "i-a4", "i-a3", "i-a2", "i-a1"]
    assert (alpha["status"].iloc[0], alpha["deny_rule"].iloc[0]) == ("denied", "max_concurrent_positions")
    assert alpha["won"].tolist()[1:] == [True, False, False, True]
    beta = tiny.learner_scores(worker="beta")
    assert (beta["intent_id"].tolist(), bool(beta["vetoed"].iloc[0]), beta["status"].iloc[0]) == (
        ["i-vetoed"],
        True,
        "vetoed",
    )
    summary = tiny.learner_summary().set_index("worker")
    assert summary.loc["alpha", ["intents", "denied", "outcomes", "wins"]].tolist() == [5, 1, 4, 2]
    assert summary.loc["beta", ["intents", "vetoed"]].tolist() == [1, 1]


def test_known_workers_and_symbols_when_store_mentions_them_then_sorted(tiny) -> None:
    assert tiny.known_workers() == ["alpha", "beta", "gamma"]
    assert tiny.known_symbols() == ["BTC/USD", "ETH/USD"]


def test_commands_when_inbox_has_applied_and_pending_then_newest_first_with_detail(tiny) -> None:
    inbox = tiny.commands()
    assert inbox[["command", "status", "detail"]].values.tolist() == [
        ["pause_worker", "pending", ""],
        ["halt", "applied", "trading halted"],
    ]
    assert json.loads(inbox["payload"].iloc[0]) == {"worker": "alpha"}


# --- journal ---------------------------------------------------------------------------------------


def test_journal_tail_when_filtered_by_level_then_derived_levels_in_journal_order(tiny) -> None:
    errors = tiny.journal_tail(levels=["error"]).rows
    assert errors["type"].tolist() == ["OrderRejected", "WorkerFaulted", "WorkerFaulted"]
    assert errors["detail"].iloc[-1] == "ValueError: bad window (#2)"
    warnings = tiny.journal_tail(levels=["warning"]).rows
    assert warnings["type"].tolist() == ["OrderDenied", "WorkerStateChanged", "RiskStateChanged", "RiskStateChanged"]
    assert tiny.journal_tail(levels=["error"], types=["OrderDenied"]).rows.empty


def test_journal_tail_when_filtered_by_type_worker_symbol_then_last_n_newest_matches(tiny) -> None:
    closed = tiny.journal_tail(types=["PositionClosed"], workers=["beta"]).rows
    assert closed["ts"].tolist() == [at(50), at(54)]
    assert closed["detail"].iloc[0].startswith("net -5.00 (-0.50R) operator flatten")
    candles = tiny.journal_tail(types=["CandleClosed"], symbols=["ETH/USD"], last_n=2).rows
    assert candles["ts"].tolist() == [at(57), at(58)]
    tail = tiny.journal_tail(last_n=3)
    assert tail.rows["seq"].tolist() == [104, 105, 106] and not tail.complete
    assert tiny.journal_tail(last_n=1000).complete


def test_read_recent_when_blocks_are_tiny_and_last_line_torn_then_complete_lines_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "journal")
    records = [
        {"seq": n, "id": f"e{n}", "type": "X" if n % 3 else "Y", "ts_event": T0 + n * DAY // 4} for n in range(1, 41)
    ]
    with journal:
        journal.append(records)
    newest = journal.files()[-1]
    with newest.open("ab") as handle:
        handle.write(b'{"seq":41,"type":"Y","ts_ev')  # a batch caught mid-write
    for block in (7, 64, 1 << 20):
        monkeypatch.setattr(recent, "_BLOCK", block)
        found = read_recent(journal, last_n=5)
        assert [r["seq"] for r in found.records] == [36, 37, 38, 39, 40]
        only_y = read_recent(journal, last_n=100, accept=lambda r: r["type"] == "Y", needles=[b'"Y"'])
        assert [r["seq"] for r in only_y.records] == list(range(3, 41, 3)) and only_y.complete


# --- missing and read-only stores --------------------------------------------------------------------


def test_reader_when_store_does_not_exist_then_every_query_is_empty_and_nothing_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    reader = StoreReader(f"sqlite:///{missing / 'desk.db'}", missing / "journal")
    assert reader.equity_curve().empty and reader.drawdown().empty and reader.lifecycle_marks().empty
    assert reader.summary() is None and reader.heartbeat() is None and reader.equity_bounds() is None
    assert reader.risk_state().state == "ACTIVE"
    assert reader.feed_status().empty and reader.open_positions().empty and reader.closed_trades().empty
    assert reader.ledger_totals().trades == 0 and reader.trade_filter_options().workers == ()
    assert reader.worker_attribution().empty and reader.worker_equity("alpha").empty
    assert reader.worker_faults().empty and reader.learner_scores().empty and reader.learner_summary().empty
    assert reader.commands().empty and reader.known_workers() == [] and reader.runtime_status() == {}
    assert reader.journal_tail().rows.empty and reader.period_stats().start_equity is None
    assert "equity" in reader.equity_curve().columns
    assert not missing.exists()


def test_reader_when_database_has_no_tables_yet_then_empty(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "desk.db").close()  # the daemon has created the file, not its tables
    reader = StoreReader(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path / "journal")
    assert reader.summary() is None and reader.closed_trades().empty and reader.worker_attribution().empty


def test_readonly_url_when_used_to_write_then_sqlite_refuses(tiny_dir: Path) -> None:
    url = readonly_url(f"sqlite:///{tiny_dir / 'desk.db'}")
    assert url is not None and "mode=ro" in url
    engine = create_engine(url)
    with engine.connect() as connection, pytest.raises(OperationalError, match="readonly"):
        connection.execute(text("DELETE FROM trades"))
    engine.dispose()
    assert readonly_url(f"sqlite:///{tiny_dir / 'nope.db'}") is None


# --- where the store is --------------------------------------------------------------------------------


def test_resolve_store_when_store_dir_set_then_journal_and_db_inside_it(tmp_path: Path) -> None:
    location = resolve_store({"DESK_STORE_DIR": "runs/bt1"}, tmp_path)
    assert location.database_url == f"sqlite:///{tmp_path / 'runs/bt1/desk.db'}"
    assert location.journal_dir == tmp_path / "runs/bt1/journal"
    assert location.config_path is None
    (tmp_path / "runs/bt1").mkdir(parents=True)
    (tmp_path / "runs/bt1/config.yaml").write_text("settings: {}\n")
    assert resolve_store({"DESK_STORE_DIR": "runs/bt1"}, tmp_path).config_path == tmp_path / "runs/bt1/config.yaml"


def test_resolve_store_when_config_given_then_its_store_section_relative_to_cwd(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "desk.yaml"
    config.parent.mkdir()
    # A mistake outside the store section does not hide the store.
    config.write_text("workers: nonsense\nstore: {journal_dir: data/journal, database_url: 'sqlite:///data/x.db'}\n")
    location = resolve_store({"DESK_CONFIG": "conf/desk.yaml"}, tmp_path)
    assert location.journal_dir == tmp_path / "data/journal"
    assert location.database_url == f"sqlite:///{tmp_path / 'data/x.db'}"
    assert location.config_path == config


def test_resolve_store_when_no_env_then_default_config_and_missing_one_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreLocationError, match=r"configs/config\.yaml"):
        resolve_store({}, tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs/config.yaml").write_text("settings: {mode: paper}\n")
    location = resolve_store({}, tmp_path)
    assert location.journal_dir == tmp_path / "logs/journal"
    assert location.database_url == f"sqlite:///{tmp_path / 'logs/desk.db'}"
