"""The paper broker: validation, gap-aware matching, OCO, fees and slippage, and replay.

Every scenario publishes like the runtime: a broker method decides, then each
returned event is journaled and applied. Expected numbers use FEES, pinned
(taker 0.26%, maker 0.16%, slippage 2 bps, impact 10 bps per 1% of the
candle's volume, limit fills capped at 25% of volume) and are worked out by
hand in the comments.
"""

from __future__ import annotations

import json

import pytest

from desk.config import FeesConfig
from desk.core.broker import Broker
from desk.core.events import (
    AccountOpened,
    CandleClosed,
    Event,
    OrderAmended,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    RuntimeStopped,
    event_from_record,
    event_to_record,
)
from desk.core.types import MINUTE_MS, Candle, Market, OrderPurpose, OrderRequest, OrderType, Side
from desk.services.broker.book import OpenOrder
from desk.services.broker.paper import OCO_CANCEL_REASON, PaperBroker

BTC = "BTC/USD"
ETH = "ETH/USD"
# Pinned rather than the defaults, so the hand-worked numbers below stay true if defaults move.
FEES = FeesConfig(
    taker=0.0026,
    maker=0.0016,
    slippage_bps=2.0,
    impact_bps_per_volume_pct=10.0,
    max_volume_fraction=0.25,
    fill_at="close",
)
MARKETS = {
    BTC: Market(BTC, "BTC", "USD", amount_decimals=8, price_decimals=1, min_amount=0.0001, min_cost=5.0),
    ETH: Market(ETH, "ETH", "USD", amount_decimals=8, price_decimals=2, min_amount=0.001, min_cost=5.0),
}
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the open of the first candle


def minute(n: int) -> int:
    """The open time of the n-th candle, which is also the close time of the (n-1)-th."""
    return T0 + n * MINUTE_MS


class Desk:
    """A stand-in for the runtime: whatever a broker method returns is journaled, then applied."""

    def __init__(self, cash: float = 10_000.0) -> None:
        self.broker = PaperBroker(MARKETS, FEES)
        self.journal: list[Event] = []
        self.publish([AccountOpened(currency="USD", cash=cash)])

    def publish(self, events: list[Event]) -> list[Event]:
        for event in events:
            self.journal.append(event)
            self.broker.apply(event)
        return events

    def candle(
        self, n: int, o: float, h: float, low: float, c: float, volume: float = 100.0, symbol: str = BTC
    ) -> list[Event]:
        """Close candle n: publish CandleClosed, then let the broker match it, as the runtime does."""
        bar = Candle(symbol, minute(n), o, h, low, c, volume)
        self.publish([CandleClosed(symbol=symbol, ts=bar.ts, open=o, high=h, low=low, close=c, volume=volume)])
        return self.publish(self.broker.on_candle(bar))

    def submit(self, request: OrderRequest, now_ms: int) -> list[Event]:
        return self.publish(self.broker.submit(request, now_ms))


def order(
    order_id: str,
    side: Side,
    order_type: OrderType,
    qty: float,
    *,
    limit: float | None = None,
    stop: float | None = None,
    purpose: OrderPurpose = OrderPurpose.ENTRY,
    oco: str = "",
    symbol: str = BTC,
) -> OrderRequest:
    return OrderRequest(
        order_id=order_id,
        worker="w1",
        symbol=symbol,
        side=side,
        order_type=order_type,
        purpose=purpose,
        qty=qty,
        limit_price=limit,
        stop_price=stop,
        position_id="p1",
        oco_group=oco,
        correlation_id=f"c-{order_id}",
    )


def state(broker: PaperBroker) -> tuple[float, dict[str, float], tuple[OpenOrder, ...], float]:
    return broker.cash, broker.holdings, broker.open_orders, broker.equity()


