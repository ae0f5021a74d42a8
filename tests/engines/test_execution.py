"""Execution against the real paper broker: entries, protective exits (gap-aware, stop first), trailing."""

from __future__ import annotations

import math

import pytest

from desk.config import FeesConfig
from desk.core.clock import SimulatedClock
from desk.core.events import AccountOpened, CandleClosed, Event, OrderRejected, PositionClosed, StopMoved
from desk.core.types import Candle, Market
from desk.engines.bus import EventBus
from desk.engines.execution import EntryPlan, ExecutionEngine
from desk.services.broker.paper import PaperBroker

MARKET = Market("BTC/USD", "BTC", "USD", amount_decimals=8, price_decimals=2, min_amount=0.0001, min_cost=0.5)
NO_SLIPPAGE = FeesConfig(slippage_bps=0.0, impact_bps_per_volume_pct=0.0, fill_at="close")


class Desk:
    """A bus, a paper broker and the execution engine, wired as the runtime wires them."""

    def __init__(self, cash: float = 10_000.0, fees: FeesConfig = NO_SLIPPAGE) -> None:
        self.broker = PaperBroker({MARKET.symbol: MARKET}, fees)
        self.bus = EventBus(SimulatedClock(0))
        self.execution = ExecutionEngine(self.broker, self.bus)
        self.events: list[Event] = []
        self.bus.subscribe(self.broker)
        self.bus.subscribe(self.execution)
        self.bus.subscribe(self)
        self.bus.publish([AccountOpened(currency="USD", cash=cash)])
        self.minute = 0

    def apply(self, event: Event) -> None:
        self.events.append(event)

    def candle(self, open_: float, high: float, low: float, close: float, volume: float = 1_000.0) -> None:
        candle = Candle(MARKET.symbol, self.minute * 60_000, open_, high, low, close, volume)
        self.minute += 1
        fields = {k: getattr(candle, k) for k in ("ts", "open", "high", "low", "close", "volume")}
        self.bus.publish([CandleClosed(ts_event=candle.ts + 60_000, symbol=candle.symbol, **fields)])
        self.execution.on_candle(candle)

    def enter(
        self, qty: float = 10.0, stop: float = 95.0, take: float | None = 110.0, trail: float | None = None
    ) -> None:
        plan = EntryPlan("i1", "w1", MARKET.symbol, qty, stop, take, qty * (100.0 - stop), trail)
        self.execution.enter(plan, self.minute * 60_000)

    def closed(self) -> PositionClosed:
        (closed,) = [e for e in self.events if isinstance(e, PositionClosed)]
        return closed


@pytest.fixture
def desk() -> Desk:
    desk = Desk()
    desk.candle(100, 100, 100, 100)
    return desk


def test_enter_when_market_order_fills_then_position_opens_with_stop_and_take_profit_orders(desk: Desk) -> None:
    desk.enter()
    position = desk.execution.positions["w1"]
    assert position.entry_price == 100.0 and position.qty == 10.0
    assert math.isclose(position.entry_fee, 1_000 * 0.0026)
    kinds = sorted((o.purpose.value, o.stop_price, o.limit_price) for o in desk.broker.open_orders)
    assert kinds == [("stop_loss", 95.0, None), ("take_profit", None, 110.0)]
    assert math.isclose(desk.broker.cash, 10_000 - 1_000 - 2.6)


def test_exit_when_candle_gaps_below_the_stop_then_fills_at_the_open(desk: Desk) -> None:
    desk.enter()
    desk.candle(90, 91, 89, 90.5)
    closed = desk.closed()
    assert closed.exit_reason == "stop_loss" and closed.exit_price == 90.0
    assert math.isclose(closed.realized_pnl, -100.0)
    assert math.isclose(closed.fees, 2.6 + 900 * 0.0026)
    assert desk.broker.open_orders == ()


def test_exit_when_stop_and_take_profit_touch_in_one_candle_then_the_stop_wins(desk: Desk) -> None:
    desk.enter()
    desk.candle(100, 112, 94, 105)
    closed = desk.closed()
    assert closed.exit_reason == "stop_loss" and closed.exit_price == 95.0
    assert desk.broker.holding(MARKET.symbol) == 0.0


def test_exit_when_price_reaches_take_profit_then_fills_at_the_limit_with_maker_fee(desk: Desk) -> None:
    desk.enter()
    desk.candle(100, 111, 99, 108)
    closed = desk.closed()
    assert closed.exit_reason == "take_profit" and closed.exit_price == 110.0
    assert math.isclose(closed.realized_pnl, 100.0)
    assert math.isclose(closed.fees, 2.6 + 1_100 * 0.0016)
    assert math.isclose(closed.net_pnl, 100.0 - 2.6 - 1.76)


