"""Load and validate 1-minute candle files (CSV, gzipped CSV, Parquet) for the replay feed.

Layouts, detected from the first lines (or declared by the caller):

* ``ccxt``: ``fetch_ohlcv`` rows, 6 columns ``timestamp, open, high, low, close, volume``
  without a header (or with exactly that header).
* ``kraken``: Kraken's OHLCVT download, 7 columns ``time, open, high, low, close, volume, trades``,
  no header.
* ``binance``: Binance klines, 12 columns starting ``open_time, open, high, low, close, volume``,
  no header (newer downloads add a header starting ``open_time`` that has ``close_time`` too).
* ``cryptodatadownload``: a URL line, then the header ``unix,date,symbol,open,high,low,close,
  Volume <BASE>,Volume <QUOTE>[,tradecount]``; rows are newest first, so this layout alone is
  reversed after loading (a file already oldest first is kept as it is). Volume is the first
  ``Volume <X>`` column, the base asset by CryptoDataDownload's convention.
* ``generic``: any header naming a time column (``open_time``, ``timestamp``, ``unix``, ``time``,
  ``datetime``, ``date``, ...), ``open``, ``high``, ``low``, ``close`` and ``volume`` (or ``vol``).

Detection: leading lines starting with ``#`` or a URL are comments. The first other line is a
header when none of its fields is a number. A header with a ``symbol`` column and a
``Volume <X>`` column is CryptoDataDownload; 12 names starting ``open_time`` with a ``close_time``
are Binance; anything else with a header is generic (ccxt if it is exactly the ccxt names).
Without a header the column count decides: 6 ccxt, 7 kraken, 12 binance. Parquet files use
their column names the same way (names that are all digits count as no header).

Timestamps are candle OPEN times. Epoch numbers may be seconds, milliseconds, microseconds or
nanoseconds, told apart by magnitude (below 1e11 seconds, below 1e14 ms, below 1e17 µs); all
rows of a file must use the same unit. Strings are ISO 8601, UTC unless they carry an offset;
Parquet timestamps without a time zone are UTC too. Dates and timestamps are the only Parquet
time types: a time of day or a duration is refused.

Every problem is reported with the file, the 1-based data row, the line in the file (comment,
header and blank lines counted) and the column.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from desk.core.errors import ReplayDataError
from desk.core.types import MINUTE_MS, CandleColumns

__all__ = ["KNOWN_LAYOUTS", "CandleColumns", "CandleFile", "load_candle_file"]

KNOWN_LAYOUTS: tuple[str, ...] = ("ccxt", "kraken", "binance", "cryptodatadownload", "generic")

# Headerless layouts by column count; all three start with time, open, high, low, close, volume.
_POSITIONAL_COLUMNS = {"ccxt": 6, "kraken": 7, "binance": 12}
_FIELDS = ("time", "open", "high", "low", "close", "volume")
_CCXT_HEADER = ("timestamp", "open", "high", "low", "close", "volume")
# In priority order: Binance's header has close_time too, CryptoDataDownload both unix and date,
# and an epoch number beats a date string.
_TIME_NAMES = ("open_time", "open time", "timestamp", "unix", "unix timestamp", "time", "datetime", "date", "ts")
_VOLUME_NAMES = ("volume", "vol")
_COMMENT_PREFIXES = ("#", "http://", "https://", "www.")
# Spellings pyarrow reads as null in numeric columns; the string fallback treats them the same way.
_NULL_WORDS = frozenset({"", "nan", "-nan", "na", "n/a", "null", "none", "#n/a"})
_MAX_REPORTED = 10
_SNIFF_LINES = 64

# Epoch magnitude bands: below 1e11 is seconds (1e11 s is the year 5138, 1e11 ms is 1973).
_UNIT_BOUNDS = (1e11, 1e14, 1e17)
_UNIT_NAMES = ("s", "ms", "µs", "ns")
_UNIT_PER_SECOND = (1, 1_000, 1_000_000, 1_000_000_000)

_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True, slots=True, eq=False)
class CandleFile:
    """One loaded file: where it came from, the layout it was read as, and its candles."""

    path: Path
    layout: str
    bars: CandleColumns
    newest_first: bool  # the file listed rows newest first and was reversed


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to read a file: its layout, which columns hold the six fields, and their names in messages."""

    layout: str
    positions: tuple[int, ...]  # time, open, high, low, close, volume
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _CsvShape:
    """What the first lines of a CSV file say about it."""

    lines_before_data: int  # comment and header lines
    header: tuple[str, ...] | None
    delimiter: str
    column_count: int
    first_row: tuple[str, ...] | None


