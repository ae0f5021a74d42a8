"""Parameter sweeps with walk-forward validation, each backtest a Ray task.

For every parameter set of one worker, the data's time span is cut into `folds`
consecutive windows; in each, the first `train_fraction` is in-sample ("train")
and the rest out-of-sample ("test"). Every (params, fold, split) is one backtest
(`desk.backtest.run_backtest`, the same engines that trade live) run as one Ray
task, journaled into `out_dir/runs/<param-hash>/<fold>-<train|test>/`. Rows are
ranked by their mean out-of-sample metric, ties broken by the in-sample mean.

Why Ray: it is an existing engine that scales past one machine; here it runs as a
local cluster of worker processes (one per CPU), which is all a sweep on one box
needs, and the same code can later target a real cluster.

Conventions:

* **One worker per run.** Each run's config is the given config with only the
  swept worker kept, its `params` replaced by the set under test; everything else
  (risk, sizing, fees, seed candles) is unchanged. Only the worker's symbol's file
  is replayed, since no other worker trades.
* **Windows** are whole minutes of the worker's candle file, from its first candle
  open to one minute after its last. Fold k spans minutes [k*M/F, (k+1)*M/F)
  (integer division), and its split is floor(minutes * train_fraction) in.
* **Warm-up comes from earlier data.** The feed of a window starts `seed_candles`
  candles before the window (never before the data; over a gap that is more than
  as many minutes), so trading starts at the window's start and the warm-up only
  reads the past; the first window of the data warms up on its own first minutes.
  A part left with no candle to trade after its warm-up is an error naming it.
* **Metrics** are the account's (`desk.reporting`, report.total), which with one
  worker is that worker marked to market. A metric that is undefined in a fold
  (Sharpe of a run without trades) is left out of that row's mean. For
  `max_drawdown`, `max_drawdown_duration_ms` and `fees`, lower ranks higher.
* **Validation first.** Every parameter set is checked with the strategy's
  `Params` model before Ray starts. A value that breaks a field's own bounds or
  type, or that fails in every set it appears in, is an error naming the param;
  a grid combination that only breaks a rule between params (slow <= fast) is
  skipped and listed in `SweepResult.skipped`. A random range whose low or high
  end breaks a field's bounds is an error whatever the seed draws. A float param
  draws floats even between whole-number bounds. Duplicate sets (a repeated grid
  value, a repeated random draw, 5 and 5.0 for an int) run once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
from pydantic import ValidationError

from desk.config import DeskConfig
from desk.core.errors import DeskError
from desk.core.types import MINUTE_MS
from desk.reporting import Metrics
from desk.services.feed.replay import ReplayFeed, ReplaySource
from desk.strategies.registry import strategy_class

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_duration_ms", "fees"})
# Every Metrics field but the opening balance, which is the same for every run.
METRICS = tuple(f.name for f in fields(Metrics) if f.name != "start_equity")
SPLITS = ("train", "test")
Progress = Callable[[int, int], None]


class SweepError(DeskError):
    """A sweep cannot run as specified; the message names the param, worker or window at fault."""


class SweepTaskError(SweepError):
    """A backtest of the sweep failed while running (the inputs were valid); names the run and its params."""


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """What to sweep: a `grid` of values, or `random_samples` draws from `ranges` (ints inclusive, floats uniform)."""

    worker: str
    grid: dict[str, list[Any]] | None = None
    random_samples: int | None = None
    ranges: dict[str, tuple[float, float]] | None = None
    folds: int = 3
    train_fraction: float = 0.7
    metric: str = "sharpe"
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.grid is None) == (self.ranges is None):
            raise SweepError("give exactly one of grid and ranges (with random_samples)")
        if self.grid is not None and (not self.grid or any(not values for values in self.grid.values())):
            raise SweepError("grid needs at least one param, each with at least one value")
        if self.ranges is not None:
            if not self.random_samples or self.random_samples < 1:
                raise SweepError("random search needs random_samples >= 1")
            if not self.ranges:
                raise SweepError("random search needs at least one param range to draw from")
            for name, bounds in self.ranges.items():
                # numpy would fail on a string or an infinite bound with an error that names no param.
                numbers = len(bounds) == 2 and all(_is_finite_number(bound) for bound in bounds)
                if not numbers or not bounds[0] <= bounds[1]:
                    raise SweepError(
                        f"ranges[{name!r}] must be (low, high), finite numbers with low <= high, got {bounds!r}"
                    )
        if self.folds < 1:
            raise SweepError(f"folds must be at least 1, got {self.folds}")
        if not 0.0 < self.train_fraction < 1.0:
            raise SweepError(f"train_fraction must be between 0 and 1 (exclusive), got {self.train_fraction}")
        if self.metric not in METRICS:
            raise SweepError(f"unknown metric {self.metric!r}; choose one of {', '.join(METRICS)}")


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Window:
    """One fold: trading runs over [start_ms, split_ms) in-sample and [split_ms, end_ms) out-of-sample."""

    fold: int
    start_ms: int
    split_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class Task:
    """One backtest: a param set on one side of one fold, with the feed range that includes its warm-up."""

    param_hash: str
    params: dict[str, Any]
    fold: int
    split: str
    feed_start_ms: int
    start_ms: int
    end_ms: int
    out_dir: Path


@dataclass(frozen=True, slots=True)
class TaskResult:
    param_hash: str
    fold: int
    split: str
    metrics: Metrics
    wall_seconds: float


@dataclass(frozen=True, slots=True)
class SweepResult:
    """The ranked table (one row per param set) and how it was produced.

    Times: `wall_seconds` for the whole call, `ray_start_seconds` for starting or joining the cluster,
    `tasks_seconds` from the first task submitted to the last result back.
    """

    spec: SweepSpec
    table: pd.DataFrame
    windows: list[Window]
    tasks: int
    wall_seconds: float
    ray_start_seconds: float
    tasks_seconds: float
    skipped: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def grid_param_sets(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination, the first param varying slowest (the order the grid lists them)."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def random_param_sets(ranges: dict[str, tuple[float, float]], samples: int, seed: int) -> list[dict[str, Any]]:
    """`samples` draws from one seeded generator; int bounds draw ints (inclusive), else floats; repeats dropped."""
    rng = np.random.default_rng(seed)
    sets: list[dict[str, Any]] = []
    for _ in range(samples):
        drawn: dict[str, Any] = {}
        for name, (low, high) in ranges.items():
            if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
                drawn[name] = int(rng.integers(low, high, endpoint=True))
            else:
                drawn[name] = float(rng.uniform(low, high))
        if drawn not in sets:
            sets.append(drawn)
    return sets


def walk_forward_windows(first_ts: int, last_ts: int, folds: int, train_fraction: float) -> list[Window]:
    """Cut the minutes from candle open `first_ts` to one after `last_ts` into consecutive folds."""
    minutes = (last_ts - first_ts) // MINUTE_MS + 1
    windows = []
    for fold in range(folds):
        begin, end = fold * minutes // folds, (fold + 1) * minutes // folds
        # The epsilon absorbs binary noise (0.7 * 10 is 7.000000000000001, 0.3 * 10 is 3.0000000000000004).
        train = math.floor((end - begin) * train_fraction + 1e-9)
        if train < 1 or train >= end - begin:
            raise SweepError(
                f"fold {fold} has {end - begin} minutes: too few for a train and a test part at "
                f"train_fraction {train_fraction}; use fewer folds or more data"
            )
        at = first_ts + begin * MINUTE_MS
        windows.append(Window(fold, at, at + train * MINUTE_MS, first_ts + end * MINUTE_MS))
    return windows


def param_hash(params: dict[str, Any]) -> str:
    """A short stable name for a param set (its folder under runs/)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def sweep_config(config: DeskConfig, worker: str, params: dict[str, Any]) -> DeskConfig:
    """The config of one run: only `worker`, with `params` in place of its own."""
    chosen = config.worker(worker).model_copy(update={"params": params})
    return DeskConfig.model_validate({**config.model_dump(), "workers": [chosen.model_dump()]})


