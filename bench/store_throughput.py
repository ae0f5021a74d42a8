"""Store throughput: journal append + projection per batch size, rebuild, journal read, and a backtest's load.

    .venv/bin/python bench/store_throughput.py [--events 50000] [--read-lines 1000000]
    .venv/bin/python bench/store_throughput.py --load backtest [--backtest-events 85000] [--backtest-marks 1000000]
        [--projector inline|process|both] [--repeat 3] [--engine-us 10]

The session mix imitates a simulated minute of the desk: three candles, an equity
sample and six trade-lifecycle events (~10 events per minute), so every hot
projection table is exercised.

The backtest load is what `desk.backtest.run_backtest` hands the store for a
1M-candle replay: trade-lifecycle events spread over the run, equity marks in
EquitySeries chunks of 1440, one `flush` per simulated minute with the
backtest's projection lag, and `close` at the end. `--projector process` runs
the projection in its own process (`EventStore(..., projection_process=True)`);
`both` alternates the two `--repeat` times, since a loaded machine skews any
single run. "store" is the main thread's CPU in append + flush, what the
engines wait for; "total" adds open and close (close waits for the projection
process). `--engine-us` holds the main thread that long every simulated minute,
as the engines do, so the projection process has time to keep up.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from desk.backtest import PROJECTION_LAG_S
from desk.config import StoreConfig
from desk.core import events as ev
from desk.core.events import Event, event_to_record
from desk.services.store.journal import Journal
from desk.services.store.store import EventStore

T0 = 1_767_225_600_000
MINUTE = 60_000
SYMBOLS = ("BTC/USD", "ETH/USD", "SOL/USD")


def _trade_events(minute: int, cycle: int, env: Any) -> list[Event]:
    """Six events of one trade's life; even minutes open it, odd minutes close it."""
    intent, order, stop, position = f"i{cycle}", f"o{cycle}", f"s{cycle}", f"p{cycle}"
    price = 100.0 + cycle % 17
    if minute % 2 == 0:
        return [
            ev.IntentProposed(**env(correlation_id=intent), intent_id=intent, side="buy", reference_price=price,
                              stop_price=price * 0.98, take_profit=price * 1.04, confidence=0.6, reason="bench"),
            ev.IntentScored(**env(correlation_id=intent), intent_id=intent, score=0.55, vetoed=False,
                            features={"rsi": 51.5, "atr": 1.25, "trend": 0.3}),
            ev.OrderSubmitted(**env(correlation_id=intent), order_id=order, side="buy", order_type="market",
                              purpose="entry", qty=0.5, position_id=position),
            ev.OrderFilled(**env(correlation_id=intent), order_id=order, fill_id=f"f{order}", side="buy",
                           purpose="entry", qty=0.5, price=price, fee=0.13, fee_currency="USD", liquidity="taker",
                           remaining_qty=0.0, position_id=position),
            ev.PositionOpened(**env(correlation_id=intent), position_id=position, qty=0.5, entry_price=price,
                              stop_price=price * 0.98, take_profit=price * 1.04, entry_fee=0.13, risk_usd=1.0),
            ev.OrderSubmitted(**env(correlation_id=intent), order_id=stop, side="sell", order_type="stop",
                              purpose="stop_loss", qty=0.5, stop_price=price * 0.98, position_id=position),
        ]  # fmt: skip
    return [
        ev.StopMoved(**env(correlation_id=intent), position_id=position, stop_price=price * 0.99, reason="trail"),
        ev.OrderAmended(**env(correlation_id=intent), order_id=stop, stop_price=price * 0.99),
        ev.OrderFilled(**env(correlation_id=intent), order_id=stop, fill_id=f"f{stop}", side="sell",
                       purpose="stop_loss", qty=0.5, price=price * 0.99, fee=0.13, fee_currency="USD",
                       liquidity="taker", remaining_qty=0.0, position_id=position),
        ev.PositionClosed(**env(correlation_id=intent), position_id=position, qty=0.5, entry_ts=T0,
                          entry_price=price, exit_price=price * 0.99, realized_pnl=-0.5, fees=0.26, net_pnl=-0.76,
                          r_multiple=-0.76, exit_reason="stop_loss"),
        ev.LearnerOutcomeRecorded(**env(correlation_id=intent), intent_id=intent, position_id=position,
                                  net_pnl=-0.76, r_multiple=-0.76, won=False),
        ev.WorkerStateChanged(**env(), state="enabled", reason="bench"),
    ]  # fmt: skip


