"""The replay feed: candle file layouts, validation messages, timeline alignment, gaps, bounds, seek."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from desk.core.errors import ReplayDataError
from desk.core.types import MINUTE_MS
from desk.services.feed.candle_files import KNOWN_LAYOUTS, load_candle_file
from desk.services.feed.replay import infer_symbol

T0 = 1_700_000_040_000  # 2023-11-14T22:14:00Z, on a minute boundary
T0_ISO = "2023-11-14T22:14:00Z"
M = MINUTE_MS


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def ccxt_rows(count: int, start: int = T0, skip: tuple[int, ...] = (), price: float = 100.0) -> str:
    """`count` well-formed ccxt rows one minute apart, leaving out the minutes in `skip`."""
    lines = []
    for i in range(count):
        if i in skip:
            continue
        p = price + i
        lines.append(f"{start + i * M},{p},{p + 2},{p - 1},{p + 1},{i + 1}")
    return "\n".join(lines) + "\n"


def problems_of(error: pytest.ExceptionInfo[ReplayDataError]) -> str:
    return str(error.value)


# ------------------------------------------------------------------------------------- layouts


def test_load_when_ccxt_without_header_then_exact_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "btc.csv", f"{T0},100.5,101,99.5,100.75,1.25\n{T0 + M},100.75,102,100,101,0\n")
    loaded = load_candle_file(path)
    assert loaded.layout == "ccxt"
    assert loaded.bars.ts.dtype == np.int64
    assert loaded.bars.ts.tolist() == [T0, T0 + M]
    assert loaded.bars.open.tolist() == [100.5, 100.75]
    assert loaded.bars.high.tolist() == [101.0, 102.0]
    assert loaded.bars.low.tolist() == [99.5, 100.0]
    assert loaded.bars.close.tolist() == [100.75, 101.0]
    assert loaded.bars.volume.tolist() == [1.25, 0.0]


def test_load_when_ccxt_header_then_detected_as_ccxt(tmp_path: Path) -> None:
    path = write(tmp_path, "btc.csv", "timestamp,open,high,low,close,volume\n" + ccxt_rows(2))
    loaded = load_candle_file(path)
    assert loaded.layout == "ccxt"
    assert loaded.bars.close.tolist() == [101.0, 102.0]


def test_load_when_kraken_ohlcvt_then_seconds_become_ms_and_trades_ignored(tmp_path: Path) -> None:
    seconds = T0 // 1000
    path = write(
        tmp_path,
        "XBTUSD_1.csv",
        f"{seconds},30000.1,30010,29990,30005.5,0.5,12\n{seconds + 60},30005.5,30006,30001,30002,1.5,3\n",
    )
    loaded = load_candle_file(path)
    assert loaded.layout == "kraken"
    assert loaded.bars.ts.tolist() == [T0, T0 + M]
    assert loaded.bars.open.tolist() == [30000.1, 30005.5]
    assert loaded.bars.volume.tolist() == [0.5, 1.5]


@pytest.mark.parametrize("scale", [1, 1000], ids=["ms", "us"])
def test_load_when_binance_klines_then_open_time_in_ms_or_us_read(tmp_path: Path, scale: int) -> None:
    rows = [
        f"{(T0 + i * M) * scale},{10 + i},{11 + i},{9 + i},{10.5 + i},{100 + i},{(T0 + i * M + 59_999) * scale},"
        f"1050.0,7,50.0,525.0,0"
        for i in range(2)
    ]
    path = write(tmp_path, "BTCUSDT-1m-2024-01.csv", "\n".join(rows) + "\n")
    loaded = load_candle_file(path)
    assert loaded.layout == "binance"
    assert loaded.bars.ts.tolist() == [T0, T0 + M]
    assert loaded.bars.close.tolist() == [10.5, 11.5]
    assert loaded.bars.volume.tolist() == [100.0, 101.0]


def test_load_when_binance_file_has_header_then_detected_as_binance(tmp_path: Path) -> None:
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    header += "taker_buy_quote_volume,ignore\n"
    path = write(tmp_path, "BTCUSDT-1m.csv", header + f"{T0},10,11,9,10.5,100,{T0 + 59_999},1050.0,7,50.0,525.0,0\n")
    loaded = load_candle_file(path)
    assert loaded.layout == "binance"
    assert loaded.bars.close.tolist() == [10.5]


CDD_HEADER = (
    "https://www.CryptoDataDownload.com\nunix,date,symbol,open,high,low,close,Volume ETH,Volume USD,tradecount\n"
)


def test_load_when_cryptodatadownload_then_rows_reversed_to_oldest_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Binance_ETHUSD_minute.csv",
        CDD_HEADER
        + f"{T0 + 2 * M},2023-11-14 22:16:00,ETH/USD,3,4,2,3.5,1.5,5.25,9\n"
        + f"{T0 + M},2023-11-14 22:15:00,ETH/USD,2,3,1,3,2.5,7.5,8\n"
        + f"{T0},2023-11-14 22:14:00,ETH/USD,1,2,0.5,2,3.5,7,7\n",
    )
    loaded = load_candle_file(path)
    assert loaded.layout == "cryptodatadownload"
    assert loaded.newest_first
    assert loaded.bars.ts.tolist() == [T0, T0 + M, T0 + 2 * M]
    assert loaded.bars.open.tolist() == [1.0, 2.0, 3.0]
    assert loaded.bars.volume.tolist() == [3.5, 2.5, 1.5]  # "Volume ETH", the base asset


def test_load_when_cryptodatadownload_already_oldest_first_then_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "eth.csv",
        CDD_HEADER + f"{T0 // 1000},x,ETH/USD,1,2,0.5,2,3.5,7,7\n{T0 // 1000 + 60},x,ETH/USD,2,3,1,3,2.5,7.5,8\n",
    )
    loaded = load_candle_file(path)
    assert not loaded.newest_first
    assert loaded.bars.ts.tolist() == [T0, T0 + M]


def test_load_when_generic_header_in_any_case_and_order_then_columns_mapped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sol.csv",
        "Close,Vol,Low,High,Open,Date\n21.5,7,20,22,21,2023-11-14T22:14:00Z\n22,8,21,22.5,21.5,2023-11-14T22:15:00Z\n",
    )
    loaded = load_candle_file(path)
    assert loaded.layout == "generic"
    assert loaded.bars.ts.tolist() == [T0, T0 + M]
    assert loaded.bars.open.tolist() == [21.0, 21.5]
    assert loaded.bars.high.tolist() == [22.0, 22.5]
    assert loaded.bars.low.tolist() == [20.0, 21.0]
    assert loaded.bars.close.tolist() == [21.5, 22.0]
    assert loaded.bars.volume.tolist() == [7.0, 8.0]


def test_load_when_layout_declared_then_used_without_detection(tmp_path: Path) -> None:
    # Seven columns would be detected as Kraken; declared generic, the header decides.
    path = write(tmp_path, "x.csv", "time,open,high,low,close,volume,trades\n" + f"{T0},1,2,0.5,1.5,3,4\n")
    assert load_candle_file(path).layout == "generic"
    assert load_candle_file(path, layout="kraken").layout == "kraken"


def test_load_when_declared_layout_has_other_column_count_then_error_says_both(tmp_path: Path) -> None:
    path = write(tmp_path, "btc.csv", ccxt_rows(2))
    with pytest.raises(ReplayDataError) as error:
        load_candle_file(path, layout="kraken")
    assert "btc.csv" in problems_of(error)
    assert "layout 'kraken' has 7 columns but the file has 6" in problems_of(error)


def test_load_when_declared_generic_without_header_then_error(tmp_path: Path) -> None:
    path = write(tmp_path, "btc.csv", ccxt_rows(2))
    with pytest.raises(ReplayDataError, match="needs a header line"):
        load_candle_file(path, layout="generic")


def test_load_when_unknown_layout_declared_then_error_lists_known_layouts(tmp_path: Path) -> None:
    path = write(tmp_path, "btc.csv", ccxt_rows(2))
    with pytest.raises(ReplayDataError) as error:
        load_candle_file(path, layout="bitstamp")
    assert "unknown layout 'bitstamp'" in problems_of(error)
    assert all(layout in problems_of(error) for layout in KNOWN_LAYOUTS)


def test_load_when_headerless_column_count_unknown_then_error_lists_known_layouts(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.csv", f"{T0},1,2,0.5,1.5,3,4,5\n")
    with pytest.raises(ReplayDataError) as error:
        load_candle_file(path)
    assert "odd.csv: cannot detect the layout: 8 columns and no header" in problems_of(error)
    assert all(layout in problems_of(error) for layout in KNOWN_LAYOUTS)


def test_load_when_header_lacks_close_then_error_names_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", f"time,open,high,low,last,volume\n{T0},1,2,0.5,1.5,3\n")
    with pytest.raises(ReplayDataError, match="missing close"):
        load_candle_file(path)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (str(T0 // 1000), str(T0 // 1000 + 60)),
        (str(T0), str(T0 + M)),
        (str(T0 * 1000), str((T0 + M) * 1000)),
        (str(T0 * 1_000_000), str((T0 + M) * 1_000_000)),
        (T0_ISO, "2023-11-14T22:15:00Z"),
        ("2023-11-14 22:14:00", "2023-11-14 22:15:00"),  # no offset: UTC
        ("2023-11-15T00:14:00+02:00", "2023-11-15T00:15:00+02:00"),
    ],
    ids=["s", "ms", "us", "ns", "iso-z", "iso-naive", "iso-offset"],
)
def test_load_when_timestamps_in_any_unit_then_epoch_ms(tmp_path: Path, first: str, second: str) -> None:
    path = write(tmp_path, "x.csv", f"timestamp,open,high,low,close,volume\n{first},1,2,1,2,1\n{second},2,3,2,3,1\n")
    assert load_candle_file(path).bars.ts.tolist() == [T0, T0 + M]


def test_load_when_csv_gz_then_same_candles_as_csv(tmp_path: Path) -> None:
    text = ccxt_rows(3)
    plain = write(tmp_path, "btc.csv", text)
    packed = tmp_path / "btc.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    a, b = load_candle_file(plain).bars, load_candle_file(packed).bars
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist()


def test_load_when_parquet_round_trip_then_same_values(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": [T0, T0 + M],
            "open": [1.5, 2.0],
            "high": [2.5, 3.0],
            "low": [1.0, 1.5],
            "close": [2.0, 2.5],
            "volume": [10.0, 0.0],
        }
    )
    path = tmp_path / "btc.parquet"
    frame.to_parquet(path)
    loaded = load_candle_file(path)
    assert loaded.layout == "ccxt"
    assert loaded.bars.ts.tolist() == [T0, T0 + M]
    assert loaded.bars.open.tolist() == [1.5, 2.0]
    assert loaded.bars.volume.tolist() == [10.0, 0.0]


def test_load_when_parquet_has_datetime_column_then_epoch_ms(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"date": pd.to_datetime([T0, T0 + M], unit="ms", utc=True), "o": 1.0, "open": 1.0, "high": 2.0}
        | {"low": 1.0, "close": 2.0, "vol": 5.0}
    )
    path = tmp_path / "btc.parquet"
    frame.to_parquet(path)
    loaded = load_candle_file(path)
    assert loaded.layout == "generic"
    assert loaded.bars.ts.tolist() == [T0, T0 + M]


def test_load_when_parquet_without_names_then_positional_layout(tmp_path: Path) -> None:
    frame = pd.DataFrame([[T0, 1.0, 2.0, 0.5, 1.5, 3.0], [T0 + M, 1.5, 2.0, 1.0, 1.0, 4.0]])
    frame.columns = [str(c) for c in frame.columns]
    path = tmp_path / "btc.parquet"
    frame.to_parquet(path)
    assert load_candle_file(path).layout == "ccxt"


def test_load_when_loaded_then_arrays_are_read_only(tmp_path: Path) -> None:
    bars = load_candle_file(write(tmp_path, "btc.csv", ccxt_rows(2))).bars
    with pytest.raises(ValueError, match="read-only"):
        bars.close[0] = 1.0


# ------------------------------------------------------------------------------------ validation

HEADER = "timestamp,open,high,low,close,volume\n"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (f"{T0 + M},101,103,100,,2", "row 2 (line 3), column 'close': missing value"),
        (f"{T0 + M},101,103,100,NaN,2", "row 2 (line 3), column 'close': missing value"),
        (f"{T0 + M},101,103,100,abc,2", "row 2 (line 3), column 'close': 'abc' is not a number"),
        (f"{T0 + M},101,inf,100,102,2", "row 2 (line 3), column 'high': inf is not a finite number"),
        (f"{T0 + M},101,103,100,102,1e400", "row 2 (line 3), column 'volume': inf is not a finite number"),
        (f"{T0 + M},0,103,0,102,2", "row 2 (line 3), column 'open': price 0.0 is not positive"),
        (f"{T0 + M},101,99,100,100,2", "row 2 (line 3), column 'high': high 99.0 is below low 100.0"),
        (f"{T0 + M},101,102,100,103,2", "row 2 (line 3), column 'high': high 102.0 is below max(open, close) 103.0"),
        (f"{T0 + M},101,103,101.5,102,2", "row 2 (line 3), column 'low': low 101.5 is above min(open, close) 101.0"),
        (f"{T0 + M},101,103,100,102,-2", "row 2 (line 3), column 'volume': volume -2.0 is negative"),
        (",101,103,100,102,2", "row 2 (line 3), column 'timestamp': missing timestamp"),
        (
            f"{T0 + 1000},101,103,100,102,2",
            "row 2 (line 3), column 'timestamp': timestamp 1700000041000 (ms) is not on a minute",
        ),
        (
            f"{(T0 + M) // 1000},101,103,100,102,2",
            "row 2 (line 3), column 'timestamp': timestamp 1700000100 is in s but",
        ),
        (f"{T0},101,103,100,102,2", "row 2 (line 3), column 'timestamp': duplicate timestamp 2023-11-14T22:14:00.000Z"),
        (
            f"{T0 - M},101,103,100,102,2",
            "row 2 (line 3), column 'timestamp': timestamp 2023-11-14T22:13:00.000Z is not later",
        ),
    ],
    ids=[
        "empty",
        "nan",
        "text",
        "infinite-price",
        "overflowing-volume",
        "zero-price",
        "high-below-low",
        "high-below-body",
        "low-above-body",
        "negative-volume",
        "empty-timestamp",
        "off-minute",
        "mixed-units",
        "duplicate",
        "out-of-order",
    ],
)
def test_load_when_row_breaks_a_rule_then_error_names_file_row_line_and_column(
    tmp_path: Path, row: str, expected: str
) -> None:
    path = write(tmp_path, "bad_btc.csv", HEADER + f"{T0},100,102,99,101,1\n{row}\n{T0 + 2 * M},101,103,100,102,2\n")
    with pytest.raises(ReplayDataError) as error:
        load_candle_file(path)
    message = problems_of(error)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_load_when_iso_timestamp_unparseable_then_error_quotes_it(tmp_path: Path) -> None:
    path = write(tmp_path, "eth.csv", f"date,open,high,low,close,volume\n{T0_ISO},1,2,1,2,1\nyesterday,1,2,1,2,1\n")
    with pytest.raises(ReplayDataError) as error:
        load_candle_file(path)
    assert "eth.csv: row 2 (line 3), column 'date': unparseable timestamp 'yesterday'" in problems_of(error)


def test_load_when_headerless_row_breaks_rule_then_line_equals_row_and_column_numbered(tmp_path: Path) -> None:
    path = write(tmp_path, "btc.csv", f"{T0},100,102,99,101,1\n{T0 + M},100,102,99,101,-1\n")
    with pytest.raises(ReplayDataError, match=r"btc\.csv: row 2 \(line 2\), column 6 \(volume\): volume -1\.0"):
        load_candle_file(path)


def test_load_when_cryptodatadownload_row_bad_then_row_counts_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "eth.csv",
        CDD_HEADER + f"{T0 + M},x,ETH/USD,2,3,1,3,2.5,7.5,8\n" + f"{T0},x,ETH/USD,1,0.4,0.5,2,3.5,7,7\n",
    )
    with pytest.raises(ReplayDataError, match=r"row 2 \(line 4\), column 'high': high 0\.4 is below low 0\.5"):
        load_candle_file(path)


def test_load_when_row_has_wrong_column_count_then_error_names_row_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "btc.csv", HEADER + f"{T0},1,2,1,2,1\n{T0 + M},1,2,1\n")
    with pytest.raises(ReplayDataError, match=r"btc\.csv: row 2 \(line 3\): expected 6 columns, found 4"):
        load_candle_file(path)


def test_load_when_many_rows_bad_then_first_ten_listed_and_total_counted(tmp_path: Path) -> None:
    rows = "".join(f"{T0 + i * M},1,2,1,2,-1\n" for i in range(25))
    path = write(tmp_path, "btc.csv", rows)
    with pytest.raises(ReplayDataError) as error:
        load_candle_file(path)
    assert error.value.total == 25
    assert len(error.value.problems) == 10
    assert "btc.csv: 25 problems in the candle data" in problems_of(error)
    assert "... and 15 more" in problems_of(error)


def test_load_when_several_rules_broken_then_all_reported_in_row_order(tmp_path: Path) -> None:
    path = write(tmp_path, "btc.csv", HEADER + f"{T0},1,2,1,,1\n{T0 + M},-1,2,-1,1,1\n")
    with pytest.raises(ReplayDataError) as error:
        load_candle_file(path)
    assert error.value.problems == [
        "row 1 (line 2), column 'close': missing value (empty, NaN or null)",
        "row 2 (line 3), column 'open': price -1.0 is not positive",
        "row 2 (line 3), column 'low': price -1.0 is not positive",
    ]


@pytest.mark.parametrize("text", ["", HEADER], ids=["empty", "header-only"])
def test_load_when_file_has_no_rows_then_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "empty.csv", text)
    with pytest.raises(ReplayDataError, match=r"empty\.csv: the file has no data rows"):
        load_candle_file(path)


def test_load_when_candles_are_five_minute_then_timeframe_rejected(tmp_path: Path) -> None:
    rows = "".join(f"{T0 + i * 5 * M},1,2,1,2,1\n" for i in range(4))
    path = write(tmp_path, "btc_5m.csv", rows)
    with pytest.raises(ReplayDataError, match=r"btc_5m\.csv: the candles are not 1-minute: the median step .* 300 s"):
        load_candle_file(path)


def test_load_when_one_minute_candles_have_a_gap_then_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "btc.csv", ccxt_rows(6, skip=(2, 3)))
    assert load_candle_file(path).bars.ts.tolist() == [T0, T0 + M, T0 + 4 * M, T0 + 5 * M]


def test_load_when_parquet_row_bad_then_row_named_without_line(tmp_path: Path) -> None:
    frame = pd.DataFrame({"timestamp": [T0, T0 + M], "open": 1.0, "high": [2.0, 0.5], "low": 1.0, "close": 1.0})
    frame["volume"] = 1.0
    path = tmp_path / "btc.parquet"
    frame.to_parquet(path)
    with pytest.raises(ReplayDataError, match=r"btc\.parquet: row 2, column 'high': high 0\.5 is below low 1\.0"):
        load_candle_file(path)


@pytest.mark.parametrize(("name", "expected"), [("btc.txt", "unsupported file type"), ("nope.csv", "no such file")])
def test_load_when_path_unusable_then_error_names_it(tmp_path: Path, name: str, expected: str) -> None:
    path = tmp_path / name
    if name.endswith(".txt"):
        path.write_text(ccxt_rows(2))
    with pytest.raises(ReplayDataError, match=f"{name}: {expected}"):
        load_candle_file(path)


# -------------------------------------------------------------------------------- infer_symbol

KNOWN = ["BTC/USD", "BTC/USDT", "ETH/USD", "SOL/EUR"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("btcusd.csv", "BTC/USD"),
        ("BTC-USD.parquet", "BTC/USD"),
        ("BTC_USDT.csv", "BTC/USDT"),
        ("XBTUSD.csv", "BTC/USD"),
        ("XBTUSD_1.csv", "BTC/USD"),
        ("XXBTZUSD.csv.gz", "BTC/USD"),
        ("ETHUSD_1m.csv", "ETH/USD"),
        ("eth-usd-2024-01.csv.gz", "ETH/USD"),
        ("Binance_BTCUSDT_minute.csv", "BTC/USDT"),
        ("BTCUSDT-1m-2024-01.csv", "BTC/USDT"),
        ("soleur.parquet", "SOL/EUR"),
        ("dogeusd.csv", None),
        ("prices.csv", None),
        ("BTCUSD_ETHUSD.csv", None),
    ],
)
def test_infer_symbol_when_file_named_then_matching_known_symbol(name: str, expected: str | None) -> None:
    assert infer_symbol(Path("/data") / name, KNOWN) == expected


def test_load_when_blank_lines_come_before_a_bad_row_then_the_error_names_its_real_line(tmp_path: Path) -> None:
    text = HEADER + f"{T0},100,102,99,101,2\n\n{T0 + M},101,103,100,102,2\n\n\n{T0 + 2 * M},101,103,100,nan,2\n"
    with pytest.raises(ReplayDataError) as raised:
        load_candle_file(write(tmp_path, "gappy.csv", text))
    assert "row 3 (line 7), column 'close': missing value" in str(raised.value)