class _Report:
    """Collects problems by data row; keeps the first few per rule, counts all."""

    def __init__(self, path: Path, lines_before_data: int | None, labels: tuple[str, ...]) -> None:
        self._path = path
        self._lines_before_data = lines_before_data
        self._labels = labels
        self._found: list[tuple[int, int, str]] = []  # (row index, field index, text)
        self.total = 0

    def rows(self, mask: np.ndarray, field: int, describe: Callable[[int], str]) -> None:
        """Record the rows where `mask` is true as problems in `field`; `describe(row)` says what is wrong."""
        rows = np.flatnonzero(mask)
        self.total += int(rows.size)
        self._found.extend((row, field, describe(row)) for row in rows[:_MAX_REPORTED].tolist())

    def general(self, text: str) -> None:
        self.total += 1
        self._found.append((-1, -1, text))

    def raise_if_any(self) -> None:
        if not self.total:
            return
        self._found.sort(key=lambda item: (item[0], item[1]))
        reported = self._found[:_MAX_REPORTED]
        lines = self._lines_of({row for row, _, _ in reported if row >= 0})
        problems = [self._format(row, field, text, lines) for row, field, text in reported]
        raise ReplayDataError(str(self._path), problems, self.total)

    def label(self, field: int) -> str:
        """The column's name in messages."""
        return self._labels[field]

    def _lines_of(self, rows: set[int]) -> dict[int, int]:
        if self._lines_before_data is None:
            return {}
        return _lines_of_rows(self._path, self._lines_before_data, rows)

    def _format(self, row: int, field: int, text: str, lines: dict[int, int]) -> str:
        if row < 0:
            return text
        where = f"row {row + 1}"
        if row in lines:
            where += f" (line {lines[row]})"
        return f"{where}, column {self._labels[field]}: {text}"


def _lines_of_rows(path: Path, lines_before_data: int, rows: set[int]) -> dict[int, int]:
    """The 1-based line in the file of each 0-based data row, counting the blank lines the reader skipped."""
    if not rows:
        return {}
    lines: dict[int, int] = {}
    row = -1
    with _open_text(path) as stream:  # only when reporting: a second read costs nothing then
        for number, line in enumerate(stream, start=1):
            if number <= lines_before_data or not line.strip("\r\n"):
                continue
            row += 1
            if row in rows:
                lines[row] = number
                if len(lines) == len(rows):
                    break
    return lines


def load_candle_file(path: Path, layout: str | None = None) -> CandleFile:
    """Read, validate and orient one candle file; raise `ReplayDataError` naming every problem found."""
    path = Path(path)
    if layout is not None and layout not in KNOWN_LAYOUTS:
        raise ReplayDataError(str(path), [f"unknown layout {layout!r}; known layouts: {', '.join(KNOWN_LAYOUTS)}"])
    name = path.name.lower()
    if not path.is_file():
        raise ReplayDataError(str(path), ["no such file"])
    if name.endswith(".parquet"):
        table, plan, lines_before_data = _read_parquet(path, layout)
    elif name.endswith((".csv", ".csv.gz")):
        table, plan, lines_before_data = _read_csv(path, layout)
    else:
        raise ReplayDataError(str(path), ["unsupported file type: expected .csv, .csv.gz or .parquet"])
    if table.num_rows == 0:
        raise ReplayDataError(str(path), ["the file has no data rows"])
    return _validate(path, plan, table, lines_before_data)