def validate_param_sets(
    config: DeskConfig, spec: SweepSpec
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """The swept params of every valid set, and the skipped combinations; raise SweepError on a bad value."""
    try:
        worker = config.worker(spec.worker)
    except KeyError:
        raise SweepError(f"no worker {spec.worker!r}; workers are {[w.name for w in config.workers]}") from None
    params_model = strategy_class(worker.strategy).Params
    swept = list(spec.grid or spec.ranges or {})
    unknown = [name for name in swept if name not in params_model.model_fields]
    if unknown:
        known = ", ".join(params_model.model_fields)
        raise SweepError(f"{worker.strategy} has no param {unknown[0]!r} (worker {worker.name}); params: {known}")
    if spec.grid is not None:
        candidates = grid_param_sets(spec.grid)
    else:
        ranges = _checked_ranges(spec.ranges or {}, params_model, worker.params, worker.strategy, worker.name)
        candidates = random_param_sets(ranges, spec.random_samples or 0, spec.seed)
    failures: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    valid: list[dict[str, Any]] = []
    seen: set[str] = set()
    for candidate in candidates:
        try:
            checked = params_model.model_validate({**worker.params, **candidate})
        except ValidationError as exc:
            failures.append((candidate, exc.errors()))
            continue
        # Two sets the strategy sees alike (a repeated grid value, 5 and 5.0 for an int) would run twice
        # into one runs/<hash>/ folder and collide; the first spelling is kept.
        key = json.dumps(checked.model_dump(mode="json"), sort_keys=True)
        if key not in seen:
            seen.add(key)
            valid.append(candidate)
    skipped: list[tuple[dict[str, Any], str]] = []
    for candidate, errors in failures:
        for error in errors:
            name = str(error["loc"][0]) if error["loc"] else "?"
            value = {**worker.params, **candidate}.get(name)
            holders = [c for c in candidates if _value_of(c, worker.params, name) == value]
            failing = [c for c, errs in failures if c in holders and any(e["loc"][:1] == (name,) for e in errs)]
            # A bound or type error is the value's own fault; a rule between params is the value's
            # fault only if no combination satisfies it.
            if error["type"] != "value_error" or (spec.grid is not None and len(failing) == len(holders)):
                message = error["msg"].removeprefix("Value error, ")
                raise SweepError(f"param {name}={value!r} is invalid for {worker.strategy} ({worker.name}): {message}")
        skipped.append((candidate, "; ".join(e["msg"].removeprefix("Value error, ") for e in errors)))
    if not valid:
        raise SweepError(f"no valid param set to sweep; first problem: {skipped[0][1]}")
    return valid, skipped


def _value_of(candidate: dict[str, Any], base: dict[str, Any], name: str) -> Any:
    return candidate[name] if name in candidate else base.get(name)


def _checked_ranges(
    ranges: dict[str, tuple[float, float]], params_model: Any, base: dict[str, Any], strategy: str, worker: str
) -> dict[str, tuple[float, float]]:
    """The ranges to draw from: each end checked against its field, float fields drawn as floats."""
    checked: dict[str, tuple[float, float]] = {}
    for name, (low, high) in ranges.items():
        # Checking the ends makes a bad range an error whatever the seed happens to draw.
        for end in (low, high):
            try:
                params_model.model_validate({**base, name: end})
            except ValidationError as exc:
                # A rule between params (slow > fast) is not the range's fault: those draws are skipped.
                own = [e for e in exc.errors() if e["loc"][:1] == (name,) and e["type"] != "value_error"]
                if own:
                    raise SweepError(
                        f"param {name}={end!r} (an end of its range {low!r}..{high!r}) is invalid for "
                        f"{strategy} ({worker}): {own[0]['msg']}"
                    ) from None
        # Whole-number bounds would otherwise draw only whole numbers for a float param (1:3 gives 1, 2, 3).
        if _accepts_only_floats(params_model.model_fields[name].annotation):
            low, high = float(low), float(high)
        checked[name] = (low, high)
    return checked


def _accepts_only_floats(annotation: Any) -> bool:
    """Whether a field's type admits float but not int (`float`, `float | None`, an Annotated float)."""
    kinds: set[Any] = set()
    pending = [annotation]
    while pending:
        kind = pending.pop()
        args = get_args(kind)  # the members of a union, the type and metadata of an Annotated
        if args:
            pending.extend(args)
        else:
            kinds.add(kind)
    return float in kinds and int not in kinds


def plan_tasks(
    config: DeskConfig,
    spec: SweepSpec,
    param_sets: Sequence[dict[str, Any]],
    windows: Sequence[Window],
    out_dir: Path,
    *,
    candle_ts: np.ndarray | None = None,
) -> list[Task]:
    """Every (params, fold, split) backtest, with the feed starting early enough to warm up on earlier data.

    `candle_ts` (the swept symbol's candle opens) counts the warm-up in candles, as the backtest does, so a
    gap before a window does not push the warm-up into it, and refuses a part with nothing left to trade.
    Without it the warm-up is counted in minutes, which is the same on gapless data.
    """
    worker = config.worker(spec.worker)
    data_start = windows[0].start_ms
    seed = config.feed.seed_candles
    warmup_ms = seed * MINUTE_MS
    feed_starts: dict[int, int] = {}
    for window in windows:
        for split, (start, end) in zip(SPLITS, _parts(window), strict=True):
            if candle_ts is None:
                feed_starts[start] = max(data_start, start - warmup_ms)
                continue
            first = int(np.searchsorted(candle_ts, start, side="left"))
            feed_row = max(0, first - seed)
            # run_backtest warms up on the feed's first seed_candles candles, whatever their times.
            if int(np.searchsorted(candle_ts, end, side="left")) - feed_row <= seed:
                raise SweepError(
                    f"fold {window.fold} {split} [{_iso(start)}, {_iso(end)}) has no candle left to trade after "
                    f"the warm-up of {seed} candles (feed.seed_candles); use fewer folds, more data or data "
                    "without that gap"
                )
            feed_starts[start] = int(candle_ts[feed_row])
    tasks = []
    for swept in param_sets:
        params = {**worker.params, **swept}
        digest = param_hash(params)
        for window in windows:
            for split, (start, end) in zip(SPLITS, _parts(window), strict=True):
                tasks.append(
                    Task(
                        param_hash=digest,
                        params=params,
                        fold=window.fold,
                        split=split,
                        feed_start_ms=feed_starts[start],
                        start_ms=start,
                        end_ms=end,
                        out_dir=out_dir / "runs" / digest / f"{window.fold}-{split}",
                    )
                )
    return tasks


def _parts(window: Window) -> tuple[tuple[int, int], tuple[int, int]]:
    """The (start, end) of the window's train and test parts, in SPLITS order."""
    return (window.start_ms, window.split_ms), (window.split_ms, window.end_ms)


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%MZ")


def run_task(config: DeskConfig, worker: str, sources: Sequence[ReplaySource], task: Task) -> TaskResult:
    """Run one backtest and measure it (this is what each Ray task executes, in a worker process)."""
    from desk.backtest import run_backtest  # the engines load in the worker process, not at sweep import
    from desk.reporting import build_report

    started = time.perf_counter()
    feed = ReplayFeed(sources, start_ms=task.feed_start_ms, end_ms=task.end_ms)
    # Ray already runs a task per core: a projection process per backtest would only compete with them.
    result = run_backtest(
        sweep_config(config, worker, task.params), feed, sources, task.out_dir, projection_process=False
    )
    report = build_report(result.recorder, result.starting_cash, workers=[worker])
    return TaskResult(task.param_hash, task.fold, task.split, report.total, time.perf_counter() - started)


def run_sweep(
    config: DeskConfig,
    sources: Sequence[ReplaySource],
    spec: SweepSpec,
    out_dir: Path,
    *,
    num_cpus: int | None = None,
    local: bool = True,
    progress: Progress | None = None,
) -> SweepResult:
    """Validate, start Ray, run every task, rank the param sets and write `out_dir/sweep.csv`.

    `local=True` starts a local cluster of `num_cpus` worker processes (all CPUs if None) and shuts it down
    afterwards; `local=False` joins a running cluster (`ray start`), whose nodes must all see the data files
    and `out_dir` at the same paths and have the project installed.
    """
    started = time.perf_counter()
    if num_cpus is not None and num_cpus < 1:
        # Ray would start with no CPU to run a task on and wait for one forever.
        raise SweepError(f"num_cpus must be at least 1, got {num_cpus}")
    param_sets, skipped = validate_param_sets(config, spec)
    worker = config.worker(spec.worker)
    data = [source for source in sources if source.symbol == worker.symbol]
    if not data:
        raise SweepError(f"no data for {worker.symbol} (worker {worker.name}); sources: {[s.symbol for s in sources]}")
    bars_ts = ReplayFeed(data).bars(worker.symbol).ts
    windows = walk_forward_windows(int(bars_ts[0]), int(bars_ts[-1]), spec.folds, spec.train_fraction)
    if out_dir.exists() and not out_dir.is_dir():
        # Otherwise every task would fail inside Ray on its own runs/ folder.
        raise SweepError(f"{out_dir} is a file; give a new or empty output folder")
    runs = out_dir / "runs"
    if runs.exists() and any(runs.iterdir()):
        raise SweepError(f"{runs} already holds runs; choose an empty output folder")
    tasks = plan_tasks(config, spec, param_sets, windows, out_dir, candle_ts=np.asarray(bars_ts))
    named_sets = [(param_hash({**worker.params, **swept}), swept) for swept in param_sets]

    import ray  # only sweeps pay for Ray's import

    owns_cluster = local and not ray.is_initialized()
    ray_started = time.perf_counter()
    # ray.init is inside the try: a failed or interrupted start may already have launched the cluster's processes.
    try:
        if owns_cluster:
            with _local_worker_environment():
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        elif not ray.is_initialized():
            # Remote nodes have no copy of the project unless Ray ships it with the job.
            ray.init(
                address="auto",
                log_to_driver=False,
                ignore_reinit_error=True,
                runtime_env={"py_modules": [str(PROJECT_ROOT / "desk")]},
            )
        ray_start_seconds = time.perf_counter() - ray_started
        tasks_started = time.perf_counter()
        results = _run_all(ray, config, spec.worker, data, tasks, progress)
        tasks_seconds = time.perf_counter() - tasks_started
    finally:
        if owns_cluster:
            ray.shutdown()
    table = rank_table(spec, named_sets, windows, results)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "sweep.csv", index=False)
    return SweepResult(
        spec=spec,
        table=table,
        windows=windows,
        tasks=len(tasks),
        wall_seconds=time.perf_counter() - started,
        ray_start_seconds=ray_start_seconds,
        tasks_seconds=tasks_seconds,
        skipped=skipped,
    )