def long_position() -> Desk:
    """A desk holding 0.1 BTC, bought at minute(1) for 4985.4961 USD of cash (see the market buy test)."""
    desk = Desk()
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    desk.submit(order("buy", Side.BUY, OrderType.MARKET, 0.1), minute(1))
    return desk


def protect(desk: Desk, stop: float, take_profit: float, qty: float = 0.1) -> None:
    """Place a take-profit and a stop-loss sharing one quantity, as the execution engine does.

    The take-profit goes first so that "stop before limit" cannot pass by accident of submission order.
    """
    tp_order = order(
        "tp", Side.SELL, OrderType.LIMIT, qty, limit=take_profit, purpose=OrderPurpose.TAKE_PROFIT, oco="g1"
    )
    stop_order = order("sl", Side.SELL, OrderType.STOP, qty, stop=stop, purpose=OrderPurpose.STOP_LOSS, oco="g1")
    assert [type(e) for e in desk.submit(tp_order, minute(1))] == [OrderSubmitted]
    assert [type(e) for e in desk.submit(stop_order, minute(1))] == [OrderSubmitted]


def fills(events: list[Event]) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


# --- market orders ---------------------------------------------------------------------------


def test_submit_when_market_buy_then_fills_at_close_plus_slippage_with_taker_fee() -> None:
    desk = long_position()

    submitted, filled = desk.journal[-2:]
    assert isinstance(submitted, OrderSubmitted) and isinstance(filled, OrderFilled)
    # Slippage: 2 bps + 10 bps x (100 x 0.1 / 100 = 0.1% of volume) = 3 bps -> 50_000 x 1.0003 = 50_015.
    assert filled.price == pytest.approx(50_015.0)
    # Taker fee: 0.1 x 50_015 x 0.0026 = 13.0039 USD.
    assert filled.fee == pytest.approx(13.0039)
    assert (filled.fee_currency, filled.liquidity, filled.remaining_qty) == ("USD", "taker", 0.0)
    assert (filled.fill_id, filled.purpose, filled.position_id) == ("buy-f1", "entry", "p1")
    for event in (submitted, filled):
        assert (event.worker, event.symbol, event.correlation_id, event.ts_event) == ("w1", BTC, "c-buy", minute(1))
    # Cash: 10_000 - 5_001.5 - 13.0039 = 4_985.4961; equity marks 0.1 BTC at the 50_000 close.
    assert desk.broker.cash == pytest.approx(4_985.4961)
    assert desk.broker.holding(BTC) == 0.1
    assert desk.broker.equity() == pytest.approx(4_985.4961 + 5_000)
    assert desk.broker.open_orders == ()


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (order("x", Side.BUY, OrderType.MARKET, 1, symbol="DOGE/USD"), "unknown symbol DOGE/USD"),
        (order("x", Side.BUY, OrderType.MARKET, 1, symbol=ETH), "ETH/USD: no price yet, no candle seen"),
        (order("x", Side.BUY, OrderType.MARKET, 0.0), "BTC/USD: qty 0.0 must be positive"),
        (order("x", Side.BUY, OrderType.MARKET, 0.123456789), "BTC/USD: qty 0.123456789 has more than 8 decimals"),
        (order("x", Side.BUY, OrderType.MARKET, 0.00005), "BTC/USD: qty 5e-05 is below the minimum amount 0.0001"),
        # 0.0001 x 40_000 = 4.00 USD < 5.
        (
            order("x", Side.BUY, OrderType.LIMIT, 0.0001, limit=40_000),
            "BTC/USD: cost 4.00 USD (qty 0.0001 x 40000.0) is below the minimum cost 5.0 USD",
        ),
        (order("x", Side.BUY, OrderType.LIMIT, 0.1), "BTC/USD: a limit order needs a positive limit_price"),
        # Slippage 2 + 10 x 0.2% = 4 bps -> 50_020; 0.2 x 50_020 = 10_004 + 0.26% fee 26.0104 = 10_030.0104.
        (
            order("x", Side.BUY, OrderType.MARKET, 0.2),
            "insufficient funds: need 10030.01 USD, have 10000.00 USD to buy 0.2 BTC/USD",
        ),
        (
            order("x", Side.SELL, OrderType.MARKET, 0.1),
            "insufficient holdings: selling 0.1 BTC/USD but only 0.0 is free",
        ),
    ],
    ids=["unknown", "no-price", "zero", "precision", "min-amount", "min-cost", "no-limit", "funds", "holdings"],
)
def test_submit_when_request_breaks_a_rule_then_only_rejected_with_reason_and_state_unchanged(
    request_: OrderRequest, reason: str
) -> None:
    desk = Desk()
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    before = state(desk.broker)

    events = desk.submit(request_, minute(1))

    assert events == [OrderRejected(order_id="x", reason=events[0].reason, worker="w1", symbol=request_.symbol,
                                    correlation_id="c-x", ts_event=minute(1))]  # fmt: skip
    assert isinstance(events[0], OrderRejected) and events[0].reason.startswith(reason)
    assert state(desk.broker) == before


