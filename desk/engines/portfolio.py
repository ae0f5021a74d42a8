"""The portfolio: turns approved intents into quantities and keeps a sub-ledger per worker.

Sizing never rounds a quantity up: amounts are floored to the market's lot
precision after every cap (risk budget, allocation per worker, cash), so an
order can never ask for more than the account can pay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from desk.config import PortfolioConfig
from desk.core.events import AccountReset, Event, OrderFilled, PositionClosed, PositionOpened, PositionReduced
from desk.core.types import Market


@dataclass(slots=True)
class WorkerLedger:
    """One worker's share of the account. Sum over workers + opening cash = the account."""

    realized_pnl: float = 0.0
    fees: float = 0.0
    trades: int = 0
    wins: int = 0
    gross_win: float = 0.0
    gross_loss: float = 0.0
    open_qty: float = 0.0
    open_cost: float = 0.0

    @property
    def net_pnl(self) -> float:
        return self.realized_pnl - self.fees


@dataclass(frozen=True, slots=True)
class SizingRequest:
    """An approved entry waiting for a quantity."""

    worker: str
    symbol: str
    score: float
    price: float
    stop_price: float
    risk_usd: float
    weight: float


@dataclass(frozen=True, slots=True)
class Sized:
    """A sized entry: a firm `qty`, or with `quote_budget` an estimate the broker settles at the fill price."""

    request: SizingRequest
    qty: float
    denial_rule: str = ""
    denial_reason: str = ""
    quote_budget: float | None = None


@dataclass(slots=True)
class Portfolio:
    config: PortfolioConfig
    ledgers: dict[str, WorkerLedger] = field(default_factory=dict)

    def ledger(self, worker: str) -> WorkerLedger:
        ledger = self.ledgers.get(worker)
        if ledger is None:
            ledger = self.ledgers[worker] = WorkerLedger()
        return ledger

    # The event types apply() reacts to: the bus hands it no others (tests/engines/test_bus.py checks the list).
    APPLIES: ClassVar[tuple[type[Event], ...]] = (
        AccountReset,
        OrderFilled,
        PositionOpened,
        PositionReduced,
        PositionClosed,
    )

    def apply(self, event: Event) -> None:
        if isinstance(event, AccountReset):
            self.ledgers.clear()
        elif isinstance(event, OrderFilled) and event.worker:
            self.ledger(event.worker).fees += event.fee
        elif isinstance(event, PositionOpened):
            ledger = self.ledger(event.worker)
            ledger.open_qty = event.qty
            ledger.open_cost = event.qty * event.entry_price
        elif isinstance(event, PositionReduced):
            ledger = self.ledger(event.worker)
            ledger.open_cost *= event.remaining_qty / ledger.open_qty if ledger.open_qty else 0.0
            ledger.open_qty = event.remaining_qty
        elif isinstance(event, PositionClosed):
            ledger = self.ledger(event.worker)
            ledger.realized_pnl += event.realized_pnl
            ledger.trades += 1
            ledger.open_qty = ledger.open_cost = 0.0
            if event.net_pnl > 0:
                ledger.wins += 1
                ledger.gross_win += event.net_pnl
            else:
                ledger.gross_loss += -event.net_pnl

    def size(
        self,
        requests: list[SizingRequest],
        *,
        equity: float,
        cash: float,
        markets: Mapping[str, Market],
        taker_fee: float,
    ) -> list[Sized]:
        """Size requests best score first; earlier ones get first claim on cash."""
        results: list[Sized] = []
        available = cash
        for request in sorted(requests, key=lambda r: (-r.score, r.worker)):
            market = markets[request.symbol]
            raw_qty = self._raw_qty(request, equity)
            cap_notional = self.config.max_allocation_per_worker * equity * min(request.weight, 1.0)
            # Keep a little cash back for slippage so the broker never sees an order it must reject.
            cash_notional = available / (1.0 + taker_fee) * (1.0 - self.config.cash_buffer)
            if self.config.sizing == "pct_equity":
                # A share of equity is a cash amount: the broker buys what it pays for at the fill price.
                # Never more than the cash itself, whatever the float rounding of the fee arithmetic.
                budget = min(min(raw_qty * request.price, cap_notional, cash_notional) * (1.0 + taker_fee), available)
                if budget <= 0 or budget / (1.0 + taker_fee) < market.min_cost:
                    reason = f"a budget of {budget:.8g} USD for {request.symbol} is below the minimum cost"
                    results.append(Sized(request, 0.0, "min_size", reason))
                    continue
                estimate = market.floor_amount(budget / (request.price * (1.0 + taker_fee)))
                if estimate < market.min_amount:
                    # As a fixed size is judged: at the signal price. Sent anyway, it would only be
                    # cancelled at the fill, after promising the cash to nothing.
                    reason = (
                        f"a budget of {budget:.8g} USD buys {estimate:g} {request.symbol}, "
                        f"below the minimum amount {market.min_amount:g}"
                    )
                    results.append(Sized(request, 0.0, "min_size", reason))
                    continue
                at_stop = estimate * market.round_price(request.stop_price)  # the stop as the broker rounds it
                if at_stop < market.min_cost:
                    # The protective stop is an order of the same size at the stop price: the exchange
                    # judges its cost there, and a position it refuses to protect is sold again at once.
                    reason = (
                        f"a budget of {budget:.8g} USD buys {estimate:g} {request.symbol}, worth "
                        f"{at_stop:.2f} USD at the stop {request.stop_price:g}: "
                        f"below the minimum cost {market.min_cost:g} USD"
                    )
                    results.append(Sized(request, 0.0, "min_size", reason))
                    continue
                available -= budget
                results.append(Sized(request, estimate, quote_budget=budget))
                continue
            qty = market.floor_amount(min(raw_qty, cap_notional / request.price, cash_notional / request.price))
            # The cost is judged at the stop, below the price: the protective stop sells this same
            # quantity there, and a stop the exchange refuses leaves the position unprotected.
            lowest = min(request.price, market.round_price(request.stop_price))  # the stop as the broker rounds it
            if qty <= 0 or qty < market.min_amount or qty * lowest < market.min_cost:
                reason = (
                    f"size {qty:g} {request.symbol} (risk {request.risk_usd:.2f} USD, cash {available:.2f} USD) "
                    f"is below the market minimum {market.min_amount:g} / {market.min_cost:g} USD"
                )
                results.append(Sized(request, 0.0, "min_size", reason))
                continue
            available -= qty * request.price * (1.0 + taker_fee)
            results.append(Sized(request, qty))
        return results

    def _raw_qty(self, request: SizingRequest, equity: float) -> float:
        distance = request.price - request.stop_price
        fixed_risk_qty = request.risk_usd / distance if distance > 0 else 0.0
        if self.config.sizing == "pct_equity":
            return self.config.pct_equity * equity * request.weight / request.price
        if self.config.sizing == "kelly":
            ledger = self.ledger(request.worker)
            if ledger.trades < self.config.kelly_min_trades or ledger.gross_loss <= 0 or ledger.wins == 0:
                return fixed_risk_qty
            win_rate = ledger.wins / ledger.trades
            payoff = (ledger.gross_win / ledger.wins) / (ledger.gross_loss / max(ledger.trades - ledger.wins, 1))
            kelly = win_rate - (1.0 - win_rate) / payoff
            if kelly <= 0:
                return 0.0
            # Kelly sizes the capital at risk; the stop distance turns that into a quantity.
            return self.config.kelly_fraction * kelly * equity * request.weight / distance if distance > 0 else 0.0
        return fixed_risk_qty
