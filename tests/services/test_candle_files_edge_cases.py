"""Candle files at the edges: lines past blank lines, odd Parquet types, non-finite values, big ISO files."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from desk.core.errors import ReplayDataError
from desk.core.types import MINUTE_MS
from desk.services.feed.candle_files import load_candle_file

T0 = 1_700_000_040_000  # 2023-11-14T22:14:00Z, on a minute boundary
M = MINUTE_MS
HEADER = "timestamp,open,high,low,close,volume\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())  # bytes: the line endings are exactly the ones written
    return path


def parquet_with_time(tmp_path: Path, time: pa.Array) -> Path:
    rows = len(time)
    prices = {name: pa.array([value] * rows) for name, value in (("open", 1.0), ("high", 2.0), ("low", 0.5))}
    table = pa.table({"timestamp": time} | prices | {"close": pa.array([1.5] * rows), "volume": pa.array([1.0] * rows)})
    path = tmp_path / "btc.parquet"
    pq.write_table(table, path)
    return path


# ------------------------------------------------------------------------- line numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEADER + f"{T0},1,2,1,2,1\n\n\n{T0 + M},1,2\n", "row 2 (line 5): expected 6 columns, found 3"),
        (f"{T0},1,2,1,2,1\n\n\n{T0 + M},1,2\n", "row 2 (line 4): expected 6 columns, found 3"),
        (f"{T0},1,2,1,2,1\r\n\r\n{T0 + M},1,2\r\n", "row 2 (line 3): expected 6 columns, found 3"),
    ],
    ids=["header", "headerless", "crlf"],
)
def test_load_when_blank_lines_precede_a_short_row_then_error_names_its_real_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ReplayDataError) as raised:
        load_candle_file(write(tmp_path, "gappy.csv", text))
    assert str(raised.value) == f"{tmp_path / 'gappy.csv'}: {expected}: '1700000100000,1,2'"


# ------------------------------------------------------------------------- Parquet types


@pytest.mark.parametrize(
    ("time", "type_text"),
    [
        (pa.array([60, 120], pa.time32("s")), "time32[ms]"),  # Parquet stores seconds as ms
        (pa.array([60_000_000, 120_000_000], pa.time64("us")), "time64[us]"),
        (pa.array([T0, T0 + M], pa.duration("ms")), "duration[ms]"),
    ],
    ids=["time32", "time64", "duration"],
)
def test_load_when_parquet_time_column_is_not_a_point_in_time_then_error_names_its_type(
    tmp_path: Path, time: pa.Array, type_text: str
) -> None:
    path = parquet_with_time(tmp_path, time)
    with pytest.raises(ReplayDataError) as raised:
        load_candle_file(path)
    assert str(raised.value).startswith(f"{path}: column 'timestamp' holds {type_text} values")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (300_000_000_001, "row 1, column 'timestamp': timestamp 11476-08-15T05:20:01.000Z is not on a minute"),
        (-70_000_000_001, "row 1, column 'timestamp': timestamp -249-10-15T19:33:19.000Z is not after 1970"),
    ],
    ids=["far-future", "before-year-one"],
)
def test_load_when_parquet_timestamp_is_beyond_the_calendar_then_error_not_crash(
    tmp_path: Path, seconds: int, expected: str
) -> None:
    path = parquet_with_time(tmp_path, pa.array([seconds, seconds + 60], pa.timestamp("s")))
    with pytest.raises(ReplayDataError) as raised:
        load_candle_file(path)
    assert expected in str(raised.value)


# ------------------------------------------------------------------------- non-finite values


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (f"{T0 + M},inf,2,1,2,1", "row 2 (line 3), column 'open': inf is not a finite number"),
        (f"{T0 + M},1,2,-inf,2,1", "row 2 (line 3), column 'low': -inf is not a finite number"),
        (f"{T0 + M},1,inf,1,2,1", "row 2 (line 3), column 'high': inf is not a finite number"),
        (f"{T0 + M},1,2,1,2,abc", "row 2 (line 3), column 'volume': 'abc' is not a number"),
        (f"{T0 + M},1,2,1,Infinity,1", "row 2 (line 3), column 'close': inf is not a finite number"),
    ],
    ids=["open", "low", "high", "text-volume", "close-spelled-out"],
)
def test_load_when_a_value_is_not_finite_then_exactly_that_one_problem_reported(
    tmp_path: Path, row: str, expected: str
) -> None:
    path = write(tmp_path, "btc.csv", HEADER + f"{T0},1,2,1,2,1\n{row}\n")
    with pytest.raises(ReplayDataError) as raised:
        load_candle_file(path)
    # One bad cell is one problem: no follow-on "high is below max(open, close) inf" or "-inf is not positive".
    assert raised.value.total == 1
    assert str(raised.value) == f"{path}: {expected}"


# ------------------------------------------------------------------------- ISO timestamps at scale


@pytest.mark.parametrize("suffix", ["Z", "", "+00:00"], ids=["utc", "naive", "offset"])
def test_load_when_iso_file_is_large_then_no_python_object_per_row(tmp_path: Path, suffix: str) -> None:
    rows = 50_000
    ts = T0 + np.arange(rows, dtype=np.int64) * M
    stamps = np.datetime_as_string(ts.astype("datetime64[ms]"), unit="s")
    path = tmp_path / "btc.csv"
    path.write_text("date,open,high,low,close,volume\n" + "".join(f"{s}{suffix},1,2,0.5,1.5,3\n" for s in stamps))
    tracemalloc.start()
    try:
        loaded = load_candle_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.bars.ts.tolist() == ts.tolist()
    # A Python string per timestamp costs well over 100 bytes a row (several copies of each while
    # decoding); the columnar parse needs a few int64 scratch arrays, about 50 bytes a row.
    assert peak / rows < 100


def test_load_when_iso_strings_mix_naive_and_offset_then_naive_read_as_utc(tmp_path: Path) -> None:
    text = "date,open,high,low,close,volume\n"
    text += "2023-11-14T22:14:00,1,2,1,2,1\n2023-11-14T23:15:00+01:00,1,2,1,2,1\n2023-11-14 22:16:00Z,1,2,1,2,1\n"
    assert load_candle_file(write(tmp_path, "mixed.csv", text)).bars.ts.tolist() == [T0, T0 + M, T0 + 2 * M]


def test_load_when_iso_string_has_sub_minute_part_then_rejected_with_row(tmp_path: Path) -> None:
    text = "date,open,high,low,close,volume\n2023-11-14T22:14:00Z,1,2,1,2,1\n2023-11-14T22:15:00.500Z,1,2,1,2,1\n"
    with pytest.raises(ReplayDataError, match=r"row 2 \(line 3\), column 'date': timestamp 2023-11-14T22:15:00\.500Z"):
        load_candle_file(write(tmp_path, "btc.csv", text))