def session(count: int) -> Iterator[dict[str, Any]]:
    """Yield `count` journal records of a plausible desk session, seqs 1..count."""
    seq = 0
    minute = 0
    while True:
        ts = T0 + minute * MINUTE

        def env(symbol: str = "BTC/USD", correlation_id: str = "", _ts: int = ts) -> dict[str, Any]:
            return {"ts_event": _ts, "ts_init": _ts + 3, "worker": "w1", "symbol": symbol,
                    "correlation_id": correlation_id}  # fmt: skip

        batch: list[Event] = [
            ev.CandleClosed(**env(symbol), ts=ts - MINUTE, open=100.0, high=101.5, low=99.25, close=100.75,
                            volume=12.5 + minute % 7)
            for symbol in SYMBOLS
        ]  # fmt: skip
        batch += _trade_events(minute, minute // 2, env)
        batch.append(ev.EquitySampled(**env(), equity=10_000.0 - minute * 0.01, cash=9_950.0, positions_value=50.0,
                                      high_water_mark=10_000.0, drawdown_pct=0.001, open_positions=1))  # fmt: skip
        for event in batch:
            seq += 1
            record = event_to_record(event)
            record["seq"], record["id"] = seq, f"e{seq}"
            yield record
            if seq == count:
                return
        minute += 1


def bench_append(records: list[dict[str, Any]], batch: int, root: Path, lag_s: float = 0.0) -> None:
    config = StoreConfig(journal_dir="journal", database_url="sqlite:///desk.db")
    store = EventStore(config, root, projection_lag_s=lag_s)
    store.open()
    start = time.perf_counter()
    for index in range(0, len(records), batch):
        store.append(records[index : index + batch])
        store.flush()
    store.project_pending()
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    rebuilt = store.rebuild()
    rebuild_elapsed = time.perf_counter() - start
    store.close()
    print(f"  {len(records) / elapsed:,.0f} events/s; then rebuild(): {rebuilt / rebuild_elapsed:,.0f} events/s")


def backtest_minutes(events: int, marks: int) -> list[list[dict[str, Any]]]:
    """Per simulated minute, the records a backtest publishes: trade events now and then, a chunk a day."""
    chunk = 1440
    rng = np.random.default_rng(7)
    equity = 10_000.0 + np.cumsum(rng.normal(0.0, 1.5, marks))
    cash = equity - np.abs(rng.normal(0.0, 300.0, marks)).round(2)
    high = np.maximum.accumulate(equity)
    open_positions = rng.integers(0, 4, marks)
    groups = max(1, events // 6)  # _trade_events gives six events a call
    every = max(1, marks // groups)
    minutes: list[list[dict[str, Any]]] = [[] for _ in range(marks)]
    seq = 0

    def stamp(event: Event) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        record = event_to_record(event)
        record["seq"], record["id"] = seq, f"e{seq}"
        return record

    made = 0
    for minute in range(marks):
        ts = T0 + minute * MINUTE

        def env(symbol: str = "BTC/USD", correlation_id: str = "", _ts: int = ts) -> dict[str, Any]:
            return {"ts_event": _ts, "ts_init": _ts + 3, "worker": "w1", "symbol": symbol,
                    "correlation_id": correlation_id}  # fmt: skip

        if minute % every == 0 and made < events:
            group = [stamp(e) for e in _trade_events(minute // every, minute // every // 2, env)[: events - made]]
            minutes[minute].extend(group)
            made += len(group)
        if (minute + 1) % chunk == 0 or minute == marks - 1:
            start, end = minute - minute % chunk, minute + 1
            series = ev.EquitySeries(
                **env(), start_ts=T0 + start * MINUTE, step_ms=MINUTE, equity=equity[start:end].tolist(),
                cash=cash[start:end].tolist(), positions_value=(equity[start:end] - cash[start:end]).tolist(),
                high_water_mark=high[start:end].tolist(), open_positions=open_positions[start:end].tolist(),
            )  # fmt: skip
            minutes[minute].append(stamp(series))
    return minutes


def _engine_work(microseconds: float) -> None:
    """Hold the main thread (and the GIL) for `microseconds`, as the trading engines do between flushes."""
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def run_backtest_load(minutes: list[list[dict[str, Any]]], root: Path, projector: str, engine_us: float = 0.0) -> None:
    """One backtest-shaped run into `root`; print its timings.

    "store" is the main thread's CPU in append + flush of the minutes with records
    (engine work excluded); "loop" the wall time of the whole minute loop;
    "total" adds open and close.
    """
    config = StoreConfig(journal_dir="journal", database_url="sqlite:///desk.db")
    process = projector == "process"
    start = time.perf_counter()
    store = EventStore(config, root, projection_lag_s=PROJECTION_LAG_S, projection_process=process)
    store.open()
    opened = time.perf_counter()
    store_cpu = 0.0
    clock = time.thread_time
    for records in minutes:
        if engine_us:
            _engine_work(engine_us)
        if records:
            # Timed only here: a clock call per empty flush would cost more than the flush (same in both modes).
            before = clock()
            store.append(records)
            store.flush()
            store_cpu += clock() - before
        else:
            store.flush()
    flushed = time.perf_counter()
    projector_process = store._projector  # read before close() forgets it
    store.close()
    closed = time.perf_counter()
    extra = ""
    if projector_process is not None:
        extra = (
            f" (pipe writes {projector_process.send_seconds:.3f} s; child cpu {projector_process.child_cpu_s:.3f} s)"
        )
    print(
        f"  {projector:>7}: store {store_cpu:.3f} s cpu{extra}; loop {flushed - opened:.3f} s,"
        f" open {opened - start:.3f} s, close {closed - flushed:.3f} s, total {closed - start:.3f} s"
    )


def bench_backtest(
    events: int, marks: int, root: Path, projector: str = "inline", repeat: int = 1, engine_us: float = 0.0
) -> None:
    """Time append + flush (once a minute) + close of a backtest-shaped load, then rebuild()."""
    minutes = backtest_minutes(events, marks)
    ordinary = sum(1 for records in minutes for r in records if r["type"] != "EquitySeries")
    chunks = sum(1 for records in minutes for r in records if r["type"] == "EquitySeries")
    config = StoreConfig(journal_dir="journal", database_url="sqlite:///desk.db")
    print(f"backtest load: {ordinary:,} ordinary events + {chunks:,} EquitySeries ({marks:,} marks),")
    engine = f", {engine_us:g} us of engine work a minute" if engine_us else ""
    print(f"  flush once a minute, projection_lag_s={PROJECTION_LAG_S}{engine}:")
    modes = ("inline", "process") if projector == "both" else (projector,)
    for _ in range(repeat):
        for mode in modes:
            shutil.rmtree(root, ignore_errors=True)  # a fresh store each run, and the disk not filled
            run_backtest_load(minutes, root, mode, engine_us)
    empty = EventStore(config, root / "empty", projection_lag_s=PROJECTION_LAG_S)
    empty.open()
    start = time.perf_counter()
    for _ in minutes:
        empty.flush()
    print(f"  of which {len(minutes):,} flushes of an empty buffer alone: {time.perf_counter() - start:.3f} s")
    empty.close()
    rebuilder = EventStore(config, root)
    start = time.perf_counter()
    rebuilt = rebuilder.rebuild()
    rebuilder.close()
    print(f"  rebuild(): {rebuilt:,} records in {time.perf_counter() - start:.3f} s")
    size = sum(p.stat().st_size for p in root.glob("desk.db*")) + sum(
        p.stat().st_size for p in (root / "journal").iterdir()
    )
    print(f"  journal + database on disk: {size / 1e6:,.1f} MB")


def bench_read(lines: int, root: Path) -> tuple[float, float]:
    with Journal(root) as journal:
        chunk: list[dict[str, Any]] = []
        for record in session(lines):
            chunk.append(record)
            if len(chunk) == 10_000:
                journal.append(chunk)
                chunk = []
        journal.append(chunk)
    reader = Journal(root)
    start = time.perf_counter()
    count = sum(1 for _ in reader.read())
    raw = count / (time.perf_counter() - start)
    start = time.perf_counter()
    store = EventStore(StoreConfig(journal_dir=str(root), database_url="sqlite:///:memory:"), root)
    count = sum(1 for _ in store.read_events())
    typed = count / (time.perf_counter() - start)
    return raw, typed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--read-lines", type=int, default=1_000_000)
    parser.add_argument("--load", choices=("session", "backtest", "all"), default="all")
    parser.add_argument("--backtest-events", type=int, default=85_000)
    parser.add_argument("--backtest-marks", type=int, default=1_000_000)
    parser.add_argument("--projector", choices=("inline", "process", "both"), default="inline")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the backtest load (per projector)")
    parser.add_argument(
        "--engine-us", type=float, default=0.0, help="main-thread work per simulated minute, imitating the engines"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.load in ("backtest", "all"):
            bench_backtest(
                args.backtest_events,
                args.backtest_marks,
                Path(tmp) / "backtest",
                args.projector,
                args.repeat,
                args.engine_us,
            )
        if args.load == "backtest":
            return
        records = list(session(args.events))
        for batch, lag_s in ((10, 0.0), (1_000, 0.0), (10, 0.25)):
            root = Path(tmp) / f"batch{batch}-lag{lag_s}"
            lag = f", projection_lag_s={lag_s}" if lag_s else ""
            print(f"journal append + project, {args.events:,} events in batches of {batch:,}{lag}:")
            bench_append(records, batch, root, lag_s)
        raw, typed = bench_read(args.read_lines, Path(tmp) / "read")
        print(f"journal read, {args.read_lines:,} lines: {raw:,.0f} lines/s (records), {typed:,.0f} lines/s (events)")


if __name__ == "__main__":
    main()
