"""The event bus: stamps envelopes, applies events to state holders, hands records to the store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from desk.core.clock import Clock
from desk.core.events import Event, event_to_record, stamp


class StateHolder(Protocol):
    """Anything whose state is a fold over the event stream.

    A holder may declare `APPLIES`, a tuple of the event types its `apply`
    reacts to; the bus then hands it only those (most holders care about a few
    of the thirty-odd types, and publishing is the hot path). Without it, a
    holder sees every event.
    """

    def apply(self, event: Event) -> None: ...


class RecordSink(Protocol):
    def append(self, records: list[dict]) -> None: ...


class Publisher(Protocol):
    """What engines use to publish; the bus implements it."""

    def publish(self, events: Iterable[Event]) -> list[Event]: ...

    def new_id(self, prefix: str) -> str: ...


class EventBus:
    """Assigns `seq`, `id` and `ts_init`, applies each event to every holder, then records it.

    Applying synchronously, in publication order, is what lets an engine publish
    one step (an entry fill) and immediately decide the next (its protective
    stop) against up-to-date state, and what lets recovery rebuild that state by
    replaying the journal through the very same `apply` methods.
    """

    def __init__(self, wall_clock: Clock, sink: RecordSink | None = None, last_seq: int = 0) -> None:
        self._wall_clock = wall_clock
        self._sink = sink
        self._holders: list[StateHolder] = []
        self._routes: dict[type[Event], tuple[Callable[[Event], None], ...]] = {}
        self._last_seq = last_seq
        self._id_base = -1
        self._id_count = 0

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def subscribe(self, holder: StateHolder) -> None:
        self._holders.append(holder)
        self._routes.clear()

    def _route(self, kind: type[Event]) -> tuple[Callable[[Event], None], ...]:
        """The `apply` of every holder that takes `kind`, in subscription order."""
        route = self._routes.get(kind)
        if route is None:
            route = self._routes[kind] = tuple(holder.apply for holder in self._holders if _takes(holder, kind))
        return route

    def publish(self, events: Iterable[Event]) -> list[Event]:
        if not events:
            return []
        stamped: list[Event] = []
        records: list[dict] = []
        for event in events:
            if event.seq:
                raise ValueError(f"{event.type_name} was already published as seq {event.seq}")
            self._last_seq += 1
            stamp(event, self._last_seq, self._wall_clock.now_ms())
            for apply in self._route(type(event)):
                apply(event)
            stamped.append(event)
            records.append(event_to_record(event))
        if self._sink is not None and records:
            self._sink.append(records)
        return stamped

    def replay(self, events: Sequence[Event] | Iterable[Event]) -> int:
        """Apply already-journaled events (recovery); nothing is re-recorded."""
        count = 0
        for event in events:
            if event.seq <= self._last_seq:
                raise ValueError(f"replayed event seq {event.seq} is not after {self._last_seq}")
            self._last_seq = event.seq
            for apply in self._route(type(event)):
                apply(event)
            count += 1
        return count

    def new_id(self, prefix: str) -> str:
        """Return a deterministic id, unique across restarts because `seq` never repeats."""
        if self._id_base != self._last_seq:
            self._id_base = self._last_seq
            self._id_count = 0
        self._id_count += 1
        return f"{prefix}{self._id_base}.{self._id_count}"


def _takes(holder: StateHolder, kind: type[Event]) -> bool:
    applies = getattr(holder, "APPLIES", None)
    return applies is None or issubclass(kind, applies)