@contextmanager
def _local_worker_environment() -> Iterator[None]:
    """Set the environment the local cluster's processes start with, then give the driver its own back."""
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED")}
    # Ray's worker processes inherit the environment of the raylet that ray.init starts, and must import
    # `desk` to unpickle the task function: put the project on their path (no working_dir upload needed).
    paths = [path for path in (saved["PYTHONPATH"] or "").split(os.pathsep) if path]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *paths])
    # A sweep has no business phoning home (and the desk may have no internet): no usage reports.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_all(
    ray: Any,
    config: DeskConfig,
    worker: str,
    sources: Sequence[ReplaySource],
    tasks: Sequence[Task],
    progress: Progress | None,
) -> list[TaskResult]:
    remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
    # Shared inputs go into the object store once instead of being pickled into every task.
    config_ref, sources_ref = ray.put(config), ray.put(list(sources))
    pending = {remote.remote(config_ref, worker, sources_ref, task): task for task in tasks}
    results: list[TaskResult] = []
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(done[0])
            try:
                results.append(ray.get(done[0]))
            except Exception as exc:
                cause = getattr(exc, "cause", None) or exc
                raise SweepTaskError(
                    f"backtest {task.param_hash} fold {task.fold} {task.split} of {worker} ({task.params}) failed: "
                    f"{type(cause).__name__}: {cause}"
                ) from cause
            if progress is not None:
                progress(len(results), len(tasks))
    except BaseException:
        # Also on Ctrl+C: on a joined cluster, which outlives this process, the tasks would run on for nothing.
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return results


