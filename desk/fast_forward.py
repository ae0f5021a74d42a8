"""Fast-forward: a backtest that runs the trading core in full only on minutes where something can happen.

Most minutes of a replay change nothing but prices: no worker signals, no
resting order is touched, no trailing stop moves, no risk limit is crossed and
no data gap begins. Stepping the core through them one by one costs tens of
microseconds each; over a million candles that is the whole run. So when every
evaluating worker's strategy can state its signals for the whole data set at
once (`VectorisedStrategy.signal_tape`), the driver:

1. finds the next minute that may hold an event: the next signal of any
   worker, the next data gap, or the first candle that touches a resting order
   or may move a trailing stop (numpy over the highs and lows);
2. marks the account for the quiet minutes before it in one array operation
   (`TradingCore.mark_quiet`, the same arithmetic as a per-minute mark) up to
   the first mark at which the risk engine may change state;
3. runs `TradingCore.step` on that minute exactly as the candle-by-candle loop
   does, with each worker's answer read from its tape.

Every search is conservative: a minute it picks that turns out quiet is simply
run in full. Tests hold the journal equal to the candle-by-candle run's.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from desk.core.types import MINUTE_MS, Candle, CandleColumns, OrderType, Side
from desk.engines.execution import Position
from desk.engines.trading import TradingCore, WorkerResult
from desk.engines.worker import NO_SIGNAL, Evaluation, Worker
from desk.services.broker.book import OpenOrder
from desk.services.broker.paper import PaperBroker
from desk.services.feed.replay import ReplayFeed
from desk.strategies.base import VectorisedStrategy

Progress = Callable[[int], None]
# Searches ahead look at this many minutes first, then four times more each round: the cost
# follows the distance to the next event, not the length of the data.
_FIRST_LOOK = 64
_LONGEST_LOOK = 1 << 16


@dataclass(frozen=True, slots=True)
class _SymbolTimeline:
    """One symbol's candles laid on the replay's timeline: NaN where it has no candle."""

    rows: np.ndarray  # row in the file at each step, -1 where none
    steps: np.ndarray  # the steps that hold a candle, ascending
    high: np.ndarray
    low: np.ndarray
    last_close: np.ndarray  # the close of the latest candle at or before each step

    # Both look at `step` itself first: with a candle every minute, that is where the answer is.

    def next_candle(self, step: int, limit: int) -> int:
        """The first step at or after `step` at which the symbol has a candle, or `limit` if none comes before."""
        if self.rows[step] >= 0:
            return step
        index = int(self.steps.searchsorted(step))
        return min(int(self.steps[index]), limit) if index < len(self.steps) else limit

    def last_candle(self, step: int) -> int:
        """The last step at or before `step` at which the symbol has a candle, -1 if none."""
        if self.rows[step] >= 0:
            return step
        index = int(self.steps.searchsorted(step, side="right")) - 1
        return int(self.steps[index]) if index >= 0 else -1


class FastForward:
    """Drive `core` over `feed` from timeline step `start`, in full only where something can happen."""

    def __init__(self, core: TradingCore, feed: ReplayFeed, tapes: dict[str, dict[int, Evaluation]]) -> None:
        self._core = core
        self._feed = feed
        self._tapes = tapes
        self._timeline = feed.timeline
        self._symbols = {symbol: _lay_out(feed, symbol) for symbol in feed.symbols}
        self._closes = {symbol: laid.last_close for symbol, laid in self._symbols.items()}
        # Plain sorted lists: finding the next one is a bisect, far cheaper than a numpy call per step.
        self._signal_steps = sorted({step for tape in tapes.values() for step in tape})
        self._gap_steps = sorted({int(np.searchsorted(self._timeline, gap.next_ts)) for gap in feed.gaps()})
        self._step = -1

    @classmethod
    def prepare(cls, core: TradingCore, feed: ReplayFeed, warm_steps: int) -> FastForward | str:
        """The driver, or why this run must go candle by candle.

        Signals before step `warm_steps` (the warm-up) or before a worker's own
        warm-up are dropped, as the candle-by-candle loop drops them.
        """
        if not isinstance(core.broker, PaperBroker):
            return "fast-forward needs the paper broker"
        tapes: dict[str, dict[int, Evaluation]] = {}
        for worker in core.workers:
            if not worker.evaluates:
                continue
            if worker.symbol not in feed.symbols:
                tapes[worker.name] = {}  # no data for its symbol: it is never asked, as candle by candle
                continue
            strategy = worker.strategy
            if not isinstance(strategy, VectorisedStrategy):
                return f"worker {worker.name}: strategy {worker.config.strategy} has no signal tape"
            first, last = feed.window_rows(worker.symbol)
            columns: CandleColumns = feed.bars(worker.symbol).rows(first, last)
            try:
                tape = strategy.signal_tape(columns, worker.window.capacity)
            except Exception as error:  # the candle-by-candle loop will record the strategy's fault
                return f"worker {worker.name}: signal tape failed: {type(error).__name__}"
            steps = np.flatnonzero(feed.rows_at_steps(worker.symbol) >= 0)
            keep = tape.bars + 1 >= strategy.warmup
            tapes[worker.name] = {
                step: Evaluation(signal, features)
                for step, signal, features, kept in zip(
                    steps[tape.bars].tolist(), tape.signals, tape.features, keep.tolist(), strict=True
                )
                if kept and step >= warm_steps
            }
        return cls(core, feed, tapes)

    def run(self, start: int, flush: Callable[[], None], progress: Progress | None = None) -> int:
        """Replay steps `start` to the end, calling `flush` after each full step; return the last close time."""
        core, end = self._core, len(self._timeline)
        step = start
        while step < end:
            target = self._next_event(step)
            if target > step:
                closes = self._timeline[step:target] + MINUTE_MS
                prices = {symbol: last_close[step:target] for symbol, last_close in self._closes.items()}
                target = step + core.mark_quiet(closes, prices)
            if target < end:
                core.catch_up(self._last_candles(step, target))
                self._step = target
                core.step(self._feed.candles_at(target), self._evaluate)
                flush()
            if progress is not None:
                progress(min(target + 1, end) - step)
            step = target + 1
        core.catch_up(self._last_candles(start, end))
        return int(self._timeline[-1]) + MINUTE_MS

    # --- where the next event may be -------------------------------------------------------

    def _next_event(self, step: int) -> int:
        """The first step at or after `step` that may hold an event other than a risk change."""
        end = len(self._timeline)
        target = min(_next_in(self._signal_steps, step, end), _next_in(self._gap_steps, step, end))
        broker = self._core.broker
        assert isinstance(broker, PaperBroker)
        resting = broker.open_orders
        # A market order fills at its symbol's next open, nearly always `step` itself, before which
        # nothing can come: so look there first, and search prices only if the target is still ahead.
        for order in resting:
            if order.order_type is OrderType.MARKET:
                target = self._symbols[order.symbol].next_candle(step, target)
        if target == step:
            return step
        for order in resting:
            if order.order_type is not OrderType.MARKET:
                target = min(target, self._next_touch(order, step, target))
        for position in self._core.execution.positions.values():
            if position.trailing_stop_pct and position.stop_order_id:
                target = self._next_trail(position, step, target)
        return target

    def _next_trail(self, position: Position, step: int, limit: int) -> int:
        """The first candle that may move the position's trailing stop (see ExecutionEngine._trail)."""
        assert position.trailing_stop_pct is not None
        laid = self._symbols[position.symbol]
        market = self._core.markets[position.symbol]
        tick = 10.0**-market.price_decimals  # rounding moves the candidate by half a tick at most
        keep, stop = 1.0 - position.trailing_stop_pct, position.stop_price

        def may_trail(a: int, b: int) -> np.ndarray:
            candidate = laid.high[a:b] * keep
            return (candidate + tick > stop) & (candidate - tick < laid.last_close[a:b])

        return _first_true(may_trail, step, limit)

    def _next_touch(self, order: OpenOrder, step: int, limit: int) -> int:
        """The first candle that may reach a resting stop or limit order's price."""
        laid = self._symbols[order.symbol]
        price = order.stop_price if order.order_type is OrderType.STOP else order.limit_price
        assert price is not None
        # A sell stop and a buy limit trade when the price falls to them, the others when it rises.
        falls = (order.order_type is OrderType.STOP) == (order.side is Side.SELL)
        column = laid.low if falls else laid.high

        def touched(a: int, b: int) -> np.ndarray:
            return column[a:b] <= price if falls else column[a:b] >= price

        return _first_true(touched, step, limit)

    # --- the minute run in full ----------------------------------------------------------------

    def _evaluate(self, by_symbol: dict[str, Candle]) -> list[tuple[Worker, WorkerResult]]:
        """Each evaluating worker's answer at this step, read from its tape (as `evaluate_inline` orders them)."""
        results: list[tuple[Worker, WorkerResult]] = []
        for worker in self._core.workers:
            if worker.symbol in by_symbol and worker.evaluates:
                results.append((worker, self._tapes[worker.name].get(self._step, NO_SIGNAL)))
        return results

    def _last_candles(self, start: int, end: int) -> list[Candle]:
        """Each symbol's last candle in steps [start, end), for the core to catch up on."""
        candles: list[Candle] = []
        if end <= start:
            return candles  # no quiet minutes in between
        for symbol, laid in self._symbols.items():
            last = laid.last_candle(end - 1)
            if last >= start:
                candles.append(self._feed.candle(symbol, int(laid.rows[last])))
        return candles


