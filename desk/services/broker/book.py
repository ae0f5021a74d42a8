"""The paper broker's book of resting orders: the record it keeps, and how a candle reaches one.

Kept apart from the broker's decisions (`paper.py`); the fast-forward reads the book too.
"""

from __future__ import annotations

from typing import NamedTuple

from desk.core.events import OrderSubmitted
from desk.core.types import Candle, OrderPurpose, OrderType, Side


class OpenOrder(NamedTuple):
    """A resting order as the broker holds it; `remaining` is what can still fill, `fills` how many did.

    Immutable, so the broker hands its book out as is. A NamedTuple rather than a frozen dataclass: the broker
    builds one per order and another on every fill and stop move, and a frozen dataclass sets each field through
    object.__setattr__ (about 2.3 µs a build, 3.3 µs through dataclasses.replace, against 1 µs and 0.8 µs here).
    """

    order_id: str
    worker: str
    symbol: str
    side: Side
    order_type: OrderType
    purpose: OrderPurpose
    qty: float
    remaining: float
    limit_price: float | None
    stop_price: float | None
    position_id: str
    oco_group: str
    correlation_id: str
    submitted_ms: int
    fills: int = 0
    quote_budget: float | None = None


def fill_id(order_id: str, n: int) -> str:
    """The id of an order's n-th fill (1-based); deterministic so replays and reruns agree."""
    return f"{order_id}-f{n}"


def touch_price(order: OpenOrder, candle: Candle) -> float | None:
    """The pre-slippage price at which the candle reaches `order`, or None; gaps fill at the open."""
    buy = order.side is Side.BUY
    if order.order_type is OrderType.STOP and order.stop_price is not None:
        stop = order.stop_price
        if buy and candle.high >= stop:
            return max(candle.open, stop)
        if not buy and candle.low <= stop:
            return min(candle.open, stop)
    elif order.order_type is OrderType.MARKET:
        return candle.open
    elif order.order_type is OrderType.LIMIT and order.limit_price is not None:
        limit = order.limit_price
        if buy and candle.low <= limit:
            return min(candle.open, limit)
        if not buy and candle.high >= limit:
            return max(candle.open, limit)
    return None


# The order a candle matches resting orders in: market orders at the open, then stops before limits.
MATCH_ORDER = {OrderType.MARKET: 0, OrderType.STOP: 1, OrderType.LIMIT: 2}


# Events carry these as their string values, and apply() builds every order from its OrderSubmitted: a dict
# lookup by value costs a tenth of Enum.__call__.
_SIDES = {side.value: side for side in Side}
_ORDER_TYPES = {order_type.value: order_type for order_type in OrderType}
_PURPOSES = {purpose.value: purpose for purpose in OrderPurpose}


def open_order(event: OrderSubmitted) -> OpenOrder:
    """The resting order an OrderSubmitted describes, with nothing filled yet."""
    return OpenOrder(
        order_id=event.order_id,
        worker=event.worker,
        symbol=event.symbol,
        side=_SIDES[event.side],
        order_type=_ORDER_TYPES[event.order_type],
        purpose=_PURPOSES[event.purpose],
        qty=event.qty,
        remaining=event.qty,
        limit_price=event.limit_price,
        stop_price=event.stop_price,
        position_id=event.position_id,
        oco_group=event.oco_group,
        correlation_id=event.correlation_id,
        submitted_ms=event.ts_event,
        quote_budget=event.quote_budget,
    )
