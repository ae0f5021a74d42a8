"""Replay loading speed: rows per second for 1-minute candle files, and the feed's candles per second.

Writes synthetic 1-minute files (ccxt CSV, gzipped CSV, ISO-dated generic CSV,
Parquet) to a temporary directory, loads each through the replay loader (parse
plus full validation), then drains a ReplayFeed over the CSV. Prints figures;
asserts nothing.

    .venv/bin/python bench/replay_load.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desk.core.types import MINUTE_MS  # noqa: E402
from desk.services.feed.candle_files import load_candle_file  # noqa: E402
from desk.services.feed.replay import ReplayFeed, ReplaySource  # noqa: E402

T0 = 1_700_000_040_000


def synthetic_frame(rows: int) -> pd.DataFrame:
    """A plausible BTC/USD minute series: a random walk with consistent high/low, rounded to cents."""
    rng = np.random.default_rng(7)
    close = np.round(60_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, rows))), 1)
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.round(np.abs(rng.normal(0.0, 20.0, rows)), 1)
    return pd.DataFrame(
        {
            "timestamp": T0 + np.arange(rows, dtype=np.int64) * MINUTE_MS,
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": np.round(rng.exponential(2.0, rows), 8),
        }
    )


def timed_load(path: Path, rows: int, label: str) -> None:
    start = time.perf_counter()
    loaded = load_candle_file(path)
    elapsed = time.perf_counter() - start
    assert len(loaded.bars) == rows
    size_mb = path.stat().st_size / 1e6
    print(f"  {label:<28} {size_mb:7.1f} MB  {elapsed:6.2f} s  {rows / elapsed:>12,.0f} rows/s  ({loaded.layout})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = args.rows
    print(f"replay load, {rows:,} one-minute rows; python {platform.python_version()}, {platform.machine()}")
    frame = synthetic_frame(rows)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ccxt = root / "btcusd.csv"
        frame.to_csv(ccxt, header=False, index=False)
        gz = root / "btcusd.csv.gz"
        frame.to_csv(gz, header=False, index=False, compression="gzip")
        generic = root / "btcusd_iso.csv"
        iso = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        iso.rename(columns={"timestamp": "date"}).to_csv(generic, index=False)
        parquet = root / "btcusd.parquet"
        frame.to_parquet(parquet, index=False)

        timed_load(ccxt, rows, "ccxt CSV")
        timed_load(gz, rows, "ccxt CSV, gzipped")
        timed_load(generic, rows, "generic CSV, ISO dates")
        timed_load(parquet, rows, "Parquet")

        start = time.perf_counter()
        feed = ReplayFeed([ReplaySource(ccxt, "BTC/USD")])
        built = time.perf_counter() - start
        start = time.perf_counter()
        steps = 0
        while feed.next_candles() is not None:
            steps += 1
        drained = time.perf_counter() - start
        print(f"  ReplayFeed: built in {built:.2f} s; next_candles {steps / drained:,.0f} steps/s ({steps:,} steps)")


if __name__ == "__main__":
    main()