def rank_table(
    spec: SweepSpec,
    param_sets: Sequence[tuple[str, dict[str, Any]]],
    windows: Sequence[Window],
    results: Sequence[TaskResult],
) -> pd.DataFrame:
    """One row per (param hash, swept params): per-fold in/out metric and trades, means; best first."""
    by_key = {(r.param_hash, r.fold, r.split): r.metrics for r in results}
    rows = []
    for digest, swept in param_sets:
        row: dict[str, Any] = {"param_hash": digest, **swept}
        for window in windows:
            for split, label in zip(SPLITS, ("in", "out"), strict=True):
                metrics = by_key[(digest, window.fold, split)]
                value = getattr(metrics, spec.metric)
                row[f"fold{window.fold}_{label}"] = np.nan if value is None else float(value)
                row[f"fold{window.fold}_{label}_trades"] = metrics.trade_count
        rows.append(row)
    table = pd.DataFrame(rows)
    for label in ("in", "out"):
        table[f"mean_{label}"] = table[[f"fold{w.fold}_{label}" for w in windows]].mean(axis=1, skipna=True)
        table[f"trades_{label}"] = table[[f"fold{w.fold}_{label}_trades" for w in windows]].sum(axis=1)
    ascending = spec.metric in LOWER_IS_BETTER
    table = table.sort_values(
        ["mean_out", "mean_in"], ascending=ascending, na_position="last", kind="stable"
    ).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def format_table(result: SweepResult, limit: int = 20) -> str:
    """The best `limit` rows for the terminal: rank, swept params, mean out/in metric, trades, per-fold out."""
    table = result.table
    spec = result.spec
    swept = list(spec.grid or spec.ranges or {})
    folds = [f"fold{w.fold}_out" for w in result.windows]
    columns = ["rank", *swept, "mean_out", "mean_in", "trades_out", "trades_in", *folds]
    shown = table[columns].head(limit)
    metric = spec.metric
    text = shown.to_string(index=False, float_format=lambda value: f"{value:.3f}", na_rep="—")
    span = f"{len(result.windows)} folds, {spec.train_fraction:.0%} in-sample"
    header = (
        f"{spec.worker}: {len(table)} param sets ranked by mean out-of-sample {metric} ({span}; {result.tasks} runs)"
    )
    more = f"\n... {len(table) - limit} more rows in sweep.csv" if len(table) > limit else ""
    return f"{header}\n{text}{more}"