def test_exit_when_take_profit_meets_thin_volume_then_the_position_closes_in_parts(desk: Desk) -> None:
    desk.enter()
    desk.candle(100, 111, 99, 108, volume=20.0)  # 25 % of 20 = 5 of 10 units fill
    assert desk.execution.positions["w1"].qty == 5.0
    desk.candle(108, 112, 107, 111, volume=1_000.0)
    closed = desk.closed()
    assert closed.qty == 10.0 and closed.exit_price == 110.0


def test_trail_when_price_rises_then_stop_follows_and_later_exits_at_the_trailed_stop(desk: Desk) -> None:
    desk.enter(take=None, trail=0.05)
    desk.candle(100, 120, 100, 118)
    moved = [e for e in desk.events if isinstance(e, StopMoved)]
    assert [m.stop_price for m in moved] == [114.0]
    desk.candle(117, 117, 113, 113.5)
    closed = desk.closed()
    assert closed.exit_reason == "stop_loss" and closed.exit_price == 114.0


def test_trail_when_the_stop_order_is_gone_then_no_stop_move_is_journaled(desk: Desk) -> None:
    desk.enter(take=None, trail=0.05)
    stop_id = desk.execution.positions["w1"].stop_order_id
    desk.bus.publish(desk.broker.cancel(stop_id, "operator", desk.minute * 60_000))
    desk.candle(100, 120, 100, 118)  # a new high would trail the stop to 114, but no stop rests to move
    assert [e for e in desk.events if isinstance(e, StopMoved)] == []
    assert desk.execution.positions["w1"].stop_price == 95.0


def test_exit_when_strategy_signals_then_protection_is_cancelled_and_market_sell_fills(desk: Desk) -> None:
    desk.enter()
    desk.candle(100, 104, 99, 103)
    desk.execution.exit("w1", "signal: momentum faded", desk.minute * 60_000)
    closed = desk.closed()
    assert closed.exit_reason == "signal: momentum faded" and closed.exit_price == 103.0
    assert desk.broker.open_orders == ()


def test_replay_when_journal_is_applied_to_fresh_engines_then_positions_match(desk: Desk) -> None:
    desk.enter(trail=0.05)
    desk.candle(100, 120, 100, 118)
    fresh = Desk.__new__(Desk)
    fresh.broker = PaperBroker({MARKET.symbol: MARKET}, NO_SLIPPAGE)
    fresh.bus = EventBus(SimulatedClock(0))
    fresh.execution = ExecutionEngine(fresh.broker, fresh.bus)
    fresh.bus.subscribe(fresh.broker)
    fresh.bus.subscribe(fresh.execution)
    fresh.bus.replay(desk.events)
    assert fresh.execution.positions == desk.execution.positions
    assert fresh.broker.open_orders == desk.broker.open_orders
    assert fresh.broker.cash == desk.broker.cash


NEXT_OPEN = FeesConfig(slippage_bps=0.0, impact_bps_per_volume_pct=0.0, fill_at="next_open")


@pytest.fixture
def next_open_desk() -> Desk:
    desk = Desk(fees=NEXT_OPEN)
    desk.candle(100, 100, 100, 100)
    return desk


def test_enter_when_fills_at_next_open_then_position_opens_on_the_next_candle_at_its_open(next_open_desk: Desk) -> None:
    desk = next_open_desk
    desk.enter()
    assert desk.execution.positions == {} and desk.execution.has_position("w1")
    assert desk.execution.committed_positions == 1
    desk.candle(101, 102, 100.5, 101.5)
    position = desk.execution.positions["w1"]
    assert position.entry_price == 101.0 and position.qty == 10.0
    assert position.risk_usd == 10.0 * (101.0 - 95.0)  # risk measured from the real fill, not the plan
    assert desk.execution.pending_entries == {}
    assert sorted(o.purpose.value for o in desk.broker.open_orders) == ["stop_loss", "take_profit"]


def test_exit_when_fills_at_next_open_then_protection_holds_until_the_exit_fills_at_that_open(
    next_open_desk: Desk,
) -> None:
    desk = next_open_desk
    desk.enter()
    desk.candle(101, 102, 100.5, 101.5)
    desk.execution.exit("w1", "signal: faded", desk.minute * 60_000)
    assert sorted(o.purpose.value for o in desk.broker.open_orders) == ["exit", "stop_loss", "take_profit"]
    desk.execution.exit("w1", "signal: again", desk.minute * 60_000)  # a repeated signal sends nothing more
    assert len(desk.broker.open_orders) == 3
    desk.candle(103, 111, 94, 100)  # the open comes first: the exit fills there, stop and target are cancelled
    closed = desk.closed()
    assert (closed.exit_reason, closed.exit_price) == ("signal: faded", 103.0)
    assert desk.broker.open_orders == () and desk.broker.holding(MARKET.symbol) == 0.0


def test_exit_when_entry_has_not_filled_yet_then_the_entry_is_cancelled(next_open_desk: Desk) -> None:
    desk = next_open_desk
    desk.enter()
    desk.execution.exit("w1", "signal: changed its mind", desk.minute * 60_000)
    assert desk.execution.pending_entries == {} and not desk.execution.has_position("w1")
    desk.candle(101, 102, 100.5, 101.5)
    assert desk.execution.positions == {} and desk.broker.cash == 10_000.0