def test_submit_when_sell_exceeds_holdings_then_rejected_and_holdings_kept() -> None:
    desk = long_position()

    events = desk.submit(order("x", Side.SELL, OrderType.MARKET, 0.10000001), minute(1))

    assert [type(e) for e in events] == [OrderRejected]
    assert "selling 0.10000001 BTC/USD but only 0.1 is free" in events[0].reason
    assert desk.broker.holding(BTC) == 0.1


def test_submit_when_buy_would_spend_cash_held_for_open_buys_then_rejected() -> None:
    desk = Desk()
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    # The resting limit holds 0.15 x 49_000 x 1.0016 = 7_361.76 USD.
    desk.submit(order("l1", Side.BUY, OrderType.LIMIT, 0.15, limit=49_000), minute(1))

    events = desk.submit(order("l2", Side.BUY, OrderType.LIMIT, 0.1, limit=49_000), minute(1))

    # Needs 0.1 x 49_000 x 1.0016 = 4_907.84; free is 10_000 - 7_361.76 = 2_638.24.
    assert [type(e) for e in events] == [OrderRejected]
    assert events[0].reason.startswith("insufficient funds: need 4907.84 USD, have 2638.24 USD")
    assert [o.order_id for o in desk.broker.open_orders] == ["l1"]


# --- stops and limits ------------------------------------------------------------------------


def test_on_candle_when_price_gaps_below_stop_then_stop_fills_at_open_less_slippage() -> None:
    desk = long_position()
    desk.submit(order("sl", Side.SELL, OrderType.STOP, 0.1, stop=49_000.04, purpose=OrderPurpose.STOP_LOSS), minute(1))
    assert desk.broker.open_orders[0].stop_price == 49_000.0  # rounded to price_decimals=1

    events = desk.candle(1, 48_000, 48_100, 47_500, 47_800)

    [fill] = fills(events)
    # Gap: fills at the 48_000 open, not the stop; sell slippage 3 bps -> 48_000 x 0.9997 = 47_985.6.
    assert fill.price == pytest.approx(47_985.6)
    # Taker fee 0.1 x 47_985.6 x 0.0026 = 12.476256; cash 4_985.4961 + 4_798.56 - 12.476256 = 9_771.579844.
    assert fill.fee == pytest.approx(12.476256)
    assert (fill.liquidity, fill.qty, fill.remaining_qty, fill.ts_event) == ("taker", 0.1, 0.0, minute(2))
    assert desk.broker.cash == pytest.approx(9_771.579844)
    assert desk.broker.holding(BTC) == 0.0
    assert desk.broker.open_orders == ()


