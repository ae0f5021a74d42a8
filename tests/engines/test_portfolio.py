"""Sizing turns risk into quantity, never past cash or lot precision, and best score first."""

from __future__ import annotations

import pytest

from desk.config import PortfolioConfig
from desk.core.types import Market
from desk.engines.portfolio import Portfolio, SizingRequest

BTC = Market("BTC/USD", "BTC", "USD", amount_decimals=4, price_decimals=1, min_amount=0.0001, min_cost=0.5)
MARKETS = {"BTC/USD": BTC}


def request(worker: str = "w1", score: float = 1.0, risk_usd: float = 50.0, stop: float = 49_000.0) -> SizingRequest:
    return SizingRequest(worker, "BTC/USD", score, 50_000.0, stop, risk_usd, 1.0)


def size(portfolio: Portfolio, requests: list[SizingRequest], cash: float = 100_000.0, equity: float = 100_000.0):
    return portfolio.size(requests, equity=equity, cash=cash, markets=MARKETS, taker_fee=0.0026)


def test_size_when_fixed_risk_then_qty_is_risk_over_stop_distance_floored_to_lot() -> None:
    (sized,) = size(Portfolio(PortfolioConfig()), [request(risk_usd=50.0, stop=49_300.0)])
    assert sized.qty == 0.0714  # 50 / 700 = 0.071428… floored to 4 decimals, never rounded up


def test_size_when_cash_is_short_then_qty_fits_cash_including_fee() -> None:
    (sized,) = size(Portfolio(PortfolioConfig(max_allocation_per_worker=1.0)), [request(risk_usd=5_000)], cash=1_000)
    assert 0 < sized.qty * 50_000 * 1.0026 <= 1_000


def test_size_when_two_compete_for_cash_then_higher_score_goes_first() -> None:
    config = PortfolioConfig(max_allocation_per_worker=1.0)
    low, high = request("low", score=0.2, risk_usd=10_000), request("high", score=0.9, risk_usd=10_000)
    results = {r.request.worker: r for r in size(Portfolio(config), [low, high], cash=30_000, equity=30_000)}
    assert results["high"].qty > 0.5
    assert results["low"].qty * 50_000 < 200  # only the change the first entry left behind


def test_size_when_below_market_minimum_then_denied_with_reason() -> None:
    (sized,) = size(Portfolio(PortfolioConfig()), [request(risk_usd=0.001)])
    assert sized.qty == 0.0 and sized.denial_rule == "min_size" and "minimum" in sized.denial_reason


def test_size_when_allocation_cap_binds_then_notional_stays_under_it() -> None:
    config = PortfolioConfig(max_allocation_per_worker=0.1)
    (sized,) = size(Portfolio(config), [request(risk_usd=10_000)], equity=100_000)
    assert sized.qty * 50_000 <= 10_000


def test_size_when_pct_equity_then_a_cash_budget_is_handed_to_the_broker_with_an_estimate() -> None:
    config = PortfolioConfig(sizing="pct_equity", pct_equity=0.5, max_allocation_per_worker=1.0)
    (sized,) = size(Portfolio(config), [request()], cash=100_000.0, equity=100_000.0)
    # half the equity, fee included: 50,000 x 1.0026; the estimate is what it buys at the signal price
    assert sized.quote_budget == pytest.approx(50_000 * 1.0026)
    assert sized.qty == 1.0


def test_size_when_a_pct_equity_budget_pays_less_than_the_minimum_cost_after_fees_then_denied() -> None:
    market = Market("ETH/USD", "ETH", "USD", amount_decimals=8, price_decimals=2, min_amount=0.001, min_cost=5.0)
    config = PortfolioConfig(sizing="pct_equity", pct_equity=1.0, max_allocation_per_worker=1.0, cash_buffer=0.0)
    eth = SizingRequest("w1", "ETH/USD", 1.0, 3_000.0, 2_900.0, 50.0, 1.0)
    (sized,) = Portfolio(config).size([eth], equity=5.01, cash=5.01, markets={"ETH/USD": market}, taker_fee=0.0026)
    assert sized.denial_rule == "min_size" and sized.quote_budget is None


def test_size_when_a_pct_equity_budget_buys_less_than_the_minimum_amount_then_denied_before_any_order() -> None:
    config = PortfolioConfig(sizing="pct_equity", pct_equity=1.0, max_allocation_per_worker=1.0, cash_buffer=0.0)
    # 3 USD buys 0.00005984 BTC at 50,000 with the fee: above the 0.5 USD minimum cost, below 0.0001 BTC.
    (sized,) = size(Portfolio(config), [request()], cash=3.0, equity=3.0)
    assert sized.denial_rule == "min_size" and sized.quote_budget is None
    assert "below the minimum amount 0.0001" in sized.denial_reason


ETH = Market("ETH/USD", "ETH", "USD", amount_decimals=8, price_decimals=2, min_amount=0.001, min_cost=5.0)


def test_size_when_the_entry_meets_the_minimum_cost_but_its_stop_would_not_then_denied() -> None:
    # Risk 0.51 USD over a 300 USD stop distance: 0.0017 ETH, 5.10 USD at the 3,000 price but only
    # 0.0017 x 2,700 = 4.59 USD at the stop. The broker refuses that stop, and a position whose stop
    # cannot be placed is sold again at once: two taker fees for nothing, or stuck if it cannot be sold.
    eth = SizingRequest("w1", "ETH/USD", 1.0, 3_000.0, 2_700.0, 0.51, 1.0)
    (sized,) = Portfolio(PortfolioConfig()).size(
        [eth], equity=10_000.0, cash=10_000.0, markets={"ETH/USD": ETH}, taker_fee=0.0026
    )
    assert (sized.qty, sized.denial_rule) == (0.0, "min_size")
    assert "minimum" in sized.denial_reason


def test_size_when_a_pct_equity_budget_buys_a_stop_below_the_minimum_cost_then_denied() -> None:
    config = PortfolioConfig(sizing="pct_equity", pct_equity=1.0, max_allocation_per_worker=1.0, cash_buffer=0.0)
    # 5.30 USD pays 5.2863 USD of coin after the fee, over the 5 USD minimum; it buys
    # floor(5.3 / 3,007.8) = 0.00176208 ETH, worth 0.00176208 x 2,700 = 4.76 USD at the stop.
    eth = SizingRequest("w1", "ETH/USD", 1.0, 3_000.0, 2_700.0, 50.0, 1.0)
    (sized,) = Portfolio(config).size([eth], equity=5.3, cash=5.3, markets={"ETH/USD": ETH}, taker_fee=0.0026)
    assert sized.denial_rule == "min_size" and sized.quote_budget is None
