"""The strategy contract and the read-only candle window it sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from desk.core.types import Candle, CandleColumns, Signal

__all__ = ["CandleColumns", "CandleWindow", "SignalTape", "Strategy", "StrategyParams", "VectorisedStrategy"]


class StrategyParams(BaseModel):
    """Base for each strategy's typed params; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Strategy(Protocol):
    """One strategy instance decides for one worker on one symbol.

    `on_candle` is called once per closed candle, in order, after the candle has
    been appended to `window`; strategies may keep incremental indicator state
    because they see every candle exactly once. Hooks take `**kwargs` so the
    interface can grow without breaking strategies.
    """

    Params: ClassVar[type[StrategyParams]]
    warmup: int

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None: ...

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]: ...


@dataclass(frozen=True, slots=True)
class SignalTape:
    """Every signal a strategy gives over a whole `CandleColumns`, computed in one vectorised pass.

    It must equal what `on_candle` returns when fed the same candles one by one
    from the first, warm-up included: `bars[k]` is the index of the candle whose
    `on_candle` returns `signals[k]`, and `features[k]` is what `features(window)`
    returns right after it, with a window of `window_capacity` candles.
    """

    bars: np.ndarray  # int64, ascending
    signals: tuple[Signal, ...]
    features: tuple[dict[str, float], ...]


@runtime_checkable
class VectorisedStrategy(Strategy, Protocol):
    """A strategy that can also answer for a whole data set at once, so a backtest skips quiet candles.

    Optional: a backtest fast-forwards only when every evaluating worker's
    strategy implements it, and runs candle by candle otherwise. The tape is a
    second form of the same rule, like the batch form of each indicator, and
    tests hold it equal to the candle-by-candle form.
    """

    def signal_tape(self, columns: CandleColumns, window_capacity: int) -> SignalTape: ...


class CandleWindow:
    """A bounded, read-only view of the most recent candles, oldest first.

    Backed by doubled numpy ring buffers so `close` and friends are O(1)
    contiguous views, never copies, whatever the length.
    """

    __slots__ = ("_arrays", "_count", "_next", "capacity", "last_ts")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        # Rows: open, high, low, close, volume.
        self._arrays = np.zeros((5, 2 * capacity), dtype=np.float64)
        self._next = 0
        self._count = 0
        self.last_ts = -1

    def append(self, candle: Candle) -> None:
        if candle.ts <= self.last_ts:
            raise ValueError(f"{candle.symbol}: candle at {candle.ts} is not after {self.last_ts}")
        values = (candle.open, candle.high, candle.low, candle.close, candle.volume)
        slot = self._next
        # Two column writes instead of ten scalar ones: this runs for every worker on every candle.
        self._arrays[:, slot] = values
        self._arrays[:, slot + self.capacity] = values
        self._next = (slot + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)
        self.last_ts = candle.ts

    def __len__(self) -> int:
        return self._count

    def _view(self, row: int) -> np.ndarray:
        end = self._next + self.capacity
        view = self._arrays[row, end - self._count : end]
        view.flags.writeable = False
        return view

    @property
    def open(self) -> np.ndarray:
        return self._view(0)

    @property
    def high(self) -> np.ndarray:
        return self._view(1)

    @property
    def low(self) -> np.ndarray:
        return self._view(2)

    @property
    def close(self) -> np.ndarray:
        return self._view(3)

    @property
    def volume(self) -> np.ndarray:
        return self._view(4)

    @property
    def last_close(self) -> float:
        if not self._count:
            raise IndexError("empty window")
        return float(self._arrays[3, (self._next - 1) % self.capacity])