def test_on_candle_when_stop_and_take_profit_touched_in_one_candle_then_stop_fills_and_tp_cancelled() -> None:
    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)

    events = desk.candle(1, 50_000, 51_500, 48_500, 50_000)

    # Stop fills at the 49_000 stop (open 50_000 is above it), less 3 bps: 48_985.3.
    assert [type(e) for e in events] == [OrderFilled, OrderCancelled]
    assert (events[0].order_id, events[0].price) == ("sl", pytest.approx(48_985.3))
    assert (events[1].order_id, events[1].reason) == ("tp", OCO_CANCEL_REASON)
    # Cash: 4_985.4961 + 4_898.53 - 12.736178 fee = 9_871.289922.
    assert desk.broker.cash == pytest.approx(9_871.289922)
    assert desk.broker.holding(BTC) == 0.0
    assert desk.broker.open_orders == ()


def test_on_candle_when_take_profit_fills_then_stop_cancelled() -> None:
    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)

    events = desk.candle(1, 50_500, 51_200, 50_400, 51_000)

    # Maker, no slippage: 0.1 x 51_000 = 5_100, fee x 0.0016 = 8.16.
    assert [(type(e), e.order_id) for e in events] == [(OrderFilled, "tp"), (OrderCancelled, "sl")]
    assert (events[0].price, events[0].fee, events[0].liquidity) == (51_000, pytest.approx(8.16), "maker")
    assert desk.broker.cash == pytest.approx(4_985.4961 + 5_100 - 8.16)
    assert desk.broker.open_orders == ()


def test_on_candle_when_volume_small_then_limit_fills_partly_and_remainder_next_candle() -> None:
    desk = Desk()
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    desk.submit(order("l1", Side.BUY, OrderType.LIMIT, 0.1, limit=49_000), minute(1))

    first = fills(desk.candle(1, 49_500, 49_600, 48_800, 49_200, volume=0.2))

    # 25% of 0.2 volume = 0.05 fills at the 49_000 limit; maker fee 0.05 x 49_000 x 0.0016 = 3.92.
    assert [(f.qty, f.price, f.remaining_qty, f.fill_id) for f in first] == [(0.05, 49_000, 0.05, "l1-f1")]
    assert first[0].fee == pytest.approx(3.92)
    assert desk.broker.cash == pytest.approx(10_000 - 2_450 - 3.92)  # 7_546.08
    assert [(o.order_id, o.remaining, o.fills) for o in desk.broker.open_orders] == [("l1", 0.05, 1)]

    second = fills(desk.candle(2, 48_900, 49_100, 48_700, 49_000))

    # Opens below the limit: the buyer gets the better 48_900; fee 0.05 x 48_900 x 0.0016 = 3.912.
    assert [(f.qty, f.price, f.remaining_qty, f.fill_id) for f in second] == [(0.05, 48_900, 0.0, "l1-f2")]
    assert desk.broker.cash == pytest.approx(7_546.08 - 2_445 - 3.912)  # 5_097.168
    assert desk.broker.holding(BTC) == 0.1
    assert desk.broker.open_orders == ()


def test_on_candle_when_candle_closed_before_order_was_placed_then_no_fill() -> None:
    desk = Desk()
    desk.candle(0, 50_000, 50_000, 48_000, 50_000)
    desk.submit(order("l1", Side.BUY, OrderType.LIMIT, 0.1, limit=49_000), minute(1))

    # The bar that closed at minute(1) already happened when the order arrived: matching it would look ahead.
    assert desk.broker.on_candle(Candle(BTC, minute(0), 50_000, 50_000, 48_000, 50_000, 100)) == []
    assert len(fills(desk.candle(1, 49_500, 49_600, 48_800, 49_200))) == 1


