"""The paper broker: simulated fills against closed 1-minute candles, with fees, slippage and OCO.

Like every broker it decides in its methods and changes state only in `apply`,
so a journal replayed through `apply` rebuilds cash, holdings and open orders
exactly. Matching is deliberately pessimistic, because a backtest that flatters
itself is worse than none: stops fill at the open when price gaps through them,
a stop beats a take-profit touched in the same bar, limit orders take at most a
share of the bar's volume, and buys never spend cash the account does not have.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import ClassVar, TypedDict

from desk.config import FeesConfig
from desk.core.events import (
    AccountOpened,
    AccountReset,
    CandleClosed,
    Event,
    OrderAmended,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from desk.core.types import MINUTE_MS, Candle, Market, OrderRequest, OrderType, Side
from desk.services.broker.book import MATCH_ORDER, OpenOrder, fill_id, open_order, touch_price

OCO_CANCEL_REASON = "oco sibling filled"


class PaperBroker:
    """A simulated spot account in one quote currency; satisfies `desk.core.broker.Broker`."""

    def __init__(self, markets: dict[str, Market], fees: FeesConfig, quote_currency: str = "USD") -> None:
        self._markets = dict(markets)
        self._fees = fees
        self._quote = quote_currency
        self._cash = 0.0
        self._holdings: dict[str, float] = {}
        # Insertion order is submission order, which makes matching order deterministic.
        self._orders: dict[str, OpenOrder] = {}
        self._candles: dict[str, Candle] = {}

    # --- read side -----------------------------------------------------------------------

    def markets(self) -> dict[str, Market]:
        return dict(self._markets)

    @property
    def cash(self) -> float:
        return self._cash

    def holding(self, symbol: str) -> float:
        return self._holdings.get(symbol, 0.0)

    @property
    def holdings(self) -> dict[str, float]:
        """A copy of every non-zero holding, base amount by symbol."""
        return dict(self._holdings)

    @property
    def open_orders(self) -> tuple[OpenOrder, ...]:
        return tuple(self._orders.values())

    def last_price(self, symbol: str) -> float | None:
        candle = self._candles.get(symbol)
        return None if candle is None else candle.close

    def equity(self) -> float:
        """Cash plus holdings marked at their last close (a holding with no candle yet counts as 0)."""
        return self._cash + sum(qty * (self.last_price(symbol) or 0.0) for symbol, qty in self._holdings.items())

    # --- decisions ---------------------------------------------------------------------------

    def submit(self, order: OrderRequest, now_ms: int) -> list[Event]:
        """Validate an order; return [OrderRejected] alone, or [OrderSubmitted] plus the fill of a market order."""
        market = self._markets.get(order.symbol)
        limit = _rounded(market, order.limit_price)
        stop = _rounded(market, order.stop_price)
        reason = self._rejection(order, market, limit, stop)
        if reason:
            return [OrderRejected(order_id=order.order_id, reason=reason, **_envelope(order, now_ms))]
        assert market is not None  # _rejection refuses unknown symbols
        submitted = OrderSubmitted(
            order_id=order.order_id,
            side=order.side.value,
            order_type=order.order_type.value,
            purpose=order.purpose.value,
            qty=order.qty,
            limit_price=limit,
            stop_price=stop,
            position_id=order.position_id,
            oco_group=order.oco_group,
            quote_budget=order.quote_budget,
            **_envelope(order, now_ms),
        )
        events: list[Event] = [submitted]
        # With fill_at="next_open" a market order rests until the next candle and fills at its open.
        if order.order_type is OrderType.MARKET and self._fees.fill_at == "close":
            pending = open_order(submitted)
            candle = self._candles[order.symbol]
            if order.quote_budget is not None:
                qty, price = self._budget_qty(pending, market, candle.close, candle.volume, self._cash)
                if qty <= 0 or qty < market.min_amount or qty * price < market.min_cost:
                    why = self._budget_too_small(pending, market, price)
                    return [*events, OrderCancelled(order_id=order.order_id, reason=why, **_envelope(order, now_ms))]
                events.append(self._fill(pending, market, qty, price, taker=True, ts=now_ms, left=qty))
                return events
            price = self._slipped(candle.close, order.side, order.qty, candle.volume)
            events.append(self._fill(pending, market, order.qty, price, taker=True, ts=now_ms, left=order.qty))
            events += self._oco_effects(pending, market, order.qty, {}, now_ms)
        return events

    def cancel(self, order_id: str, reason: str, now_ms: int) -> list[Event]:
        """Cancel an open order; [] when it is unknown or already closed, so a late cancel is harmless."""
        order = self._orders.get(order_id)
        if order is None:
            return []
        return [OrderCancelled(order_id=order_id, reason=reason, **_envelope(order, now_ms))]

    def amend_stop(self, order_id: str, stop_price: float, now_ms: int) -> list[Event]:
        """Move an open stop order; [] when the order is unknown, closed or not a stop."""
        if not math.isfinite(stop_price) or stop_price <= 0:
            raise ValueError(f"stop price must be a positive number, got {stop_price!r} for order {order_id}")
        order = self._orders.get(order_id)
        if order is None or order.order_type is not OrderType.STOP:
            return []
        price = float(self._markets[order.symbol].round_price(stop_price))
        return [OrderAmended(order_id=order_id, stop_price=price, **_envelope(order, now_ms))]

    def on_candle(self, candle: Candle) -> list[Event]:
        """Match this symbol's resting orders against a closed candle and return fills and OCO cancels.

        Only the `candle` argument is used for prices and volume, so the result does not
        depend on whether its CandleClosed was applied first. Orders placed after the
        candle closed never match it (no look-ahead).
        """
        market = self._markets.get(candle.symbol)
        if market is None or not self._orders:
            return []  # most candles of a replay meet no resting order at all
        ts = candle.ts + MINUTE_MS
        live = [o for o in self._orders.values() if o.symbol == candle.symbol and o.submitted_ms < ts]
        return self._match(candle, market, live, ts) if live else []

    def match_from_open(self, candle: Candle, order_ids: Collection[str]) -> list[Event]:
        """Match orders placed at `candle`'s open against the rest of it: fills and OCO cancels.

        The execution engine places a position's stop and take-profit when its
        entry fills at a candle's open. The open is the candle's first trade, so
        its whole range came after them: a low through the stop is a stop-out in
        that same candle, not at the next one. Orders already closed are skipped.
        """
        market = self._markets.get(candle.symbol)
        live = [order for order_id in order_ids if (order := self._orders.get(order_id)) is not None]
        if market is None or not live:
            return []
        mine = [o for o in live if o.symbol == candle.symbol]
        return self._match(candle, market, mine, candle.ts + MINUTE_MS, at_open=True)

    def _match(
        self, candle: Candle, market: Market, live: list[OpenOrder], ts: int, *, at_open: bool = False
    ) -> list[Event]:
        """Fill the `live` orders the candle reaches, in matching order; `ts` stamps what happens.

        `at_open` says the orders were placed at the candle's open rather than resting before it.
        """
        # Market orders sent at the last close trade at this open, before anything else can happen.
        # The path inside a bar is unknown; when a stop and a take-profit are both touched, assume
        # the stop came first. sorted() is stable, so submission order holds within each kind.
        live.sort(key=lambda o: MATCH_ORDER[o.order_type])
        # Working copies: fills decided earlier in this candle must bind the later decisions. Only the orders
        # they touch get one (most candles touch none); every other order still has its booked remaining.
        remaining: dict[str, float] = {}
        cash, held = self._cash, self.holding(candle.symbol)
        events: list[Event] = []
        for order in live:
            left = remaining.get(order.order_id, order.remaining)
            touched = touch_price(order, candle)
            # A budgeted buy's quantity is settled here, so its estimate (even 0) does not count.
            if touched is None or (left <= 0 and order.quote_budget is None):
                continue
            # A limit placed at the open that the open already crosses never rests on the book: it takes
            # liquidity at once, as a taker, at the open less slippage but never past its limit.
            marketable = at_open and order.order_type is OrderType.LIMIT and touched == candle.open
            taker = order.order_type is not OrderType.LIMIT or marketable
            if order.quote_budget is not None:
                # Sized at the price it trades at, like a broker's "buy for 1,000 USD" order.
                qty, price = self._budget_qty(order, market, touched, candle.volume, cash)
                # Below either minimum the position could never be protected or sold: do not buy it.
                if qty <= 0 or qty < market.min_amount or qty * price < market.min_cost:
                    why = self._budget_too_small(order, market, price)
                    events.append(OrderCancelled(order_id=order.order_id, reason=why, **_envelope(order, ts)))
                    remaining[order.order_id] = 0.0
                    continue
                fill = self._fill(order, market, qty, price, taker=True, ts=ts, left=qty)
                events.append(fill)
                held = round(held + qty, market.amount_decimals)
                cash -= qty * price + fill.fee
                remaining[order.order_id] = 0.0
                continue
            qty = left if taker else min(left, market.floor_amount(self._fees.max_volume_fraction * candle.volume))
            if qty <= 0:
                continue
            price = self._taker_price(order, touched, qty, candle.volume) if taker else touched
            rate = self._fees.taker if taker else self._fees.maker
            if order.side is Side.BUY and qty * price * (1 + rate) > cash:
                # Fill what cash covers; price only falls as qty shrinks (less impact), so it stays covered.
                need = qty * price * (1 + rate)
                qty = market.floor_amount(cash / (price * (1 + rate)))
                # The shrunk size is a new order the exchange would judge afresh: below either minimum it
                # could never carry a stop nor be sold again (as for a budget buy), so do not buy it.
                if qty <= 0 or qty < market.min_amount or qty * touched < market.min_cost:
                    why = (
                        f"insufficient funds at fill: {left} {candle.symbol} at {price:g} needs {need:.2f} "
                        f"{self._quote}, have {cash:.2f} {self._quote}"
                    )
                    events.append(OrderCancelled(order_id=order.order_id, reason=why, **_envelope(order, ts)))
                    remaining[order.order_id] = 0.0
                    continue
                price = self._taker_price(order, touched, qty, candle.volume) if taker else touched
            if order.side is Side.SELL and qty > held:
                # Submit-time checks make this unreachable; it guards the holdings against any drift.
                qty = market.floor_amount(held)
                if qty <= 0:
                    why = f"insufficient holdings at fill: {candle.symbol} held {held}, order needs {left}"
                    events.append(OrderCancelled(order_id=order.order_id, reason=why, **_envelope(order, ts)))
                    remaining[order.order_id] = 0.0
                    continue
            fill = self._fill(order, market, qty, price, taker=taker, ts=ts, left=left)
            events.append(fill)
            signed = qty if order.side is Side.BUY else -qty
            held = round(held + signed, market.amount_decimals)
            cash -= signed * price + fill.fee
            events += self._oco_effects(order, market, qty, remaining, ts)
            if order.order_type is OrderType.MARKET and fill.remaining_qty > 0:
                # A market order never rests: what cash or holdings could not cover is dropped.
                why = f"unfilled remainder {fill.remaining_qty} {candle.symbol}: not enough cash or holdings"
                events.append(OrderCancelled(order_id=order.order_id, reason=why, **_envelope(order, ts)))
                remaining[order.order_id] = 0.0
        return events

    def observe(self, candle: Candle) -> None:
        """Take a closed candle as the symbol's latest price (a backtest calls this instead of journaling it)."""
        previous = self._candles.get(candle.symbol)
        if previous is None or candle.ts >= previous.ts:  # an out-of-order candle must not rewind prices
            self._candles[candle.symbol] = candle

    # --- state -------------------------------------------------------------------------------

    # The event types apply() reacts to: the bus hands it no others (tests/engines/test_bus.py checks the list).
    APPLIES: ClassVar[tuple[type[Event], ...]] = (
        AccountOpened,
        AccountReset,
        CandleClosed,
        OrderSubmitted,
        OrderFilled,
        OrderCancelled,
        OrderRejected,
        OrderAmended,
    )

    def apply(self, event: Event) -> None:
        """Change state from one published event; every other event type is ignored."""
        match event:
            case AccountOpened():
                self._cash = event.cash
            case AccountReset():
                # Positions were flattened first; anything left (dust, a rejected exit) goes too.
                self._cash = event.cash
                self._holdings.clear()
                self._orders.clear()
            case CandleClosed():
                values = (event.open, event.high, event.low, event.close, event.volume)
                self.observe(Candle(event.symbol, event.ts, *values))
            case OrderSubmitted():
                if event.order_id not in self._orders:  # a duplicate must not reset a partly filled order
                    self._orders[event.order_id] = open_order(event)
            case OrderFilled():
                self._apply_fill(event)
            case OrderCancelled() | OrderRejected():
                self._orders.pop(event.order_id, None)
            case OrderAmended():
                order = self._orders.get(event.order_id)
                if order is not None:
                    self._orders[event.order_id] = order._replace(stop_price=event.stop_price)

    def _apply_fill(self, event: OrderFilled) -> None:
        order = self._orders.get(event.order_id)
        # Only the order's next fill counts: a repeated or stale fill would move cash twice.
        if order is None or event.fill_id != fill_id(order.order_id, order.fills + 1):
            return
        market = self._markets.get(order.symbol)
        decimals = market.amount_decimals if market else 12
        notional = event.qty * event.price
        if order.side is Side.BUY:
            self._cash -= notional + event.fee
            held = round(self.holding(order.symbol) + event.qty, decimals)
        else:
            self._cash += notional - event.fee
            held = round(self.holding(order.symbol) - event.qty, decimals)
        if held:
            self._holdings[order.symbol] = held
        else:
            self._holdings.pop(order.symbol, None)
        if event.remaining_qty > 0:
            self._orders[order.order_id] = order._replace(remaining=event.remaining_qty, fills=order.fills + 1)
        else:
            del self._orders[order.order_id]
        for sibling in self._siblings(order):
            left = max(0.0, round(sibling.remaining - event.qty, decimals))
            self._orders[sibling.order_id] = sibling._replace(remaining=left)

    # --- helpers -----------------------------------------------------------------------------

    def _rejection(self, order: OrderRequest, market: Market | None, limit: float | None, stop: float | None) -> str:
        """The reason to refuse `order`, or "" when it may be placed."""
        symbol, qty = order.symbol, order.qty
        if market is None:
            return f"unknown symbol {symbol}: not one of {sorted(self._markets)}"
        if order.order_id in self._orders:
            return f"{symbol}: order id {order.order_id} is already open"
        candle = self._candles.get(symbol)
        if candle is None:
            return f"{symbol}: no price yet, no candle seen"
        if order.quote_budget is not None:
            return self._budget_rejection(order)
        if not math.isfinite(qty) or qty <= 0:
            return f"{symbol}: qty {qty} must be positive"
        if round(qty, market.amount_decimals) != qty:
            return f"{symbol}: qty {qty} has more than {market.amount_decimals} decimals"
        if qty < market.min_amount:
            return f"{symbol}: qty {qty} is below the minimum amount {market.min_amount}"
        if order.order_type is OrderType.LIMIT and not (limit and limit > 0):
            return f"{symbol}: a limit order needs a positive limit_price, got {order.limit_price}"
        if order.order_type is OrderType.STOP and not (stop and stop > 0):
            return f"{symbol}: a stop order needs a positive stop_price, got {order.stop_price}"
        # Checks use the price the order would trade at: its limit or stop, else the last close.
        reference = {OrderType.LIMIT: limit, OrderType.STOP: stop}.get(order.order_type) or candle.close
        if qty * reference < market.min_cost:
            return (
                f"{symbol}: cost {qty * reference:.2f} {self._quote} (qty {qty} x {reference}) "
                f"is below the minimum cost {market.min_cost} {self._quote}"
            )
        if order.side is Side.BUY:
            need = self._buy_cost(order.order_type, qty, reference, candle.volume)
            buys = [o for o in self._orders.values() if o.side is Side.BUY]
            held_back = sum(self._open_buy_cost(o) for o in buys)
            have = self._cash - held_back
            if need > have:
                detail = f" ({held_back:.2f} {self._quote} held for open buy orders)" if held_back else ""
                return (
                    f"insufficient funds: need {need:.2f} {self._quote}, have {have:.2f} {self._quote}"
                    f" to buy {qty} {symbol}{detail}"
                )
            return ""
        # A stop-loss and take-profit in one OCO group share one quantity, so a group commits its largest
        # remaining once, and the new order's own group does not count against it.
        groups: dict[str, float] = {}
        loose = 0.0
        for o in self._orders.values():
            if o.symbol != symbol or o.side is not Side.SELL or (o.oco_group and o.oco_group == order.oco_group):
                continue
            if o.oco_group:
                groups[o.oco_group] = max(groups.get(o.oco_group, 0.0), o.remaining)
            else:
                loose += o.remaining
        committed = round(loose + sum(groups.values()), market.amount_decimals)
        free = round(self.holding(symbol) - committed, market.amount_decimals)
        if qty > free:
            return (
                f"insufficient holdings: selling {qty} {symbol} but only {free} is free "
                f"({self.holding(symbol)} held, {committed} committed to open sell orders)"
            )
        return ""

    def _budget_qty(
        self, order: OpenOrder, market: Market, touched: float, volume: float, cash: float
    ) -> tuple[float, float]:
        """What a budgeted buy gets at `touched`: the floored quantity and its slipped price, within cash."""
        budget = min(order.quote_budget or 0.0, cash)
        rate = 1 + self._fees.taker
        estimate = market.floor_amount(budget / (touched * rate)) if touched > 0 else 0.0
        # Impact depends on the quantity; one refinement at the slipped price keeps it within the budget.
        price = self._slipped(touched, Side.BUY, estimate, volume)
        qty = market.floor_amount(budget / (price * rate)) if price > 0 else 0.0
        price = self._slipped(touched, Side.BUY, qty, volume)
        if qty > 0 and qty * price * rate > budget:
            # floor_amount's epsilon can land one lot above an exact fit; never spend past the budget.
            qty = market.floor_amount(qty - 10.0**-market.amount_decimals)
        return qty, price

    def _budget_too_small(self, order: OpenOrder, market: Market, price: float) -> str:
        budget = min(order.quote_budget or 0.0, self._cash)
        return (
            f"{order.symbol}: a budget of {budget:.8g} {self._quote} buys less than the minimum "
            f"{market.min_amount:g} (or {market.min_cost:g} {self._quote}) at {price:g}"
        )

    @property
    def free_cash(self) -> float:
        """Cash not yet promised to resting buy orders: what a new order may spend."""
        return self._cash - sum(self._open_buy_cost(o) for o in self._orders.values() if o.side is Side.BUY)

    def _reference(self, order: OpenOrder) -> float:
        """The price an open order is expected to trade at: its limit or stop, a market order the last close."""
        if order.limit_price or order.stop_price:
            return order.limit_price or order.stop_price or 0.0
        candle = self._candles.get(order.symbol)
        return candle.close if candle else 0.0

    def _budget_rejection(self, order: OrderRequest) -> str:
        """A budget is a market buy's promise to spend at most that much cash; nothing else can carry one."""
        budget = order.quote_budget or 0.0
        if order.order_type is not OrderType.MARKET or order.side is not Side.BUY:
            return f"{order.symbol}: only a market buy can carry a quote budget"
        if not math.isfinite(budget) or budget <= 0:
            return f"{order.symbol}: quote budget {budget} must be positive"
        held_back = sum(self._open_buy_cost(o) for o in self._orders.values() if o.side is Side.BUY)
        have = self._cash - held_back
        if budget > have + 1e-9:
            return f"insufficient funds: a budget of {budget:.2f} {self._quote} for {order.symbol}, have {have:.2f}"
        return ""

    def _open_buy_cost(self, order: OpenOrder) -> float:
        if order.quote_budget is not None:
            return order.quote_budget
        return self._buy_cost(order.order_type, order.remaining, self._reference(order), 0.0)

    def _buy_cost(self, order_type: OrderType, qty: float, price: float, volume: float) -> float:
        """Cash a buy needs including fees: resting limits are maker and unslipped, the rest taker."""
        if order_type is OrderType.LIMIT:
            return qty * price * (1 + self._fees.maker)
        return qty * self._slipped(price, Side.BUY, qty, volume) * (1 + self._fees.taker)

    def _slipped(self, price: float, side: Side, qty: float, volume: float) -> float:
        """Taker price after slippage: a flat spread plus impact per 1% of the candle's volume taken."""
        # The share taken counts up to the whole candle: real 1-minute data has near-empty minutes, and an
        # order many times their volume would otherwise slip by thousands of percent, to a negative sell price.
        per_pct = self._fees.impact_bps_per_volume_pct
        impact = min(per_pct * 100 * qty / volume, per_pct * 100) if volume > 0 else 0.0
        bps = self._fees.slippage_bps + impact
        if side is Side.BUY:
            return price * (1 + bps / 10_000)
        # Extreme settings can still ask for more than 100 %: a sale never pays the seller less than nothing.
        return price * max(1 - bps / 10_000, 0.0)

    def _taker_price(self, order: OpenOrder, touched: float, qty: float, volume: float) -> float:
        """The slipped price of a taker fill, held to the order's limit if it has one: never worse than it."""
        price = self._slipped(touched, order.side, qty, volume)
        if order.order_type is not OrderType.LIMIT or order.limit_price is None:
            return price
        return min(price, order.limit_price) if order.side is Side.BUY else max(price, order.limit_price)

    def _fill(
        self, order: OpenOrder, market: Market, qty: float, price: float, *, taker: bool, ts: int, left: float
    ) -> OrderFilled:
        """The event for `qty` of `order` filling at `price`, out of `left` still open; fees are in quote."""
        rate = self._fees.taker if taker else self._fees.maker
        return OrderFilled(
            order_id=order.order_id,
            fill_id=fill_id(order.order_id, order.fills + 1),
            side=order.side.value,
            purpose=order.purpose.value,
            qty=qty,
            price=price,
            fee=qty * price * rate,
            fee_currency=self._quote,
            liquidity="taker" if taker else "maker",
            remaining_qty=max(0.0, round(left - qty, market.amount_decimals)),
            position_id=order.position_id,
            **_envelope(order, ts),
        )

    def _siblings(self, order: OpenOrder) -> list[OpenOrder]:
        if not order.oco_group:
            return []
        return [
            o
            for o in self._orders.values()
            if o.oco_group == order.oco_group and o.symbol == order.symbol and o.order_id != order.order_id
        ]

    def _oco_effects(
        self, order: OpenOrder, market: Market, qty: float, remaining: dict[str, float], ts: int
    ) -> list[Event]:
        """Shrink the siblings' shared quantity by a fill; cancel each sibling that reaches zero.

        `remaining` holds the working quantities of the orders this candle's fills already touched.
        """
        remaining[order.order_id] = round(remaining.get(order.order_id, order.remaining) - qty, market.amount_decimals)
        events: list[Event] = []
        for sibling in self._siblings(order):
            before = remaining.get(sibling.order_id, sibling.remaining)
            remaining[sibling.order_id] = max(0.0, round(before - qty, market.amount_decimals))
            if before > 0 and remaining[sibling.order_id] <= 0:
                events.append(
                    OrderCancelled(order_id=sibling.order_id, reason=OCO_CANCEL_REASON, **_envelope(sibling, ts))
                )
        return events


def _rounded(market: Market | None, price: float | None) -> float | None:
    if market is None or price is None or not math.isfinite(price):
        return price
    return float(market.round_price(price))  # an int price would otherwise leak into events as an int


class _Envelope(TypedDict):
    worker: str
    symbol: str
    correlation_id: str
    ts_event: int


def _envelope(order: OrderRequest | OpenOrder, ts: int) -> _Envelope:
    """The fields every broker event copies from its order, so events trace back to the request."""
    return {"worker": order.worker, "symbol": order.symbol, "correlation_id": order.correlation_id, "ts_event": ts}
