"""Build candle paths and drive a strategy exactly as the worker does: append to the window, then on_candle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from desk.core.types import MINUTE_MS, Candle, Side, Signal
from desk.strategies.base import CandleColumns, CandleWindow, Strategy
from desk.strategies.registry import build_strategy

SYMBOL = "BTC/USD"


def make_candles(closes: Sequence[float], *, wick: float = 0.0, start_ts: int = 0) -> list[Candle]:
    """One-minute candles whose open is the previous close; high/low are the body plus `wick` either side.

    The first candle opens at its own close, so a flat series is made of identical, zero-range candles
    (with wick=0): that keeps ATR and band widths easy to compute by hand.
    """
    candles = []
    prev = closes[0]
    for i, close in enumerate(closes):
        open_ = prev
        high = max(open_, close) + wick
        low = min(open_, close) - wick
        candles.append(Candle(SYMBOL, start_ts + i * MINUTE_MS, open_, high, low, close, 1.0))
        prev = close
    return candles


def build(slug: str, **params: Any) -> Strategy:
    return build_strategy(slug, params)


def run(strategy: Strategy, candles: Sequence[Candle], capacity: int | None = None) -> list[tuple[int, Signal]]:
    """Feed every candle; return (candle index, signal) for each candle that produced one."""
    window = CandleWindow(capacity or max(strategy.warmup + 1, 64))
    signals = []
    for index, candle in enumerate(candles):
        window.append(candle)
        signal = strategy.on_candle(candle, window)
        if signal is not None:
            signals.append((index, signal))
    return signals


def sides(signals: list[tuple[int, Signal]]) -> list[tuple[int, Side]]:
    return [(index, signal.side) for index, signal in signals]


def replay(strategy: Strategy, columns: CandleColumns, capacity: int) -> list[tuple[int, Signal, dict[str, float]]]:
    """Feed every row of `columns` as the worker does; return (row, signal, features after it) per signal.

    What a signal tape must equal: the candles are built from the columns' own floats,
    and features are read right after on_candle, from a window of `capacity` candles.
    """
    window = CandleWindow(capacity)
    names = ("ts", "open", "high", "low", "close", "volume")
    rows = zip(*(getattr(columns, name).tolist() for name in names), strict=True)
    found = []
    for index, (ts, open_, high, low, close, volume) in enumerate(rows):
        candle = Candle(SYMBOL, ts, open_, high, low, close, volume)
        window.append(candle)
        signal = strategy.on_candle(candle, window)
        if signal is not None:
            found.append((index, signal, strategy.features(window)))
    return found