def test_on_candle_when_stop_buy_gaps_beyond_cash_then_fills_only_what_cash_covers() -> None:
    desk = Desk()
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    desk.submit(order("sb", Side.BUY, OrderType.STOP, 0.19, stop=50_000), minute(1))

    [fill] = fills(desk.candle(1, 60_000, 60_500, 59_900, 60_200))

    # At the 60_000 open 0.19 costs ~11_434 with fees; cash 10_000 buys floor(10_000 / (60_023.4 x 1.0026))
    # = 0.16616965, repriced at its smaller impact (3.66 bps): 60_021.97, total 9_999.76 USD.
    assert fill.qty == 0.16616965
    assert fill.price == pytest.approx(60_021.970179)
    assert fill.remaining_qty == pytest.approx(0.02383035)
    assert desk.broker.cash == pytest.approx(0.238266, abs=1e-6)

    [cancel] = desk.candle(2, 60_200, 60_300, 60_100, 60_250)

    assert isinstance(cancel, OrderCancelled) and cancel.reason.startswith("insufficient funds at fill")
    assert desk.broker.cash >= 0 and desk.broker.open_orders == ()


def test_on_candle_when_a_stop_sells_many_times_a_thin_candles_volume_then_impact_stops_at_the_whole_candle() -> None:
    desk = long_position()
    desk.submit(order("sl", Side.SELL, OrderType.STOP, 0.1, stop=49_000, purpose=OrderPurpose.STOP_LOSS), minute(1))

    # A quiet minute in real data: 0.001 BTC traded. Uncapped, selling 0.1 is 10,000 % of it, 100,000 bps of
    # impact, and a price of 48,000 x (1 - 10.0002) = -432,009.6: the sale would take cash away.
    [fill] = fills(desk.candle(1, 48_000, 48_100, 47_500, 47_800, volume=0.001))

    # Impact counts at most the whole candle: 2 + 10 x 100 % = 1,002 bps below the 48,000 open = 43,190.4.
    assert fill.price == pytest.approx(43_190.4)
    # Fee 0.1 x 43,190.4 x 0.0026 = 11.229504; cash 4,985.4961 + 4,319.04 - 11.229504 = 9,293.306596.
    assert fill.fee == pytest.approx(11.229504)
    assert desk.broker.cash == pytest.approx(9_293.306596)
    assert desk.broker.holding(BTC) == 0.0


def test_submit_when_a_market_buy_is_many_times_the_candles_volume_then_it_pays_at_most_whole_candle_impact() -> None:
    desk = Desk()
    desk.candle(0, 50_000, 50_000, 50_000, 50_000, volume=0.001)

    [_, fill] = desk.submit(order("buy", Side.BUY, OrderType.MARKET, 0.01), minute(1))

    # 0.01 BTC is ten times the 0.001 traded. Uncapped: 2 + 10 x 1,000 % = 10,002 bps, paying 100,010 a coin.
    # Capped at the whole candle: 1,002 bps above 50,000 = 55,010; 550.10 + fee 1.43026 = 551.53026.
    assert isinstance(fill, OrderFilled) and fill.price == pytest.approx(55_010.0)
    assert desk.broker.cash == pytest.approx(10_000 - 551.53026)


# --- OCO -------------------------------------------------------------------------------------


def test_submit_when_sell_in_same_oco_group_then_shares_quantity_but_other_sells_rejected() -> None:
    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)  # both 0.1 accepted: they share the 0.1 held

    events = desk.submit(order("exit", Side.SELL, OrderType.MARKET, 0.1, purpose=OrderPurpose.EXIT), minute(1))

    assert [type(e) for e in events] == [OrderRejected]
    assert "only 0.0 is free (0.1 held, 0.1 committed to open sell orders)" in events[0].reason