# ----------------------------------------------------------------------------- layouts


def _plan(path: Path, declared: str | None, header: tuple[str, ...] | None, column_count: int) -> _Plan:
    """Decide the layout and where its six fields are; raise naming the layouts when that is impossible."""
    known = ", ".join(KNOWN_LAYOUTS)
    names = tuple(name.strip().lower() for name in header) if header is not None else None
    layout = declared
    if layout is None:
        if names is None:
            layout = next((k for k, count in _POSITIONAL_COLUMNS.items() if count == column_count), None)
            if layout is None:
                raise ReplayDataError(
                    str(path),
                    [f"cannot detect the layout: {column_count} columns and no header; known layouts: {known}"],
                )
        elif "symbol" in names and any(n.startswith("volume ") for n in names):
            layout = "cryptodatadownload"
        elif column_count == _POSITIONAL_COLUMNS["binance"] and names[:1] == ("open_time",) and "close_time" in names:
            layout = "binance"  # newer Binance downloads carry a header
        else:
            layout = "ccxt" if names == _CCXT_HEADER else "generic"

    if layout in _POSITIONAL_COLUMNS:
        expected = _POSITIONAL_COLUMNS[layout]
        if column_count != expected:
            raise ReplayDataError(
                str(path), [f"layout {layout!r} has {expected} columns but the file has {column_count}"]
            )
        positions = tuple(range(len(_FIELDS)))
    else:
        if names is None:
            raise ReplayDataError(str(path), [f"layout {layout!r} needs a header line naming the columns"])
        positions = _map_header(path, layout, names)
    if header is not None:
        labels = tuple(repr(header[p].strip()) for p in positions)
    else:
        labels = tuple(f"{p + 1} ({field})" for p, field in zip(positions, _FIELDS, strict=True))
    return _Plan(layout, positions, labels)


def _map_header(path: Path, layout: str, names: tuple[str, ...]) -> tuple[int, ...]:
    """Find the six fields in a header by name."""
    index = {name: i for i, name in reversed(list(enumerate(names)))}  # first occurrence wins
    time = next((index[n] for n in _TIME_NAMES if n in index), None)
    volume = next((index[n] for n in _VOLUME_NAMES if n in index), None)
    if volume is None and layout == "cryptodatadownload":
        volume = next((i for i, n in enumerate(names) if n.startswith("volume ")), None)
    found = {"time": time, "volume": volume} | {f: index.get(f) for f in ("open", "high", "low", "close")}
    positions = tuple(found[field] for field in _FIELDS)
    if any(position is None for position in positions):
        wanted = {"time": "a time column (" + ", ".join(_TIME_NAMES) + ")", "volume": "volume (or vol)"}
        missing = [wanted.get(field, field) for field in _FIELDS if found[field] is None]
        raise ReplayDataError(
            str(path), [f"cannot read layout {layout!r} from the header {list(names)}: missing " + ", ".join(missing)]
        )
    return tuple(int(position) for position in positions if position is not None)


# ----------------------------------------------------------------------------- reading


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return path.open("r", encoding="utf-8-sig", errors="replace", newline="")


def _split(line: str, delimiter: str) -> tuple[str, ...]:
    return tuple(field.strip().strip('"').strip() for field in line.rstrip("\r\n").split(delimiter))


