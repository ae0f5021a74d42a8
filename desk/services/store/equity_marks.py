"""EquitySeries chunks in the projection: columns packed into blobs, and the marks read back in time order.

A backtest journals its per-minute equity marks a day at a time (EquitySeries);
the projection keeps each chunk as one `equity_series` row whose columns are
little-endian float64 (open_positions int64) blobs. `series_row` packs a
record's columns, `chunk_marks` unpacks the marks of a time range.

At any ts the newest mark (highest seq) wins, as upserts of per-minute rows
would decide it. Projecting a chunk deletes the older `equity` rows it covers,
so a row sharing a ts with a chunk mark is always the newer of the two and
wins here; chunks overlapping each other are settled by seq.
"""

from __future__ import annotations

import itertools
import operator
import sys
from array import array
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = [
    "FLOAT_COLUMNS",
    "MARK_COLUMNS",
    "Marks",
    "chunk_marks",
    "drawdown_of",
    "nearest_chunk_ts",
    "series_row",
]

# Columns of an EquitySeries record, as they are named in its record and in equity_series.
FLOAT_COLUMNS = ("equity", "cash", "positions_value", "high_water_mark")
MARK_COLUMNS = (*FLOAT_COLUMNS, "open_positions")
_FLOAT = np.dtype("<f8")
_INT = np.dtype("<i8")
_EMPTY_INT = np.zeros(0, dtype=np.int64)


class Database(Protocol):
    """What reading needs of a database: SQL text in, rows out (ReadOnlyDatabase, say)."""

    def rows(self, sql: str, **params: Any) -> Any: ...


# --- writing ------------------------------------------------------------------------------------


def series_row(record: dict[str, Any]) -> dict[str, Any] | None:
    """Return the equity_series row of an EquitySeries record, None when it holds no marks.

    Raises ValueError or TypeError (a malformed record) when the columns differ
    in length, hold a missing or non-finite number, or open_positions is not
    integers: the per-minute rows this replaces refused the same.
    """
    count = len(record["equity"])
    start_ts = operator.index(record["start_ts"])
    step_ms = operator.index(record["step_ms"])
    if count == 0:
        if any(len(record[name]) for name in MARK_COLUMNS):
            raise ValueError("equity is empty but other columns are not")
        return None
    if count > 1 and step_ms <= 0:
        raise ValueError(f"step_ms is {step_ms}: marks of an equity series must advance in time")
    row: dict[str, Any] = {
        "seq": record["seq"],
        "first_ts": start_ts,
        "last_ts": start_ts + (count - 1) * step_ms,
        "step_ms": step_ms,
        "marks": count,
    }
    for name in FLOAT_COLUMNS:
        values = _packed(record, name, "d", count)
        bad = np.flatnonzero(~np.isfinite(np.frombuffer(values, dtype=np.float64)))
        if bad.size:
            index = int(bad[0])
            raise ValueError(f"{name}[{index}] is {record[name][index]!r}, not a finite number")
        row[name] = _little_endian(values)
    row["open_positions"] = _little_endian(_packed(record, "open_positions", "q", count))
    return row


def _packed(record: dict[str, Any], name: str, code: str, count: int) -> array:
    """Return a column as a C array: one conversion in C instead of a Python row per mark.

    array() takes only real numbers ("d") or integers ("q"): None, text or a
    fraction of a position is a TypeError, never a silent NaN or truncation.
    """
    try:
        values = array(code, record[name])
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from exc
    except OverflowError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} marks, equity has {count}")
    return values


def _little_endian(values: array) -> bytes:
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def drawdown_of(equity: np.ndarray, high_water_mark: np.ndarray) -> np.ndarray:
    """Return the drawdown from the high-water mark, exactly as the daemon's EquitySampled computes it."""
    positive = high_water_mark > 0
    ratio = np.divide(equity, high_water_mark, out=np.ones_like(equity), where=positive)
    return np.where(positive, 1.0 - ratio, 0.0)


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marks:
    """Chunk marks in time order: their ts, the seq of their chunk and the requested columns."""

    ts: np.ndarray
    seq: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.ts.size)


