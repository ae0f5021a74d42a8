"""Parameter sweeps: param sets, validation before launch, walk-forward windows, and a real sweep through Ray."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import desk.sweep as sweep
from desk.config import DeskConfig, parse_config
from desk.core.types import MINUTE_MS
from desk.services.feed.replay import ReplaySource
from desk.sweep import (
    SweepError,
    SweepSpec,
    Window,
    format_table,
    grid_param_sets,
    plan_tasks,
    random_param_sets,
    run_sweep,
    sweep_config,
    validate_param_sets,
    walk_forward_windows,
)
from tests.conftest import config_data_for_tests, deep_update

START = 1_772_323_200_000  # 2026-03-01 00:00 UTC
WORKER = "syn-sma"


def synthetic_csv(path: Path, minutes: int, seed: int = 3) -> Path:
    """A random walk with a four-hour swing, so an SMA crossover trades a few times a day."""
    rng = np.random.default_rng(seed)
    steps = np.arange(minutes)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0008, minutes)) + 0.01 * np.sin(2 * np.pi * steps / 240))
    open_ = np.concatenate(([100.0], close[:-1]))
    high, low = np.maximum(open_, close) * 1.0005, np.minimum(open_, close) * 0.9995
    rows = zip(steps.tolist(), open_.tolist(), high.tolist(), low.tolist(), close.tolist(), strict=True)
    path.write_text(
        "".join(f"{START + i * MINUTE_MS},{o:.4f},{h:.4f},{lo:.4f},{c:.4f},50\n" for i, o, h, lo, c in rows)
    )
    return path


def sweep_test_config(**worker: Any) -> DeskConfig:
    data = deep_update(config_data_for_tests(), {"feed": {"symbols": ["SYN/USD", "BTC/USD"], "seed_candles": 60}})
    data["workers"] = [
        {"name": WORKER, "symbol": "SYN/USD", "strategy": "sma_cross", "params": {"fast": 5, "slow": 20}, **worker},
        {"name": "btc-rsi", "symbol": "BTC/USD", "strategy": "rsi", "params": {"period": 14}},
    ]
    return parse_config(data)


def test_grid_expands_every_combination_in_the_order_given() -> None:
    assert grid_param_sets({"fast": [5, 10], "slow": [30, 60]}) == [
        {"fast": 5, "slow": 30},
        {"fast": 5, "slow": 60},
        {"fast": 10, "slow": 30},
        {"fast": 10, "slow": 60},
    ]


def test_random_sampling_is_deterministic_by_seed_and_respects_ranges() -> None:
    ranges: dict[str, tuple[float, float]] = {"fast": (2, 4), "num_std": (1.5, 2.5)}
    first = random_param_sets(ranges, 30, seed=11)
    assert first == random_param_sets(ranges, 30, seed=11)
    assert first != random_param_sets(ranges, 30, seed=12)
    assert all(isinstance(s["fast"], int) and isinstance(s["num_std"], float) for s in first)
    assert {s["fast"] for s in first} == {2, 3, 4}  # ints are inclusive of both bounds
    assert all(1.5 <= s["num_std"] <= 2.5 for s in first)
    # Repeated draws run once: three ints can only make three distinct sets.
    assert sorted(s["fast"] for s in random_param_sets({"fast": (2, 4)}, 30, seed=11)) == [2, 3, 4]


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        (SweepSpec(WORKER, grid={"fast": [5, -1]}), "fast=-1"),  # below the field's bound
        (SweepSpec(WORKER, grid={"fast": ["five"]}), "fast='five'"),  # wrong type
        (SweepSpec(WORKER, grid={"fastt": [5]}), "'fastt'"),  # not a param of the strategy
        (SweepSpec(WORKER, grid={"fast": [40]}), "slow=20"),  # the worker's own slow can never exceed 40
        (SweepSpec(WORKER, ranges={"fast": (1, 5), "atr_period": (-3, 2)}, random_samples=5), "atr_period="),
    ],
)
def test_a_bad_param_is_rejected_before_anything_runs(
    spec: SweepSpec, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a task was launched")

    monkeypatch.setattr(sweep, "_run_all", must_not_run)
    source = ReplaySource(synthetic_csv(tmp_path / "syn.csv", 300), "SYN/USD")
    with pytest.raises(SweepError, match="param") as caught:
        run_sweep(sweep_test_config(), [source], spec, tmp_path / "out")
    assert named in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_combination_that_only_breaks_a_rule_between_params_is_skipped() -> None:
    spec = SweepSpec(WORKER, grid={"fast": [5, 40], "slow": [30, 60]})
    valid, skipped = validate_param_sets(sweep_test_config(), spec)
    assert valid == [{"fast": 5, "slow": 30}, {"fast": 5, "slow": 60}, {"fast": 40, "slow": 60}]
    assert skipped == [({"fast": 40, "slow": 30}, "slow (30) must be greater than fast (40)")]


def test_spec_rejects_inconsistent_settings() -> None:
    with pytest.raises(SweepError, match="exactly one of grid and ranges"):
        SweepSpec(WORKER)
    with pytest.raises(SweepError, match="train_fraction"):
        SweepSpec(WORKER, grid={"fast": [5]}, train_fraction=1.0)
    with pytest.raises(SweepError, match="unknown metric 'profit'"):
        SweepSpec(WORKER, grid={"fast": [5]}, metric="profit")
    with pytest.raises(SweepError, match="no worker 'nobody'"):
        validate_param_sets(sweep_test_config(), SweepSpec("nobody", grid={"fast": [5]}))


def test_walk_forward_windows_are_consecutive_whole_minutes() -> None:
    m = MINUTE_MS
    # Ten minutes (opens 0..9) in two folds of five, 60 % in-sample.
    assert walk_forward_windows(0, 9 * m, 2, 0.6) == [Window(0, 0, 3 * m, 5 * m), Window(1, 5 * m, 8 * m, 10 * m)]
    # Three folds of 3, 3 and 4 minutes; 0.7 of 3 is 2 in-sample, of 4 is 2.8 → 2.
    assert walk_forward_windows(100, 100 + 9 * m, 3, 0.7) == [
        Window(0, 100, 100 + 2 * m, 100 + 3 * m),
        Window(1, 100 + 3 * m, 100 + 5 * m, 100 + 6 * m),
        Window(2, 100 + 6 * m, 100 + 8 * m, 100 + 10 * m),
    ]
    # 0.7 * 10 is 7.000000000000001 and 0.3 * 10 is 3.0000000000000004 in binary: still 7 and 3.
    assert walk_forward_windows(0, 9 * m, 1, 0.7)[0].split_ms == 7 * m
    assert walk_forward_windows(0, 9 * m, 1, 0.3)[0].split_ms == 3 * m
    with pytest.raises(SweepError, match="fold 0 has 1 minutes"):
        walk_forward_windows(0, 2 * m, 3, 0.5)


def test_each_task_warms_up_on_earlier_data_and_has_its_own_folder(tmp_path: Path) -> None:
    config = sweep_test_config()  # 60 seed candles
    windows = walk_forward_windows(START, START + 999 * MINUTE_MS, 2, 0.5)
    tasks = plan_tasks(config, SweepSpec(WORKER, grid={"fast": [5]}), [{"fast": 5}], windows, tmp_path)
    assert [(t.fold, t.split) for t in tasks] == [(0, "train"), (0, "test"), (1, "train"), (1, "test")]
    assert [(t.feed_start_ms - START) // MINUTE_MS for t in tasks] == [0, 190, 440, 690]
    assert [(t.start_ms - START) // MINUTE_MS for t in tasks] == [0, 250, 500, 750]
    assert len({t.out_dir for t in tasks}) == 4
    assert tasks[0].params == {"fast": 5, "slow": 20}  # the worker's other params are kept


def test_each_run_keeps_only_the_swept_worker_with_its_params() -> None:
    config = sweep_test_config()
    run = sweep_config(config, WORKER, {"fast": 8, "slow": 21})
    assert [(w.name, w.params) for w in run.workers] == [(WORKER, {"fast": 8, "slow": 21})]
    assert run.model_dump(exclude={"workers"}) == config.model_dump(exclude={"workers"})


def test_a_real_sweep_through_ray_ranks_param_sets_out_of_sample(tmp_path: Path) -> None:
    source = ReplaySource(synthetic_csv(tmp_path / "syn.csv", 3_000), "SYN/USD")
    spec = SweepSpec(WORKER, grid={"fast": [5, 10], "slow": [30]}, folds=2, train_fraction=0.5)
    out_dir = tmp_path / "sweep"
    started = time.perf_counter()
    result = run_sweep(sweep_test_config(), [source], spec, out_dir, num_cpus=2)
    elapsed = time.perf_counter() - started
    table = result.table
    assert result.tasks == 8 and len(table) == 2
    expected = ["rank", "param_hash", "fast", "slow"]
    expected += [f"fold{f}_{side}{suffix}" for f in (0, 1) for side in ("in", "out") for suffix in ("", "_trades")]
    expected += ["mean_in", "trades_in", "mean_out", "trades_out"]
    assert list(table.columns) == expected
    assert table["rank"].tolist() == [1, 2]
    assert table["mean_out"].iloc[0] >= table["mean_out"].iloc[1]
    assert (table["trades_in"] > 0).all()
    # One store per task: runs/<param-hash>/<fold>-<split>/ with its journal and database.
    stores = sorted(p.parent.relative_to(out_dir / "runs") for p in (out_dir / "runs").glob("*/*/desk.db"))
    assert len(stores) == 8
    assert {s.name for s in stores} == {"0-train", "0-test", "1-train", "1-test"}
    assert {s.parent.name for s in stores} == set(table["param_hash"])
    written = pd.read_csv(out_dir / "sweep.csv")
    assert list(written.columns) == expected and written["param_hash"].tolist() == table["param_hash"].tolist()
    text = format_table(result)
    assert "ranked by mean out-of-sample sharpe" in text and "mean_out" in text
    print(f"sweep of 8 tasks: {elapsed:.1f} s, of which Ray start-up {result.ray_start_seconds:.1f} s")