def _sniff_csv(path: Path) -> _CsvShape:
    """Read the first lines: count comment lines, find the delimiter and the header if any."""
    try:
        with _open_text(path) as stream:
            lines = [line for _, line in zip(range(_SNIFF_LINES), stream, strict=False)]
    except (OSError, EOFError) as error:  # a truncated or corrupt gzip stream
        raise ReplayDataError(str(path), [f"cannot read the file: {error}"]) from None
    skipped = 0
    while skipped < len(lines) and (
        not lines[skipped].strip() or lines[skipped].lstrip().lower().startswith(_COMMENT_PREFIXES)
    ):
        skipped += 1
    if skipped == len(lines):
        raise ReplayDataError(str(path), ["the file has no data rows"])
    first = lines[skipped]
    delimiter = max((",", ";", "\t"), key=first.count)
    fields = _split(first, delimiter)
    if any(_NUMBER.match(field) for field in fields):
        return _CsvShape(skipped, None, delimiter, len(fields), fields)
    following = lines[skipped + 1] if skipped + 1 < len(lines) else None
    first_row = _split(following, delimiter) if following is not None and following.strip() else None
    return _CsvShape(skipped + 1, fields, delimiter, len(fields), first_row)


def _read_csv(path: Path, declared: str | None) -> tuple[pa.Table, _Plan, int]:
    """Parse a CSV with pyarrow: typed (fast) first, as text if a value does not convert."""
    shape = _sniff_csv(path)
    plan = _plan(path, declared, shape.header, shape.column_count)
    names = [f"c{i}" for i in range(shape.column_count)]
    include = [names[p] for p in plan.positions]
    time_text = shape.first_row[plan.positions[0]] if shape.first_row is not None else ""
    if _INTEGER.match(time_text):
        time_type = pa.int64()
    elif _NUMBER.match(time_text):
        time_type = pa.float64()
    else:
        time_type = pa.string()
    typed = {include[0]: time_type} | {column: pa.float64() for column in include[1:]}
    as_text = dict.fromkeys(include, pa.string())

    def read(column_types: dict[str, pa.DataType], use_threads: bool) -> tuple[pa.Table, list[pa_csv.InvalidRow]]:
        invalid: list[pa_csv.InvalidRow] = []

        def skip_invalid(row: pa_csv.InvalidRow) -> str:
            invalid.append(row)
            return "skip"

        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(
                skip_rows=shape.lines_before_data, column_names=names, use_threads=use_threads
            ),
            parse_options=pa_csv.ParseOptions(delimiter=shape.delimiter, invalid_row_handler=skip_invalid),
            # Null spellings in text columns become nulls, so a clean text column still casts to numbers fast.
            convert_options=pa_csv.ConvertOptions(
                column_types=column_types, include_columns=include, strings_can_be_null=True
            ),
        )
        return table, invalid

    try:
        try:
            table, invalid = read(typed, use_threads=True)
        except pa.ArrowInvalid:
            # A value that does not convert (text in a number column, "1.7e12" as a time):
            # read everything as text so validation can name each bad row.
            table, invalid = read(as_text, use_threads=True)
        if invalid and any(row.number is None for row in invalid):
            # Line numbers are only known to a single-threaded parse; pay for it on this error path only.
            _, invalid = read(as_text, use_threads=False)
    except (pa.ArrowInvalid, OSError, EOFError) as error:
        raise ReplayDataError(str(path), [f"cannot parse the CSV: {error}"]) from None
    if invalid:
        # pyarrow's row number counts the skipped lines before the data but not blank lines within
        # it, so it is the data row (after the preamble) and not the line: look the lines up.
        listed = invalid[:_MAX_REPORTED]
        data_rows = {row.number - shape.lines_before_data - 1 for row in listed if row.number is not None}
        lines = _lines_of_rows(path, shape.lines_before_data, data_rows)
        problems = []
        for row in listed:
            where = ""
            if row.number is not None:
                data_row = row.number - shape.lines_before_data
                line = lines.get(data_row - 1)
                where = f"row {data_row} (line {line}): " if line is not None else f"row {data_row}: "
            problems.append(
                f"{where}expected {row.expected_columns} columns, found {row.actual_columns}: {row.text[:80]!r}"
            )
        raise ReplayDataError(str(path), problems, len(invalid))
    return table.select(include), plan, shape.lines_before_data


