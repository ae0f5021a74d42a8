"""Stores for the read-side tests: a tiny hand-built one with known numbers, and real daemon runs.

The tiny store goes through the real `EventStore` (journal, then projection), so
the queries read exactly what the daemon would have written for these events.
Its figures, worked out by hand, are in the docstring of `build_tiny_store`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from streamlit.testing.v1 import AppTest

from desk.config import StoreConfig, parse_config
from desk.core import events as ev
from desk.core.events import Event, event_to_record
from desk.services.store.store import EventStore
from tests.conftest import PROJECT_ROOT, config_data_for_tests

PAGES_DIR = PROJECT_ROOT / "dashboard" / "pages"
APP = PROJECT_ROOT / "dashboard" / "app.py"
# The first run imports plotly, pandas and the desk: far over AppTest's 3 s default on a busy machine.
PAGE_TIMEOUT_S = 60.0

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
HALF_HOUR = 1_800_000
DAY = 86_400_000
STALE_WALL_MS = 1_000_000_000_000  # 2001: a heartbeat that is certainly stale

ALPHA_NETS = (30.0, -10.0, -25.0, 15.0)  # exits at slots 4, 8, 12, 16 (day 1)
ALPHA_REASONS = ("take_profit", "stop_loss", "stop_loss", "signal: RSI 71.0 crossed above 70")
BETA_NETS = (-5.0, -7.0)  # exits at slots 50, 54 (day 2)
BETA_REASONS = ("operator flatten", "stop_loss")


def at(slot: int) -> int:
    """Return the ts of a half-hour slot: slot 0 is 2026-01-01 00:00 UTC, slot 48 the next midnight."""
    return T0 + slot * HALF_HOUR


def equity_at(slot: int) -> float:
    """Equity climbs 10 a slot through day 1 (10000 -> 10470 at slot 47), then falls 20 a slot."""
    return 10_000.0 + 10.0 * slot if slot < 48 else 10_470.0 - 20.0 * (slot - 47)


class _Timeline:
    """Collect events at times, then number them in time order and write them through an EventStore."""

    def __init__(self) -> None:
        self._items: list[tuple[int, int, type[Event], dict[str, Any]]] = []

    def add(self, ts_event: int, cls: type[Event], /, **fields: Any) -> None:
        self._items.append((ts_event, len(self._items), cls, fields))

    def records(self) -> list[dict[str, Any]]:
        out = []
        for seq, (ts, _, cls, fields) in enumerate(sorted(self._items, key=lambda item: item[:2]), start=1):
            envelope = {"seq": seq, "id": f"e{seq}", "ts_event": ts, "ts_init": ts + 5}
            out.append(event_to_record(cls(**envelope, **fields)))
        return out


def _trade(
    timeline: _Timeline,
    worker: str,
    symbol: str,
    key: str,
    exit_slot: int,
    net: float,
    reason: str,
    score: float | None,
) -> None:
    entry_ts, exit_ts = at(exit_slot - 2), at(exit_slot)
    tags = {"worker": worker, "symbol": symbol}
    intent_id, position_id = f"i-{key}", f"p-{key}"
    if score is not None:
        timeline.add(
            entry_ts,
            ev.IntentProposed,
            **tags,
            correlation_id=intent_id,
            intent_id=intent_id,
            side="buy",
            reference_price=100.0,
            stop_price=90.0,
            take_profit=120.0,
            confidence=0.6,
            reason="test entry",
        )
        timeline.add(entry_ts, ev.IntentScored, **tags, intent_id=intent_id, score=score, vetoed=False, features={})
    timeline.add(
        entry_ts,
        ev.PositionOpened,
        **tags,
        position_id=position_id,
        qty=1.0,
        entry_price=100.0,
        stop_price=90.0,
        take_profit=120.0,
        entry_fee=0.5,
        risk_usd=10.0,
    )
    timeline.add(
        exit_ts,
        ev.PositionClosed,
        **tags,
        position_id=position_id,
        qty=1.0,
        entry_ts=entry_ts,
        entry_price=100.0,
        exit_price=100.0 + net + 1.0,
        realized_pnl=net + 1.0,
        fees=1.0,
        net_pnl=net,
        r_multiple=net / 10.0,
        exit_reason=reason,
    )
    if score is not None:
        won = net > 0
        timeline.add(
            exit_ts,
            ev.LearnerOutcomeRecorded,
            **tags,
            intent_id=intent_id,
            position_id=position_id,
            net_pnl=net,
            r_multiple=net / 10.0,
            won=won,
        )


def build_tiny_store(store_dir: Path) -> Path:
    """Write a small store with known answers into store_dir (journal/ and desk.db); return store_dir.

    - Equity: 60 half-hourly samples from 2026-01-01 00:00, see `equity_at`; the last
      (slot 59, 2026-01-02 05:30) is 10230 with 1050 in an open position. Today's PnL is
      10230 - 10470 (the last sample of Jan 1) = -240.
    - alpha (BTC/USD) closed 4 trades netting 30, -10, -25, 15 (fees 1 each): 2 wins, win rate
      0.5, expectancy 2.5, cumulative curve 30, 20, -5, 10 so max drawdown 35. One more alpha
      intent was denied (max_concurrent_positions) and one order rejected.
    - beta (ETH/USD) closed 2 trades netting -5, -7 on Jan 2: expectancy -6, max drawdown 12
      (the curve starts at 0); it holds one open position (0.5 @ 2000, last ETH close 2100:
      unrealised +50, 1.0 R); one beta intent was vetoed by the learner.
    - gamma faulted twice and was disabled.
    - Lifecycle: started at slot 0, stopped at 40, restarted at 41; REDUCING at 45, HALTED at 55.
    - Inbox: `halt` (applied) and `pause_worker` (pending). Heartbeat from 2001: stale.
    """
    timeline = _Timeline()
    timeline.add(at(0), ev.AccountOpened, currency="USD", cash=10_000.0)
    started = {"mode": "paper", "feed_source": "simulated", "config_hash": "cafe0123456789ab"}
    timeline.add(at(0), ev.RuntimeStarted, **started, recovered_events=0, wall_ms=1)
    high = 0.0
    for slot in range(60):
        equity = equity_at(slot)
        high = max(high, equity)
        positions_value = 1050.0 if slot == 59 else 0.0
        timeline.add(
            at(slot),
            ev.EquitySampled,
            equity=equity,
            cash=equity - positions_value,
            positions_value=positions_value,
            high_water_mark=high,
            drawdown_pct=1.0 - equity / high,
            open_positions=1 if slot == 59 else 0,
        )
    for slot, close in ((57, 42_800.0), (58, 42_900.0), (59, 43_000.0)):
        candle = {"open": close, "high": close, "low": close, "close": close, "volume": 1.0}
        timeline.add(at(slot), ev.CandleClosed, symbol="BTC/USD", ts=at(slot), **candle)
    for slot, close in ((56, 2080.0), (57, 2090.0), (58, 2100.0)):
        candle = {"open": close, "high": close, "low": close, "close": close, "volume": 1.0}
        timeline.add(at(slot), ev.CandleClosed, symbol="ETH/USD", ts=at(slot), **candle)
    for n, (net, reason) in enumerate(zip(ALPHA_NETS, ALPHA_REASONS, strict=True), start=1):
        _trade(timeline, "alpha", "BTC/USD", f"a{n}", 4 * n, net, reason, score=0.5 + n / 10)
    for n, (net, reason) in enumerate(zip(BETA_NETS, BETA_REASONS, strict=True), start=1):
        _trade(timeline, "beta", "ETH/USD", f"b{n}", 46 + 4 * n, net, reason, score=None)
    alpha, beta = {"worker": "alpha", "symbol": "BTC/USD"}, {"worker": "beta", "symbol": "ETH/USD"}
    proposal = {"side": "buy", "reference_price": 100.0, "stop_price": 90.0, "take_profit": 120.0, "confidence": 0.7}
    timeline.add(at(20), ev.IntentProposed, **alpha, intent_id="i-denied", reason="late entry", **proposal)
    timeline.add(at(20), ev.IntentScored, **alpha, intent_id="i-denied", score=0.8, vetoed=False, features={})
    timeline.add(
        at(20), ev.OrderDenied, **alpha, intent_id="i-denied", rule="max_concurrent_positions", reason="5 open"
    )
    timeline.add(at(22), ev.OrderRejected, **alpha, order_id="o-rejected", reason="insufficient funds")
    timeline.add(at(52), ev.IntentProposed, **beta, intent_id="i-vetoed", reason="weak", **proposal)
    timeline.add(at(52), ev.IntentScored, **beta, intent_id="i-vetoed", score=0.1, vetoed=True, features={})
    timeline.add(
        at(57),
        ev.PositionOpened,
        **beta,
        position_id="p-open",
        qty=0.5,
        entry_price=2000.0,
        stop_price=1900.0,
        take_profit=2200.0,
        entry_fee=1.0,
        risk_usd=50.0,
    )
    gamma = {"worker": "gamma", "symbol": "SOL/USD"}
    for slot, consecutive in ((30, 1), (31, 2)):
        fault = {"error_type": "ValueError", "message": "bad window", "consecutive": consecutive}
        timeline.add(at(slot), ev.WorkerFaulted, **gamma, **fault)
    timeline.add(at(31), ev.WorkerStateChanged, **gamma, state="disabled", reason="2 consecutive faults")
    timeline.add(at(40), ev.RuntimeStopped, reason="SIGTERM", wall_ms=2)
    timeline.add(at(41), ev.RuntimeStarted, **started, recovered_events=120, wall_ms=3)
    risk = {"previous": "ACTIVE", "state": "REDUCING", "rule": "trapdoor", "reason": "equity 10,3% below its high"}
    timeline.add(at(45), ev.RiskStateChanged, **risk)
    timeline.add(
        at(55),
        ev.RiskStateChanged,
        previous="REDUCING",
        state="HALTED",
        rule="max_drawdown",
        reason="drawdown 20.50% reached the 20.00% limit",
    )

    store = EventStore(StoreConfig(journal_dir="journal", database_url="sqlite:///desk.db"), store_dir)
    store.open()
    try:
        store.append(timeline.records())
        store.flush()
        halt_id = store.submit_command("halt", {"worker": ""}, wall_ms=10)
        store.submit_command("pause_worker", {"worker": "alpha"}, wall_ms=20)
        store.mark_command(halt_id, "applied", "trading halted", acked_seq=None)
        store.heartbeat(STALE_WALL_MS, pid=4242, detail="HALTED; 60 candles this run")
    finally:
        store.close()
    return store_dir


def build_flat_store(store_dir: Path, equities: tuple[float, ...] = (10_000.0, 10_000.5, 10_001.0, 10_000.5)) -> Path:
    """Write a store whose only events are equity samples a few cents apart (a desk that has not traded)."""
    timeline = _Timeline()
    timeline.add(at(0), ev.AccountOpened, currency="USD", cash=equities[0])
    high = 0.0
    for slot, equity in enumerate(equities):
        high = max(high, equity)
        fields = {"equity": equity, "cash": equity, "positions_value": 0.0, "high_water_mark": high}
        timeline.add(at(slot), ev.EquitySampled, **fields, drawdown_pct=1.0 - equity / high, open_positions=0)
    store = EventStore(StoreConfig(journal_dir="journal", database_url="sqlite:///desk.db"), store_dir)
    store.open()
    try:
        store.append(timeline.records())
        store.flush()
    finally:
        store.close()
    return store_dir


def run_daemon_in_process(store_dir: Path, candles: int) -> Path:
    """Run the real daemon (TradingRuntime) flat out for `candles` minutes into store_dir; return store_dir."""
    from desk.runtime import TradingRuntime  # the daemon, imported only by the tests that run it

    runtime = TradingRuntime(parse_config(config_data_for_tests()), base_dir=store_dir)
    asyncio.run(runtime.run(max_candles=candles))
    return store_dir


def write_daemon_config(store_dir: Path) -> Path:
    """Write the tests' config (flat out, store paths relative to the run folder) into store_dir."""
    path = store_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config_data_for_tests(), sort_keys=False))
    return path


