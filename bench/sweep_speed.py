"""Sweep speed: backtest tasks per wall second through Ray with 1 and with 2 worker processes.

Writes a synthetic 1-minute candle file (a random walk with a four-hour swing),
then runs the same small SMA-crossover sweep (param sets x folds x {train, test})
twice into temporary folders, once per CPU count. Ray start-up is timed apart
from the tasks, since it is paid once per sweep. Prints figures; asserts nothing.

    .venv/bin/python bench/sweep_speed.py [--minutes 20000] [--sets 4] [--folds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desk.config import parse_config  # noqa: E402
from desk.core.types import MINUTE_MS  # noqa: E402
from desk.services.feed.replay import ReplaySource  # noqa: E402
from desk.sweep import SweepSpec, format_table, run_sweep  # noqa: E402

START = 1_772_323_200_000  # 2026-03-01 00:00 UTC


def write_candles(path: Path, minutes: int) -> Path:
    rng = np.random.default_rng(3)
    steps = np.arange(minutes)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0008, minutes)) + 0.01 * np.sin(2 * np.pi * steps / 240))
    open_ = np.concatenate(([100.0], close[:-1]))
    high, low = np.maximum(open_, close) * 1.0005, np.minimum(open_, close) * 0.9995
    ts = START + steps * MINUTE_MS
    np.savetxt(path, np.column_stack([ts, open_, high, low, close, np.full(minutes, 50.0)]), fmt="%.4f", delimiter=",")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=20_000, help="candles in the synthetic file")
    parser.add_argument("--sets", type=int, default=4, help="param sets (fast SMA periods)")
    parser.add_argument("--folds", type=int, default=2)
    args = parser.parse_args()

    data = yaml.safe_load((ROOT / "configs" / "config.yaml").read_text())
    data["feed"].update({"symbols": ["SYN/USD"], "seed_candles": 60})
    data["store"].update({"journal_dir": "journal", "database_url": "sqlite:///desk.db"})
    data["workers"] = [{"name": "syn-sma", "symbol": "SYN/USD", "strategy": "sma_cross", "params": {"slow": 60}}]
    config = parse_config(data)
    spec = SweepSpec(
        "syn-sma", grid={"fast": [5 + 5 * k for k in range(args.sets)]}, folds=args.folds, train_fraction=0.7
    )
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {args.minutes:,} candles, ", end="")
    print(f"{args.sets} param sets x {args.folds} folds x 2 splits = {args.sets * args.folds * 2} backtests")
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        source = ReplaySource(write_candles(Path(tmp) / "syn.csv", args.minutes), "SYN/USD")
        for num_cpus in (1, 2):
            started = time.perf_counter()
            result = run_sweep(config, [source], spec, Path(tmp) / f"cpus{num_cpus}", num_cpus=num_cpus)
            wall = time.perf_counter() - started
            print(
                f"num_cpus={num_cpus}: {result.tasks / result.tasks_seconds:5.2f} tasks/s over the tasks "
                f"({result.tasks_seconds:5.1f} s), {result.tasks / wall:5.2f} tasks/s end to end ({wall:5.1f} s "
                f"with Ray start-up {result.ray_start_seconds:.1f} s and shut-down)"
            )
        print()
        print(format_table(result))


if __name__ == "__main__":
    main()
