"""The risk engine's states: trapdoor and daily loss reduce, max drawdown halts until an operator resumes."""

from __future__ import annotations

from desk.config import RiskConfig, WorkerConfig
from desk.core.events import EquitySampled, Event
from desk.core.types import DAY_MS, TradingState
from desk.engines.risk import RiskEngine

CONFIG = RiskConfig(trapdoor_pct=0.10, daily_loss_limit_pct=0.05, max_drawdown_pct=0.20, max_concurrent_positions=2)


def equity_sample(equity: float, ts: int) -> EquitySampled:
    """An all-cash equity sample at `ts` (the risk engine keeps its own high-water mark)."""
    return EquitySampled(
        ts_event=ts,
        equity=equity,
        cash=equity,
        positions_value=0,
        high_water_mark=0,
        drawdown_pct=0,
        open_positions=0,
    )


def sample(risk: RiskEngine, equity: float, ts: int) -> list[Event]:
    risk.apply(equity_sample(equity, ts))
    events = risk.evaluate(ts)
    for event in events:
        risk.apply(event)
    return events


def test_evaluate_when_equity_falls_past_the_trapdoor_then_reducing_and_back_when_it_recovers() -> None:
    risk = RiskEngine(CONFIG)
    sample(risk, 10_000, 0)
    sample(risk, 11_000, DAY_MS)
    (change,) = sample(risk, 9_850, DAY_MS + 1)  # 10.45 % below the 11,000 high
    assert (change.state, change.rule) == ("REDUCING", "trapdoor")
    assert risk.check_entry(worker_has_position=False, open_positions=0).rule == "state_reducing"
    (back,) = sample(risk, 10_500, 2 * DAY_MS)
    assert back.state == "ACTIVE"


def test_evaluate_when_daily_loss_limit_hit_then_reducing_until_the_next_day() -> None:
    risk = RiskEngine(CONFIG)
    sample(risk, 10_000, 0)
    (change,) = sample(risk, 9_400, 60_000)  # 6 % down today, 6 % below high: daily limit first
    assert change.rule == "daily_loss_limit"
    assert sample(risk, 9_400, 120_000) == []
    (next_day,) = sample(risk, 9_400, DAY_MS)
    assert next_day.state == "ACTIVE"


def test_evaluate_when_drawdown_reaches_the_limit_then_halted_and_stays_halted() -> None:
    risk = RiskEngine(CONFIG)
    sample(risk, 10_000, 0)
    (halt,) = sample(risk, 7_900, DAY_MS)
    assert (halt.state, halt.rule) == ("HALTED", "max_drawdown")
    assert sample(risk, 12_000, 2 * DAY_MS) == []
    assert risk.state is TradingState.HALTED


def test_replay_when_halt_was_journaled_then_a_fresh_engine_is_halted() -> None:
    risk = RiskEngine(CONFIG)
    history: list[Event] = []
    for equity, ts in ((10_000, 0), (7_900, 60_000)):
        event = equity_sample(equity, ts)
        risk.apply(event)
        history.append(event)
        for change in risk.evaluate(ts):
            risk.apply(change)
            history.append(change)
    fresh = RiskEngine(CONFIG)
    for event in history:
        fresh.apply(event)
    assert fresh.state is TradingState.HALTED


def test_resume_when_operator_clears_a_halt_then_active_with_the_high_reset() -> None:
    risk = RiskEngine(CONFIG)
    sample(risk, 10_000, 0)
    sample(risk, 7_900, 60_000)
    (resume,) = risk.resume("operator resumed", 120_000)
    risk.apply(resume)
    assert risk.state is TradingState.ACTIVE and risk.high_water_mark == 7_900
    assert sample(risk, 7_850, 180_000) == []


def test_check_entry_when_limits_bind_then_each_denial_names_its_rule() -> None:
    risk = RiskEngine(CONFIG)
    assert risk.check_entry(worker_has_position=True, open_positions=0).rule == "one_position_per_worker"
    assert risk.check_entry(worker_has_position=False, open_positions=2).rule == "max_concurrent_positions"
    assert risk.check_entry(worker_has_position=False, open_positions=1) is None


def test_risk_budget_when_worker_overrides_pct_then_it_scales_with_equity_and_weight() -> None:
    risk = RiskEngine(CONFIG)
    sample(risk, 20_000, 0)
    worker = WorkerConfig(name="w", symbol="BTC/USD", strategy="rsi", weight=0.5, risk={"risk_per_trade_pct": 0.01})
    assert risk.risk_budget_usd(worker) == 20_000 * 0.01 * 0.5
    plain = WorkerConfig(name="v", symbol="BTC/USD", strategy="rsi")
    assert risk.risk_budget_usd(plain) == 50.0


def test_evaluate_when_the_rules_are_switched_off_then_any_loss_leaves_trading_active() -> None:
    risk = RiskEngine(RiskConfig(trapdoor_pct=None, daily_loss_limit_pct=None, max_drawdown_pct=None))
    sample(risk, 10_000, 0)
    assert sample(risk, 1.0, 60_000) == []
    assert risk.state is TradingState.ACTIVE


def test_replay_when_a_backtest_journaled_equity_in_series_then_a_fresh_engine_reaches_the_same_state() -> None:
    from desk.core.events import EquitySeries

    marks = [10_000.0, 10_500.0, 9_000.0, 8_000.0]
    live = RiskEngine(CONFIG)
    for index, equity in enumerate(marks):
        live.observe_equity(equity, index * 60_000)
    series = EquitySeries(
        ts_event=3 * 60_000,
        start_ts=0,
        step_ms=60_000,
        equity=marks,
        cash=marks,
        positions_value=[0.0] * 4,
        high_water_mark=[10_500.0] * 4,
        open_positions=[0] * 4,
    )
    live.apply(series)  # already seen one by one: counted once
    fresh = RiskEngine(CONFIG)
    fresh.apply(series)
    for engine in (live, fresh):
        assert (engine.high_water_mark, engine.equity, engine.day_start_equity) == (10_500.0, 8_000.0, 10_000.0)
