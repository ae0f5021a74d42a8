"""The broker seam, kept in the core so engines depend on a Protocol, not on a service.

The paper broker satisfies it; an exchange broker will too.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from desk.core.events import Event
from desk.core.types import Candle, Market, OrderRequest


class Broker(Protocol):
    """A broker decides in its methods and changes state only in `apply`.

    Methods return the events that describe what happened (OrderSubmitted,
    OrderFilled, OrderRejected, OrderCancelled, OrderAmended); the runtime
    publishes them, which journals them and calls `apply` on every component,
    the broker included. Replaying a journal through `apply` therefore
    rebuilds the broker exactly as it was.
    """

    def markets(self) -> dict[str, Market]: ...

    @property
    def cash(self) -> float: ...

    @property
    def free_cash(self) -> float: ...

    def holding(self, symbol: str) -> float: ...

    def last_price(self, symbol: str) -> float: ...

    def submit(self, order: OrderRequest, now_ms: int) -> list[Event]: ...

    def cancel(self, order_id: str, reason: str, now_ms: int) -> list[Event]: ...

    def amend_stop(self, order_id: str, stop_price: float, now_ms: int) -> list[Event]: ...

    def on_candle(self, candle: Candle) -> list[Event]: ...

    def match_from_open(self, candle: Candle, order_ids: Collection[str]) -> list[Event]:
        """Match orders placed at `candle`'s open (an entry's protection) against the rest of that candle.

        A simulated broker fills them as on_candle would; an exchange matches
        orders itself and returns [].
        """
        ...

    def observe(self, candle: Candle) -> None: ...

    def apply(self, event: Event) -> None: ...
