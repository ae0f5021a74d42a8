"""The desk on its simulated market, end to end: trades, accounting identities, store agreement."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from desk.config import DeskConfig, parse_config
from desk.runtime import TradingRuntime
from desk.services.store.store import EventStore
from tests.conftest import config_data_for_tests, read_journal

THREE_DAYS = 3 * 24 * 60
PROJECTION_TABLES = ("events", "candles", "intents", "orders", "fills", "positions", "trades", "equity", "features")


def run_desk(config: DeskConfig, base_dir: Path, candles: int) -> TradingRuntime:
    runtime = TradingRuntime(config, base_dir=base_dir)
    asyncio.run(runtime.run(max_candles=candles))
    return runtime


def table_rows(database: Path, table: str) -> list[tuple[Any, ...]]:
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT * FROM {table} ORDER BY 1")).fetchall()
    engine.dispose()
    return [tuple(row) for row in rows]


@pytest.fixture(scope="module")
def three_day_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeskConfig, Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("three_days")
    config = parse_config(config_data_for_tests())
    run_desk(config, root, THREE_DAYS)
    return config, root, read_journal(root / "journal")


@pytest.mark.slow
def test_run_when_three_simulated_days_pass_then_trades_close(three_day_run) -> None:
    _, _, records = three_day_run
    closed = [r for r in records if r["type"] == "PositionClosed"]
    assert len([r for r in records if r["type"] == "CandleClosed"]) == 3 * THREE_DAYS
    assert len(closed) >= 5
    assert {r["exit_reason"].split(":")[0] for r in closed} >= {"stop_loss"}


@pytest.mark.slow
def test_equity_when_rebuilt_from_fills_and_closes_then_matches_every_sample(three_day_run) -> None:
    """Cash + marked positions = equity at every sample, recomputed independently from the journal."""
    _, _, records = three_day_run
    cash = 0.0
    holdings: dict[str, float] = defaultdict(float)
    last_close: dict[str, float] = {}
    samples = 0
    for record in records:
        kind = record["type"]
        if kind in ("AccountOpened", "AccountReset"):
            cash = record["cash"]
            holdings.clear()
        elif kind == "CandleClosed":
            last_close[record["symbol"]] = record["close"]
        elif kind == "OrderFilled":
            notional = record["qty"] * record["price"]
            sign = 1 if record["side"] == "buy" else -1
            cash += -sign * notional - record["fee"]
            holdings[record["symbol"]] += sign * record["qty"]
        elif kind == "EquitySampled":
            marked = sum(qty * last_close[symbol] for symbol, qty in holdings.items())
            assert math.isclose(record["cash"], cash, rel_tol=1e-9, abs_tol=1e-6), record["seq"]
            assert math.isclose(record["equity"], cash + marked, rel_tol=1e-9, abs_tol=1e-6), record["seq"]
            samples += 1
    assert samples >= THREE_DAYS


@pytest.mark.slow
def test_ledgers_when_summed_over_workers_then_equal_the_account_change(three_day_run) -> None:
    config, _, records = three_day_run
    realized: dict[str, float] = defaultdict(float)
    fees: dict[str, float] = defaultdict(float)
    open_cost: dict[str, tuple[str, float]] = {}
    last_close: dict[str, float] = {}
    for record in records:
        if record["type"] == "PositionClosed":
            realized[record["worker"]] += record["realized_pnl"]
            open_cost.pop(record["worker"], None)
        elif record["type"] == "OrderFilled":
            fees[record["worker"]] += record["fee"]
        elif record["type"] == "PositionOpened":
            open_cost[record["worker"]] = (record["symbol"], record["qty"] * record["entry_price"])
        elif record["type"] == "PositionReduced":
            symbol, cost = open_cost[record["worker"]]
            remaining_share = record["remaining_qty"] / (record["remaining_qty"] + record["qty_closed"])
            open_cost[record["worker"]] = (symbol, cost * remaining_share)
        elif record["type"] == "CandleClosed":
            last_close[record["symbol"]] = record["close"]
    final = [r for r in records if r["type"] == "EquitySampled"][-1]
    unrealized = final["positions_value"] - sum(cost for _, cost in open_cost.values())
    ledger_sum = sum(realized.values()) - sum(fees.values()) + unrealized
    assert set(realized) <= {w.name for w in config.workers}
    assert math.isclose(final["equity"] - config.settings.starting_cash, ledger_sum, abs_tol=1e-6)


@pytest.mark.slow
def test_fills_when_compared_between_journal_and_sqlite_then_identical(three_day_run) -> None:
    _, root, records = three_day_run
    journal_fills = {
        (r["fill_id"], r["seq"], r["qty"], r["price"], r["fee"]) for r in records if r["type"] == "OrderFilled"
    }
    engine = create_engine(f"sqlite:///{root / 'desk.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT fill_id, seq, qty, price, fee FROM fills")).fetchall()
    engine.dispose()
    assert journal_fills
    assert {tuple(row) for row in rows} == journal_fills


@pytest.mark.slow
def test_rebuild_db_when_run_after_a_session_then_every_table_is_identical(three_day_run) -> None:
    config, root, _ = three_day_run
    database = root / "desk.db"
    before = {table: table_rows(database, table) for table in PROJECTION_TABLES}
    store = EventStore(config.store, root)
    try:
        rebuilt = store.rebuild()
    finally:
        store.close()
    after = {table: table_rows(database, table) for table in PROJECTION_TABLES}
    assert rebuilt > 0
    for table in PROJECTION_TABLES:
        assert after[table] == before[table], table
