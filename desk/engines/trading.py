"""The synchronous trading core: one minute of candles in, decisions and orders out.

The runtime (live, paper, simulated) and the backtest both drive this class;
only the clock, the feed and the broker behind it differ. Every step publishes
events through the bus, which applies them to the engines' state at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from desk.config import DeskConfig
from desk.core.broker import Broker
from desk.core.events import (
    AccountReset,
    CandleClosed,
    CommandApplied,
    EquitySampled,
    EquitySeries,
    Event,
    FeedGap,
    IntentProposed,
    IntentScored,
    OrderDenied,
    PositionClosed,
    WorkerFaulted,
    WorkerStateChanged,
    answer_fields,
)
from desk.core.types import MINUTE_MS, Candle, Side, TradingState
from desk.engines.bus import EventBus
from desk.engines.execution import EntryPlan, ExecutionEngine
from desk.engines.learner import Learner
from desk.engines.portfolio import Portfolio, SizingRequest
from desk.engines.risk import RiskEngine
from desk.engines.worker import Evaluation, Worker, WorkerStatus

WorkerResult = Evaluation | BaseException | str  # a string is a timeout description
Evaluator = Callable[[dict[str, Candle]], list[tuple[Worker, WorkerResult]]]


@dataclass(frozen=True, slots=True)
class Command:
    """An operator command read from the inbox."""

    command_id: int
    command: str
    worker: str = ""


@dataclass(frozen=True, slots=True)
class _Approved:
    intent: IntentProposed
    request: SizingRequest
    take_profit_r: float
    trailing_stop_pct: float | None


class _SeriesBuffer:
    """Equity marks waiting to be journaled as one EquitySeries event, a day's worth at a time.

    The marks of a chunk are a minute apart, so of their times only the first and the last are kept.
    """

    CHUNK = 1440

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.first_ts = 0
        self.last_ts = 0
        self.equity: list[float] = []
        self.cash: list[float] = []
        self.high: list[float] = []
        self.open_positions: list[int] = []

    def add(self, ts: int, equity: float, cash: float, high: float, open_positions: int) -> EquitySeries | None:
        """Buffer a mark; return a finished chunk when the chunk is full or the mark cannot join it."""
        # Every chunk is evenly spaced: a gap in the data closes the chunk before it.
        finished = self.drain() if self.equity and ts - self.last_ts != MINUTE_MS else None
        if not self.equity:
            self.first_ts = ts
        self.last_ts = ts
        self.equity.append(equity)
        self.cash.append(cash)
        self.high.append(high)
        self.open_positions.append(open_positions)
        if finished is None and len(self.equity) >= self.CHUNK:
            finished = self.drain()
        return finished

    def extend(
        self, ts: np.ndarray, equity: np.ndarray, cash: float, high: np.ndarray, open_positions: int
    ) -> list[EquitySeries]:
        """`add` for each mark in turn, in one go: the same chunks, closed at the same marks."""
        finished: list[EquitySeries] = []
        count = len(ts)
        # Strictly increasing marks are evenly spaced exactly when first and last are count-1 minutes apart.
        evenly = count < 2 or int(ts[-1]) - int(ts[0]) == (count - 1) * MINUTE_MS
        breaks = [count] if evenly else [*(np.flatnonzero(ts[1:] - ts[:-1] != MINUTE_MS) + 1).tolist(), count]
        start = 0
        for end in breaks:  # runs of evenly spaced marks
            while start < end:
                if self.equity and int(ts[start]) - self.last_ts != MINUTE_MS:
                    finished.append(self._drain_now())
                if not self.equity:
                    self.first_ts = int(ts[start])
                stop = min(end, start + self.CHUNK - len(self.equity))
                self.last_ts = int(ts[stop - 1])
                self.equity += equity[start:stop].tolist()
                self.high += high[start:stop].tolist()
                self.cash += [cash] * (stop - start)
                self.open_positions += [open_positions] * (stop - start)
                if len(self.equity) >= self.CHUNK:
                    finished.append(self._drain_now())
                start = stop
        return finished

    def _drain_now(self) -> EquitySeries:
        series = self.drain()
        assert series is not None
        return series

    def drain(self) -> EquitySeries | None:
        if not self.equity:
            return None
        series = EquitySeries(
            ts_event=self.last_ts,
            start_ts=self.first_ts,
            step_ms=MINUTE_MS,
            equity=self.equity,
            cash=self.cash,
            positions_value=[e - c for e, c in zip(self.equity, self.cash, strict=True)],
            high_water_mark=self.high,
            open_positions=self.open_positions,
        )
        self._clear()
        return series


class TradingCore:
    def __init__(self, config: DeskConfig, bus: EventBus, broker: Broker, *, journal_market_data: bool = True) -> None:
        self.config = config
        # The daemon journals every candle and every equity mark as an event. A backtest replays
        # candles that are already in its data files and journals its marks in EquitySeries chunks.
        self.journal_market_data = journal_market_data
        self._series = _SeriesBuffer()
        self.bus = bus
        self.broker = broker
        self.markets = broker.markets()
        self.risk = RiskEngine(config.risk)
        self.portfolio = Portfolio(config.portfolio)
        self.execution = ExecutionEngine(broker, bus)
        self.learner = Learner(config.ml, config.risk)
        self.workers = [
            Worker(w, config.settings.lookback, config.settings.max_consecutive_faults) for w in config.workers
        ]
        self.last_candle_ts: int | None = None
        # Recent history per symbol, so a worker added or re-parameterised live can warm up at once.
        self.recent: dict[str, deque[Candle]] = {}
        self._workers_by_name = {w.name: w for w in self.workers}
        for holder in (broker, self.execution, self.risk, self.portfolio, self.learner, self):
            bus.subscribe(holder)

    # The event types apply() reacts to: the bus hands it no others (tests/engines/test_bus.py checks the list).
    APPLIES: ClassVar[tuple[type[Event], ...]] = (
        CandleClosed,
        WorkerFaulted,
        WorkerStateChanged,
    )

    def apply(self, event: Event) -> None:
        if isinstance(event, CandleClosed):
            self.last_candle_ts = event.ts if self.last_candle_ts is None else max(self.last_candle_ts, event.ts)
        elif isinstance(event, WorkerFaulted | WorkerStateChanged):
            # Routed here rather than subscribing every worker: 50 workers would each see every event.
            worker = self._workers_by_name.get(event.worker)
            if worker is not None:
                worker.apply(event)

    def worker(self, name: str) -> Worker | None:
        return self._workers_by_name.get(name)

    def replace_workers(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._workers_by_name = {w.name: w for w in workers}

    def close_position(self, worker: str, reason: str, ts: int) -> None:
        self._record_outcomes(self.execution.exit(worker, reason, ts))

    # --- one minute ----------------------------------------------------------------------------

    def step(self, candles: Sequence[Candle], evaluate: Evaluator) -> int:
        """Handle one minute: candles in, exits, decisions, entries, the equity sample; return its close time."""
        ts = candles[0].ts + MINUTE_MS
        self.on_candles(candles)
        by_symbol = {c.symbol: c for c in candles}
        self.on_evaluations(evaluate(by_symbol), {s: c.close for s, c in by_symbol.items()}, ts)
        self.sample_equity(ts)
        return ts

    def evaluate_inline(self, by_symbol: dict[str, Candle]) -> list[tuple[Worker, WorkerResult]]:
        """Evaluate the workers one after another on this thread (backtests: no wall-clock time limit)."""
        results: list[tuple[Worker, WorkerResult]] = []
        for worker in self.workers:
            candle = by_symbol.get(worker.symbol)
            if candle is None or not worker.evaluates:
                continue
            try:
                results.append((worker, worker.evaluate(candle)))
            except Exception as error:  # a strategy's fault is its worker's alone
                results.append((worker, error))
        return results

    def _history(self, symbol: str) -> deque[Candle]:
        history = self.recent.get(symbol)
        if history is None:
            history = self.recent[symbol] = deque(maxlen=self.config.settings.lookback)
        return history

    def remember(self, candle: Candle) -> None:
        history = self._history(candle.symbol)
        if history and candle.ts - history[-1].ts > MINUTE_MS:
            # The feed skipped minutes for this symbol: say so, so nobody reads the hole as a flat market.
            missing = (candle.ts - history[-1].ts) // MINUTE_MS - 1
            gap = FeedGap(
                ts_event=candle.ts,
                symbol=candle.symbol,
                after_ts=history[-1].ts,
                next_ts=candle.ts,
                missing_minutes=missing,
            )
            self.bus.publish([gap])
        history.append(candle)

    def catch_up(self, candles: Iterable[Candle]) -> None:
        """Take each symbol's last candle of minutes a backtest skipped as quiet, as `on_candles` would have.

        Prices, and the last candle each symbol's gap check compares with. `recent`
        then skips the quiet minutes' other candles: a backtest never re-warms a worker from it.
        """
        for candle in candles:
            history = self._history(candle.symbol)
            if history and history[-1].ts >= candle.ts:
                continue  # seen already
            history.append(candle)
            self._take_price(candle)

    def _take_price(self, candle: Candle) -> None:
        """A candle not journaled (a backtest's) still moves the broker's last price and the core's clock."""
        self.broker.observe(candle)
        if self.last_candle_ts is None or candle.ts > self.last_candle_ts:
            self.last_candle_ts = candle.ts

    def on_candles(self, candles: Sequence[Candle]) -> None:
        """Journal the candles, then let resting protective orders meet them."""
        for candle in candles:
            self.remember(candle)
            if not self.journal_market_data:
                self._take_price(candle)
                self._record_outcomes(self.execution.on_candle(candle))
                continue
            self.bus.publish(
                [
                    CandleClosed(
                        ts_event=candle.ts + MINUTE_MS,
                        symbol=candle.symbol,
                        ts=candle.ts,
                        open=candle.open,
                        high=candle.high,
                        low=candle.low,
                        close=candle.close,
                        volume=candle.volume,
                    )
                ]
            )
            self._record_outcomes(self.execution.on_candle(candle))

    def on_evaluations(self, results: Sequence[tuple[Worker, WorkerResult]], prices: dict[str, float], ts: int) -> None:
        """Turn the workers' answers into exits, intents, risk checks, sizing and entries."""
        approved: list[_Approved] = []
        for worker, result in results:
            if not isinstance(result, Evaluation):
                self.bus.publish(worker.fault(result, ts))
                continue
            worker.succeeded()
            signal = result.signal
            if signal is None or worker.status is not WorkerStatus.ACTIVE:
                continue
            if signal.side is Side.SELL:
                if self.execution.has_position(worker.name):
                    self._record_outcomes(self.execution.exit(worker.name, f"signal: {signal.reason}", ts))
                continue
            if self.execution.has_position(worker.name):
                continue  # already long; a repeated buy signal is not a new intent
            candidate = self._propose(worker, result, prices[worker.symbol], ts, open_before=len(approved))
            if candidate is not None:
                approved.append(candidate)
        if approved:
            self._size_and_enter(approved, ts)

    def _propose(
        self, worker: Worker, evaluation: Evaluation, price: float, ts: int, open_before: int
    ) -> _Approved | None:
        assert evaluation.signal is not None
        signal = evaluation.signal
        effective = self.risk.effective(worker.config)
        stop = signal.stop_price if signal.stop_price is not None else price * (1.0 - effective.stop_pct)
        take = signal.take_profit
        if take is None:
            take = price + effective.take_profit_r * (price - stop)
        intent_id = self.bus.new_id("i")
        (intent,) = self.bus.publish(
            [
                IntentProposed(
                    ts_event=ts,
                    correlation_id=intent_id,
                    worker=worker.name,
                    symbol=worker.symbol,
                    intent_id=intent_id,
                    side=signal.side.value,
                    reference_price=price,
                    stop_price=stop,
                    take_profit=take,
                    confidence=signal.confidence,
                    reason=signal.reason,
                )
            ]
        )
        assert isinstance(intent, IntentProposed)
        (scored,) = self.bus.publish([self.learner.score(intent, evaluation.features or {})])
        assert isinstance(scored, IntentScored)
        denial: tuple[str, str] | None = None
        if not stop < price:
            denial = ("invalid_stop", f"stop {stop} is not below the price {price}")
        elif not take > price:
            # A target at or below the price would sell the moment the position opens: two fees for nothing.
            denial = ("invalid_take_profit", f"take-profit {take} is not above the price {price}")
        elif scored.vetoed:
            denial = ("learner_veto", f"score {scored.score:.3f} below {self.config.ml.veto_below}")
        else:
            check = self.risk.check_entry(
                worker_has_position=self.execution.has_position(worker.name),
                open_positions=self.execution.committed_positions + open_before,
            )
            denial = (check.rule, check.reason) if check else None
        if denial is not None:
            self._deny(intent, *denial)
            return None
        request = SizingRequest(
            worker=worker.name,
            symbol=worker.symbol,
            score=scored.score,
            price=price,
            stop_price=stop,
            risk_usd=self.risk.risk_budget_usd(worker.config),
            weight=worker.config.weight,
        )
        return _Approved(intent, request, effective.take_profit_r, effective.trailing_stop_pct)

    def _size_and_enter(self, approved: list[_Approved], ts: int) -> None:
        by_worker = {a.request.worker: a for a in approved}
        sized = self.portfolio.size(
            [a.request for a in approved],
            equity=self.equity(),
            cash=self.broker.free_cash,  # cash a resting entry has promised is not there to spend
            markets=self.markets,
            taker_fee=self.config.portfolio.fees.taker,
        )
        for result in sized:
            candidate = by_worker[result.request.worker]
            if result.denial_rule:
                self._deny(candidate.intent, result.denial_rule, result.denial_reason)
                continue
            plan = EntryPlan(
                intent_id=candidate.intent.intent_id,
                worker=candidate.intent.worker,
                symbol=candidate.intent.symbol,
                qty=result.qty,
                stop_price=result.request.stop_price,
                take_profit=candidate.intent.take_profit,
                risk_usd=result.qty * (result.request.price - result.request.stop_price),
                trailing_stop_pct=candidate.trailing_stop_pct,
                quote_budget=result.quote_budget,
            )
            self._record_outcomes(self.execution.enter(plan, ts))

    def _deny(self, intent: IntentProposed, rule: str, reason: str) -> None:
        self.bus.publish([OrderDenied(**answer_fields(intent), rule=rule, reason=reason)])

    def _record_outcomes(self, events: Iterable[Event]) -> None:
        outcomes = [self.learner.outcome(e) for e in events if isinstance(e, PositionClosed)]
        if outcomes:
            self.bus.publish(outcomes)

    # --- account -------------------------------------------------------------------------------

    def equity(self) -> float:
        value = self.broker.cash
        for symbol in self.markets:
            held = self.broker.holding(symbol)
            if held:
                value += held * self.broker.last_price(symbol)
        return value

    def sample_equity(self, ts: int) -> None:
        """Mark the account to the last closes, then let the risk engine react."""
        equity = self.equity()
        cash = self.broker.cash
        high = max(self.risk.high_water_mark, equity)
        if not self.journal_market_data:
            self.risk.observe_equity(equity, ts)
            chunk = self._series.add(ts, equity, cash, high, len(self.execution.positions))
            if chunk is not None:
                self.bus.publish([chunk])
            changes = self.risk.evaluate(ts)
            if changes:
                self.bus.publish(changes)
            return
        self.bus.publish(
            [
                EquitySampled(
                    ts_event=ts,
                    equity=equity,
                    cash=cash,
                    positions_value=equity - cash,
                    high_water_mark=high,
                    drawdown_pct=1.0 - equity / high if high > 0 else 0.0,
                    open_positions=len(self.execution.positions),
                )
            ]
        )
        self.bus.publish(self.risk.evaluate(ts))

    def mark_quiet(self, ts: np.ndarray, prices: Mapping[str, np.ndarray]) -> int:
        """Mark the account at minutes in which only prices moved (a backtest's fast-forward).

        `ts` are the marks' times and `prices[symbol]` each symbol's last close at
        them. The marks are taken as `sample_equity` takes them, with the same
        arithmetic, up to the first one at which the risk engine may change state;
        returns how many were taken, so the caller runs that minute in full.
        """
        cash = self.broker.cash
        # As equity(): cash, then each holding in turn; a flat account is its cash at every mark.
        equity: np.ndarray | None = None
        for symbol in self.markets:
            held = self.broker.holding(symbol)
            if held:
                equity = (cash if equity is None else equity) + held * prices[symbol]
        if equity is None:
            equity = np.full(len(ts), cash)
        quiet = self.risk.quiet_marks(ts, equity)
        ts, equity = ts[:quiet], equity[:quiet]
        high = self.risk.observe_marks(ts, equity)
        chunks = self._series.extend(ts, equity, cash, high, len(self.execution.positions))
        if chunks:
            self.bus.publish(list(chunks))
        return quiet

    def flush_equity_series(self) -> None:
        """Journal the buffered equity marks as one EquitySeries event (backtests)."""
        series = self._series.drain()
        if series is not None:
            self.bus.publish([series])

    # --- operator commands ---------------------------------------------------------------------

    def handle_command(self, command: Command, ts: int) -> CommandApplied:
        """Apply one operator command; unknown or impossible ones are rejected with a reason."""
        status, detail = "applied", ""
        name = command.command
        worker = self.worker(command.worker) if command.worker else None
        if name == "halt":
            self.bus.publish(self.risk.halt("operator halted trading", ts))
            detail = f"trading is {self.risk.state.value}"
        elif name == "resume":
            self.bus.publish(self.risk.resume("operator resumed trading", ts))
            detail = f"trading is {self.risk.state.value}"
        elif name == "flatten":
            self._record_outcomes(self.execution.flatten("operator flatten", ts))
            detail = f"{len(self.execution.positions)} positions still open"
        elif name == "reset_account":
            if self.config.settings.mode != "paper":
                status, detail = "rejected", "only a paper account can be reset"
            else:
                self._record_outcomes(self.execution.flatten("operator reset the paper account", ts))
                cash = self.config.settings.starting_cash
                reset = AccountReset(
                    ts_event=ts,
                    currency=self.config.settings.quote_currency,
                    cash=cash,
                    reason="operator reset the paper account",
                )
                self.bus.publish([reset])
                detail = f"paper account reset to {cash:.2f} {self.config.settings.quote_currency}"
        elif name in ("pause_worker", "resume_worker"):
            if worker is None:
                status, detail = "rejected", f"unknown worker {command.worker!r}"
            else:
                target = WorkerStatus.PAUSED if name == "pause_worker" else WorkerStatus.ACTIVE
                self.bus.publish(
                    [
                        WorkerStateChanged(
                            ts_event=ts,
                            worker=worker.name,
                            symbol=worker.symbol,
                            state=target.value,
                            reason=f"operator {name.replace('_', ' ')}",
                        )
                    ]
                )
                detail = f"worker {worker.name} is {target.value}"
        else:
            status, detail = "rejected", f"unknown command {name!r}"
        return self.acknowledge(command, status, detail, ts)

    def acknowledge(self, command: Command, status: str, detail: str, ts: int) -> CommandApplied:
        """Journal a command's outcome; the runtime marks the inbox row with its seq."""
        (applied,) = self.bus.publish(
            [
                CommandApplied(
                    ts_event=ts,
                    worker=command.worker,
                    command_id=command.command_id,
                    command=command.command,
                    status=status,
                    detail=detail,
                )
            ]
        )
        assert isinstance(applied, CommandApplied)
        return applied

    @property
    def trading_state(self) -> TradingState:
        return self.risk.state
