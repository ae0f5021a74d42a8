"""The execution engine: the only engine that talks to the broker.

An entry is journaled as `EntryPlanned` (its stop, take-profit and risk) before
the market order is sent; when the order fills, now or at the next candle's
open, the position opens and is protected by a stop order and a take-profit
limit order sharing one quantity (an OCO group at the broker). The broker
matches those against every candle, gap-aware and stop first, so exits are
intrabar. A strategy's exit is journaled as `ExitRequested` and sent as a
market sell in the same OCO group, so the position stays protected until the
exit actually fills, whichever fill convention the broker uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from desk.core.broker import Broker
from desk.core.events import (
    AccountReset,
    EntryPlanned,
    Event,
    ExitRequested,
    OrderAmended,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    PositionOpened,
    PositionReduced,
    StopMoved,
)
from desk.core.types import MINUTE_MS, Candle, OrderPurpose, OrderRequest, OrderType, Side
from desk.engines.bus import Publisher

# Built once: `A | B` written inside isinstance() builds a new union object for every event applied.
_ORDER_EVENTS = (OrderSubmitted, OrderCancelled, OrderRejected)
_ORDER_ENDS = (OrderCancelled, OrderRejected)

_PROTECTIVE_PURPOSES = frozenset({OrderPurpose.STOP_LOSS.value, OrderPurpose.TAKE_PROFIT.value})

EXIT_REASONS = {
    OrderPurpose.STOP_LOSS.value: "stop_loss",
    OrderPurpose.TAKE_PROFIT.value: "take_profit",
}


@dataclass(slots=True)
class Position:
    position_id: str
    worker: str
    symbol: str
    intent_id: str
    qty: float
    entry_ts: int
    entry_price: float
    stop_price: float
    take_profit: float | None
    entry_fee: float
    risk_usd: float
    trailing_stop_pct: float | None = None
    original_qty: float = 0.0
    exit_value: float = 0.0
    exit_fees: float = 0.0
    stop_order_id: str = ""
    take_profit_order_id: str = ""
    exit_order_id: str = ""
    exit_reason: str = ""


def _booked_from(position: Position, fill: OrderFilled) -> dict[str, Any]:
    """The fields an event booking an exit fill (reduced, closed) takes from the position and the fill.

    The fill's time and id (the cause), the position's intent (the correlation), worker, symbol and id.
    """
    return {
        "ts_event": fill.ts_event,
        "correlation_id": position.intent_id,
        "causation_id": fill.id,
        "worker": position.worker,
        "symbol": position.symbol,
        "position_id": position.position_id,
    }


@dataclass(frozen=True, slots=True)
class EntryPlan:
    intent_id: str
    worker: str
    symbol: str
    qty: float
    stop_price: float
    take_profit: float | None
    risk_usd: float
    trailing_stop_pct: float | None
    quote_budget: float | None = None


class ExecutionEngine:
    def __init__(self, broker: Broker, bus: Publisher) -> None:
        self._broker = broker
        self._bus = bus
        self.positions: dict[str, Position] = {}  # by worker: one position per worker
        self.pending_entries: dict[str, EntryPlanned] = {}  # by entry order id, until it fills or dies

    # --- state -----------------------------------------------------------------------------------

    # The event types apply() reacts to: the bus hands it no others (tests/engines/test_bus.py checks the list).
    APPLIES: ClassVar[tuple[type[Event], ...]] = (
        OrderSubmitted,
        OrderCancelled,
        OrderRejected,
        EntryPlanned,
        PositionOpened,
        ExitRequested,
        PositionReduced,
        StopMoved,
        PositionClosed,
        AccountReset,
    )

    def apply(self, event: Event) -> None:
        if isinstance(event, _ORDER_EVENTS):
            self._apply_order_event(event)
        elif isinstance(event, EntryPlanned):
            self.pending_entries[event.order_id] = event
        elif isinstance(event, PositionOpened):
            # The plan is done once its position exists (a remainder the broker drops changes nothing).
            for order_id in [o for o, p in self.pending_entries.items() if p.position_id == event.position_id]:
                del self.pending_entries[order_id]
            self.positions[event.worker] = Position(
                position_id=event.position_id,
                worker=event.worker,
                symbol=event.symbol,
                intent_id=event.correlation_id,
                qty=event.qty,
                entry_ts=event.ts_event,
                entry_price=event.entry_price,
                stop_price=event.stop_price,
                take_profit=event.take_profit,
                entry_fee=event.entry_fee,
                risk_usd=event.risk_usd,
                trailing_stop_pct=event.trailing_stop_pct,
                original_qty=event.qty,
            )
        elif isinstance(event, ExitRequested):
            position = self.positions[event.worker]
            position.exit_order_id, position.exit_reason = event.order_id, event.reason
        elif isinstance(event, PositionReduced):
            position = self.positions[event.worker]
            position.qty = event.remaining_qty
            position.exit_value += event.qty_closed * event.price
            position.exit_fees += event.fee
        elif isinstance(event, StopMoved):
            self.positions[event.worker].stop_price = event.stop_price
        elif isinstance(event, PositionClosed):
            self.positions.pop(event.worker, None)
        elif isinstance(event, AccountReset):
            self.positions.clear()
            self.pending_entries.clear()

    def _apply_order_event(self, event: OrderSubmitted | OrderCancelled | OrderRejected) -> None:
        if isinstance(event, _ORDER_ENDS):
            self.pending_entries.pop(event.order_id, None)
            position = self.positions.get(event.worker)
            if position is not None and event.order_id == position.exit_order_id:
                position.exit_order_id = ""  # the exit died; a later signal may try again
        elif isinstance(event, OrderSubmitted) and event.position_id:
            position = self.positions.get(event.worker)
            if position is None or position.position_id != event.position_id:
                return
            if event.purpose == OrderPurpose.STOP_LOSS:
                position.stop_order_id = event.order_id
            elif event.purpose == OrderPurpose.TAKE_PROFIT:
                position.take_profit_order_id = event.order_id

    def has_position(self, worker: str) -> bool:
        """True while the worker holds a position or waits for its entry to fill."""
        return worker in self.positions or any(p.worker == worker for p in self.pending_entries.values())

    @property
    def committed_positions(self) -> int:
        """Open positions plus entries on their way: what the concurrency limit counts."""
        return len(self.positions) + len(self.pending_entries)

    # --- entries ---------------------------------------------------------------------------------

    def enter(self, plan: EntryPlan, ts_event: int) -> list[Event]:
        """Journal the plan, send the market entry, and book its fill if the broker filled it at once."""
        order = OrderRequest(
            order_id=self._bus.new_id("o"),
            worker=plan.worker,
            symbol=plan.symbol,
            side=Side.BUY,
            order_type=OrderType.MARKET,
            purpose=OrderPurpose.ENTRY,
            qty=plan.qty,
            position_id=self._bus.new_id("p"),
            correlation_id=plan.intent_id,
            quote_budget=plan.quote_budget,
        )
        market = self._broker.markets()[plan.symbol]
        planned = EntryPlanned(
            ts_event=ts_event,
            correlation_id=plan.intent_id,
            worker=plan.worker,
            symbol=plan.symbol,
            order_id=order.order_id,
            position_id=order.position_id,
            qty=plan.qty,
            stop_price=market.round_price(plan.stop_price),
            take_profit=market.round_price(plan.take_profit) if plan.take_profit is not None else None,
            risk_usd=plan.risk_usd,
            trailing_stop_pct=plan.trailing_stop_pct,
        )
        published = self._bus.publish([planned])
        return published + self._publish_and_book(self._broker.submit(order, ts_event))

    def _open(self, planned: EntryPlanned, fill: OrderFilled) -> list[Event]:
        stop = planned.stop_price
        opened = PositionOpened(
            ts_event=fill.ts_event,
            correlation_id=planned.correlation_id,
            causation_id=fill.id,
            worker=planned.worker,
            symbol=planned.symbol,
            position_id=planned.position_id,
            qty=fill.qty,
            entry_price=fill.price,
            stop_price=stop,
            take_profit=planned.take_profit,
            entry_fee=fill.fee,
            # What is really at risk depends on where the entry filled, not where it was planned.
            risk_usd=max(fill.qty * (fill.price - stop), 0.0),
            trailing_stop_pct=planned.trailing_stop_pct,
        )
        published = self._bus.publish([opened])
        return published + self._protect(self.positions[planned.worker], fill.ts_event)

    def _protect(self, position: Position, ts_event: int) -> list[Event]:
        group = self._oco_group(position)
        requests = [self._exit_order(position, OrderType.STOP, OrderPurpose.STOP_LOSS, group, position.stop_price)]
        if position.take_profit is not None:
            take = self._exit_order(position, OrderType.LIMIT, OrderPurpose.TAKE_PROFIT, group, position.take_profit)
            requests.append(take)
        published: list[Event] = []
        for request in requests:
            events = self._bus.publish(self._broker.submit(request, ts_event))
            published += events
            if any(isinstance(e, OrderRejected) for e in events):
                # An unprotected position is worse than no position: get out now.
                published += self.exit(position.worker, f"protective {request.purpose.value} rejected", ts_event)
                break
        return published

    @staticmethod
    def _oco_group(position: Position) -> str:
        return f"oco-{position.position_id}"

    def _exit_order(
        self, position: Position, order_type: OrderType, purpose: OrderPurpose, oco_group: str, price: float | None
    ) -> OrderRequest:
        """A sell of the whole position: a protective stop or take-profit, or a market exit."""
        return OrderRequest(
            order_id=self._bus.new_id("o"),
            worker=position.worker,
            symbol=position.symbol,
            side=Side.SELL,
            order_type=order_type,
            purpose=purpose,
            qty=position.qty,
            limit_price=price if order_type is OrderType.LIMIT else None,
            stop_price=price if order_type is OrderType.STOP else None,
            position_id=position.position_id,
            oco_group=oco_group,
            correlation_id=position.intent_id,
        )

    # --- exits -----------------------------------------------------------------------------------

    def on_candle(self, candle: Candle) -> list[Event]:
        """Match resting orders against the candle, book entries and exits, then trail stops.

        An entry that fills here fills at the candle's open and is protected from
        that moment: its new stop and take-profit are matched against the rest of
        this same candle before anything else happens.
        """
        published = self._publish_and_book(self._broker.on_candle(candle))
        placed_at_open = [
            event.order_id
            for event in published
            if type(event) is OrderSubmitted and event.purpose in _PROTECTIVE_PURPOSES
        ]
        if placed_at_open:
            published += self._publish_and_book(self._broker.match_from_open(candle, placed_at_open))
        for position in list(self.positions.values()):
            if position.trailing_stop_pct and position.symbol == candle.symbol:
                published += self._trail(position, candle)
        return published

    def exit(self, worker: str, reason: str, ts_event: int) -> list[Event]:
        """Close a worker's position at market; an entry still waiting to fill is cancelled instead."""
        published: list[Event] = []
        for order_id, planned in list(self.pending_entries.items()):
            if planned.worker == worker:
                published += self._bus.publish(
                    self._broker.cancel(order_id, f"exit before entry filled: {reason}", ts_event)
                )
        position = self.positions.get(worker)
        if position is None or position.exit_order_id:
            return published  # nothing held, or an exit is already on its way
        # The market sell joins the protective orders' OCO group: they stay in force until it
        # fills, and its fill cancels them.
        order = self._exit_order(position, OrderType.MARKET, OrderPurpose.EXIT, self._oco_group(position), None)
        requested = ExitRequested(
            ts_event=ts_event,
            correlation_id=position.intent_id,
            worker=worker,
            symbol=position.symbol,
            position_id=position.position_id,
            order_id=order.order_id,
            reason=reason,
        )
        published += self._bus.publish([requested])
        return published + self._publish_and_book(self._broker.submit(order, ts_event))

    def flatten(self, reason: str, ts_event: int) -> list[Event]:
        published: list[Event] = []
        for worker in sorted({*self.positions, *(p.worker for p in self.pending_entries.values())}):
            published += self.exit(worker, reason, ts_event)
        return published

    def _publish_and_book(self, events: list[Event]) -> list[Event]:
        """Publish the broker's events one by one, booking each fill before the next event applies.

        A fill and the cancel of its unfilled remainder arrive together; the
        position must open from the fill before the cancel retires its plan.
        """
        published: list[Event] = []
        for event in events:
            stamped = self._bus.publish([event])
            published += stamped
            if isinstance(event, OrderFilled):
                published += self._book_fills(stamped)
        return published

    def _book_fills(self, events: Iterable[Event]) -> list[Event]:
        published: list[Event] = []
        for fill in events:
            if not isinstance(fill, OrderFilled) or not fill.position_id:
                continue
            if fill.purpose == OrderPurpose.ENTRY:
                planned = self.pending_entries.get(fill.order_id)
                if planned is not None and fill.worker not in self.positions:
                    published += self._open(planned, fill)
                continue
            position = self.positions.get(fill.worker)
            if position is None or position.position_id != fill.position_id:
                continue
            reason = EXIT_REASONS.get(fill.purpose) or position.exit_reason or "exit"
            market = self._broker.markets()[position.symbol]
            # Rounded to the lot precision as the broker rounds its holdings: a float remainder such as
            # 0.3 - 0.1 = 0.19999999999999998 would make every later exit of this position fail the
            # broker's precision check.
            remaining = max(round(position.qty - fill.qty, market.amount_decimals), 0.0)
            # Dust below the lot precision cannot be sold; treat the position as closed.
            if market.floor_amount(remaining) <= 0:
                remaining = 0.0
            published += self._bus.publish(
                [
                    PositionReduced(
                        **_booked_from(position, fill),
                        qty_closed=fill.qty,
                        price=fill.price,
                        fee=fill.fee,
                        remaining_qty=remaining,
                    )
                ]
            )
            if remaining == 0.0:
                published += self._bus.publish([self._closed(position, reason, fill)])
        return published

    def _closed(self, position: Position, reason: str, fill: OrderFilled) -> PositionClosed:
        closed_qty = position.original_qty
        exit_price = position.exit_value / closed_qty if closed_qty else fill.price
        realized = position.exit_value - position.entry_price * closed_qty
        fees = position.entry_fee + position.exit_fees
        net = realized - fees
        return PositionClosed(
            **_booked_from(position, fill),
            qty=closed_qty,
            entry_ts=position.entry_ts,
            entry_price=position.entry_price,
            exit_price=exit_price,
            realized_pnl=realized,
            fees=fees,
            net_pnl=net,
            r_multiple=net / position.risk_usd if position.risk_usd > 0 else 0.0,
            exit_reason=reason,
        )

    def _trail(self, position: Position, candle: Candle) -> list[Event]:
        assert position.trailing_stop_pct is not None
        market = self._broker.markets()[position.symbol]
        candidate = market.round_price(candle.high * (1.0 - position.trailing_stop_pct))
        if candidate <= position.stop_price or not position.stop_order_id or candidate >= candle.close:
            return []
        ts_event = candle.ts + MINUTE_MS
        published = self._bus.publish(self._broker.amend_stop(position.stop_order_id, candidate, ts_event))
        if not any(isinstance(e, OrderAmended) for e in published):
            # The stop is no longer resting (cancelled, or refused the new price): nothing moved.
            return published
        published += self._bus.publish(
            [
                StopMoved(
                    ts_event=ts_event,
                    correlation_id=position.intent_id,
                    worker=position.worker,
                    symbol=position.symbol,
                    position_id=position.position_id,
                    stop_price=candidate,
                    reason=f"trailing {position.trailing_stop_pct:.2%} below high {candle.high}",
                )
            ]
        )
        return published
