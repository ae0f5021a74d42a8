"""Control-room load: time to first render of every page on a big store, and the queries behind them.

    .venv/bin/python bench/dashboard_load.py [--equity 1000000] [--trades 100000] [--out DIR] [--keep]

Builds a store the size of a long-running desk: a million equity samples (about
two years of minutes), a hundred thousand closed trades over 20 workers on 20
symbols with their positions, intents and learner records, two million candles,
faults, restarts and halts in the events table, an inbox and a small journal.
Rows go straight into the schema tables with executemany through SQLAlchemy
Core (no journal replay: that would take minutes and measure something else).

Then, with every Streamlit cache cleared before each page (cold), it renders
each page once with AppTest and prints the seconds per page, and times the
StoreReader queries behind them on a fresh reader (cold) and again (warm).
The target is at most 2 s per page.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Table, create_engine, insert, update

from desk.services.store import schema
from desk.services.store.journal import Journal
from desk.services.store.projection import Projection
from desk.services.store.queries import StoreReader

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MINUTE = 60_000
CHUNK = 50_000
CANDLE_MINUTES = 100_000  # per symbol: the newest ~70 days of candles
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PAGES_DIR = PROJECT_ROOT / "dashboard" / "pages"
PAGES = ("overview.py", "trades.py", "workers.py", "config_editor.py", "logs.py", "controls.py", "report.py")
TARGET_S = 2.0


def _chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class StoreBuilder:
    """Fill the schema tables of a new store; seqs are minute * 8 + a per-table slot, so they never collide."""

    def __init__(self, store_dir: Path, equity_rows: int, trades: int, workers: int, symbols: int) -> None:
        self.store_dir = store_dir
        self.database_url = f"sqlite:///{store_dir / 'desk.db'}"
        self.minutes = equity_rows
        self.trades = trades
        kinds = ("rsi", "macd", "breakout")
        self.workers = [f"w{n:02d}-{kinds[n % len(kinds)]}" for n in range(workers)]
        self.symbols = [f"S{n:02d}/USD" for n in range(symbols)]
        self.random = random.Random(7)
        Projection(self.database_url).close()  # the daemon's own table creation and status rows
        self.engine = create_engine(self.database_url)

    def _insert(self, table: Table, rows: Iterator[dict[str, Any]]) -> int:
        count = 0
        with self.engine.begin() as connection:
            for batch in _chunks(rows):
                connection.execute(insert(table), batch)
                count += len(batch)
        return count

    def build(self) -> dict[str, int]:
        counts = {
            "equity": self._insert(schema.equity, self._equity()),
            "candles": self._insert(schema.candles, self._candles()),
        }
        trades, positions, intents, features = self._trade_rows()
        counts["trades"] = self._insert(schema.trades, iter(trades))
        counts["positions"] = self._insert(schema.positions, iter(positions))
        counts["intents"] = self._insert(schema.intents, iter(intents))
        counts["features"] = self._insert(schema.features, iter(features))
        events, risk_rows, faults = self._events()
        counts["events"] = self._insert(schema.events, iter(events))
        counts["risk_state"] = self._insert(schema.risk_state, iter(risk_rows))
        counts["worker_faults"] = self._insert(schema.worker_faults, iter(faults))
        states = [{"worker": w, "state": "disabled", "reason": "3 faults", "updated_seq": 1} for w in self.workers[:2]]
        counts["worker_state"] = self._insert(schema.worker_state, iter(states))
        counts["commands"] = self._insert(schema.commands, self._commands())
        self._status_and_heartbeat()
        counts["journal lines"] = self._journal()
        self.engine.dispose()
        return counts

    def _equity(self) -> Iterator[dict[str, Any]]:
        equity, high = 10_000.0, 10_000.0
        for minute in range(self.minutes):
            equity = max(100.0, equity + self.random.gauss(0.02, 4.0))
            high = max(high, equity)
            exposure = 2_000.0 if minute % 7 else 0.0
            yield {
                "seq": minute * 8 + 1,
                "ts_event": T0 + minute * MINUTE,
                "equity": equity,
                "cash": equity - exposure,
                "positions_value": exposure,
                "high_water_mark": high,
                "drawdown_pct": 1.0 - equity / high,
                "open_positions": 2 if exposure else 0,
            }

    def _candles(self) -> Iterator[dict[str, Any]]:
        first = self.minutes - CANDLE_MINUTES
        for number, symbol in enumerate(self.symbols):
            price = 100.0 * (number + 1)
            for minute in range(max(0, first), self.minutes):
                price *= 1.0 + self.random.gauss(0, 0.0005)
                yield self._candle_row(symbol, minute, price)

    @staticmethod
    def _candle_row(symbol: str, minute: int, price: float) -> dict[str, Any]:
        return {
            "symbol": symbol,
            "ts": T0 + minute * MINUTE,
            "open": price,
            "high": price * 1.001,
            "low": price * 0.999,
            "close": price,
            "volume": 1.0,
        }

    def _trade_rows(self) -> tuple[list[dict[str, Any]], ...]:
        trades, positions, intents, features = [], [], [], []
        reasons = ("stop_loss", "take_profit", "signal", "operator flatten")
        spacing = max(1, self.minutes // (self.trades + 1))
        for number in range(self.trades):
            worker_index = self.random.randrange(len(self.workers))
            worker, symbol = self.workers[worker_index], self.symbols[worker_index % len(self.symbols)]
            exit_minute = (number + 1) * spacing
            entry_minute = max(0, exit_minute - self.random.randint(5, 600))
            net = self.random.gauss(0.5, 20.0)
            reason = self.random.choice(reasons)
            if reason == "signal":
                reason = f"signal: RSI {self.random.uniform(60, 90):.2f} crossed above 70"
            position_id, intent_id = f"p{number}", f"i{number}"
            common = {
                "position_id": position_id,
                "worker": worker,
                "symbol": symbol,
                "entry_ts": T0 + entry_minute * MINUTE,
            }
            trades.append(
                common
                | {
                    "seq": exit_minute * 8 + 2,
                    "qty": 1.0,
                    "exit_ts": T0 + exit_minute * MINUTE,
                    "entry_price": 100.0,
                    "exit_price": 100.0 + net,
                    "realized_pnl": net + 0.5,
                    "fees": 0.5,
                    "net_pnl": net,
                    "r_multiple": net / 10.0,
                    "exit_reason": reason,
                }
            )
            positions.append(self._position(common, exit_minute, net, reason))
            score = self.random.random()
            intents.append(self._intent(intent_id, entry_minute, worker, symbol, score, "filled"))
            features.append(
                {
                    "intent_id": intent_id,
                    "seq": entry_minute * 8 + 4,
                    "worker": worker,
                    "symbol": symbol,
                    "features": '{"rsi":0.3,"atr_frac":0.001}',
                    "net_pnl": net,
                    "r_multiple": net / 10.0,
                    "won": net > 0,
                }
            )
        last = self.minutes - 1
        for number, worker in enumerate(self.workers[:15]):  # open positions right now
            symbol = self.symbols[number % len(self.symbols)]
            common = {
                "position_id": f"open{number}",
                "worker": worker,
                "symbol": symbol,
                "entry_ts": T0 + last * MINUTE,
            }
            positions.append(self._position(common, None, None, None))
        return trades, positions, intents, features

    @staticmethod
    def _position(
        common: dict[str, Any], exit_minute: int | None, net: float | None, reason: str | None
    ) -> dict[str, Any]:
        return common | {
            "status": "open" if exit_minute is None else "closed",
            "qty": 1.0 if exit_minute is None else 0.0,
            "entry_price": 100.0,
            "stop_price": 95.0,
            "take_profit": 110.0,
            "entry_fee": 0.25,
            "risk_usd": 5.0,
            "exit_ts": None if exit_minute is None else T0 + exit_minute * MINUTE,
            "exit_price": None if net is None else 100.0 + net,
            "realized_pnl": None if net is None else net + 0.5,
            "fees": 0.5,
            "exit_reason": reason,
            "updated_seq": 1,
        }

    @staticmethod
    def _intent(intent_id: str, minute: int, worker: str, symbol: str, score: float, status: str) -> dict[str, Any]:
        return {
            "intent_id": intent_id,
            "seq": minute * 8 + 3,
            "ts_event": T0 + minute * MINUTE,
            "worker": worker,
            "symbol": symbol,
            "side": "buy",
            "reference_price": 100.0,
            "stop_price": 95.0,
            "take_profit": 110.0,
            "confidence": 0.6,
            "reason": "bench entry",
            "score": score,
            "vetoed": False,
            "features": '{"rsi":0.3}',
            "status": status,
            "deny_rule": None,
            "deny_reason": None,
        }

    def _events(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Restarts every ~10k minutes, five halts, 500 faults, and bulk rows so the type index has mass."""
        events, risk_rows, faults = [], [], []

        def event(
            minute: int, slot: int, kind: str, payload: dict[str, Any], worker: str = "", symbol: str = ""
        ) -> None:
            events.append(
                {
                    "seq": minute * 8 + slot,
                    "id": f"e{minute * 8 + slot}",
                    "type": kind,
                    "ts_event": T0 + minute * MINUTE,
                    "ts_init": T0 + minute * MINUTE,
                    "worker": worker,
                    "symbol": symbol,
                    "correlation_id": "",
                    "causation_id": "",
                    "payload": json.dumps(payload),
                }
            )

        for minute in range(0, self.minutes, 10_000):
            if minute:
                event(minute - 1, 6, "RuntimeStopped", {"reason": "SIGTERM", "wall_ms": 0})
            event(minute, 5, "RuntimeStarted", {"mode": "paper", "feed_source": "simulated", "config_hash": "c0ffee",
                                                 "recovered_events": minute * 8, "wall_ms": 0})  # fmt: skip
        for number in range(5):
            halt, resume = self.minutes * (number + 1) // 6, self.minutes * (number + 1) // 6 + 500
            for minute, previous, state, rule in (
                (halt, "ACTIVE", "HALTED", "max_drawdown"),
                (resume, "HALTED", "ACTIVE", "operator_resume"),
            ):
                change = {"previous": previous, "state": state, "rule": rule, "reason": f"bench {state.lower()}"}
                event(minute, 7, "RiskStateChanged", change)
                risk_rows.append({"seq": minute * 8 + 7, "ts_event": T0 + minute * MINUTE, **change})
        for number in range(500):
            minute = self.random.randrange(self.minutes)
            worker = self.workers[number % len(self.workers)]
            fault = {"error_type": "ValueError", "message": "bench fault", "consecutive": 1 + number % 3}
            event(minute, 0, "WorkerFaulted", fault, worker, self.symbols[0])
            faults.append(
                {
                    "seq": minute * 8,
                    "ts_event": T0 + minute * MINUTE,
                    "worker": worker,
                    "symbol": self.symbols[0],
                    **fault,
                }
            )
        taken = {row["seq"] for row in events}
        for minute in range(0, self.minutes, 3):  # bulk: a third of the equity samples as events
            if minute * 8 + 1 not in taken:
                event(minute, 1, "EquitySampled", {"equity": 10_000.0})
        return events, risk_rows, faults

    def _commands(self) -> Iterator[dict[str, Any]]:
        now = time.time_ns() // 1_000_000
        for number in range(50):
            status = "pending" if number == 49 else "applied"
            payload = json.dumps({"worker": ""})
            yield {"created_wall_ms": now - (50 - number) * 60_000, "command": "halt" if number % 2 else "resume",
                   "payload": payload, "status": status, "detail": "bench", "acked_seq": None}  # fmt: skip

    def _status_and_heartbeat(self) -> None:
        last_seq = (self.minutes - 1) * 8 + 7
        with self.engine.begin() as connection:
            for key, value in (("last_seq", str(last_seq)), ("mode", "paper")):
                table = schema.runtime_status
                connection.execute(update(table).where(table.c.key == key).values(value=value))
            connection.execute(
                insert(schema.heartbeat).values(
                    component="daemon", wall_ms=time.time_ns() // 1_000_000, pid=os.getpid(), last_seq=last_seq,
                    detail="ACTIVE; bench",
                )
            )  # fmt: skip

    def _journal(self) -> int:
        """A small journal: the newest couple of thousand minutes, as the daemon would have written them."""
        journal = Journal(self.store_dir / "journal")
        records = []
        for minute in range(self.minutes - 2_000, self.minutes):
            ts = T0 + minute * MINUTE
            base = {"ts_event": ts, "ts_init": ts, "correlation_id": "", "causation_id": ""}
            for slot, record in enumerate(
                (
                    {"type": "CandleClosed", "worker": "", "symbol": self.symbols[0], "ts": ts, "open": 1.0,
                     "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
                    {"type": "EquitySampled", "worker": "", "symbol": "", "equity": 10_000.0, "cash": 10_000.0,
                     "positions_value": 0.0, "high_water_mark": 10_000.0, "drawdown_pct": 0.0, "open_positions": 0},
                )
            ):  # fmt: skip
                seq = minute * 8 + slot + 1
                records.append({"seq": seq, "id": f"e{seq}", **base, **record})
        with journal:
            journal.append(records)
        return len(records)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def measure_queries(store_dir: Path) -> list[tuple[str, float, float]]:
    """Time the StoreReader calls the pages make: first on a fresh reader (cold), then again (warm)."""
    reader = StoreReader(f"sqlite:///{store_dir / 'desk.db'}", store_dir / "journal")
    worker = reader.known_workers()[0]
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("summary", reader.summary),
        ("equity_curve (1M rows -> 2000)", reader.equity_curve),
        ("lifecycle_marks", reader.lifecycle_marks),
        ("risk_state", reader.risk_state),
        ("heartbeat", reader.heartbeat),
        ("feed_status", reader.feed_status),
        ("open_positions", reader.open_positions),
        ("trade_filter_options", reader.trade_filter_options),
        ("ledger_totals", reader.ledger_totals),
        ("closed_trades (page of 100)", reader.closed_trades),
        ("closed_trades (worker filter)", lambda: reader.closed_trades(workers=[worker])),
        ("closed_trades (exit-reason filter)", lambda: reader.closed_trades(exit_reasons=["stop_loss"])),
        ("closed_trades (all, for CSV)", lambda: reader.closed_trades(limit=None)),
        ("worker_attribution", reader.worker_attribution),
        ("worker_equity", lambda: reader.worker_equity(worker)),
        ("worker_faults", lambda: reader.worker_faults(worker=worker)),
        ("learner_summary", reader.learner_summary),
        ("learner_scores", lambda: reader.learner_scores(worker=worker, limit=200)),
        ("known_workers", reader.known_workers),
        ("commands", reader.commands),
        ("journal_tail (200)", reader.journal_tail),
        ("journal_tail (rare type)", lambda: reader.journal_tail(types=["WorkerFaulted"])),
        ("period_stats", reader.period_stats),
    ]
    results = []
    for name, call in calls:
        cold, _ = timed(call)
        warm, _ = timed(call)
        results.append((name, cold, warm))
    reader.close()
    return results


