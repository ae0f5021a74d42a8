"""The event grammar: every decision and outcome is one of these, journaled in order.

Events are frozen dataclasses named in the past tense. The envelope (`id`,
`seq`, `ts_init`) is stamped by the event bus when the event is published;
engines create events with the rest filled in. `ts_event` is the time on the
injected clock (simulated or wall), `ts_init` the wall time of publication, so
two runs on the same seed differ only in `ts_init`.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

EVENT_TYPES: dict[str, type[Event]] = {}

# Fields that hold wall-clock readings; excluded when comparing runs for determinism.
WALL_CLOCK_FIELDS = frozenset({"ts_init", "wall_ms", "duration_ms"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Envelope shared by every event."""

    seq: int = 0
    id: str = ""
    ts_event: int = 0
    ts_init: int = 0
    correlation_id: str = ""
    causation_id: str = ""
    worker: str = ""
    symbol: str = ""

    type_name: ClassVar[str] = "Event"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super(Event, cls).__init_subclass__(**kwargs)
        cls.type_name = cls.__name__
        EVENT_TYPES[cls.__name__] = cls


_ENVELOPE_HEAD = ("seq", "id")
_RECORD_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


def _record_fields(cls: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    # Every event is turned into a record on the hot path; look its fields up once per class.
    known = _RECORD_FIELDS.get(cls)
    if known is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _ENVELOPE_HEAD)
        getter = operator.attrgetter(*names)
        known = _RECORD_FIELDS[cls] = (names, getter if len(names) > 1 else lambda e: (getter(e),))
    return known


def event_to_record(event: Event) -> dict[str, Any]:
    """Return the flat JSON-ready record of an event, `type` first after the envelope."""
    names, values = _record_fields(type(event))
    record: dict[str, Any] = {"seq": event.seq, "id": event.id, "type": event.type_name}
    record.update(zip(names, values(event), strict=True))
    return record


def stamp(event: Event, seq: int, ts_init: int) -> None:
    """Give a not-yet-published event its envelope; only the event bus calls this.

    Events are frozen for everyone who receives them. The bus is the one place
    that completes an event before anyone else can hold it, and doing that in
    place instead of through dataclasses.replace halves the cost of publishing.
    """
    object.__setattr__(event, "seq", seq)
    object.__setattr__(event, "id", f"e{seq}")
    object.__setattr__(event, "ts_init", ts_init)


def event_from_record(record: dict[str, Any]) -> Event:
    """Rebuild an event from its journal record; unknown types are an error naming the type."""
    values = dict(record)
    type_name = values.pop("type", None)
    cls = EVENT_TYPES.get(str(type_name))
    if cls is None:
        raise ValueError(f"unknown event type {type_name!r} at seq {record.get('seq')}")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


# --- lifecycle and configuration -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeStarted(Event):
    mode: str
    feed_source: str
    config_hash: str
    recovered_events: int
    wall_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeStopped(Event):
    reason: str
    wall_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigApplied(Event):
    config_hash: str
    workers: list[str]
    changes: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountOpened(Event):
    """The paper account's starting balance; published once, on the first run of a store."""

    currency: str
    cash: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChanged(Event):
    """An operator saved a new config; `diff` is redacted. What was applied live and what waits for a restart."""

    path: str
    version: int
    diff: str
    applied: list[str]
    needs_restart: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountReset(Event):
    """The paper account starts over: every position is gone, cash is back to `cash`."""

    currency: str
    cash: float
    reason: str


# --- market data -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CandleClosed(Event):
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedGap(Event):
    """A symbol's candles skipped minutes: nothing traded there in between, or the data has a hole."""

    after_ts: int
    next_ts: int
    missing_minutes: int


# --- decisions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentProposed(Event):
    """A worker wants to open (`buy`) or close (`sell`) a position."""

    intent_id: str
    side: str
    reference_price: float
    stop_price: float | None
    take_profit: float | None
    confidence: float
    reason: str


def answer_fields(intent: IntentProposed) -> dict[str, Any]:
    """The fields an event answering `intent` (its score, a denial) takes from it.

    Its time, worker and symbol; the intent as correlation and as cause; and `intent_id`.
    """
    return {
        "ts_event": intent.ts_event,
        "correlation_id": intent.intent_id,
        "causation_id": intent.id,
        "worker": intent.worker,
        "symbol": intent.symbol,
        "intent_id": intent.intent_id,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentScored(Event):
    intent_id: str
    score: float
    vetoed: bool
    features: dict[str, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderDenied(Event):
    intent_id: str
    rule: str
    reason: str


# --- orders and fills --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSubmitted(Event):
    order_id: str
    side: str
    order_type: str
    purpose: str
    qty: float
    limit_price: float | None = None
    stop_price: float | None = None
    position_id: str = ""
    oco_group: str = ""
    quote_budget: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected(Event):
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled(Event):
    order_id: str
    fill_id: str
    side: str
    purpose: str
    qty: float
    price: float
    fee: float
    fee_currency: str
    liquidity: str
    remaining_qty: float
    position_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled(Event):
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAmended(Event):
    order_id: str
    stop_price: float


# --- execution intentions, journaled before the order is sent ---------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryPlanned(Event):
    """What the position will be once its entry order fills; recorded before the order is sent."""

    order_id: str
    position_id: str
    qty: float
    stop_price: float
    take_profit: float | None
    risk_usd: float
    trailing_stop_pct: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitRequested(Event):
    """A position is to be closed at market, and why; recorded before the exit order is sent."""

    position_id: str
    order_id: str
    reason: str


# --- positions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionOpened(Event):
    position_id: str
    qty: float
    entry_price: float
    stop_price: float
    take_profit: float | None
    entry_fee: float
    risk_usd: float
    trailing_stop_pct: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionReduced(Event):
    position_id: str
    qty_closed: float
    price: float
    fee: float
    remaining_qty: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StopMoved(Event):
    position_id: str
    stop_price: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionClosed(Event):
    """The closed-trade record: gross PnL, every fee paid, and why it ended."""

    position_id: str
    qty: float
    entry_ts: int
    entry_price: float
    exit_price: float
    realized_pnl: float
    fees: float
    net_pnl: float
    r_multiple: float
    exit_reason: str


# --- account, risk and workers -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EquitySampled(Event):
    equity: float
    cash: float
    positions_value: float
    high_water_mark: float
    drawdown_pct: float
    open_positions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EquitySeries(Event):
    """A backtest's equity marks, one per minute from `start_ts`, journaled in columns.

    A replay marks the account every minute like the daemon does, but writes
    the marks in chunks: a million one-line events would cost more than the
    trading they describe. `ts_event` is the last sample's time.
    """

    start_ts: int
    step_ms: int
    equity: list[float]
    cash: list[float]
    positions_value: list[float]
    high_water_mark: list[float]
    open_positions: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskStateChanged(Event):
    previous: str
    state: str
    rule: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerFaulted(Event):
    error_type: str
    message: str
    consecutive: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStateChanged(Event):
    """A worker was disabled by its faults, or paused/resumed/enabled by an operator."""

    state: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LearnerOutcomeRecorded(Event):
    intent_id: str
    position_id: str
    net_pnl: float
    r_multiple: float
    won: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandApplied(Event):
    """An operator command (halt, resume, pause…) the daemon consumed, with its outcome."""

    command_id: int
    command: str
    status: str
    detail: str