def _lay_out(feed: ReplayFeed, symbol: str) -> _SymbolTimeline:
    rows = feed.rows_at_steps(symbol)
    bars = feed.bars(symbol)
    has = rows >= 0
    high = np.full(len(rows), np.nan)
    low = np.full(len(rows), np.nan)
    high[has] = bars.high[rows[has]]
    low[has] = bars.low[rows[has]]
    latest = np.maximum.accumulate(np.where(has, np.arange(len(rows)), -1))
    last_close = np.where(latest >= 0, bars.close[rows[np.maximum(latest, 0)]], np.nan)
    return _SymbolTimeline(rows, np.flatnonzero(has), high, low, last_close)


def _next_in(steps: list[int], step: int, limit: int) -> int:
    """The first of the sorted `steps` at or after `step`, or `limit` if none comes before it."""
    index = bisect.bisect_left(steps, step)
    return min(steps[index], limit) if index < len(steps) else limit


def _first_true(predicate: Callable[[int, int], np.ndarray], step: int, limit: int) -> int:
    """The first step in [step, limit) where `predicate` holds, looking ahead in growing windows."""
    look = _FIRST_LOOK
    while step < limit:
        stop = min(limit, step + look)
        hits = predicate(step, stop)
        if hits.any():
            return step + int(hits.argmax())
        step, look = stop, min(look * 4, _LONGEST_LOOK)
    return limit