def measure_pages(store_dir: Path) -> list[tuple[str, float, str]]:
    """Render every page once with AppTest, all Streamlit caches cleared first; return seconds per page."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["DESK_STORE_DIR"] = str(store_dir)
    os.environ.pop("DESK_CONFIG", None)
    # Imports are per process, not per page: pay them once before timing, as a running server has.
    AppTest.from_string("import plotly.graph_objects, pandas, matplotlib\nimport dashboard.common").run(timeout=120)
    results = []
    for page_file in PAGES:
        path = PAGES_DIR / page_file
        if not path.is_file():
            continue
        st.cache_data.clear()
        st.cache_resource.clear()
        seconds, page = timed(lambda path=path: AppTest.from_file(str(path), default_timeout=120).run())
        problems = [str(e.value)[:80] for e in page.exception]
        results.append((page_file, seconds, "; ".join(problems) or "ok"))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--equity", type=int, default=1_000_000, help="equity samples (default %(default)s)")
    parser.add_argument("--trades", type=int, default=100_000, help="closed trades (default %(default)s)")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--out", type=Path, help="build the store here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store for a look in the dashboard")
    args = parser.parse_args()
    store_dir = args.out or Path(tempfile.mkdtemp(prefix="desk-dashboard-load-"))
    store_dir.mkdir(parents=True, exist_ok=True)
    try:
        if (store_dir / "desk.db").exists():
            print(f"reusing the store in {store_dir}")
        else:
            builder = StoreBuilder(store_dir, args.equity, args.trades, args.workers, args.symbols)
            seconds, counts = timed(builder.build)
            print(f"built {store_dir} in {seconds:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
            print(f"database {(store_dir / 'desk.db').stat().st_size / 1e6:,.0f} MB")
        print("\nqueries (fresh reader: cold, then warm)")
        for name, cold, warm in measure_queries(store_dir):
            print(f"  {name:<40} {cold * 1000:8.1f} ms  {warm * 1000:8.1f} ms")
        from dashboard.report_pdf import build_report_pdf

        reader = StoreReader(f"sqlite:///{store_dir / 'desk.db'}", store_dir / "journal")
        seconds, pdf = timed(lambda: build_report_pdf(reader, None, None))
        print(f"  {'build_report_pdf (whole store)':<40} {seconds * 1000:8.1f} ms  ({len(pdf) / 1024:,.0f} KB)")
        print(f"\npages (time to first render, caches cleared; target <= {TARGET_S:.0f} s)")
        worst = 0.0
        for page_file, seconds, status in measure_pages(store_dir):
            worst = max(worst, seconds)
            flag = "" if seconds <= TARGET_S else "  SLOWER THAN TARGET"
            print(f"  {page_file:<20} {seconds:6.2f} s  {status}{flag}")
        return 0 if worst <= TARGET_S else 1
    finally:
        if args.out is None and not args.keep:
            shutil.rmtree(store_dir, ignore_errors=True)
        elif args.out is None:
            print(f"\nkept {store_dir}: DESK_STORE_DIR={store_dir} ./run_dashboard.sh")


if __name__ == "__main__":
    sys.exit(main())
