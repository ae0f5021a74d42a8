"""Equity queries of `StoreReader`: the curve, drawdown, bounds, period stats and single marks.

The equity curve lives in two tables: the daemon's per-minute `equity` rows
and a backtest's `equity_series` chunks (see `equity_marks.py`). Every query
here reads both as one series of marks in time order; where both hold a mark
at the same ts the row wins (the projection deleted any older row a chunk
covers, so a row beside a chunk mark is the newer one).

Rows are reduced in SQL as before; chunk marks are unpacked for the range
asked only and reduced with numpy, then the two are merged per time bucket.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from desk.services.store.equity_marks import Marks, chunk_marks, drawdown_of, nearest_chunk_ts
from desk.services.store.query_results import EQUITY_COLUMNS, PeriodStats, frame_of, with_utc_time
from desk.services.store.reader_base import ReaderBase, ts_range

__all__ = ["MARK_FIELDS", "EquityQueries"]

# One mark as the queries pass it around, in this order.
MARK_FIELDS = ("seq", "ts", "equity", "cash", "positions_value", "high_water_mark", "drawdown_pct", "open_positions")
_ROW_COLUMNS = "seq, ts_event, equity, cash, positions_value, high_water_mark, drawdown_pct, open_positions"


class EquityQueries(ReaderBase):
    """The account's equity marks, whichever table holds them."""

    def equity_curve(
        self, start_ms: int | None = None, end_ms: int | None = None, max_points: int = 2000
    ) -> pd.DataFrame:
        """Return the equity samples in [start_ms, end_ms], at most `max_points` rows, oldest first.

        Samples are bucketed by ts; each bucket gives its last sample plus the
        min/max equity and worst drawdown inside it. The very first sample is
        always kept, and the last bucket ends with the last one.
        """
        if max_points < 2:
            raise ValueError("max_points must be at least 2 (the first and the last sample)")
        lo, hi = ts_range(start_ms, end_ms)
        marks = chunk_marks(self._db, lo, hi)
        bounds = self._db.first(
            "SELECT (SELECT MIN(ts_event) FROM equity WHERE ts_event BETWEEN :lo AND :hi),"
            " (SELECT MAX(ts_event) FROM equity WHERE ts_event BETWEEN :lo AND :hi)",
            lo=lo,
            hi=hi,
        )
        ends = [int(ts) for ts in (bounds or ()) if ts is not None]
        if len(marks):
            ends += [int(marks.ts[0]), int(marks.ts[-1])]
        if not ends:
            return frame_of([], EQUITY_COLUMNS)
        first_ts, last_ts = min(ends), max(ends)
        # max_points - 1 buckets over [first_ts, last_ts] plus the first sample on its own.
        width = max(1, math.ceil((last_ts - first_ts + 1) / (max_points - 1)))
        buckets = self._row_buckets(first_ts, last_ts, width)
        for bucket, summary in _chunk_buckets(marks, first_ts, width).items():
            buckets[bucket] = _merge(buckets[bucket], summary) if bucket in buckets else summary
        records = [buckets[bucket] for bucket in sorted(buckets)]
        first = self.first_mark(first_ts, last_ts)
        if first is not None and (not records or records[0][1] != first[1]):
            records.insert(0, (*first, first[2], first[2], first[6]))
        frame = frame_of([(r[0], r[1], None, *r[2:]) for r in records], EQUITY_COLUMNS)
        return with_utc_time(frame, "ts", "time")

    def drawdown(self, start_ms: int | None = None, end_ms: int | None = None, max_points: int = 2000) -> pd.DataFrame:
        """Return the worst drawdown from the high-water mark per bucket of `equity_curve` (ts, time, drawdown_pct)."""
        curve = self.equity_curve(start_ms, end_ms, max_points)
        return curve[["ts", "time", "drawdown_max"]].rename(columns={"drawdown_max": "drawdown_pct"})

    def equity_bounds(self) -> tuple[int, int] | None:
        """Return the ts_event of the first and the last equity sample, None without samples."""
        rows = self._db.first("SELECT (SELECT MIN(ts_event) FROM equity), (SELECT MAX(ts_event) FROM equity)")
        # A separate query: a database from before equity_series existed still answers the first.
        chunks = self._db.first(
            "SELECT (SELECT MIN(first_ts) FROM equity_series), (SELECT MAX(last_ts) FROM equity_series)"
        )
        ends = [int(ts) for row in (rows, chunks) if row is not None for ts in row if ts is not None]
        return (min(ends), max(ends)) if ends else None

    def period_stats(self, start_ms: int | None = None, end_ms: int | None = None) -> PeriodStats:
        """Return the equity at both ends of a period, its change and the worst drawdown inside it."""
        lo, hi = ts_range(start_ms, end_ms)
        first, last = self.first_mark(lo, hi), self.last_mark(lo, hi)
        row = self._db.first("SELECT MAX(drawdown_pct) FROM equity WHERE ts_event BETWEEN :lo AND :hi", lo=lo, hi=hi)
        worsts = [] if row is None or row[0] is None else [float(row[0])]
        marks = chunk_marks(self._db, lo, hi, ("equity", "high_water_mark"))
        if len(marks):
            worsts.append(float(drawdown_of(marks.columns["equity"], marks.columns["high_water_mark"]).max()))
        start_equity = None if first is None else first[2]
        end_equity = None if last is None else last[2]
        change = None if start_equity is None or end_equity is None else end_equity - start_equity
        change_pct = change / start_equity if change is not None and start_equity else None
        return PeriodStats(
            start_equity=start_equity,
            end_equity=end_equity,
            change=change,
            change_pct=change_pct,
            max_drawdown_pct=max(worsts) if worsts else None,
        )

    def first_mark(self, lo: int, hi: int) -> tuple[Any, ...] | None:
        """Return the earliest mark in [lo, hi] as MARK_FIELDS, None without one."""
        return self._nearest_mark(lo, hi, latest=False)

    def last_mark(self, lo: int, hi: int) -> tuple[Any, ...] | None:
        """Return the latest mark in [lo, hi] as MARK_FIELDS, None without one."""
        return self._nearest_mark(lo, hi, latest=True)

    # --- internals -----------------------------------------------------------------------------

    def _nearest_mark(self, lo: int, hi: int, *, latest: bool) -> tuple[Any, ...] | None:
        direction = "DESC" if latest else "ASC"
        row = self._db.first(
            f"SELECT {_ROW_COLUMNS} FROM equity WHERE ts_event BETWEEN :lo AND :hi"
            f" ORDER BY ts_event {direction} LIMIT 1",
            lo=lo,
            hi=hi,
        )
        chunk_ts = nearest_chunk_ts(self._db, lo, hi, latest=latest)
        if chunk_ts is not None and (row is None or (chunk_ts > row[1] if latest else chunk_ts < row[1])):
            # No row at chunk_ts (the row query would have found it), so the chunk mark stands.
            marks = chunk_marks(self._db, chunk_ts, chunk_ts)
            if len(marks):
                return _mark(marks, 0)
        return None if row is None else tuple(row)

    def _row_buckets(self, first_ts: int, last_ts: int, width: int) -> dict[int, tuple[Any, ...]]:
        """Per bucket of the per-minute rows: its last row (MARK_FIELDS), then min/max equity and worst drawdown."""
        columns = ", ".join(f"e.{name}" for name in _ROW_COLUMNS.split(", "))
        rows = self._db.rows(
            f"""
            WITH b AS (
                SELECT (ts_event - :t0) / :width AS bucket, MAX(ts_event) AS last_ts, MIN(equity) AS equity_min,
                       MAX(equity) AS equity_max, MAX(drawdown_pct) AS drawdown_max
                FROM equity WHERE ts_event BETWEEN :lo AND :hi GROUP BY bucket)
            SELECT b.bucket, {columns}, b.equity_min, b.equity_max, b.drawdown_max
            FROM b JOIN equity e ON e.ts_event = b.last_ts""",
            t0=first_ts,
            width=width,
            lo=first_ts,
            hi=last_ts,
        )
        return {int(row[0]): tuple(row[1:]) for row in rows}


