"""The paper broker matching a position's protection from the open its entry filled at (`match_from_open`).

Scenarios and hand-worked numbers as in test_paper_broker.py, whose desk and order helpers they share.
"""

from __future__ import annotations

import pytest

from desk.core.events import OrderCancelled, OrderFilled
from desk.core.types import Candle
from tests.services.test_paper_broker import BTC, ETH, long_position, minute, protect


def test_match_from_open_when_orders_were_placed_at_the_candles_open_then_the_same_candle_fills_them() -> None:
    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)  # placed at minute(1), the open of candle 1
    bar = Candle(BTC, minute(1), 50_000, 50_200, 48_500, 49_500, 100.0)
    assert desk.publish(desk.broker.on_candle(bar)) != []  # on_candle takes them: placed before it closed

    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)
    events = desk.publish(desk.broker.match_from_open(bar, ["sl", "tp"]))

    # The same decisions on_candle makes: the stop at 49_000 less 3 bps slippage, the take-profit cancelled.
    assert [(type(e), e.order_id) for e in events] == [(OrderFilled, "sl"), (OrderCancelled, "tp")]
    assert events[0].price == pytest.approx(48_985.3) and events[0].ts_event == minute(2)
    assert desk.broker.holding(BTC) == 0.0 and desk.broker.open_orders == ()


def test_match_from_open_when_an_order_is_closed_or_on_another_symbol_then_it_is_left_alone() -> None:
    desk = long_position()
    protect(desk, stop=49_000, take_profit=51_000)
    desk.publish(desk.broker.cancel("sl", "operator", minute(1)))
    eth_bar = Candle(ETH, minute(1), 3_000, 3_100, 2_000, 2_500, 100.0)
    assert desk.broker.match_from_open(eth_bar, ["tp", "sl", "unknown"]) == []
    untouched = Candle(BTC, minute(1), 50_000, 50_900, 48_500, 50_500, 100.0)
    assert desk.broker.match_from_open(untouched, ["sl", "unknown"]) == []  # the stop is gone; nothing else asked
    assert [o.order_id for o in desk.broker.open_orders] == ["tp"]


def test_match_from_open_when_the_open_is_already_above_the_take_profit_then_it_sells_there_as_a_taker() -> None:
    desk = long_position()
    protect(desk, stop=48_000, take_profit=49_500)  # placed at the open of candle 1, which is 50,000
    bar = Candle(BTC, minute(1), 50_000, 50_200, 49_800, 50_100, 100.0)

    events = desk.publish(desk.broker.match_from_open(bar, ["tp", "sl"]))

    # A limit sell at 49,500 placed when the market is at 50,000 does not rest: it takes the bid at once,
    # like a market sell that will not go below 49,500. Taker slippage 2 + 10 x 0.1 % = 3 bps below the
    # 50,000 open = 49,985 (above the limit); taker fee 0.1 x 49,985 x 0.0026 = 12.9961, not maker's 8.00.
    assert [(type(e), e.order_id) for e in events] == [(OrderFilled, "tp"), (OrderCancelled, "sl")]
    fill = events[0]
    assert isinstance(fill, OrderFilled)
    assert (fill.qty, fill.liquidity) == (0.1, "taker")
    assert fill.price == pytest.approx(49_985.0) and fill.fee == pytest.approx(12.9961)
    # Cash: 4,985.4961 + 4,998.5 - 12.9961 = 9,971.0.
    assert desk.broker.cash == pytest.approx(9_971.0)
    assert desk.broker.holding(BTC) == 0.0 and desk.broker.open_orders == ()


def test_match_from_open_when_taker_slippage_would_cross_the_take_profit_then_it_fills_at_the_limit() -> None:
    desk = long_position()
    protect(desk, stop=48_000, take_profit=49_990)
    bar = Candle(BTC, minute(1), 50_000, 50_200, 49_800, 50_100, 100.0)

    [fill, _] = desk.publish(desk.broker.match_from_open(bar, ["tp", "sl"]))

    # 3 bps below the open is 49,985, under the 49,990 limit: a limit order never fills worse than its limit.
    assert isinstance(fill, OrderFilled) and (fill.price, fill.liquidity) == (49_990.0, "taker")
    assert fill.fee == pytest.approx(0.1 * 49_990 * 0.0026)
