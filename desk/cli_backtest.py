"""The `backtest` and `sweep` commands: validate every input first, then replay, report and summarise."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from desk.backtest import BacktestError, prepare_out_dir, run_backtest
from desk.config import DeskConfig
from desk.core.errors import ConfigError
from desk.reporting import build_report, format_summary, write_html, write_json
from desk.runtime import parse_utc_ms
from desk.services.feed.replay import ReplayFeed, ReplaySource, infer_symbol

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def parse_sources(specs: list[str], symbols: list[str], layout: str | None) -> list[ReplaySource]:
    """Turn `SYMBOL=path` or bare paths (symbol from the file name) into sources; name what is wrong."""
    sources: list[ReplaySource] = []
    for spec in specs:
        symbol, _, path_text = spec.rpartition("=") if "=" in spec else ("", "", spec)
        path = Path(path_text)
        if not path.is_file():
            raise ConfigError([("--data", f"{path}: no such file")])
        symbol = symbol.upper() or (infer_symbol(path, symbols) or "")
        if not symbol:
            raise ConfigError([("--data", f"{path}: cannot tell the symbol from the name; write SYMBOL={path}")])
        sources.append(ReplaySource(path=path, symbol=symbol, layout=layout))
    return sources


def run_backtest_command(config: DeskConfig, args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    start = parse_utc_ms(args.start, "--from") if args.start else None
    end = parse_utc_ms(args.end, "--to") if args.end else None
    sources = parse_sources(args.data, config.feed.symbols, args.layout)
    unknown = sorted({s.symbol for s in sources} - {w.symbol for w in config.workers})
    if unknown:
        print(f"note: no worker trades {', '.join(unknown)}; its candles are replayed all the same", file=sys.stderr)
    # Everything that can be wrong with the inputs is found here, before anything is written to --out.
    feed = ReplayFeed(sources, start_ms=start, end_ms=end)
    try:
        prepare_out_dir(out_dir)
    except BacktestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    bar = tqdm(total=len(feed), unit="min", disable=args.no_progress, file=sys.stderr, mininterval=0.5)
    try:
        result = run_backtest(config, feed, sources, out_dir, progress=bar.update, fast_forward=not args.every_minute)
    finally:
        bar.close()
    report = build_report(result.recorder, result.starting_cash)
    write_json(report, out_dir / "report.json")
    write_html(report, result.recorder, out_dir / "report.html")
    print(format_summary(report))
    speed = result.minutes / result.wall_seconds if result.wall_seconds else 0.0
    print(f"{result.minutes} minutes in {result.wall_seconds:.1f} s ({speed:,.0f} minutes/s), {result.events} events")
    print(f"path:   {result.path}")
    print(f"store:  {out_dir / 'journal'}  and  {out_dir / 'desk.db'}   (./run_dashboard.sh --store {out_dir})")
    print(f"report: {out_dir / 'report.html'}  and  {out_dir / 'report.json'}")
    return EXIT_OK


def _parse_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_grid(specs: list[str], option: str) -> dict[str, list[int | float | str]]:
    """`NAME=V1,V2` options into a grid; each problem names the option and the text."""
    grid: dict[str, list[int | float | str]] = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        if not name or not values:
            raise ConfigError([(option, f"{spec!r} must look like NAME=V1,V2")])
        grid[name.strip()] = [_parse_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def run_sweep_command(config: DeskConfig, args: argparse.Namespace) -> int:
    from desk.sweep import SweepError, SweepSpec, format_table, run_sweep

    worker = next((w for w in config.workers if w.name == args.worker), None)
    if worker is None:
        raise ConfigError([("--worker", f"{args.worker!r} is not one of {[w.name for w in config.workers]}")])
    sources = [s for s in parse_sources(args.data, config.feed.symbols, args.layout) if s.symbol == worker.symbol]
    if not sources:
        raise ConfigError([("--data", f"no file for {worker.symbol}, the symbol {worker.name} trades")])
    ranges = None
    if args.random:
        bounds = parse_grid([r.replace(":", ",", 1) for r in args.range], "--range")
        ranges = {name: (values[0], values[-1]) for name, values in bounds.items()}
    try:
        spec = SweepSpec(
            worker=worker.name,
            grid=None if args.random else parse_grid(args.grid, "--grid"),
            random_samples=args.random,
            ranges=ranges,
            folds=args.folds,
            train_fraction=args.train_fraction,
            metric=args.metric,
            seed=args.seed,
        )
        ReplayFeed(sources)  # every data problem is reported before Ray starts or --out is touched
        result = run_sweep(config, sources, spec, Path(args.out), num_cpus=args.cpus)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_table(result))
    print(f"{result.tasks} runs in {result.wall_seconds:.1f} s; table: {Path(args.out) / 'sweep.csv'}")
    return EXIT_OK
