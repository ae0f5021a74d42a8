"""The `backtest` and `sweep` commands: validate every input first, then replay, report and summarise."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from desk.backtest import BacktestError, prepare_out_dir, run_backtest
from desk.config import DeskConfig
from desk.core.clock import parse_utc_ms
from desk.core.errors import ConfigError
from desk.reporting import build_report, format_summary, write_html, write_json
from desk.services.feed.replay import ReplayFeed, ReplaySource, infer_symbol

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
# What a shell reports for a process stopped by SIGINT (128 + 2), so scripts can tell Ctrl+C from failure.
EXIT_INTERRUPTED = 130


def parse_window(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """The [--from, --to) range in epoch ms (None where not given); an empty or inverted range is bad input."""
    start = parse_utc_ms(args.start, "--from") if args.start is not None else None
    end = parse_utc_ms(args.end, "--to") if args.end is not None else None
    if start is not None and end is not None and start >= end:
        raise ConfigError([("--from", f"{args.start!r} is not before --to {args.end!r}; nothing would be replayed")])
    return start, end


def check_out_dir(out_dir: Path) -> None:
    """`--out` must be a new or empty folder: a run never writes over or beside another run's files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BacktestError(f"--out {out_dir} is a file; give a new or empty folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise BacktestError(f"--out {out_dir} is not empty; give a new or empty folder (a run never appends)")


def parse_sources(specs: list[str], symbols: list[str], layout: str | None) -> list[ReplaySource]:
    """Turn `SYMBOL=path` or bare paths (symbol from the file name) into sources; name what is wrong."""
    sources: list[ReplaySource] = []
    files: dict[str, Path] = {}
    for spec in specs:
        # A symbol never holds "=", a path may: split at the first one unless the whole text names a file.
        symbol, _, path_text = spec.partition("=") if "=" in spec and not Path(spec).is_file() else ("", "", spec)
        path = Path(path_text)
        if not path.is_file():
            raise ConfigError([("--data", f"{path}: no such file")])
        symbol = symbol.upper() or (infer_symbol(path, symbols) or "")
        if not symbol:
            raise ConfigError([("--data", f"{path}: cannot tell the symbol from the name; write SYMBOL={path}")])
        if symbol in files:
            raise ConfigError([("--data", f"{symbol} is given two files, {files[symbol]} and {path}; give one")])
        files[symbol] = path
        sources.append(ReplaySource(path=path, symbol=symbol, layout=layout))
    return sources


def run_backtest_command(config: DeskConfig, args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    start, end = parse_window(args)
    sources = parse_sources(args.data, config.feed.symbols, args.layout)
    unknown = sorted({s.symbol for s in sources} - {w.symbol for w in config.workers})
    if unknown:
        print(f"note: no worker trades {', '.join(unknown)}; its candles are replayed all the same", file=sys.stderr)
    # Everything that can be wrong with the inputs is found here, before anything is written to --out.
    feed = ReplayFeed(sources, start_ms=start, end_ms=end)
    try:
        check_out_dir(out_dir)
        prepare_out_dir(out_dir)
    except BacktestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # run_backtest reports traded minutes only: the first seed_candles minutes are warm-up.
    traded = len(feed) - min(config.feed.seed_candles, len(feed))
    bar = tqdm(total=traded, unit="min", disable=args.no_progress, file=sys.stderr, mininterval=0.5)
    try:
        result = run_backtest(config, feed, sources, out_dir, progress=bar.update, fast_forward=not args.every_minute)
    except KeyboardInterrupt:
        bar.close()
        print(
            f"interrupted: {out_dir} holds the journal and desk.db up to the interruption and no report; "
            "remove it or choose another --out to run again",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    # Every worker that was given data has a line, traded or not: silence is a result too.
    replayed = {source.symbol for source in sources}
    workers = [w.name for w in config.workers if w.enabled and w.symbol in replayed]
    report = build_report(result.recorder, result.starting_cash, workers=workers)
    write_json(report, out_dir / "report.json")
    write_html(report, result.recorder, out_dir / "report.html")
    print(format_summary(report))
    for note in result.coverage_notes:
        print(f"data:   {note}")
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
        if name.strip() in grid:
            # A second option for the same param would silently replace the first one's values.
            raise ConfigError([(option, f"{name.strip()} is given twice; list all its values in one {option}")])
        grid[name.strip()] = [_parse_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def parse_ranges(specs: list[str]) -> dict[str, tuple[float, float]]:
    """`NAME=LOW:HIGH` options (two numbers) into random-search ranges; each problem names --range and the text."""
    ranges: dict[str, tuple[float, float]] = {}
    for spec in specs:
        name, _, bounds = spec.partition("=")
        parts = [_parse_value(part.strip()) for part in bounds.split(":")]
        numbers = [part for part in parts if isinstance(part, int | float)]
        if not name.strip() or len(parts) != 2 or len(numbers) != 2:
            raise ConfigError([("--range", f"{spec!r} must look like NAME=LOW:HIGH with two numbers")])
        if name.strip() in ranges:
            raise ConfigError([("--range", f"{name.strip()} is given twice")])
        ranges[name.strip()] = (numbers[0], numbers[1])
    return ranges


def run_sweep_command(config: DeskConfig, args: argparse.Namespace) -> int:
    from desk.sweep import SweepError, SweepSpec, SweepTaskError, format_table, run_sweep

    worker = next((w for w in config.workers if w.name == args.worker), None)
    if worker is None:
        raise ConfigError([("--worker", f"{args.worker!r} is not one of {[w.name for w in config.workers]}")])
    sources = [s for s in parse_sources(args.data, config.feed.symbols, args.layout) if s.symbol == worker.symbol]
    if not sources:
        raise ConfigError([("--data", f"no file for {worker.symbol}, the symbol {worker.name} trades")])
    # An option the chosen search ignores would make the table answer a question that was not asked.
    if args.random is not None and args.grid:
        raise ConfigError([("--grid", "give --grid for a grid search or --random with --range, not both")])
    if args.random is None and args.range:
        raise ConfigError([("--range", "only --random draws from ranges; add --random N or use --grid")])
    if args.random is not None and not args.range:
        raise ConfigError([("--range", "--random needs at least one --range NAME=LOW:HIGH to draw from")])
    if args.cpus is not None and args.cpus < 1:
        raise ConfigError([("--cpus", f"must be at least 1, got {args.cpus}")])
    ranges = parse_ranges(args.range) if args.random is not None else None
    try:
        spec = SweepSpec(
            worker=worker.name,
            grid=None if args.random is not None else parse_grid(args.grid, "--grid"),
            random_samples=args.random,
            ranges=ranges,
            folds=args.folds,
            train_fraction=args.train_fraction,
            metric=args.metric,
            seed=args.seed,
        )
        ReplayFeed(sources)  # every data problem is reported before Ray starts or --out is touched
        with tqdm(unit="run", disable=args.no_progress, file=sys.stderr, mininterval=0.5) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = run_sweep(config, sources, spec, Path(args.out), num_cpus=args.cpus, progress=progress)
    except SweepTaskError as exc:
        # The inputs were fine and a backtest broke: a failure, not bad input.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"interrupted: {Path(args.out) / 'runs'} holds the runs so far and no sweep.csv", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(format_table(result))
    print(f"{result.tasks} runs in {result.wall_seconds:.1f} s; table: {Path(args.out) / 'sweep.csv'}")
    return EXIT_OK