def chunk_marks(db: Database, lo: int, hi: int, columns: tuple[str, ...] = MARK_COLUMNS) -> Marks:
    """Return the chunk marks with lo <= ts <= hi that nothing newer replaces, in time order.

    Only the chunks overlapping the range are read, and only the blobs of
    `columns`; an `equity_series` table that does not exist yet reads as empty.
    """
    unknown = set(columns) - set(MARK_COLUMNS)
    if unknown:
        raise ValueError(f"not equity series columns: {sorted(unknown)}")
    selected = "".join(f", {name}" for name in columns)
    rows = db.rows(
        f"SELECT seq, first_ts, step_ms, marks{selected} FROM equity_series"
        " WHERE first_ts <= :hi AND last_ts >= :lo ORDER BY first_ts, seq",
        lo=lo,
        hi=hi,
    )
    pieces: list[tuple[np.ndarray, int, list[np.ndarray]]] = []
    for seq, first_ts, step_ms, count, *blobs in rows:
        step = int(step_ms) if count > 1 else 1
        begin = max(0, -(-(lo - first_ts) // step))  # the first mark at or after lo
        end = min(int(count), (hi - first_ts) // step + 1)  # one past the last mark at or before hi
        if begin >= end:
            continue  # the range falls between two of the chunk's marks
        ts = first_ts + step * np.arange(begin, end, dtype=np.int64)
        values = [_decode(name, blob)[begin:end] for name, blob in zip(columns, blobs, strict=True)]
        pieces.append((ts, int(seq), values))
    if not pieces:
        return Marks(_EMPTY_INT, _EMPTY_INT, {name: _decode(name, b"") for name in columns})
    ts = np.concatenate([piece[0] for piece in pieces])
    seq = np.concatenate([np.full(piece[0].size, piece[1], dtype=np.int64) for piece in pieces])
    values = {name: np.concatenate([piece[2][i] for piece in pieces]) for i, name in enumerate(columns)}
    # Pieces come ordered by first ts; if each starts after the previous one ends (a backtest's
    # chunks always do) their concatenation is already in time order with no ts twice.
    disjoint = all(later[0][0] > earlier[0][-1] for earlier, later in itertools.pairwise(pieces))
    keep: np.ndarray | None = None
    if not disjoint:
        order = np.lexsort((seq, ts))
        # After sorting by (ts, seq) the newest mark of each ts is the last of its run.
        last_of_run = np.append(ts[order][1:] != ts[order][:-1], True)
        keep = order[last_of_run]
    replaced = _row_ts_inside_chunks(db, lo, hi)
    if replaced.size:
        inside = np.isin(ts, replaced)
        survivors = np.flatnonzero(~inside)
        keep = survivors if keep is None else keep[~inside[keep]]
    if keep is None:
        return Marks(ts, seq, values)
    return Marks(ts[keep], seq[keep], {name: column[keep] for name, column in values.items()})


def nearest_chunk_ts(db: Database, lo: int, hi: int, *, latest: bool) -> int | None:
    """Return the ts of the latest (or earliest) chunk mark in [lo, hi], None without one.

    Reads only the chunks' small columns: the caller then unpacks just the
    marks at that ts (`chunk_marks(db, ts, ts)`), which settles overlaps.
    """
    rows = db.rows(
        "SELECT first_ts, step_ms, marks FROM equity_series WHERE first_ts <= :hi AND last_ts >= :lo",
        lo=lo,
        hi=hi,
    )
    if not rows:
        return None
    first = np.array([row[0] for row in rows], dtype=np.int64)
    count = np.array([row[2] for row in rows], dtype=np.int64)
    step = np.where(count > 1, np.array([row[1] for row in rows], dtype=np.int64), 1)
    if latest:
        index = np.minimum(count - 1, (hi - first) // step)
        found = first + index * step
        found = found[found >= lo]
        return int(found.max()) if found.size else None
    index = np.maximum(0, -((first - lo) // step))  # ceil((lo - first) / step), at least 0
    found = first + index * step
    found = found[(index < count) & (found <= hi)]
    return int(found.min()) if found.size else None


def _decode(name: str, blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=_INT if name == "open_positions" else _FLOAT)


def _row_ts_inside_chunks(db: Database, lo: int, hi: int) -> np.ndarray:
    """Return the ts of per-minute rows inside the span of a chunk overlapping [lo, hi] (usually none)."""
    rows = db.rows(
        "SELECT e.ts_event FROM equity_series s JOIN equity e ON e.ts_event BETWEEN s.first_ts AND s.last_ts"
        " WHERE s.first_ts <= :hi AND s.last_ts >= :lo AND e.ts_event BETWEEN :lo AND :hi",
        lo=lo,
        hi=hi,
    )
    return np.array([row[0] for row in rows], dtype=np.int64) if rows else _EMPTY_INT
