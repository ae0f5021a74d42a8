"""Value types shared by every layer: candles, markets, signals, orders."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

MINUTE_MS = 60_000
DAY_MS = 86_400_000


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class OrderPurpose(StrEnum):
    """Why an order exists; the execution engine routes fills by it."""

    ENTRY = "entry"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    EXIT = "exit"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar; `ts` is the bar's open time in epoch milliseconds (UTC)."""

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True, eq=False)
class CandleColumns:
    """One symbol's 1-minute candles as columns, oldest first, read-only: a whole data set at once.

    `ts` is int64 epoch milliseconds of each candle's open, strictly increasing and on
    minute boundaries; the price and volume columns are float64, same length.
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def rows(self, first: int, last: int) -> CandleColumns:
        """Rows [first, last) as views, not copies."""
        return CandleColumns(
            self.ts[first:last],
            self.open[first:last],
            self.high[first:last],
            self.low[first:last],
            self.close[first:last],
            self.volume[first:last],
        )


@dataclass(frozen=True, slots=True)
class Market:
    """Exchange rules for one symbol: precision is in decimal places, as Kraken states it."""

    symbol: str
    base: str
    quote: str
    amount_decimals: int
    price_decimals: int
    min_amount: float
    min_cost: float

    def floor_amount(self, amount: float) -> float:
        """Round an amount down to the lot precision; never up, so it never exceeds a balance."""
        scale = 10**self.amount_decimals
        # The epsilon absorbs binary noise such as 0.29999999999 meaning 0.3.
        return math.floor(amount * scale + 1e-9) / scale

    def round_price(self, price: float) -> float:
        return round(price, self.price_decimals)


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's decision on one candle.

    Spot trading is long only: `BUY` while flat asks to open a position, `SELL`
    while holding asks to close it. Prices are absolute; `None` means "use the
    worker's risk defaults".
    """

    side: Side
    stop_price: float | None = None
    take_profit: float | None = None
    confidence: float = 1.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What the execution engine asks a broker to do. `order_id` doubles as the client order id."""

    order_id: str
    worker: str
    symbol: str
    side: Side
    order_type: OrderType
    purpose: OrderPurpose
    qty: float
    limit_price: float | None = None
    stop_price: float | None = None
    position_id: str = ""
    oco_group: str = ""
    correlation_id: str = ""
    # A market buy may carry a cash budget instead of a firm quantity: the broker then buys what
    # the budget pays for at the fill price (all-in and %-of-equity sizing), and `qty` is an estimate.
    quote_budget: float | None = None