def _chunk_buckets(marks: Marks, first_ts: int, width: int) -> dict[int, tuple[Any, ...]]:
    """The same per-bucket summary as `_row_buckets`, for chunk marks, with numpy."""
    if not len(marks):
        return {}
    bucket = (marks.ts - first_ts) // width
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    lasts = np.append(starts[1:], bucket.size) - 1
    equity = marks.columns["equity"]
    drawdown = drawdown_of(equity, marks.columns["high_water_mark"])
    lows = np.minimum.reduceat(equity, starts).tolist()
    highs = np.maximum.reduceat(equity, starts).tolist()
    worsts = np.maximum.reduceat(drawdown, starts).tolist()
    return {
        int(bucket[last]): (*_mark(marks, last), lows[i], highs[i], worsts[i]) for i, last in enumerate(lasts.tolist())
    }


def _merge(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    """Combine two summaries of one bucket: the later last mark, the lower low, the higher high and worst."""
    last = a if a[1] >= b[1] else b
    return (*last[:8], min(a[8], b[8]), max(a[9], b[9]), max(a[10], b[10]))


def _mark(marks: Marks, index: int) -> tuple[Any, ...]:
    """Return chunk mark `index` as MARK_FIELDS, in Python types."""
    columns = marks.columns
    equity, high = columns["equity"][index : index + 1], columns["high_water_mark"][index : index + 1]
    return (
        int(marks.seq[index]),
        int(marks.ts[index]),
        float(equity[0]),
        float(columns["cash"][index]),
        float(columns["positions_value"][index]),
        float(high[0]),
        float(drawdown_of(equity, high)[0]),
        int(columns["open_positions"][index]),
    )
