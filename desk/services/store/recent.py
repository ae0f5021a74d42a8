"""Read the newest journal records from the end of the daily files, newest file first.

The control room shows the last few hundred matching lines of a journal that
may hold millions, so reading it from the start (as `Journal.read` does) is
out of the question. This reader walks the files backwards in fixed-size
blocks and stops as soon as it has `last_n` matches or has spent its byte
budget. It never takes the writer's lock, and an incomplete last line (a batch
caught mid-write, or torn by a crash) is left alone, as `tail` does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desk.services.store.journal import Journal
from desk.services.store.query_results import (
    ERROR_TYPES,
    JOURNAL_COLUMNS,
    WARNING_TYPES,
    JournalTail,
    event_level,
    frame_of,
    with_utc_time,
)
from desk.services.store.tail import format_detail

__all__ = ["DEFAULT_MAX_SCAN_BYTES", "RecentRecords", "journal_tail", "read_recent"]

Record = dict[str, Any]

# Enough for days of a busy desk's journal; a filter rarer than that answers "nothing recent".
DEFAULT_MAX_SCAN_BYTES = 64 << 20
_BLOCK = 256 << 10


@dataclass(frozen=True, slots=True)
class RecentRecords:
    """The newest matching records, oldest first, and how much of the journal was searched for them."""

    records: list[Record]
    bytes_scanned: int
    # True when every journal line was looked at: fewer than `last_n` records means there are no more.
    complete: bool


def read_recent(
    journal: Journal,
    *,
    last_n: int,
    accept: Callable[[Record], bool] | None = None,
    needles: Collection[bytes] = (),
    max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES,
) -> RecentRecords:
    """Return the last `last_n` records that `accept` allows, searching at most `max_scan_bytes` from the end.

    `needles` is an optional pre-filter: a line is parsed only if it contains
    at least one of them (say `b'"WorkerFaulted"'`), which makes rare-event
    filters cheap. It must be a necessary condition for `accept`, never a
    replacement. Lines that are not valid JSON are skipped: a viewer should
    show what it can, `main.py rebuild-db` is where a damaged journal is reported.
    """
    if last_n <= 0:
        return RecentRecords([], 0, True)
    found: list[Record] = []  # newest first while collecting
    scanned = 0
    files = journal.files()
    for index in range(len(files) - 1, -1, -1):
        is_newest = index == len(files) - 1
        for line, size in _lines_backwards(files[index], skip_unterminated=is_newest, needles=needles):
            scanned += size
            if line is not None:
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if type(record) is dict and (accept is None or accept(record)):
                    found.append(record)
                    if len(found) >= last_n:
                        return RecentRecords(found[::-1], scanned, False)
            if scanned >= max_scan_bytes:
                return RecentRecords(found[::-1], scanned, False)
    return RecentRecords(found[::-1], scanned, True)


def journal_tail(
    journal: Journal,
    *,
    types: Collection[str] | None = None,
    workers: Collection[str] | None = None,
    symbols: Collection[str] | None = None,
    levels: Collection[str] | None = None,
    last_n: int = 200,
    max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES,
) -> JournalTail:
    """Return the last `last_n` records matching every given filter as display rows; see `StoreReader.journal_tail`."""
    type_set, worker_set, symbol_set = set(types or ()), set(workers or ()), set(symbols or ())
    level_set = set(levels or ())
    wanted_types = type_set
    if level_set and "info" not in level_set:
        # Error and warning levels are finite sets of types: search for exactly those.
        by_level = {t for t in ERROR_TYPES | WARNING_TYPES if event_level(t) in level_set}
        wanted_types = (type_set & by_level) if type_set else by_level
        if not wanted_types:
            return JournalTail(rows=frame_of([], JOURNAL_COLUMNS), bytes_scanned=0, complete=True)

    def accept(record: Record) -> bool:
        event_type = str(record.get("type", ""))
        return (
            (not wanted_types or event_type in wanted_types)
            and (not level_set or event_level(event_type) in level_set)
            and (not worker_set or record.get("worker") in worker_set)
            and (not symbol_set or record.get("symbol") in symbol_set)
        )

    # A record of a wanted type contains that type as a JSON string: a cheap test on raw bytes.
    # Types are the most selective, then workers, then symbols; one set of needles is enough.
    needles = [json.dumps(name).encode() for name in wanted_types or worker_set or symbol_set]
    found = read_recent(journal, last_n=last_n, accept=accept, needles=needles, max_scan_bytes=max_scan_bytes)
    records = [
        (
            r.get("seq"),
            r.get("ts_event"),
            None,
            str(r.get("type", "")),
            event_level(str(r.get("type", ""))),
            r.get("worker") or "",
            r.get("symbol") or "",
            format_detail(r),
        )
        for r in found.records
    ]
    rows = with_utc_time(frame_of(records, JOURNAL_COLUMNS), "ts", "time")
    return JournalTail(rows=rows, bytes_scanned=found.bytes_scanned, complete=found.complete)


def _lines_backwards(
    path: Path, *, skip_unterminated: bool, needles: Collection[bytes]
) -> Iterator[tuple[bytes | None, int]]:
    """Yield (line, bytes) from the end of `path` backwards; line is None for bytes skipped unparsed.

    A whole block of complete lines without any needle is skipped in one step
    (accounted for with a single None), which is what keeps a rare-type search fast.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        position = handle.seek(0, os.SEEK_END)
        # Bytes read but not yet yielded: always a prefix of the file's remaining text that starts
        # mid-line, so it waits for the block before it to complete its first line.
        pending = b""
        trimmed = not skip_unterminated
        while position > 0:
            start = max(0, position - _BLOCK)
            handle.seek(start)
            pending = handle.read(position - start) + pending
            position = start
            if not trimmed:
                # The writer has not finished the last line (or crashed in it): it is not a record yet.
                cut = pending.rfind(b"\n") + 1
                if cut == 0 and position > 0:
                    continue  # still inside that line: read further back
                yield None, len(pending) - cut
                pending = pending[:cut]
                trimmed = True
            if position > 0:
                cut = pending.find(b"\n") + 1
                if cut == 0:
                    continue  # one line longer than a block: read further back
                pending, complete = pending[:cut], pending[cut:]
            else:
                pending, complete = b"", pending
            if needles and not any(needle in complete for needle in needles):
                yield None, len(complete)
                continue
            for line in reversed(complete.split(b"\n")):
                if line:
                    yield line, len(line) + 1