def _read_parquet(path: Path, declared: str | None) -> tuple[pa.Table, _Plan, None]:
    """Read a Parquet file; its column names play the part of a CSV header."""
    try:
        schema = pq.read_schema(path)
        header: tuple[str, ...] | None = tuple(schema.names)
        if all(name.strip().isdigit() for name in schema.names):
            header = None  # a headerless frame saved by pandas: columns "0", "1", ...
        plan = _plan(path, declared, header, len(schema.names))
        table = pq.read_table(path, columns=[schema.names[p] for p in plan.positions])
    except (pa.ArrowException, OSError) as error:
        raise ReplayDataError(str(path), [f"cannot read the Parquet file: {error}"]) from None
    return table, plan, None


# ----------------------------------------------------------------------------- decoding


def _as_text(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The column as stripped strings, and where it is blank or a null spelling."""
    text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object).fillna("").astype(str).str.strip()
    blank = text.str.lower().isin(_NULL_WORDS).to_numpy()
    return text.to_numpy(dtype=object), blank


def _cast_text(column: pa.ChunkedArray, *types: pa.DataType) -> pa.ChunkedArray:
    """A text column cast to the first of `types` that every value converts to, else as it was.

    Only the columns that really hold a bad value fall through to the slower pandas path
    that can say which rows they are.
    """
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    for target in types:
        try:
            return column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return column


def _decode_number(column: pa.ChunkedArray, field: int, report: _Report) -> np.ndarray:
    """Float64 values, NaN where unusable; missing values and text that is not a number are reported here."""
    column = _cast_text(column, pa.float64())
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = np.ascontiguousarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
        report.rows(np.isnan(values), field, lambda row: "missing value (empty, NaN or null)")
        report.rows(np.isinf(values), field, lambda row: f"{values[row]} is not a finite number")
        return _without_infinities(values)
    text, blank = _as_text(column)
    values = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(dtype=np.float64)
    report.rows(blank, field, lambda row: "missing value (empty, NaN or null)")
    report.rows(np.isnan(values) & ~blank, field, lambda row: f"{text[row]!r} is not a number")
    # "inf" and "1e400" parse; a price or volume must still be a finite number.
    report.rows(np.isinf(values), field, lambda row: f"{text[row]!r} is not a finite number")
    return _without_infinities(values)


def _without_infinities(values: np.ndarray) -> np.ndarray:
    """Infinities as NaN: already reported, they must not also fail the price rules (NaN compares false)."""
    infinite = np.isinf(values)
    return np.where(infinite, np.nan, values) if infinite.any() else values


def _decode_time(column: pa.ChunkedArray, report: _Report) -> tuple[np.ndarray, bool]:
    """Epoch milliseconds (int64) and whether every row decoded; problems go to `report`."""
    count = len(column)
    # Arrow parses epoch numbers and plain ISO 8601 (all with an offset, or all without, taken as UTC)
    # column-wise; only other spellings or mixtures take the pandas path, which holds a Python
    # string per row, several times over, and would dominate the memory a big file costs.
    column = _cast_text(column, pa.int64(), pa.float64(), pa.timestamp("ms", tz="UTC"), pa.timestamp("ms"))
    if pa.types.is_temporal(column.type) and not (pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)):
        # A time of day, a duration or an interval names no minute of history.
        report.general(f"column {report.label(0)} holds {column.type} values, not dates or timestamps")
        return np.zeros(count, dtype=np.int64), False
    if pa.types.is_temporal(column.type):
        # Dates and timestamps; a naive timestamp is taken as UTC, sub-millisecond parts are dropped.
        ms = column.cast(pa.timestamp("ms", tz=getattr(column.type, "tz", None)), safe=False).cast(pa.int64())
        valid = ~np.asarray(ms.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        report.rows(~valid, 0, lambda row: "missing timestamp")
        return _check_ms(np.asarray(ms.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64), valid, report)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        raw = column.to_numpy(zero_copy_only=False)
        valid = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(count, dtype=bool)
        report.rows(~valid, 0, lambda row: "missing timestamp")
        return _epoch_to_ms(raw, valid, report)

    text, blank = _as_text(column)
    report.rows(blank, 0, lambda row: "missing timestamp")
    first = next((value for value, empty in zip(text.tolist(), blank.tolist(), strict=True) if not empty), "")
    if _NUMBER.match(first):
        raw = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(dtype=np.float64)
        unparsed = np.isnan(raw) & ~blank
    else:
        stamps = pd.to_datetime(pd.Series(text), format="ISO8601", utc=True, errors="coerce")
        unparsed = stamps.isna().to_numpy() & ~blank
        raw = stamps.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    report.rows(unparsed, 0, lambda row: f"unparseable timestamp {text[row]!r}")
    valid = ~(blank | unparsed)
    if _NUMBER.match(first):
        return _epoch_to_ms(raw, valid, report)
    return _check_ms(np.where(valid, raw, 0), valid, report)


def _epoch_to_ms(raw: np.ndarray, valid: np.ndarray, report: _Report) -> tuple[np.ndarray, bool]:
    """Convert epoch numbers to ms; the unit is the first row's, by magnitude, and every row must share it."""
    magnitude = np.abs(np.where(valid, raw, 0))
    units = np.searchsorted(np.array(_UNIT_BOUNDS), magnitude, side="right")
    first_valid = np.flatnonzero(valid)
    if first_valid.size == 0:
        return np.zeros(raw.shape[0], dtype=np.int64), False
    unit = int(units[first_valid[0]])
    name = _UNIT_NAMES[unit]
    other_unit = valid & (units != unit)
    report.rows(
        other_unit,
        0,
        lambda row: f"timestamp {_num(raw[row])} is in {_UNIT_NAMES[units[row]]} but the file's first is in {name}",
    )
    positive = raw > 0
    report.rows(valid & ~positive, 0, lambda row: f"timestamp {_num(raw[row])} is not positive")
    usable = valid & ~other_unit & positive
    whole = usable & (raw == np.floor(raw)) if raw.dtype.kind == "f" else usable
    per_minute = 60 * _UNIT_PER_SECOND[unit]
    integral = np.where(whole, raw, 0).astype(np.int64)
    aligned = whole & (integral % per_minute == 0)
    report.rows(
        usable & ~aligned,
        0,
        lambda row: (
            f"timestamp {_num(raw[row])} ({name}) is not on a minute boundary; candles must open on whole minutes"
        ),
    )
    ms = integral * 1000 if unit == 0 else integral // (_UNIT_PER_SECOND[unit] // 1000)
    return ms, bool(aligned.all())


def _check_ms(ms: np.ndarray, valid: np.ndarray, report: _Report) -> tuple[np.ndarray, bool]:
    """Check decoded date-times: after 1970 and on minute boundaries."""
    positive = ms > 0
    report.rows(valid & ~positive, 0, lambda row: f"timestamp {_iso(int(ms[row]))} is not after 1970")
    aligned = valid & positive & (ms % MINUTE_MS == 0)
    report.rows(
        valid & positive & ~aligned,
        0,
        lambda row: f"timestamp {_iso(int(ms[row]))} is not on a minute boundary; candles must open on whole minutes",
    )
    return ms.astype(np.int64, copy=False), bool(aligned.all())


def _num(value: float | np.number) -> str:
    """A number for messages: numpy scalars print as plain Python numbers, whole floats without noise."""
    if isinstance(value, int | np.integer):
        return str(int(value))
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) >= 1e15 else repr(number)


