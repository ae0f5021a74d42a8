"""Runtime speed: simulated candles per wall second, and candle-close to order-submitted latency.

Runs the real TradingRuntime (threads, journal, SQLite) flat out on the simulated
market, once with 5 workers and once with 50 workers on 20 symbols, in a
temporary store. Prints figures; asserts nothing.

    .venv/bin/python bench/runtime_speed.py [--minutes 1440]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desk.config import parse_config  # noqa: E402
from desk.core.events import Event, OrderSubmitted  # noqa: E402
from desk.runtime import TradingRuntime  # noqa: E402
from desk.services.logging import configure_logging  # noqa: E402

STRATEGIES = [
    ("momentum", {"lookback": 60, "threshold": 0.004, "atr_mult": 6.0}),
    ("breakout", {"entry_period": 60, "exit_period": 30, "atr_mult": 6.0}),
    ("rsi", {"period": 14, "oversold": 30, "overbought": 70, "atr_mult": 6.0}),
    ("macd", {"fast": 12, "slow": 26, "signal": 9, "atr_mult": 6.0}),
    ("bollinger", {"period": 20, "num_std": 2.0, "atr_mult": 6.0}),
]
MORE_SYMBOLS = [
    "ADA",
    "DOT",
    "LINK",
    "AVAX",
    "XRP",
    "LTC",
    "ATOM",
    "UNI",
    "DOGE",
    "XLM",
    "ALGO",
    "AAVE",
    "FIL",
    "NEAR",
    "ETC",
    "BCH",
    "TRX",
]


class LatencyProbe:
    """Measures wall time from a minute's candles being handed over to each entry order's submission."""

    def __init__(self) -> None:
        self.minute_started = 0.0
        self.samples_ms: list[float] = []

    def apply(self, event: Event) -> None:
        if isinstance(event, OrderSubmitted) and event.purpose == "entry":
            self.samples_ms.append((time.perf_counter() - self.minute_started) * 1000.0)


def config_for(workers: int, symbols: list[str]) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "configs" / "config.yaml").read_text())
    data["feed"].update({"symbols": symbols, "seed_candles": 200})
    data["feed"]["simulated"]["speed"] = 0
    data["store"] = {"journal_dir": "journal", "database_url": "sqlite:///desk.db"}
    data["risk"]["max_concurrent_positions"] = workers
    data["risk"]["daily_loss_limit_pct"] = 0.5
    data["risk"]["trapdoor_pct"] = 0.6
    data["risk"]["max_drawdown_pct"] = 0.9
    data["portfolio"]["max_allocation_per_worker"] = 0.02
    data["workers"] = [
        {
            "name": f"w{i:02d}-{STRATEGIES[i % 5][0]}",
            "symbol": symbols[i % len(symbols)],
            "strategy": STRATEGIES[i % 5][0],
            "params": STRATEGIES[i % 5][1],
        }
        for i in range(workers)
    ]
    return data


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(workers: int, symbols: list[str], minutes: int) -> dict[str, float]:
    config = parse_config(config_for(workers, symbols))
    with tempfile.TemporaryDirectory() as folder:
        runtime = TradingRuntime(config, base_dir=Path(folder))
        probe = LatencyProbe()
        runtime.bus.subscribe(probe)
        original = runtime._process_minute

        async def timed(candles: list) -> None:
            probe.minute_started = time.perf_counter()
            await original(candles)

        runtime._process_minute = timed  # type: ignore[method-assign]
        started = time.perf_counter()
        summary = await runtime.run(max_candles=minutes)
        elapsed = time.perf_counter() - started
    return {
        "candles": summary.candles * len(symbols),
        "minutes": summary.candles,
        "seconds": elapsed,
        "events": summary.events,
        "orders": len(probe.samples_ms),
        "p50": percentile(probe.samples_ms, 0.50),
        "p99": percentile(probe.samples_ms, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=1440, help="simulated minutes per scenario")
    args = parser.parse_args()
    configure_logging("WARNING")
    print(f"Python {platform.python_version()} on {platform.machine()}, {args.minutes} simulated minutes per run")
    symbols_20 = ["BTC/USD", "ETH/USD", "SOL/USD"] + [f"{s}/USD" for s in MORE_SYMBOLS]
    scenarios = [("5 workers, 3 symbols", 5, symbols_20[:3]), ("50 workers, 20 symbols", 50, symbols_20)]
    print(f"{'scenario':<24}{'candles/s':>11}{'minutes/s':>11}{'events':>9}{'entries':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for label, workers, symbols in scenarios:
        figures = asyncio.run(measure(workers, symbols, args.minutes))
        candles_per_s = figures["candles"] / figures["seconds"]
        minutes_per_s = figures["minutes"] / figures["seconds"]
        print(
            f"{label:<24}{candles_per_s:>11.0f}{minutes_per_s:>11.0f}"
            f"{figures['events']:>9.0f}{figures['orders']:>9.0f}{figures['p50']:>9.2f}{figures['p99']:>9.2f}"
        )
    print("latency = wall time from handing a minute's candles to the runtime until each entry order is submitted")


if __name__ == "__main__":
    main()