def open_page(file_name: str, interact: Callable[[AppTest], Any] | None = None) -> AppTest:
    """Run a page file with AppTest (then `interact` and run again, if given); fail on any exception."""
    page = AppTest.from_file(str(PAGES_DIR / file_name), default_timeout=PAGE_TIMEOUT_S).run()
    assert not page.exception, f"{file_name}: {[e.value for e in page.exception]}"
    if interact is not None:
        interact(page)
        page.run()
        assert not page.exception, f"{file_name}: {[e.value for e in page.exception]}"
    return page


def texts(page: AppTest, kind: str) -> list[str]:
    """Return the text of every element of one kind (error, warning, success, info, caption, ...)."""
    return [str(element.value) for element in page.get(kind)]


# AppTest sees a dataframe's key only when it has selections on, so tables are told apart by a column
# only they have (the pages still key them, for a stable identity in the browser).
TABLE_MARKERS = {
    "feed_table": "behind newest",
    "open_positions_table": "unrealized_pnl",
    "ledger_table": "exit_reason",
    "attribution_table": "max_drawdown",
    "learner_summary_table": "mean_score",
    "learner_scores_table": "denied by",
    "faults_table": "error_type",
    "journal_table": "level",
    "commands_table": "acked_seq",
}


def dataframe_element(page: AppTest, table: str) -> Any:
    """Return the dataframe element a page draws as `table` (see TABLE_MARKERS); fails unless exactly one is drawn."""
    marker = TABLE_MARKERS[table]
    elements = [frame for frame in page.dataframe if marker in frame.value.columns]
    assert len(elements) == 1, (
        f"{len(elements)} tables with a {marker!r} column: {[list(f.value.columns) for f in page.dataframe]}"
    )
    return elements[0]


def dataframe(page: AppTest, table: str) -> pd.DataFrame:
    """Return the table a page shows as `table` (see TABLE_MARKERS); fails unless exactly one is drawn."""
    return dataframe_element(page, table).value


def column_config(page: AppTest, table: str) -> dict[str, Any]:
    """Return the column configuration a page sent for `table` (labels, formats), by column name."""
    return json.loads(dataframe_element(page, table).proto.columns or "{}")


def plotly_spec(page: AppTest, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the (figure, config) the plotly chart keyed `key` sends to the browser."""
    charts = [chart for chart in page.get("plotly_chart") if chart.key == key]
    assert len(charts) == 1, [chart.key for chart in page.get("plotly_chart")]
    return json.loads(charts[0].proto.spec), json.loads(charts[0].proto.config or "{}")


def dataframe_rows(page: AppTest, table: str) -> int:
    """Return the row count of a page's table (see `dataframe`)."""
    return len(dataframe(page, table))