def test_on_candle_when_oco_partly_filled_then_stop_sells_only_the_shared_remainder() -> None:
    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)

    first = desk.candle(1, 50_500, 51_200, 50_400, 51_000, volume=0.2)  # TP takes 25% of 0.2 = 0.05

    assert [(type(e), e.order_id) for e in first] == [(OrderFilled, "tp")]
    assert {o.order_id: o.remaining for o in desk.broker.open_orders} == {"sl": 0.05, "tp": 0.05}

    # Gaps through the stop and touches the TP again: the stop fills the last 0.05, the TP is cancelled.
    second = desk.candle(2, 48_800, 51_500, 48_500, 49_000)

    assert [(type(e), e.order_id) for e in second] == [(OrderFilled, "sl"), (OrderCancelled, "tp")]
    # 2 bps + 10 x 0.05% = 2.5 bps below the 48_800 open: 48_787.8.
    assert (second[0].qty, second[0].price) == (0.05, pytest.approx(48_787.8))
    assert sum(f.qty for f in fills(desk.journal) if f.side == "sell") == pytest.approx(0.1)
    assert desk.broker.holding(BTC) == 0.0
    assert desk.broker.open_orders == ()


def test_on_candle_when_two_take_profits_of_one_group_touched_then_fills_total_only_the_shared_qty() -> None:
    desk = long_position()
    for order_id, limit in (("tp1", 51_000), ("tp2", 51_500)):
        request = order(order_id, Side.SELL, OrderType.LIMIT, 0.1, limit=limit, oco="g1")
        assert [type(e) for e in desk.submit(request, minute(1))] == [OrderSubmitted]

    events = desk.candle(1, 50_500, 52_000, 50_400, 51_800)

    # Both are touched and volume allows 25 BTC each, yet the group holds only 0.1: tp1 fills, tp2 is cancelled.
    assert [(type(e), e.order_id) for e in events] == [(OrderFilled, "tp1"), (OrderCancelled, "tp2")]
    assert sum(f.qty for f in fills(events)) == 0.1
    assert desk.broker.holding(BTC) == 0.0
    assert desk.broker.open_orders == ()


# --- cancel, amend, replay -------------------------------------------------------------------


def test_cancel_when_order_open_then_cancelled_and_second_cancel_returns_nothing() -> None:
    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)

    events = desk.publish(desk.broker.cancel("tp", "operator", minute(2)))

    assert events == [OrderCancelled(order_id="tp", reason="operator", worker="w1", symbol=BTC,
                                     correlation_id="c-tp", ts_event=minute(2))]  # fmt: skip
    assert [o.order_id for o in desk.broker.open_orders] == ["sl"]
    assert desk.broker.cancel("tp", "again", minute(2)) == []
    assert desk.broker.cancel("nope", "unknown", minute(2)) == []


def test_amend_stop_when_stop_open_then_rounded_price_applies_to_matching() -> None:
    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)

    [amended] = desk.publish(desk.broker.amend_stop("sl", 49_512.345, minute(2)))

    assert isinstance(amended, OrderAmended) and amended.stop_price == 49_512.3
    assert desk.broker.amend_stop("tp", 49_600, minute(2)) == []  # not a stop
    # Low 49_400 would not have reached the old 49_000 stop.
    assert [e.order_id for e in fills(desk.candle(2, 49_900, 50_000, 49_400, 49_500))] == ["sl"]


def test_apply_when_journal_replayed_into_fresh_brokers_then_state_reproduced_exactly() -> None:
    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)
    desk.candle(1, 50_500, 51_200, 50_400, 51_000, volume=0.2)  # partial TP
    desk.publish(desk.broker.amend_stop("sl", 49_500, minute(2)))
    desk.candle(0, 3_000, 3_000, 3_000, 3_000, symbol=ETH)
    desk.submit(order("e1", Side.BUY, OrderType.LIMIT, 0.5, limit=2_950, symbol=ETH), minute(2))
    desk.candle(2, 2_990, 3_010, 2_940, 3_000, volume=1.0, symbol=ETH)  # partial ETH buy
    desk.publish([RuntimeStopped(reason="test")])  # not the broker's business: ignored
    # Round-trip through journal records, as a restart reads them back.
    records = [json.loads(json.dumps(event_to_record(e))) for e in desk.journal]

    replicas = [PaperBroker(MARKETS, FEES) for _ in range(2)]
    for replica in replicas:
        for record in records:
            replica.apply(event_from_record(record))

    assert len(desk.broker.open_orders) == 3  # sl and tp sharing 0.05, and e1 with 0.25 left
    assert state(replicas[0]) == state(replicas[1]) == state(desk.broker)


