"""Trading Desk command line: run the daemon, check a config, rebuild the database, tail the journal."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from desk.config import DeskConfig, load_config
from desk.core.errors import ConfigError, DeskError, ReplayDataError

DEFAULT_CONFIG = "configs/config.yaml"
EXIT_OK, EXIT_FAILURE, EXIT_BAD_CONFIG = 0, 1, 2
COMMANDS = ("halt", "resume", "flatten", "reset_account", "pause_worker", "resume_worker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default %(default)s)")
    parser.add_argument("--duration", type=float, help="stop by itself after this many wall seconds")
    parser.add_argument("--candles", type=int, help="stop by itself after this many simulated minutes")
    parser.add_argument("--log-level", default="INFO", help="structlog level on stderr (default %(default)s)")
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check-config", help="validate a config and print every problem with its key path")
    check.add_argument("path", nargs="?", help="config file (default: --config)")
    sub.add_parser("rebuild-db", help="rebuild the SQLite projection from the journal")
    tail = sub.add_parser("tail", help="pretty-print the JSONL journal")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    tail.add_argument("-n", "--lines", type=int, default=40, help="how many past events (default %(default)s)")
    tail.add_argument("--type", action="append", dest="types", help="only this event type (repeatable)")
    tail.add_argument("--worker", action="append", dest="workers", help="only this worker (repeatable)")
    tail.add_argument("--symbol", action="append", dest="symbols", help="only this symbol (repeatable)")
    backtest = sub.add_parser("backtest", help="replay candle files through the desk's engines")
    backtest.add_argument(
        "--data", nargs="+", required=True, metavar="[SYMBOL=]FILE", help="CSV or Parquet candle files"
    )
    backtest.add_argument(
        "--from",
        dest="start",
        help="first candle time: ISO 8601, UTC unless it has an offset (2026-01-01, 2026-01-01T09:30Z)",
    )
    backtest.add_argument("--to", dest="end", help="stop before this time (same forms as --from)")
    backtest.add_argument("--out", default="out/backtest", help="empty folder for the journal, database and report")
    backtest.add_argument("--layout", help="declare the files' column layout instead of detecting it")
    backtest.add_argument("--no-progress", action="store_true", help="no progress bar")
    backtest.add_argument(
        "--every-minute",
        action="store_true",
        help="step the engines through every minute instead of fast-forwarding over quiet ones (same journal, slower)",
    )
    sweep = sub.add_parser("sweep", help="grid or random search of one worker's params, walk-forward, on Ray")
    sweep.add_argument("--data", nargs="+", required=True, metavar="[SYMBOL=]FILE", help="CSV or Parquet candle files")
    sweep.add_argument("--worker", required=True, help="the worker whose strategy params are searched")
    sweep.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2", help="values to try (repeatable)")
    sweep.add_argument("--range", action="append", default=[], metavar="NAME=LOW:HIGH", help="for --random")
    sweep.add_argument("--random", type=int, help="draw this many param sets from the --range bounds")
    sweep.add_argument("--folds", type=int, default=3, help="walk-forward folds (default %(default)s)")
    sweep.add_argument("--train-fraction", type=float, default=0.7, help="in-sample share of a fold")
    sweep.add_argument("--metric", default="sharpe", help="ranking metric (default %(default)s)")
    sweep.add_argument("--seed", type=int, default=0, help="random search seed")
    sweep.add_argument("--cpus", type=int, help="local worker processes (default: all cores)")
    sweep.add_argument("--out", default="out/sweep", help="folder for sweep.csv and each run's store")
    sweep.add_argument("--layout", help="declare the files' column layout instead of detecting it")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    command = sub.add_parser("command", help="send an operator command to the daemon (applied between loops)")
    command.add_argument("name", choices=COMMANDS)
    command.add_argument("worker", nargs="?", default="", help="worker name for pause_worker / resume_worker")
    return parser


def _load(path: str) -> DeskConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _run(config: DeskConfig, args: argparse.Namespace) -> int:
    from desk.runtime import TradingRuntime

    runtime = TradingRuntime(config, base_dir=Path.cwd(), config_path=Path(args.config))
    print(f"Trading Desk: {config.settings.mode} mode, {config.feed.source} feed, {len(config.workers)} workers")
    for line in runtime.summary_lines():
        print(line)
    print("Ctrl+C or SIGTERM stops it cleanly.", flush=True)
    summary = asyncio.run(runtime.run(duration_s=args.duration, max_candles=args.candles))
    print(f"stopped ({summary.reason}) after {summary.candles} candles, {summary.events} events")
    return EXIT_OK


def _rebuild(config: DeskConfig) -> int:
    from desk.services.store.store import EventStore

    store = EventStore(config.store, Path.cwd())
    try:
        count = store.rebuild()
    finally:
        store.close()
    print(f"rebuilt {store.database_url_display} from {count} journaled events")
    return EXIT_OK


def _tail(config: DeskConfig, args: argparse.Namespace) -> int:
    from desk.services.store.journal import Journal
    from desk.services.store.tail import tail

    journal = Journal(Path.cwd() / config.store.journal_dir)
    try:
        tail(
            journal,
            follow=args.follow,
            types=args.types,
            workers=args.workers,
            symbols=args.symbols,
            last_n=args.lines,
            out=sys.stdout,
        )
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _backtest(config: DeskConfig, args: argparse.Namespace) -> int:
    from desk.cli_backtest import run_backtest_command

    return run_backtest_command(config, args)


def _command(config: DeskConfig, args: argparse.Namespace) -> int:
    from desk.services.store.store import EventStore

    if args.name in ("pause_worker", "resume_worker") and args.worker not in {w.name for w in config.workers}:
        print(f"error: {args.name} needs a worker name; known: {[w.name for w in config.workers]}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    store = EventStore(config.store, Path.cwd())
    try:
        # No open(): that locks the journal for writing, which the running daemon holds.
        command_id = store.submit_command(args.name, {"worker": args.worker}, time.time_ns() // 1_000_000)
    finally:
        store.close()
    print(f"command {command_id} ({args.name}) queued; the daemon applies it between loop iterations")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from desk.services.logging import configure_logging

    configure_logging(args.log_level)
    if args.command == "check-config":
        path = args.path or args.config
        config = _load(path)
        if config is None:
            return EXIT_BAD_CONFIG
        print(f"{path}: ok ({len(config.workers)} workers on {', '.join(config.feed.symbols)})")
        return EXIT_OK
    config = _load(args.config)
    if config is None:
        return EXIT_BAD_CONFIG
    try:
        if args.command == "rebuild-db":
            return _rebuild(config)
        if args.command == "tail":
            return _tail(config, args)
        if args.command == "command":
            return _command(config, args)
        if args.command == "backtest":
            return _backtest(config, args)
        if args.command == "sweep":
            from desk.cli_backtest import run_sweep_command

            return run_sweep_command(config, args)
        return _run(config, args)
    except (ConfigError, ReplayDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except DeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