def test_enter_when_the_next_open_gaps_past_the_cash_then_the_partial_fill_still_opens_a_protected_position() -> None:
    desk = Desk(cash=1_000.0, fees=NEXT_OPEN)
    desk.candle(100, 100, 100, 100)
    desk.enter(qty=9.9, stop=95.0)  # 990 USD at the close; the open gaps to 102
    desk.candle(102, 103, 101.5, 102.5)
    position = desk.execution.positions["w1"]
    assert 0 < position.qty < 9.9 and position.entry_price == 102.0
    assert desk.broker.holding(MARKET.symbol) == position.qty
    assert sorted(o.purpose.value for o in desk.broker.open_orders) == ["stop_loss", "take_profit"]
    assert desk.execution.pending_entries == {}


def test_exit_when_the_entry_candle_falls_through_the_stop_then_the_stop_fills_in_that_candle(
    next_open_desk: Desk,
) -> None:
    desk = next_open_desk
    desk.enter(stop=95.0, take=110.0)
    # Fills at the open, 101; the low of the same candle, 93, came after that fill: the stop at 95 is hit.
    desk.candle(101, 102, 93, 96)
    closed = desk.closed()
    assert (closed.exit_reason, closed.exit_price, closed.entry_price) == ("stop_loss", 95.0, 101.0)
    assert closed.ts_event == desk.minute * 60_000  # the close of the entry candle, not a later one
    assert desk.broker.open_orders == () and desk.broker.holding(MARKET.symbol) == 0.0
    assert desk.execution.positions == {}


def test_exit_when_the_entry_candle_reaches_the_target_then_the_take_profit_fills_in_that_candle(
    next_open_desk: Desk,
) -> None:
    desk = next_open_desk
    desk.enter(stop=95.0, take=110.0)
    desk.candle(101, 112, 100, 111)
    closed = desk.closed()
    assert (closed.exit_reason, closed.exit_price) == ("take_profit", 110.0)
    assert desk.broker.open_orders == ()


def test_exit_when_the_entry_candle_touches_stop_and_target_then_the_stop_wins(next_open_desk: Desk) -> None:
    desk = next_open_desk
    desk.enter(stop=95.0, take=110.0)
    desk.candle(101, 112, 94, 100)
    assert (desk.closed().exit_reason, desk.closed().exit_price) == ("stop_loss", 95.0)


def test_exit_when_the_entry_opens_below_its_planned_stop_then_the_stop_sells_at_that_open(
    next_open_desk: Desk,
) -> None:
    desk = next_open_desk
    desk.enter(stop=95.0, take=110.0)
    # The open gaps to 94, under the stop planned at the signal: protection triggers at once, at the open.
    desk.candle(94, 96, 93, 95.5)
    closed = desk.closed()
    assert (closed.exit_reason, closed.entry_price, closed.exit_price) == ("stop_loss", 94.0, 94.0)
    assert closed.net_pnl == pytest.approx(-closed.fees)  # in and out at one price: only the fees are lost


def test_enter_when_the_entry_candle_stays_inside_the_protection_then_the_position_stays_open(
    next_open_desk: Desk,
) -> None:
    desk = next_open_desk
    desk.enter(stop=95.0, take=110.0)
    desk.candle(101, 109.99, 95.01, 105)
    assert desk.execution.positions["w1"].qty == 10.0
    assert sorted(o.purpose.value for o in desk.broker.open_orders) == ["stop_loss", "take_profit"]


def test_exit_when_a_partial_take_profit_leaves_a_float_remainder_then_the_rest_is_sold_at_lot_precision(
    desk: Desk,
) -> None:
    desk.enter(qty=0.3, stop=95.0, take=110.0)
    # 25 % of a 0.4 volume: the take-profit sells 0.1 of 0.3. In floats 0.3 - 0.1 is 0.19999999999999998,
    # which the broker refuses as more than 8 decimals; the position must hold the 0.2 the broker holds.
    desk.candle(100, 111, 99, 108, volume=0.4)
    assert desk.execution.positions["w1"].qty == 0.2 == desk.broker.holding(MARKET.symbol)

    desk.execution.exit("w1", "signal: faded", desk.minute * 60_000)

    assert not [e for e in desk.events if isinstance(e, OrderRejected)]
    closed = desk.closed()
    # 0.1 at the 110 limit, then 0.2 at the 108 close (no slippage): (11 + 21.6) / 0.3 = 108.666…
    assert (closed.exit_reason, closed.qty) == ("signal: faded", 0.3)
    assert closed.exit_price == pytest.approx(108.0 + 2.0 / 3.0)
    assert desk.broker.holding(MARKET.symbol) == 0.0 and desk.broker.open_orders == ()
    assert desk.execution.positions == {}
