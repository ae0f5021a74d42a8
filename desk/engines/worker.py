"""A worker hosts one strategy on one symbol, with a bounded candle window and a fault count."""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from desk.config import WorkerConfig
from desk.core.events import Event, WorkerFaulted, WorkerStateChanged
from desk.core.redaction import redact
from desk.core.types import Candle, Signal
from desk.strategies.base import CandleWindow, Strategy
from desk.strategies.registry import build_strategy


class WorkerStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"  # an operator paused it: it keeps its window warm but proposes nothing
    DISABLED = "disabled"  # faulted too often, or disabled in config: not evaluated at all


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one worker made of one candle."""

    signal: Signal | None
    features: dict[str, float] | None = None


NO_SIGNAL = Evaluation(None)


class Worker:
    def __init__(self, config: WorkerConfig, lookback: int, max_consecutive_faults: int) -> None:
        self.config = config
        self.name = config.name
        self.symbol = config.symbol
        self.strategy: Strategy = build_strategy(config.strategy, config.params)
        self.window = CandleWindow(max(lookback, self.strategy.warmup + 1))
        self.max_consecutive_faults = max_consecutive_faults
        self.consecutive_faults = 0
        self.status = WorkerStatus.ACTIVE if config.enabled else WorkerStatus.DISABLED
        self.busy = False  # a timed-out evaluation may still be running on its thread

    @property
    def evaluates(self) -> bool:
        return self.status is not WorkerStatus.DISABLED

    def apply(self, event: Event) -> None:
        if event.worker != self.name:
            return
        if isinstance(event, WorkerFaulted):
            self.consecutive_faults = event.consecutive
        elif isinstance(event, WorkerStateChanged):
            self.status = WorkerStatus(event.state)
            if self.status is WorkerStatus.ACTIVE:
                self.consecutive_faults = 0

    def seed(self, candles: Iterable[Candle]) -> BaseException | None:
        """Warm the window and the strategy's indicators on history; signals are discarded.

        A strategy that raises while warming up is returned, not raised, so the
        runtime records it as a fault of this worker alone.
        """
        for candle in candles:
            if candle.ts > self.window.last_ts:
                self.window.append(candle)
                try:
                    self.strategy.on_candle(candle, self.window)
                except Exception as error:
                    return error
        return None

    def evaluate(self, candle: Candle) -> Evaluation:
        """Run on a pool thread: append the candle, ask the strategy, and gather features for entries."""
        self.busy = True
        try:
            self.window.append(candle)
            # Strategies keep incremental indicators, so they must see every candle,
            # even those before warm-up; only the signal is dropped until then.
            signal = self.strategy.on_candle(candle, self.window)
            if signal is None or len(self.window) < self.strategy.warmup:
                return NO_SIGNAL  # most candles: one shared answer instead of a new object each time
            return Evaluation(signal, self.strategy.features(self.window))
        finally:
            self.busy = False

    def succeeded(self) -> None:
        if self.consecutive_faults:
            self.consecutive_faults = 0

    def fault(self, error: BaseException | str, ts_event: int) -> list[Event]:
        """Record a fault; disable the worker once it has faulted too often in a row."""
        consecutive = self.consecutive_faults + 1
        if isinstance(error, BaseException):
            error_type = type(error).__name__
            frames = traceback.extract_tb(error.__traceback__)
            where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
            # A strategy's exception text lands in the journal and on the Logs page: no secrets in it.
            message = f"{redact(str(error))}{where}"
        else:
            error_type, message = "Timeout", error
        events: list[Event] = [
            WorkerFaulted(
                ts_event=ts_event,
                worker=self.name,
                symbol=self.symbol,
                error_type=error_type,
                message=message[:500],
                consecutive=consecutive,
            )
        ]
        if consecutive >= self.max_consecutive_faults:
            events.append(
                WorkerStateChanged(
                    ts_event=ts_event,
                    worker=self.name,
                    symbol=self.symbol,
                    state=WorkerStatus.DISABLED.value,
                    reason=f"{consecutive} consecutive faults, last: {error_type}",
                )
            )
        return events