def test_apply_when_fill_repeated_then_cash_moves_once() -> None:
    desk = Desk()
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    desk.submit(order("l1", Side.BUY, OrderType.LIMIT, 0.1, limit=49_000), minute(1))
    [fill] = fills(desk.candle(1, 49_500, 49_600, 48_800, 49_200, volume=0.2))
    before = state(desk.broker)

    desk.broker.apply(fill)

    assert state(desk.broker) == before


def test_paper_broker_when_typed_as_broker_then_protocol_satisfied() -> None:
    broker: Broker = PaperBroker(MARKETS, FEES)  # checked by type checkers; the calls check at runtime
    assert broker.cash == 0.0 and broker.holding(BTC) == 0.0 and set(broker.markets()) == {BTC, ETH}


NEXT_OPEN_NO_SLIPPAGE = FeesConfig(taker=0.0026, maker=0.0016, slippage_bps=0.0, impact_bps_per_volume_pct=0.0)


def budget_buy(order_id: str, budget: float, estimate: float = 0.1) -> OrderRequest:
    return OrderRequest(
        order_id=order_id,
        worker="w1",
        symbol=BTC,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        purpose=OrderPurpose.ENTRY,
        qty=estimate,
        quote_budget=budget,
    )


def test_submit_when_a_market_buy_carries_a_budget_then_it_buys_what_the_budget_pays_for_at_the_next_open() -> None:
    desk = Desk(cash=10_000.0)
    desk.broker = PaperBroker(MARKETS, NEXT_OPEN_NO_SLIPPAGE)
    desk.publish([AccountOpened(currency="USD", cash=10_000.0)])
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    assert [type(e).__name__ for e in desk.submit(budget_buy("b1", 5_013.0), minute(1))] == ["OrderSubmitted"]
    (fill,) = [e for e in desk.candle(1, 40_000, 41_000, 39_000, 40_500) if isinstance(e, OrderFilled)]
    # 5,013 USD at 40,000 with a 0.26 % fee: floor(5013 / 40104, 8 decimals) = 0.125
    assert (fill.qty, fill.price, fill.remaining_qty) == (0.125, 40_000.0, 0.0)
    assert fill.qty * fill.price + fill.fee <= 5_013.0
    assert desk.broker.cash == pytest.approx(10_000.0 - 5_000.0 - 13.0)


def test_submit_when_a_budget_buys_less_than_the_minimum_then_the_order_is_cancelled_with_the_reason() -> None:
    desk = Desk(cash=10_000.0)
    desk.broker = PaperBroker(MARKETS, NEXT_OPEN_NO_SLIPPAGE)
    desk.publish([AccountOpened(currency="USD", cash=10_000.0)])
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    desk.submit(budget_buy("b1", 4.0), minute(1))
    events = desk.candle(1, 50_000, 50_100, 49_900, 50_000)
    (cancel,) = [e for e in events if isinstance(e, OrderCancelled)]
    assert "buys less than the minimum" in cancel.reason and desk.broker.cash == 10_000.0
    assert desk.broker.open_orders == ()


def test_submit_when_a_budget_exceeds_free_cash_then_rejected() -> None:
    desk = Desk(cash=1_000.0)
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    (rejected,) = desk.submit(budget_buy("b1", 1_500.0), minute(1))
    assert isinstance(rejected, OrderRejected) and "insufficient funds" in rejected.reason


def test_on_candle_when_a_budget_order_estimated_zero_units_then_it_is_settled_at_the_open_not_left_resting() -> None:
    desk = Desk(cash=10_000.0)
    desk.broker = PaperBroker(MARKETS, NEXT_OPEN_NO_SLIPPAGE)
    desk.publish([AccountOpened(currency="USD", cash=10_000.0)])
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    desk.submit(budget_buy("b1", 4.0, estimate=0.0), minute(1))
    events = desk.candle(1, 50_000, 50_100, 49_900, 50_000)
    assert [type(e).__name__ for e in events] == ["OrderCancelled"]
    assert desk.broker.open_orders == ()


