"""The event bus: each holder gets exactly the event types it declares, in publication order."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import ClassVar

import pytest

from desk.backtest import RunRecorder
from desk.core.clock import SimulatedClock
from desk.core.events import EVENT_TYPES, AccountOpened, Event, RuntimeStopped
from desk.engines.bus import EventBus
from desk.engines.execution import ExecutionEngine
from desk.engines.learner import Learner
from desk.engines.portfolio import Portfolio
from desk.engines.risk import RiskEngine
from desk.engines.trading import TradingCore
from desk.services.broker.paper import PaperBroker

HOLDERS = [PaperBroker, ExecutionEngine, RiskEngine, Portfolio, Learner, TradingCore, RunRecorder]


def event_types_named_in(function: object) -> set[str]:
    """Every event class a function's body names (isinstance checks, match cases) and the helpers it calls."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id in EVENT_TYPES}


@pytest.mark.parametrize("holder", HOLDERS, ids=lambda cls: cls.__name__)
def test_applies_when_compared_with_the_apply_method_then_it_lists_exactly_the_types_apply_reacts_to(
    holder: type,
) -> None:
    named = event_types_named_in(holder.apply)
    for name, member in inspect.getmembers(holder, inspect.isfunction):
        # Helpers apply() hands events to (`_apply_fill`, `_apply_order_event`) count as apply.
        if name.startswith("_apply"):
            named |= event_types_named_in(member)
    declared = {kind.__name__ for kind in holder.APPLIES}
    assert named == declared


class Everything:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def apply(self, event: Event) -> None:
        self.seen.append(event.type_name)


class OnlyAccounts:
    APPLIES: ClassVar[tuple[type[Event], ...]] = (AccountOpened,)

    def __init__(self) -> None:
        self.seen: list[str] = []

    def apply(self, event: Event) -> None:
        self.seen.append(event.type_name)


def test_publish_when_a_holder_declares_its_types_then_it_gets_only_those_and_others_get_all() -> None:
    bus = EventBus(SimulatedClock(0))
    everything, accounts = Everything(), OnlyAccounts()
    bus.subscribe(everything)
    bus.subscribe(accounts)
    bus.publish(
        [
            RuntimeStopped(ts_event=1, reason="a"),
            AccountOpened(ts_event=1, currency="USD", cash=1.0),
            RuntimeStopped(ts_event=2, reason="b"),
        ]
    )
    assert everything.seen == ["RuntimeStopped", "AccountOpened", "RuntimeStopped"]
    assert accounts.seen == ["AccountOpened"]
    bus.replay([AccountOpened(seq=4, ts_event=3, currency="USD", cash=2.0)])
    assert accounts.seen == ["AccountOpened", "AccountOpened"]