def _iso(ms: int) -> str:
    """A timestamp as ISO 8601 UTC, for messages."""
    # numpy, not datetime: a corrupt Parquet timestamp may lie outside datetime's years 1 to 9999.
    return str(np.datetime_as_string(np.datetime64(ms, "ms"), unit="ms")) + "Z"


# ----------------------------------------------------------------------------- validation


def _validate(path: Path, plan: _Plan, table: pa.Table, lines_before_data: int | None) -> CandleFile:
    """Decode the six columns, check every rule, orient oldest first; raise with the first problems."""
    report = _Report(path, lines_before_data, plan.labels)
    ts, times_ok = _decode_time(table.column(0), report)
    opens, highs, lows, closes, volumes = (_decode_number(table.column(i), i, report) for i in range(1, 6))

    for field, values in enumerate((opens, highs, lows, closes), start=1):
        report.rows(values <= 0, field, lambda row, v=values: f"price {_num(v[row])} is not positive")
    report.rows(highs < lows, 2, lambda row: f"high {_num(highs[row])} is below low {_num(lows[row])}")
    top = np.maximum(opens, closes)
    report.rows(
        (highs < top) & (highs >= lows),
        2,
        lambda row: f"high {_num(highs[row])} is below max(open, close) {_num(top[row])}",
    )
    bottom = np.minimum(opens, closes)
    report.rows(
        (lows > bottom) & (highs >= lows),
        3,
        lambda row: f"low {_num(lows[row])} is above min(open, close) {_num(bottom[row])}",
    )
    report.rows(volumes < 0, 5, lambda row: f"volume {_num(volumes[row])} is negative")

    # CryptoDataDownload lists newest first; a copy someone already sorted oldest first is fine too.
    newest_first = bool(plan.layout == "cryptodatadownload" and times_ok and ts.size > 1 and ts[0] > ts[-1])
    if times_ok:
        _check_order(ts, newest_first, plan.layout, report)
    report.raise_if_any()

    columns = [ts, opens, highs, lows, closes, volumes]
    if newest_first:
        columns = [column[::-1] for column in columns]
    columns = [np.ascontiguousarray(column) for column in columns]
    _check_timeframe(columns[0], report)
    report.raise_if_any()
    for column in columns:
        column.flags.writeable = False
    return CandleFile(path, plan.layout, CandleColumns(*columns), newest_first)