def test_on_candle_when_a_budget_would_buy_below_the_minimum_cost_then_cancelled_rather_than_left_unsellable() -> None:
    desk = Desk(cash=10_000.0)
    desk.broker = PaperBroker(MARKETS, NEXT_OPEN_NO_SLIPPAGE)
    desk.publish([AccountOpened(currency="USD", cash=10_000.0)])
    desk.candle(0, 3_000, 3_000, 3_000, 3_000, symbol=ETH)
    request = OrderRequest(
        order_id="b1",
        worker="w1",
        symbol=ETH,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        purpose=OrderPurpose.ENTRY,
        qty=0.0016,
        quote_budget=5.0,
    )
    desk.submit(request, minute(1))
    # 5.00 USD with the fee buys 0.00166 ETH at 3,000: 4.99 USD of coin, under ETH's 5 USD minimum cost
    events = desk.candle(1, 3_000, 3_010, 2_990, 3_000, symbol=ETH)
    assert [type(e).__name__ for e in events] == ["OrderCancelled"] and desk.broker.cash == 10_000.0


def test_free_cash_when_a_budget_buy_is_resting_then_its_budget_is_not_free() -> None:
    desk = Desk(cash=10_000.0)
    desk.broker = PaperBroker(MARKETS, NEXT_OPEN_NO_SLIPPAGE)
    desk.publish([AccountOpened(currency="USD", cash=10_000.0)])
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    desk.submit(budget_buy("b1", 6_000.0), minute(1))
    assert (desk.broker.cash, desk.broker.free_cash) == (10_000.0, 4_000.0)


def test_on_candle_when_cash_left_covers_less_than_the_minimum_cost_then_the_buy_is_cancelled_not_shrunk() -> None:
    desk = Desk(cash=10_000.0)
    desk.broker = PaperBroker(MARKETS, NEXT_OPEN_NO_SLIPPAGE)
    desk.publish([AccountOpened(currency="USD", cash=10_000.0)])
    desk.candle(0, 50_000, 50_000, 50_000, 50_000)
    desk.candle(0, 3_000, 3_000, 3_000, 3_000, symbol=ETH)
    # 0.199 BTC at 50,000 holds 9,950 x 1.0026 = 9,975.87; 0.008 ETH at 3,000 holds 24.0624 of the 24.13 left.
    assert [type(e) for e in desk.submit(order("b", Side.BUY, OrderType.MARKET, 0.199), minute(1))] == [OrderSubmitted]
    eth_buy = order("e", Side.BUY, OrderType.MARKET, 0.008, symbol=ETH)
    assert [type(e) for e in desk.submit(eth_buy, minute(1))] == [OrderSubmitted]

    # BTC opens 100 higher: 0.199 x 50,100 = 9,969.9 + fee 25.92174 leaves 4.17826 USD.
    desk.candle(1, 50_100, 50_100, 50_100, 50_100)
    assert desk.broker.cash == pytest.approx(4.17826)
    events = desk.candle(1, 3_000, 3_000, 3_000, 3_000, symbol=ETH)

    # 4.17826 buys floor(4.17826 / 3,007.8) = 0.00138914 ETH: above the 0.001 minimum amount but worth
    # only 4.17 USD, under the 5 USD minimum cost. Bought, it could never carry a stop nor be sold.
    [cancel] = events
    assert isinstance(cancel, OrderCancelled) and cancel.order_id == "e"
    assert cancel.reason.startswith("insufficient funds at fill")
    assert desk.broker.holding(ETH) == 0.0 and desk.broker.cash == pytest.approx(4.17826)
    assert desk.broker.open_orders == ()
