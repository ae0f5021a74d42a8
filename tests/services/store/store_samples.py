"""Sample events for the store tests, built from desk.core.events with explicit seqs and ids."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select

from desk.core import events as ev
from desk.core.events import Event, event_to_record
from desk.services.store import schema

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MINUTE = 60_000
DAY_MS = 86_400_000

# A value for every annotation the event grammar uses; a new annotation fails loudly here.
_SAMPLE_VALUES: dict[str, Callable[[int], Any]] = {
    "int": lambda seq: seq * 10 + 1,
    "float": lambda seq: seq + 0.25,
    "float | None": lambda seq: seq + 0.5,
    "str": lambda seq: f"s{seq}",
    "bool": lambda seq: seq % 2 == 0,
    "list[str]": lambda seq: [f"w{seq}", "w0"],
    # Columns of one EquitySeries must be equally long: every list sample has two values.
    "list[float]": lambda seq: [seq + 0.25, seq + 0.75],
    "list[int]": lambda seq: [seq, 0],
    "dict[str, float]": lambda seq: {"rsi": 0.5, "atr": seq + 0.125},
    "dict[str, Any]": lambda seq: {"fast": seq, "nested": {"a": [1, 2]}},
}


def envelope(
    seq: int, minute: int | None = None, *, worker: str = "w1", symbol: str = "BTC/USD", correlation_id: str = ""
) -> dict[str, Any]:
    """Envelope fields for event `seq`, at T0 plus `minute` minutes (default: seq)."""
    ts_event = T0 + (seq if minute is None else minute) * MINUTE
    return {
        "seq": seq,
        "id": f"e{seq}",
        "ts_event": ts_event,
        "ts_init": ts_event + 7,
        "worker": worker,
        "symbol": symbol,
        "correlation_id": correlation_id,
        "causation_id": f"e{seq - 1}" if seq > 1 else "",
    }


def sample_event(cls: type[Event], seq: int, minute: int | None = None) -> Event:
    """Build `cls` with every field set explicitly, from its annotations."""
    base = envelope(seq, minute)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in base:
            continue
        factory = _SAMPLE_VALUES.get(str(field.type))
        if factory is None:
            raise AssertionError(f"{cls.__name__}.{field.name}: no sample value for {field.type!r}")
        values[field.name] = factory(seq)
    return cls(**base, **values)


def records(events: list[Event]) -> list[dict[str, Any]]:
    return [event_to_record(event) for event in events]


def mini_session() -> list[Event]:
    """A scripted trade: proposed, scored, entry filled, protective orders, stop moved, take-profit hit."""
    entry = {"correlation_id": "i1"}
    return [
        ev.RuntimeStarted(
            **envelope(1, worker="", symbol=""),
            mode="paper",
            feed_source="simulated",
            config_hash="cafe",
            recovered_events=0,
            wall_ms=111,
        ),
        ev.CandleClosed(**envelope(2), ts=T0 + MINUTE, open=100.0, high=101.0, low=99.5, close=100.5, volume=12.5),
        ev.IntentProposed(
            **envelope(3, **entry),
            intent_id="i1",
            side="buy",
            reference_price=100.5,
            stop_price=98.0,
            take_profit=105.5,
            confidence=0.6,
            reason="breakout",
        ),
        ev.IntentScored(
            **envelope(4, **entry), intent_id="i1", score=0.7, vetoed=False, features={"rsi": 55.0, "atr": 1.5}
        ),
        ev.OrderSubmitted(
            **envelope(5, **entry),
            order_id="o1",
            side="buy",
            order_type="market",
            purpose="entry",
            qty=2.0,
            position_id="p1",
        ),
        ev.OrderFilled(
            **envelope(6, **entry),
            order_id="o1",
            fill_id="f1",
            side="buy",
            purpose="entry",
            qty=2.0,
            price=100.6,
            fee=0.52,
            fee_currency="USD",
            liquidity="taker",
            remaining_qty=0.0,
            position_id="p1",
        ),
        ev.PositionOpened(
            **envelope(7, **entry),
            position_id="p1",
            qty=2.0,
            entry_price=100.6,
            stop_price=98.0,
            take_profit=105.5,
            entry_fee=0.52,
            risk_usd=5.2,
        ),
        ev.OrderSubmitted(
            **envelope(8, **entry),
            order_id="o2",
            side="sell",
            order_type="stop",
            purpose="stop_loss",
            qty=2.0,
            stop_price=98.0,
            position_id="p1",
            oco_group="g1",
        ),
        ev.OrderSubmitted(
            **envelope(9, **entry),
            order_id="o3",
            side="sell",
            order_type="limit",
            purpose="take_profit",
            qty=2.0,
            limit_price=105.5,
            position_id="p1",
            oco_group="g1",
        ),
        ev.StopMoved(**envelope(10, **entry), position_id="p1", stop_price=101.0, reason="trailing"),
        ev.OrderAmended(**envelope(11, **entry), order_id="o2", stop_price=101.0),
        ev.OrderFilled(
            **envelope(12, **entry),
            order_id="o3",
            fill_id="f2",
            side="sell",
            purpose="take_profit",
            qty=2.0,
            price=105.5,
            fee=0.27,
            fee_currency="USD",
            liquidity="maker",
            remaining_qty=0.0,
            position_id="p1",
        ),
        ev.OrderCancelled(**envelope(13, **entry), order_id="o2", reason="oco sibling filled"),
        ev.PositionClosed(
            **envelope(14, **entry),
            position_id="p1",
            qty=2.0,
            entry_ts=T0 + 7 * MINUTE,
            entry_price=100.6,
            exit_price=105.5,
            realized_pnl=9.8,
            fees=0.79,
            net_pnl=9.01,
            r_multiple=1.73,
            exit_reason="take_profit",
        ),
        ev.LearnerOutcomeRecorded(
            **envelope(15, **entry), intent_id="i1", position_id="p1", net_pnl=9.01, r_multiple=1.73, won=True
        ),
        ev.EquitySampled(
            **envelope(16),
            equity=10_009.01,
            cash=10_009.01,
            positions_value=0.0,
            high_water_mark=10_009.01,
            drawdown_pct=0.0,
            open_positions=0,
        ),
        ev.RuntimeStopped(**envelope(17, worker="", symbol=""), reason="operator", wall_ms=222),
    ]


def table_snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table as a sorted list of row tuples."""
    with engine.connect() as connection:
        return {
            table.name: sorted(tuple(row) for row in connection.execute(select(table)))
            for table in schema.PROJECTION_TABLES
        }
