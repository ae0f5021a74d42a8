"""The risk engine: trading state, entry checks and the per-trade risk budget.

States: ACTIVE trades normally; REDUCING takes no new entries but manages open
positions (the trapdoor and the daily loss limit put the desk here, and it
returns to ACTIVE by itself once the condition clears); HALTED takes no new
entries and stays halted, across restarts, until an operator resumes trading.
Protective exits always run: risk never blocks a position from being closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from desk.config import RiskConfig, RiskProfile, WorkerConfig
from desk.core.events import AccountReset, EquitySampled, EquitySeries, Event, RiskStateChanged
from desk.core.types import DAY_MS, TradingState

RULE_OPERATOR_HALT = "operator_halt"
# REDUCING clears only once losses are back under this share of their limits, so the
# state does not flap every minute while equity hovers at a threshold.
RECOVERY_MARGIN = 0.8
RULE_OPERATOR_RESUME = "operator_resume"


@dataclass(frozen=True, slots=True)
class Denial:
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class EffectiveRisk:
    """A worker's risk knobs after its overrides and the chosen profile are applied."""

    risk_per_trade_usd: float | None
    risk_per_trade_pct: float | None
    stop_pct: float
    take_profit_r: float
    trailing_stop_pct: float | None


class RiskEngine:
    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self.state = TradingState.ACTIVE
        self.state_rule = ""
        self.state_reason = ""
        self.high_water_mark = 0.0
        self.equity = 0.0
        self._day = -1
        self.day_start_equity = 0.0
        self._last_mark_ts = -1

    # --- state, folded from events ---------------------------------------------------------

    # The event types apply() reacts to: the bus hands it no others (tests/engines/test_bus.py checks the list).
    APPLIES: ClassVar[tuple[type[Event], ...]] = (
        EquitySampled,
        EquitySeries,
        AccountReset,
        RiskStateChanged,
    )

    def apply(self, event: Event) -> None:
        if isinstance(event, EquitySampled):
            self.observe_equity(event.equity, event.ts_event)
        elif isinstance(event, EquitySeries):
            # A backtest's marks, journaled in chunks after the engine already saw them one by one;
            # a replay from the journal sees them only here. Either way each mark counts once.
            if event.ts_event <= self._last_mark_ts:
                return  # its last mark, and so every one before it, was seen already
            for index, equity in enumerate(event.equity):
                ts = event.start_ts + index * event.step_ms
                if ts > self._last_mark_ts:
                    self.observe_equity(equity, ts)
        elif isinstance(event, AccountReset):
            self.equity = self.high_water_mark = self.day_start_equity = event.cash
        elif isinstance(event, RiskStateChanged):
            self.state = TradingState(event.state)
            self.state_rule = event.rule
            self.state_reason = event.reason
            if event.rule == RULE_OPERATOR_RESUME:
                # Resuming accepts the loss so far: the marks restart from here, or the
                # drawdown rule would halt again on the very next sample.
                self.high_water_mark = self.equity
                self.day_start_equity = self.equity

    def observe_equity(self, equity: float, ts_event: int) -> None:
        """Take a mark of the account: the high-water mark and the day's opening equity follow it."""
        self.equity = equity
        self._last_mark_ts = ts_event
        if equity > self.high_water_mark:
            self.high_water_mark = equity
        day = ts_event // DAY_MS
        if day != self._day:
            self._day = day
            self.day_start_equity = equity

    def observe_marks(self, ts: np.ndarray, equity: np.ndarray) -> np.ndarray:
        """`observe_equity` for each mark in turn, in one go (a backtest's quiet minutes).

        Return the high-water mark as it stands after each mark.
        """
        high = np.maximum.accumulate(np.maximum(equity, self.high_water_mark))
        if not len(ts):
            return high
        self.equity = float(equity[-1])
        self._last_mark_ts = int(ts[-1])
        self.high_water_mark = float(high[-1])
        last_day = self._last_mark_ts // DAY_MS
        if last_day != self._day:
            self._day = last_day
            self.day_start_equity = float(equity[int(np.searchsorted(ts, last_day * DAY_MS))])
        return high

    def quiet_marks(self, ts: np.ndarray, equity: np.ndarray) -> int:
        """How many leading marks `evaluate` would answer with no change, each observed in turn.

        The same arithmetic as `observe_equity` and `evaluate`, vectorised, so the
        count is exact; the mark it stops at is left for the scalar path to decide.
        """
        config = self.config
        rules = (config.max_drawdown_pct, config.trapdoor_pct, config.daily_loss_limit_pct)
        if self.state is TradingState.HALTED or not len(ts) or rules == (None, None, None):
            return len(ts)
        high = np.maximum.accumulate(np.maximum(equity, self.high_water_mark))
        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = 1.0 - equity / high
            daily_loss = self._daily_losses(ts, equity)
        never = np.zeros(len(ts), dtype=bool)
        halt = drawdown >= config.max_drawdown_pct if config.max_drawdown_pct is not None else never
        trap = drawdown >= config.trapdoor_pct if config.trapdoor_pct is not None else never
        daily = daily_loss >= config.daily_loss_limit_pct if config.daily_loss_limit_pct is not None else never
        if self.state is TradingState.REDUCING:
            measure, limit = (
                (daily_loss, config.daily_loss_limit_pct)
                if self.state_rule == "daily_loss_limit"
                else (drawdown, config.trapdoor_pct)
            )
            recovered = ~never if limit is None else measure <= RECOVERY_MARGIN * limit
            changes = halt | (~trap & ~daily & recovered)
        else:
            changes = halt | trap | daily
        changes &= high > 0  # evaluate() says nothing while there is no high-water mark
        return int(changes.argmax()) if changes.any() else len(ts)

    def _daily_losses(self, ts: np.ndarray, equity: np.ndarray) -> np.ndarray:
        """1 - equity / the day's opening equity at each mark, as `evaluate` computes it."""
        days = ts // DAY_MS
        # The day's opening equity: the first mark of each new day, or the one already held.
        new_day = np.empty(len(days), dtype=bool)
        new_day[0] = int(days[0]) != self._day
        np.not_equal(days[1:], days[:-1], out=new_day[1:])
        opened_at = np.maximum.accumulate(np.where(new_day, np.arange(len(days)), -1))
        day_start = np.where(opened_at >= 0, equity[np.maximum(opened_at, 0)], self.day_start_equity)
        return np.where(day_start > 0, 1.0 - equity / day_start, 0.0)

    # --- decisions ---------------------------------------------------------------------------

    def evaluate(self, ts_event: int) -> list[Event]:
        """Return the state change the latest equity sample calls for, if any."""
        if self.state is TradingState.HALTED or self.high_water_mark <= 0:
            return []
        drawdown = 1.0 - self.equity / self.high_water_mark
        config = self.config
        if config.max_drawdown_pct is not None and drawdown >= config.max_drawdown_pct:
            reason = f"drawdown {drawdown:.2%} reached the {config.max_drawdown_pct:.2%} limit"
            return [self._change(TradingState.HALTED, "max_drawdown", reason, ts_event)]
        daily_loss = 1.0 - self.equity / self.day_start_equity if self.day_start_equity > 0 else 0.0
        if config.trapdoor_pct is not None and drawdown >= config.trapdoor_pct:
            rule = "trapdoor"
            reason = f"equity {self.equity:.2f} is {drawdown:.2%} below its high {self.high_water_mark:.2f}"
        elif config.daily_loss_limit_pct is not None and daily_loss >= config.daily_loss_limit_pct:
            rule = "daily_loss_limit"
            reason = f"down {daily_loss:.2%} today, limit {config.daily_loss_limit_pct:.2%}"
        else:
            # Only the rule that tripped needs the margin; the other is already inside its limit.
            measure, limit = (
                (daily_loss, config.daily_loss_limit_pct)
                if self.state_rule == "daily_loss_limit"
                else (drawdown, config.trapdoor_pct)
            )
            recovered = limit is None or measure <= RECOVERY_MARGIN * limit
            if self.state is TradingState.REDUCING and recovered:
                reason = f"drawdown {drawdown:.2%} and today's loss {daily_loss:.2%} are back inside the limits"
                return [self._change(TradingState.ACTIVE, "recovered", reason, ts_event)]
            return []
        if self.state is TradingState.REDUCING:
            return []  # already reducing; the first rule that tripped stays the reason
        return [self._change(TradingState.REDUCING, rule, reason, ts_event)]

    def halt(self, reason: str, ts_event: int) -> list[Event]:
        if self.state is TradingState.HALTED:
            return []
        return [self._change(TradingState.HALTED, RULE_OPERATOR_HALT, reason, ts_event)]

    def resume(self, reason: str, ts_event: int) -> list[Event]:
        if self.state is TradingState.ACTIVE:
            return []
        return [self._change(TradingState.ACTIVE, RULE_OPERATOR_RESUME, reason, ts_event)]

    def check_entry(self, *, worker_has_position: bool, open_positions: int) -> Denial | None:
        """Decide whether a new entry may proceed; exits are never checked here."""
        if self.state is not TradingState.ACTIVE:
            return Denial(f"state_{self.state.value.lower()}", f"trading is {self.state.value}: {self.state_reason}")
        if worker_has_position:
            return Denial("one_position_per_worker", "the worker already holds a position")
        if open_positions >= self.config.max_concurrent_positions:
            return Denial(
                "max_concurrent_positions",
                f"{open_positions} positions open, limit {self.config.max_concurrent_positions}",
            )
        return None

    def effective(self, worker: WorkerConfig) -> EffectiveRisk:
        """Merge the risk section, the default profile and the worker's overrides, in that order."""
        layers: list[RiskProfile] = [self.config.profiles[self.config.default_profile], worker.risk]
        usd, pct = self.config.risk_per_trade_usd, self.config.risk_per_trade_pct
        stop, take, trail = self.config.stop_pct, self.config.take_profit_r, self.config.trailing_stop_pct
        for layer in layers:
            if layer.risk_per_trade_usd is not None:
                usd, pct = layer.risk_per_trade_usd, None
            if layer.risk_per_trade_pct is not None:
                usd, pct = None, layer.risk_per_trade_pct
            stop = layer.stop_pct if layer.stop_pct is not None else stop
            take = layer.take_profit_r if layer.take_profit_r is not None else take
            trail = layer.trailing_stop_pct if layer.trailing_stop_pct is not None else trail
        return EffectiveRisk(usd, pct, stop, take, trail)

    def risk_budget_usd(self, worker: WorkerConfig) -> float:
        """USD the worker may lose on one trade if its stop is hit, scaled by the worker's weight."""
        effective = self.effective(worker)
        base = effective.risk_per_trade_usd if effective.risk_per_trade_usd is not None else 0.0
        if effective.risk_per_trade_pct is not None:
            base = effective.risk_per_trade_pct * self.equity
        return base * worker.weight

    def _change(self, state: TradingState, rule: str, reason: str, ts_event: int) -> RiskStateChanged:
        return RiskStateChanged(
            ts_event=ts_event, previous=self.state.value, state=state.value, rule=rule, reason=reason
        )