def _check_order(ts: np.ndarray, newest_first: bool, layout: str, report: _Report) -> None:
    """Timestamps strictly increase (strictly decrease in a newest-first file), row by row in file order."""
    step = np.diff(ts)
    if newest_first:
        step = -step
    later = "older" if newest_first else "later"
    hint = ""
    if not newest_first and ts.size > 1 and ts[0] > ts[-1]:
        hint = " (the file looks newest first; only CryptoDataDownload files are reversed)"
    # Row indices are those of the second row of each pair, the one that breaks the order.
    report.rows(
        np.concatenate(([False], step == 0)),
        0,
        lambda row: f"duplicate timestamp {_iso(int(ts[row]))}, same as row {row}",
    )
    report.rows(
        np.concatenate(([False], step < 0)),
        0,
        lambda row: f"timestamp {_iso(int(ts[row]))} is not {later} than row {row}'s {_iso(int(ts[row - 1]))}{hint}",
    )


def _check_timeframe(ts: np.ndarray, report: _Report) -> None:
    """The typical step is one minute; longer individual steps are gaps, which the replay allows."""
    if ts.size < 2:
        return
    steps = np.diff(ts)
    middle = (steps.size - 1) // 2
    median = int(np.partition(steps, middle)[middle])  # the lower median: always an actual step
    if median != MINUTE_MS:
        report.general(
            f"the candles are not 1-minute: the median step between rows is {median // 1000} s ({median} ms); "
            "the replay needs 1-minute candles (longer steps are allowed as gaps, "
            "but not for most of the file)"
        )
