"""`tail` for the journal: one human line per record, filtered, optionally following new lines.

Following reads the daily files by byte offset and leaves an incomplete last
line alone until its newline arrives, so a batch caught mid-write is never
printed half, and a file the writer truncated (a torn line repaired on
restart) is picked up again at the truncation point.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from desk.core.errors import JournalError
from desk.services.store.journal import Journal

__all__ = ["JournalFollower", "format_detail", "format_record", "tail"]

Record = dict[str, Any]

_ENVELOPE = frozenset(
    {"seq", "id", "type", "ts_event", "ts_init", "worker", "symbol", "correlation_id", "causation_id"}
)
_READ_CHUNK = 4 << 20
_TYPE_WIDTH = 22  # len("LearnerOutcomeRecorded"), the longest event name


def _num(value: Any) -> str:
    """Quantities and prices: up to 8 significant digits, no exponent noise for ordinary values."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.8g}"
    return str(value)


def _usd(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _candle(r: Record) -> str:
    return f"o {_num(r['open'])} h {_num(r['high'])} l {_num(r['low'])} c {_num(r['close'])} v {_num(r['volume'])}"


def _intent_proposed(r: Record) -> str:
    return (
        f"{r['side']} @ {_num(r['reference_price'])} stop {_num(r['stop_price'])} tp {_num(r['take_profit'])}"
        f" conf {r['confidence']:.2f} {r['intent_id']} ({r['reason']})"
    )


def _order_submitted(r: Record) -> str:
    prices = "".join(
        f" {name} {_num(r[key])}" for name, key in (("limit", "limit_price"), ("stop", "stop_price")) if r.get(key)
    )
    return f"{r['side']} {r['order_type']} {r['purpose']} {_num(r['qty'])}{prices} {r['order_id']}"


def _position_closed(r: Record) -> str:
    return (
        f"net {_signed(r['net_pnl'])} ({r['r_multiple']:+.2f}R) {r['exit_reason']}"
        f" {_num(r['qty'])} {_num(r['entry_price'])} -> {_num(r['exit_price'])} fees {_usd(r['fees'])}"
    )


_FORMATTERS: dict[str, Callable[[Record], str]] = {
    "CandleClosed": _candle,
    "IntentProposed": _intent_proposed,
    "IntentScored": lambda r: f"{r['intent_id']} score {r['score']:.3f}{' VETOED' if r['vetoed'] else ''}",
    "OrderDenied": lambda r: f"{r['intent_id']} denied by {r['rule']}: {r['reason']}",
    "OrderSubmitted": _order_submitted,
    "OrderFilled": lambda r: (
        f"{r['side']} {_num(r['qty'])} @ {_num(r['price'])} fee {_usd(r['fee'])} {r['purpose']} {r['order_id']}"
    ),
    "OrderRejected": lambda r: f"{r['order_id']} rejected: {r['reason']}",
    "OrderCancelled": lambda r: f"{r['order_id']} cancelled: {r['reason']}",
    "OrderAmended": lambda r: f"{r['order_id']} stop -> {_num(r['stop_price'])}",
    "PositionOpened": lambda r: (
        f"{_num(r['qty'])} @ {_num(r['entry_price'])} stop {_num(r['stop_price'])}"
        f" tp {_num(r['take_profit'])} risk {_usd(r['risk_usd'])} {r['position_id']}"
    ),
    "PositionReduced": lambda r: (
        f"-{_num(r['qty_closed'])} @ {_num(r['price'])} left {_num(r['remaining_qty'])} {r['position_id']}"
    ),
    "StopMoved": lambda r: f"stop -> {_num(r['stop_price'])} ({r['reason']}) {r['position_id']}",
    "PositionClosed": _position_closed,
    "EquitySampled": lambda r: (
        f"equity {_usd(r['equity'])} cash {_usd(r['cash'])} dd {r['drawdown_pct'] * 100:.2f}%"
        f" open {r['open_positions']}"
    ),
    "RiskStateChanged": lambda r: f"{r['previous']} -> {r['state']} by {r['rule']}: {r['reason']}",
    "WorkerFaulted": lambda r: f"{r['error_type']}: {r['message']} (#{r['consecutive']})",
    "WorkerStateChanged": lambda r: f"{r['state']}: {r['reason']}",
    "LearnerOutcomeRecorded": lambda r: (
        f"{r['intent_id']} {'won' if r['won'] else 'lost'} net {_signed(r['net_pnl'])} ({r['r_multiple']:+.2f}R)"
    ),
    "CommandApplied": lambda r: f"#{r['command_id']} {r['command']} {r['status']}: {r['detail']}",
    "RuntimeStarted": lambda r: (
        f"{r['mode']} feed {r['feed_source']} config {r['config_hash'][:12]} recovered {r['recovered_events']}"
    ),
    "RuntimeStopped": lambda r: str(r["reason"]),
    "ConfigApplied": lambda r: f"config {r['config_hash'][:12]} workers {','.join(r['workers'])}",
    "AccountOpened": lambda r: f"cash {_usd(r['cash'])} {r['currency']}",
}


def _generic(record: Record) -> str:
    return " ".join(f"{k}={_num(v)}" for k, v in record.items() if k not in _ENVELOPE)


def format_detail(record: Record) -> str:
    """Return the fields that matter for the record's type, as in `format_record` without the envelope."""
    formatter = _FORMATTERS.get(str(record.get("type", "?")), _generic)
    try:
        return formatter(record)
    except (KeyError, TypeError, ValueError):
        return _generic(record)  # a record from an older or newer grammar still prints


def format_record(record: Record) -> str:
    """Return one human line: UTC minute, type, worker, symbol, then the fields that matter for that type."""
    when = datetime.fromtimestamp(record.get("ts_event", 0) / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    event_type = str(record.get("type", "?"))
    detail = format_detail(record)
    worker = record.get("worker") or "-"
    symbol = record.get("symbol") or "-"
    return f"{when}  {event_type:<{_TYPE_WIDTH}}  {worker:<12}  {symbol:<9}  {detail}".rstrip()


class JournalFollower:
    """Read complete journal lines incrementally: each pass returns the records written since the last."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._path: Path | None = None
        # Offset just past the last complete line read. An incomplete line is re-read from here on
        # every pass rather than kept: if a restarted writer truncates it away and appends, the new
        # bytes start exactly here.
        self._offset = 0
        self._lineno = 0

    def poll(self) -> list[Record]:
        """Return the records completed since the previous poll, rolling over to newer daily files."""
        return list(self.iter_new())

    def iter_new(self) -> Iterator[Record]:
        """Yield the records completed since the previous pass, streaming (for a first pass over a big journal)."""
        while True:
            files = self._journal.files()
            if self._path is None:
                if not files:
                    return
                self._path = files[0]
            yield from self._read_new()
            later = [path for path in files if path.name > self._path.name]
            if not later:
                return
            # The writer never returns to an older day and finished this file before creating a newer
            # one, so this file is complete; an unfinished line left in it was torn by a crash.
            self._path, self._offset, self._lineno = later[0], 0, 0

    def _read_new(self) -> Iterator[Record]:
        assert self._path is not None
        try:
            size = self._path.stat().st_size
        except FileNotFoundError:
            return
        self._offset = min(self._offset, size)
        if size == self._offset:
            return
        with self._path.open("rb") as handle:
            handle.seek(self._offset)
            pending = b""
            position = self._offset
            while position < size:
                # Bounded chunks keep memory flat when the first pass reads a whole journal.
                data = handle.read(min(_READ_CHUNK, size - position))
                if not data:
                    break
                position += len(data)
                lines = (pending + data).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    self._lineno += 1
                    self._offset += len(line) + 1
                    try:
                        record = json.loads(line)
                    except ValueError as exc:
                        raise JournalError(f"{self._path}:{self._lineno}: invalid JSON: {exc}") from exc
                    yield record


def tail(
    journal: Journal,
    *,
    follow: bool = False,
    types: Collection[str] | None = None,
    workers: Collection[str] | None = None,
    symbols: Collection[str] | None = None,
    last_n: int = 20,
    out: TextIO,
    poll_s: float = 0.5,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Print the last `last_n` matching records; with `follow`, keep printing new ones.

    Following polls every `poll_s` seconds until `stop()` returns True or the
    user presses Ctrl-C. Empty or None filters match everything. Returns the
    number of lines printed.
    """
    type_set, worker_set, symbol_set = set(types or ()), set(workers or ()), set(symbols or ())

    def matches(record: Record) -> bool:
        return (
            (not type_set or record.get("type") in type_set)
            and (not worker_set or record.get("worker") in worker_set)
            and (not symbol_set or record.get("symbol") in symbol_set)
        )

    follower = JournalFollower(journal)
    recent: deque[Record] = deque(maxlen=max(0, last_n))
    recent.extend(record for record in follower.iter_new() if matches(record))
    printed = 0
    for record in recent:
        out.write(format_record(record) + "\n")
        printed += 1
    out.flush()
    if not follow:
        return printed
    try:
        while stop is None or not stop():
            time.sleep(poll_s)
            for record in follower.poll():
                if matches(record):
                    out.write(format_record(record) + "\n")
                    printed += 1
            out.flush()
    except KeyboardInterrupt:
        pass
    return printed
