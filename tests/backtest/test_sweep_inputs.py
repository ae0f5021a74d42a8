"""Sweep inputs: param sets, ranges, walk-forward warm-up over gaps, and the `sweep` command's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import main
from desk.core.errors import ConfigError
from desk.core.types import MINUTE_MS
from desk.services.feed.replay import ReplaySource
from desk.sweep import SweepError, SweepSpec, plan_tasks, run_sweep, validate_param_sets, walk_forward_windows
from tests.backtest.test_sweep import START, WORKER, sweep_test_config, synthetic_csv


def test_validate_when_the_grid_repeats_a_value_then_it_runs_once() -> None:
    # 5 and 5.0 are the same period once the int field has them.
    valid, skipped = validate_param_sets(sweep_test_config(), SweepSpec(WORKER, grid={"fast": [5, 8, 5, 5.0]}))
    assert valid == [{"fast": 5}, {"fast": 8}]
    assert skipped == []


@pytest.mark.parametrize(
    ("bounds", "named"),
    [((5, "ten"), "ranges['fast']"), ((5.0, float("inf")), "ranges['fast']"), ((True, 9), "ranges['fast']")],
)
def test_spec_when_a_range_bound_is_not_a_finite_number_then_sweep_error_names_it(
    bounds: tuple[Any, Any], named: str
) -> None:
    with pytest.raises(SweepError) as caught:
        SweepSpec(WORKER, ranges={"fast": bounds}, random_samples=3)
    assert named in str(caught.value)


def test_spec_when_random_search_has_no_range_then_sweep_error() -> None:
    with pytest.raises(SweepError, match="range"):
        SweepSpec(WORKER, ranges={}, random_samples=3)


def test_validate_when_a_float_param_has_whole_number_bounds_then_draws_are_floats() -> None:
    config = sweep_test_config(strategy="bollinger", params={"period": 20, "num_std": 2.0})
    valid, _ = validate_param_sets(config, SweepSpec(WORKER, ranges={"num_std": (1, 3)}, random_samples=20, seed=4))
    assert len(valid) == 20
    assert all(isinstance(s["num_std"], float) and 1.0 <= s["num_std"] <= 3.0 for s in valid)
    assert len({s["num_std"] for s in valid}) == 20  # not just 1, 2 and 3


@pytest.mark.parametrize("seed", range(6))
def test_validate_when_a_range_reaches_an_invalid_value_then_error_whatever_the_seed(seed: int) -> None:
    spec = SweepSpec(WORKER, ranges={"fast": (0, 6)}, random_samples=3, seed=seed)
    with pytest.raises(SweepError, match="fast=0") as caught:
        validate_param_sets(sweep_test_config(), spec)
    assert WORKER in str(caught.value)


def test_plan_when_a_gap_precedes_a_split_then_the_warm_up_still_ends_at_the_split(tmp_path: Path) -> None:
    config = sweep_test_config()  # 60 seed candles
    # 1,000 minutes with minutes 480..509 missing: the 60 candles before minute 500 start at minute 420.
    ts = np.array([START + m * MINUTE_MS for m in range(1_000) if not 480 <= m < 510], dtype=np.int64)
    windows = walk_forward_windows(int(ts[0]), int(ts[-1]), 1, 0.5)
    tasks = plan_tasks(config, SweepSpec(WORKER, grid={"fast": [5]}), [{"fast": 5}], windows, tmp_path, candle_ts=ts)
    test = next(t for t in tasks if t.split == "test")
    assert (test.start_ms - START) // MINUTE_MS == 500
    warm = ts[(ts >= test.feed_start_ms) & (ts < test.start_ms)]
    assert len(warm) == 60
    assert (test.feed_start_ms - START) // MINUTE_MS == 420


def test_plan_when_a_part_has_no_candle_to_trade_after_warm_up_then_sweep_error_names_the_fold(
    tmp_path: Path,
) -> None:
    config = sweep_test_config()  # 60 seed candles
    # Minutes 240..509 are missing: fold 0's test part [250, 500) holds no candle at all.
    ts = np.array([START + m * MINUTE_MS for m in range(1_000) if not 240 <= m < 510], dtype=np.int64)
    windows = walk_forward_windows(int(ts[0]), int(ts[-1]), 2, 0.5)
    with pytest.raises(SweepError, match="fold 0 test"):
        plan_tasks(config, SweepSpec(WORKER, grid={"fast": [5]}), [{"fast": 5}], windows, tmp_path, candle_ts=ts)
    # The first train part warms up on its own start: 60 of its candles leave none to trade.
    short = np.array([START + m * MINUTE_MS for m in range(100)], dtype=np.int64)
    windows = walk_forward_windows(int(short[0]), int(short[-1]), 1, 0.6)
    with pytest.raises(SweepError, match="fold 0 train"):
        plan_tasks(config, SweepSpec(WORKER, grid={"fast": [5]}), [{"fast": 5}], windows, tmp_path, candle_ts=short)


def test_run_sweep_when_no_cpu_is_given_to_ray_then_sweep_error_before_ray_starts(tmp_path: Path) -> None:
    source = ReplaySource(synthetic_csv(tmp_path / "syn.csv", 600), "SYN/USD")
    spec = SweepSpec(WORKER, grid={"fast": [5]}, folds=1, train_fraction=0.5)
    with pytest.raises(SweepError, match="num_cpus"):
        run_sweep(sweep_test_config(), [source], spec, tmp_path / "out", num_cpus=0)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(sweep_test_config().model_dump(mode="json")))
    return path


def sweep_cli(config_path: Path, data: Path, out: Path, *options: str) -> int:
    return main.main(
        [
            *("--config", str(config_path), "--log-level", "WARNING", "sweep", "--data", f"SYN/USD={data}"),
            *("--worker", WORKER, "--out", str(out), *options),
        ]
    )


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--grid", "fast=5", "--grid", "fast=8"], "--grid"),  # the second would silently replace the first
        (["--random", "3"], "--range"),  # nothing to draw from
        (["--random", "3", "--range", "fast=2:9", "--grid", "slow=30"], "--grid"),  # the grid would be ignored
        (["--grid", "fast=5", "--range", "fast=2:9"], "--range"),  # the range would be ignored
        (["--random", "3", "--range", "fast=2:9:12"], "--range"),
        (["--random", "3", "--range", "fast=two:nine"], "--range"),
        (["--grid", "fast=5", "--cpus", "0"], "--cpus"),  # Ray would wait forever for a CPU
    ],
)
def test_sweep_command_when_options_conflict_or_are_malformed_then_bad_input_names_the_option(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], named: str
) -> None:
    data = synthetic_csv(tmp_path / "syn.csv", 600)
    assert sweep_cli(config_path, data, tmp_path / "out", *options) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_parse_grid_when_a_name_repeats_then_config_error() -> None:
    from desk.cli_backtest import parse_grid

    with pytest.raises(ConfigError, match="fast"):
        parse_grid(["fast=5", "slow=30", "fast=8"], "--grid")


def test_run_sweep_when_out_is_a_file_then_sweep_error_before_ray_starts(tmp_path: Path) -> None:
    source = ReplaySource(synthetic_csv(tmp_path / "syn.csv", 600), "SYN/USD")
    out = tmp_path / "out"
    out.write_text("not a folder")
    spec = SweepSpec(WORKER, grid={"fast": [5]}, folds=1, train_fraction=0.5)
    with pytest.raises(SweepError, match="is a file"):
        run_sweep(sweep_test_config(), [source], spec, out, num_cpus=1)
    assert out.read_text() == "not a folder"
