"""Read-only queries over the store: the one module the control room reads through.

`StoreReader` opens the SQL projection read-only (see `readonly.py`: SQLite
through a `mode=ro` URI, so it can never create, lock or change the daemon's
database) and the journal without its writer lock. A store that does not
exist yet is a normal state: every method then returns an empty result (an
empty DataFrame with the usual columns, or None) instead of failing.

Large tables are reduced in SQL, never in Python: the equity curve and the
per-worker curves are bucketed by time with integer division (last sample,
min and max per bucket), ledgers are filtered and paginated with the indexes
of `schema.py`, and the journal tail reads the newest files backwards.
Times are epoch milliseconds on the desk's clock (`ts`-like columns) with a
UTC datetime column next to them for display. The result types live in
`query_results.py` and are re-exported here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from pathlib import Path

import pandas as pd
from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from desk.services.store import schema
from desk.services.store.journal import Journal
from desk.services.store.query_results import (
    ATTRIBUTION_COLUMNS,
    COMMAND_COLUMNS,
    DAY_MS,
    EQUITY_COLUMNS,
    EVENT_TYPE_NAMES,
    FAULT_COLUMNS,
    FEED_COLUMNS,
    LEARNER_COLUMNS,
    LEARNER_SUMMARY_COLUMNS,
    LOG_LEVELS,
    MARK_COLUMNS,
    POSITION_COLUMNS,
    TRADE_COLUMNS,
    WORKER_CURVE_COLUMNS,
    Heartbeat,
    JournalTail,
    LedgerTotals,
    PeriodStats,
    RiskStatus,
    Summary,
    TradeFilterOptions,
    event_level,
    exit_category,
    frame_of,
    with_utc_time,
)
from desk.services.store.readonly import ReadOnlyDatabase, StoreReadError
from desk.services.store.recent import DEFAULT_MAX_SCAN_BYTES, journal_tail
from desk.services.store.store import resolve_database_url

__all__ = [
    "DAY_MS",
    "EVENT_TYPE_NAMES",
    "LOG_LEVELS",
    "Heartbeat",
    "JournalTail",
    "LedgerTotals",
    "PeriodStats",
    "RiskStatus",
    "StoreReadError",
    "StoreReader",
    "Summary",
    "TradeFilterOptions",
    "event_level",
    "exit_category",
    "resolve_database_url",
]

_LIFECYCLE_TYPES = ("RuntimeStarted", "RuntimeStopped", "RiskStateChanged")
# Open bounds for optional time ranges, so every range query has one shape (and one plan).
_TS_MIN, _TS_MAX = -(2**62), 2**62


class StoreReader:
    """Read-only access to a store's database and journal; see the module docstring.

    Cheap to construct: nothing is opened until a query runs, and the database
    is looked for again on every query until it exists, so a reader made before
    the daemon's first start picks the store up once it appears.
    """

    def __init__(self, database_url: str, journal_dir: Path) -> None:
        self.database_url = database_url
        self.journal_dir = Path(journal_dir)
        self._journal = Journal(self.journal_dir)  # constructing a Journal touches nothing
        self._db = ReadOnlyDatabase(database_url)

    def close(self) -> None:
        """Release the database connections."""
        self._db.close()

    # --- account and daemon ----------------------------------------------------------------

    def equity_curve(
        self, start_ms: int | None = None, end_ms: int | None = None, max_points: int = 2000
    ) -> pd.DataFrame:
        """Return the equity samples in [start_ms, end_ms], at most `max_points` rows, oldest first.

        Samples are bucketed by ts_event in SQL; each bucket gives its last
        sample plus the min/max equity and worst drawdown inside it. The very
        first sample is always kept, and the last bucket ends with the last one.
        """
        if max_points < 2:
            raise ValueError("max_points must be at least 2 (the first and the last sample)")
        lo, hi = _range(start_ms, end_ms)
        bounds = self._db.first(
            "SELECT (SELECT MIN(ts_event) FROM equity WHERE ts_event BETWEEN :lo AND :hi),"
            " (SELECT MAX(ts_event) FROM equity WHERE ts_event BETWEEN :lo AND :hi)",
            lo=lo,
            hi=hi,
        )
        if bounds is None or bounds[0] is None:
            return frame_of([], EQUITY_COLUMNS)
        first_ts, last_ts = int(bounds[0]), int(bounds[1])
        # max_points - 1 buckets over [first_ts, last_ts] plus the first sample on its own.
        width = max(1, math.ceil((last_ts - first_ts + 1) / (max_points - 1)))
        columns = "e.seq, e.ts_event, e.equity, e.cash, e.positions_value, e.high_water_mark, e.drawdown_pct"
        columns += ", e.open_positions"
        rows = self._db.rows(
            f"""
            WITH b AS (
                SELECT (ts_event - :t0) / :width AS bucket, MAX(seq) AS last_seq, MIN(equity) AS equity_min,
                       MAX(equity) AS equity_max, MAX(drawdown_pct) AS drawdown_max
                FROM equity WHERE ts_event BETWEEN :lo AND :hi GROUP BY bucket)
            SELECT {columns}, b.equity_min, b.equity_max, b.drawdown_max
            FROM b JOIN equity e ON e.seq = b.last_seq ORDER BY e.seq""",
            t0=first_ts,
            width=width,
            lo=first_ts,
            hi=last_ts,
        )
        first = self._db.first(
            f"SELECT {columns}, e.equity, e.equity, e.drawdown_pct FROM equity e"
            " WHERE e.ts_event BETWEEN :lo AND :hi ORDER BY e.ts_event, e.seq LIMIT 1",
            lo=first_ts,
            hi=last_ts,
        )
        records = [tuple(row) for row in rows]
        if first is not None and (not records or records[0][0] != first[0]):
            records.insert(0, tuple(first))
        frame = frame_of([(r[0], r[1], None, *r[2:]) for r in records], EQUITY_COLUMNS)
        return with_utc_time(frame, "ts", "time")

    def drawdown(self, start_ms: int | None = None, end_ms: int | None = None, max_points: int = 2000) -> pd.DataFrame:
        """Return the worst drawdown from the high-water mark per bucket of `equity_curve` (ts, time, drawdown_pct)."""
        curve = self.equity_curve(start_ms, end_ms, max_points)
        return curve[["ts", "time", "drawdown_max"]].rename(columns={"drawdown_max": "drawdown_pct"})

    def equity_bounds(self) -> tuple[int, int] | None:
        """Return the ts_event of the first and the last equity sample, None without samples."""
        row = self._db.first("SELECT (SELECT MIN(ts_event) FROM equity), (SELECT MAX(ts_event) FROM equity)")
        return None if row is None or row[0] is None else (int(row[0]), int(row[1]))

    def period_stats(self, start_ms: int | None = None, end_ms: int | None = None) -> PeriodStats:
        """Return the equity at both ends of a period, its change and the worst drawdown inside it."""
        lo, hi = _range(start_ms, end_ms)
        row = self._db.first(
            """SELECT (SELECT equity FROM equity WHERE ts_event BETWEEN :lo AND :hi ORDER BY ts_event, seq LIMIT 1),
                      (SELECT equity FROM equity WHERE ts_event BETWEEN :lo AND :hi
                       ORDER BY ts_event DESC, seq DESC LIMIT 1),
                      (SELECT MAX(drawdown_pct) FROM equity WHERE ts_event BETWEEN :lo AND :hi)""",
            lo=lo,
            hi=hi,
        )
        start_equity, end_equity, worst = (None, None, None) if row is None else row
        change = None if start_equity is None else end_equity - start_equity
        change_pct = change / start_equity if change is not None and start_equity else None
        return PeriodStats(
            start_equity=start_equity,
            end_equity=end_equity,
            change=change,
            change_pct=change_pct,
            max_drawdown_pct=worst,
        )

    def lifecycle_marks(self, start_ms: int | None = None, end_ms: int | None = None) -> pd.DataFrame:
        """Return restarts, stops, halts and resumes for chart markers (seq, ts, time, kind, detail).

        Read from the events table through its type index. `kind` is "start",
        "stop", "halt" (a change to HALTED) or "resume" (a change out of it).
        """
        lo, hi = _range(start_ms, end_ms)
        rows = self._db.rows(
            "SELECT seq, ts_event, type, payload FROM events WHERE type IN (:a, :b, :c)"
            " AND ts_event BETWEEN :lo AND :hi ORDER BY seq",
            a=_LIFECYCLE_TYPES[0],
            b=_LIFECYCLE_TYPES[1],
            c=_LIFECYCLE_TYPES[2],
            lo=lo,
            hi=hi,
        )
        marks = []
        for seq, ts, event_type, payload in rows:
            fields = json.loads(payload)
            if event_type == "RuntimeStarted":
                marks.append((seq, ts, "start", f"started ({fields.get('recovered_events', 0)} events recovered)"))
            elif event_type == "RuntimeStopped":
                marks.append((seq, ts, "stop", f"stopped: {fields.get('reason', '')}"))
            elif fields.get("state") == "HALTED":
                marks.append((seq, ts, "halt", f"HALTED by {fields.get('rule', '')}: {fields.get('reason', '')}"))
            elif fields.get("previous") == "HALTED":
                marks.append((seq, ts, "resume", f"{fields.get('state', '')} by {fields.get('rule', '')}"))
        frame = frame_of([(seq, ts, None, kind, detail) for seq, ts, kind, detail in marks], MARK_COLUMNS)
        return with_utc_time(frame, "ts", "time")

    def summary(self) -> Summary | None:
        """Return the account at the latest equity sample, None before the first sample."""
        latest = self._db.first(
            "SELECT ts_event, equity, cash, positions_value, open_positions, high_water_mark, drawdown_pct"
            " FROM equity ORDER BY ts_event DESC LIMIT 1"
        )
        if latest is None:
            return None
        as_of, equity, cash, positions_value, open_positions, hwm, drawdown = latest
        day_start = as_of // DAY_MS * DAY_MS
        baseline = self._db.first(
            "SELECT COALESCE("
            " (SELECT equity FROM equity WHERE ts_event < :day ORDER BY ts_event DESC, seq DESC LIMIT 1),"
            " (SELECT equity FROM equity WHERE ts_event >= :day ORDER BY ts_event, seq LIMIT 1))",
            day=day_start,
        )
        base = float(baseline[0]) if baseline is not None and baseline[0] is not None else float(equity)
        trades = self._db.first("SELECT COUNT(*), COALESCE(SUM(net_pnl), 0) FROM trades")
        trade_count, realized = (0, 0.0) if trades is None else (int(trades[0]), float(trades[1]))
        return Summary(
            as_of_ms=int(as_of),
            equity=float(equity),
            cash=float(cash),
            positions_value=float(positions_value),
            open_positions=int(open_positions),
            high_water_mark=float(hwm),
            drawdown_pct=float(drawdown),
            today_start_ms=day_start,
            today_pnl=float(equity) - base,
            today_pnl_pct=(float(equity) - base) / base if base else 0.0,
            trade_count=trade_count,
            realized_net_pnl=realized,
        )

    def risk_state(self) -> RiskStatus:
        """Return the current trading state; ACTIVE (the engine's initial state) before any change."""
        row = self._db.first("SELECT state, previous, rule, reason, ts_event FROM risk_state ORDER BY seq DESC LIMIT 1")
        if row is None:
            return RiskStatus(state="ACTIVE", previous="", rule="", reason="", since_ms=None)
        return RiskStatus(state=row[0], previous=row[1], rule=row[2], reason=row[3], since_ms=int(row[4]))

    def heartbeat(self) -> Heartbeat | None:
        """Return the daemon's last heartbeat, None if it never beat into this store."""
        row = self._db.first(
            "SELECT component, wall_ms, pid, last_seq, detail FROM heartbeat WHERE component = :c", c="daemon"
        )
        if row is None:
            return None
        return Heartbeat(component=row[0], wall_ms=int(row[1]), pid=int(row[2]), last_seq=int(row[3]), detail=row[4])

    def runtime_status(self) -> dict[str, str | None]:
        """Return the projection's runtime_status rows (mode, last seq, started/stopped wall times...)."""
        return {key: value for key, value in self._db.rows("SELECT key, value FROM runtime_status")}

    def feed_status(self) -> pd.DataFrame:
        """Return the last candle of every symbol (symbol, ts, time, close, behind_ms vs the newest symbol).

        One query, but not `GROUP BY symbol`: SQLite answers that by reading the
        whole (symbol, ts) primary-key index, ~10M entries a year at 20 symbols.
        Walking the index instead (next symbol after the last one, then that
        symbol's newest ts) costs two index seeks per symbol: 0.1 ms instead of
        140 ms on 2M candles.
        """
        rows = self._db.rows(
            """WITH RECURSIVE symbols(symbol) AS (
                   SELECT MIN(symbol) FROM candles
                   UNION ALL
                   SELECT (SELECT MIN(c.symbol) FROM candles c WHERE c.symbol > symbols.symbol)
                   FROM symbols WHERE symbols.symbol IS NOT NULL)
               SELECT c.symbol, c.ts, c.close FROM symbols s
               JOIN candles c ON c.symbol = s.symbol
                             AND c.ts = (SELECT MAX(m.ts) FROM candles m WHERE m.symbol = s.symbol)
               ORDER BY c.symbol"""
        )
        frame = frame_of([(symbol, ts, None, close, None) for symbol, ts, close in rows], FEED_COLUMNS)
        if not frame.empty:
            frame["behind_ms"] = frame["ts"].max() - frame["ts"]
        return with_utc_time(frame, "ts", "time")

    # --- positions and trades -----------------------------------------------------------

    def open_positions(self) -> pd.DataFrame:
        """Return the open positions with their last close and unrealised PnL (gross of fees, fees alongside)."""
        rows = self._db.rows(
            """SELECT p.position_id, p.worker, p.symbol, p.qty, p.entry_ts, p.entry_price, p.stop_price,
                      p.take_profit, p.risk_usd, p.fees,
                      (SELECT c.close FROM candles c WHERE c.symbol = p.symbol ORDER BY c.ts DESC LIMIT 1),
                      (SELECT c.ts FROM candles c WHERE c.symbol = p.symbol ORDER BY c.ts DESC LIMIT 1)
               FROM positions p WHERE p.status = 'open' ORDER BY p.entry_ts, p.position_id"""
        )
        records = []
        for pid, worker, symbol, qty, entry_ts, entry, stop, tp, risk, fees, last_close, last_ts in rows:
            unrealized = None if last_close is None else (last_close - entry) * qty
            r_multiple = None if unrealized is None or not risk else unrealized / risk
            row = (pid, worker, symbol, qty, entry_ts, None, entry, stop, tp, risk, fees, last_close, last_ts)
            records.append((*row, unrealized, r_multiple))
        return with_utc_time(frame_of(records, POSITION_COLUMNS), "entry_ts", "entry_time")

    def closed_trades(
        self,
        workers: Collection[str] | None = None,
        symbols: Collection[str] | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        exit_reasons: Collection[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> pd.DataFrame:
        """Return closed trades, newest exit first, filtered in SQL; `limit=None` returns every match.

        Empty or None filters match everything; `start_ms`/`end_ms` bound the
        exit time (inclusive); `exit_reasons` are categories (see `exit_category`).
        """
        t = schema.trades
        columns = [t.c[name] for name in TRADE_COLUMNS if name not in ("entry_time", "exit_time")]
        statement = select(*columns).where(*self._trade_filters(workers, symbols, start_ms, end_ms, exit_reasons))
        statement = statement.order_by(t.c.exit_ts.desc(), t.c.seq.desc()).offset(max(0, offset))
        if limit is not None:
            statement = statement.limit(max(0, limit))
        rows = self._db.execute(statement)
        records = [(*row[:5], None, row[5], None, *row[6:]) for row in rows]
        frame = with_utc_time(frame_of(records, TRADE_COLUMNS), "entry_ts", "entry_time")
        return with_utc_time(frame, "exit_ts", "exit_time")

    def ledger_totals(
        self,
        workers: Collection[str] | None = None,
        symbols: Collection[str] | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        exit_reasons: Collection[str] | None = None,
    ) -> LedgerTotals:
        """Return the count, wins, net PnL and fees of the trades `closed_trades` would return unpaginated."""
        t = schema.trades
        statement = select(
            func.count(),
            func.coalesce(func.sum(case((t.c.net_pnl > 0, 1), else_=0)), 0),
            func.coalesce(func.sum(t.c.net_pnl), 0.0),
            func.coalesce(func.sum(t.c.fees), 0.0),
        ).where(*self._trade_filters(workers, symbols, start_ms, end_ms, exit_reasons))
        rows = self._db.execute(statement)
        if not rows:
            return LedgerTotals(trades=0, wins=0, net_pnl=0.0, fees=0.0)
        count, wins, net, fees = rows[0]
        return LedgerTotals(trades=int(count), wins=int(wins), net_pnl=float(net), fees=float(fees))

    def trade_filter_options(self) -> TradeFilterOptions:
        """Return the workers, symbols and exit-reason categories present in the ledger, and its time range."""
        t = schema.trades
        workers = [row[0] for row in self._db.execute(select(t.c.worker).distinct().order_by(t.c.worker))]
        symbols = [row[0] for row in self._db.execute(select(t.c.symbol).distinct().order_by(t.c.symbol))]
        category = self._exit_category_sql()
        reasons = [row[0] for row in self._db.execute(select(category).distinct().order_by(category))]
        bounds = self._db.first("SELECT (SELECT MIN(exit_ts) FROM trades), (SELECT MAX(exit_ts) FROM trades)")
        first, last = (None, None) if bounds is None else bounds
        return TradeFilterOptions(
            workers=tuple(workers),
            symbols=tuple(symbols),
            exit_reasons=tuple(reasons),
            first_exit_ms=None if first is None else int(first),
            last_exit_ms=None if last is None else int(last),
        )

    # --- workers ----------------------------------------------------------------------------

    def worker_attribution(
        self, start_ms: int | None = None, end_ms: int | None = None, workers: Collection[str] = ()
    ) -> pd.DataFrame:
        """Return per-worker results over trades exiting in [start_ms, end_ms], best net PnL first.

        win_rate = wins / trades (a win nets more than zero after fees);
        expectancy = net PnL / trades (USD per trade), expectancy_r the mean
        R multiple; max_drawdown is the largest fall of the worker's cumulative
        net-PnL curve from its running peak (the curve starts at 0). Workers
        with intents, faults, a state or an open position but no trades are
        listed too, and so is every name in `workers` (say, the config's):
        with zero trades and no value (NaN) for the ratios that need a trade.
        """
        lo, hi = _range(start_ms, end_ms)
        totals = self._db.rows(
            """SELECT worker, COUNT(*), SUM(CASE WHEN net_pnl > 0 THEN 1 ELSE 0 END), SUM(realized_pnl), SUM(fees),
                      SUM(net_pnl), AVG(r_multiple), AVG(CASE WHEN net_pnl > 0 THEN net_pnl END),
                      AVG(CASE WHEN net_pnl <= 0 THEN net_pnl END)
               FROM trades WHERE exit_ts BETWEEN :lo AND :hi GROUP BY worker""",
            lo=lo,
            hi=hi,
        )
        drawdowns = dict(
            self._db.rows(
                """WITH curve AS (
                       SELECT worker, exit_ts, seq, SUM(net_pnl) OVER (PARTITION BY worker ORDER BY exit_ts, seq
                                                                     ROWS UNBOUNDED PRECEDING) AS cum
                       FROM trades WHERE exit_ts BETWEEN :lo AND :hi),
                   peaks AS (
                       SELECT worker, cum, MAX(cum) OVER (PARTITION BY worker ORDER BY exit_ts, seq
                                                          ROWS UNBOUNDED PRECEDING) AS peak
                       FROM curve)
                   SELECT worker, MAX(CASE WHEN peak > 0 THEN peak ELSE 0 END - cum) FROM peaks GROUP BY worker""",
                lo=lo,
                hi=hi,
            )
        )
        faults = dict(
            self._db.rows(
                "SELECT worker, COUNT(*) FROM worker_faults WHERE ts_event BETWEEN :lo AND :hi GROUP BY worker",
                lo=lo,
                hi=hi,
            )
        )
        states = {
            w: (state, reason) for w, state, reason in self._db.rows("SELECT worker, state, reason FROM worker_state")
        }
        open_counts = dict(
            self._db.rows("SELECT worker, COUNT(*) FROM positions WHERE status = 'open' GROUP BY worker")
        )
        proposers = {name for (name,) in self._db.rows("SELECT DISTINCT worker FROM intents")}
        by_worker = {row[0]: row for row in totals}
        names = sorted({name for name in (*by_worker, *faults, *states, *open_counts, *proposers, *workers) if name})
        records = []
        for name in names:
            row = by_worker.get(name)
            count, wins, realized, fees, net, mean_r, avg_win, avg_loss = (
                row[1:] if row is not None else (0, 0, 0.0, 0.0, 0.0, None, None, None)
            )
            state, reason = states.get(name, ("active", ""))
            records.append(
                (
                    name,
                    int(count),
                    int(wins),
                    wins / count if count else None,
                    float(realized),
                    float(fees),
                    float(net),
                    net / count if count else None,
                    mean_r,
                    avg_win,
                    avg_loss,
                    float(drawdowns.get(name) or 0.0),
                    int(faults.get(name, 0)),
                    int(open_counts.get(name, 0)),
                    state,
                    reason,
                )
            )
        frame = frame_of(records, ATTRIBUTION_COLUMNS)
        return frame.sort_values("net_pnl", ascending=False, kind="stable").reset_index(drop=True)

    def worker_equity(self, worker: str, max_points: int = 1000) -> pd.DataFrame:
        """Return a worker's cumulative net PnL by exit time (ts, time, cum_net_pnl, trades), downsampled in SQL."""
        if max_points < 2:
            raise ValueError("max_points must be at least 2 (the first and the last trade)")
        bounds = self._db.first(
            "SELECT (SELECT MIN(exit_ts) FROM trades WHERE worker = :w),"
            " (SELECT MAX(exit_ts) FROM trades WHERE worker = :w)",
            w=worker,
        )
        if bounds is None or bounds[0] is None:
            return frame_of([], WORKER_CURVE_COLUMNS)
        first_ts, last_ts = int(bounds[0]), int(bounds[1])
        width = max(1, math.ceil((last_ts - first_ts + 1) / (max_points - 1)))
        rows = self._db.rows(
            """WITH curve AS (
                   SELECT exit_ts, ROW_NUMBER() OVER (ORDER BY exit_ts, seq) AS n,
                          SUM(net_pnl) OVER (ORDER BY exit_ts, seq ROWS UNBOUNDED PRECEDING) AS cum
                   FROM trades WHERE worker = :w)
               SELECT exit_ts, cum, n FROM curve
               WHERE n = 1 OR n IN (SELECT MAX(n) FROM curve GROUP BY (exit_ts - :t0) / :width)
               ORDER BY n""",
            w=worker,
            t0=first_ts,
            width=width,
        )
        frame = frame_of([(ts, None, cum, n) for ts, cum, n in rows], WORKER_CURVE_COLUMNS)
        return with_utc_time(frame, "ts", "time")

    def worker_faults(self, worker: str | None = None, limit: int = 200) -> pd.DataFrame:
        """Return the newest worker faults (all workers, or one), newest first."""
        f = schema.worker_faults
        statement = select(f.c.seq, f.c.ts_event, literal(None), f.c.worker, f.c.symbol, f.c.error_type)
        statement = statement.add_columns(f.c.message, f.c.consecutive)
        if worker:
            statement = statement.where(f.c.worker == worker)
        rows = self._db.execute(statement.order_by(f.c.seq.desc()).limit(max(0, limit)))
        return with_utc_time(frame_of([tuple(row) for row in rows], FAULT_COLUMNS), "ts", "time")

    def learner_scores(self, worker: str | None = None, limit: int = 500) -> pd.DataFrame:
        """Return the newest intents with the learner's score, veto, the risk outcome and the trade's result."""
        i, f = schema.intents, schema.features
        statement = select(
            i.c.intent_id, i.c.ts_event, literal(None), i.c.worker, i.c.symbol, i.c.side, i.c.confidence, i.c.score
        ).add_columns(i.c.vetoed, i.c.status, i.c.deny_rule, i.c.deny_reason, f.c.net_pnl, f.c.r_multiple, f.c.won)
        statement = statement.select_from(i.outerjoin(f, f.c.intent_id == i.c.intent_id))
        if worker:
            statement = statement.where(i.c.worker == worker)
        rows = self._db.execute(statement.order_by(i.c.seq.desc()).limit(max(0, limit)))
        frame = with_utc_time(frame_of([tuple(row) for row in rows], LEARNER_COLUMNS), "ts", "time")
        for column in ("vetoed", "won"):
            frame[column] = frame[column].astype("boolean")
        return frame

    def learner_summary(self, workers: Collection[str] = ()) -> pd.DataFrame:
        """Return per worker: intents, scored, vetoed, denied, filled, closed outcomes, wins and mean scores.

        Every name in `workers` (say, the config's) is listed too, with zero
        counts and None scores when it has proposed nothing; ordered by name.
        """
        rows = self._db.rows(
            """SELECT i.worker, COUNT(*), COUNT(i.score), SUM(CASE WHEN i.vetoed THEN 1 ELSE 0 END),
                      SUM(CASE WHEN i.status = 'denied' THEN 1 ELSE 0 END),
                      SUM(CASE WHEN i.status = 'filled' THEN 1 ELSE 0 END), COUNT(f.won),
                      SUM(CASE WHEN f.won THEN 1 ELSE 0 END), AVG(i.score),
                      AVG(CASE WHEN f.won THEN i.score END), AVG(CASE WHEN NOT f.won THEN i.score END)
               FROM intents i LEFT JOIN features f ON f.intent_id = i.intent_id
               GROUP BY i.worker ORDER BY i.worker"""
        )
        records = {row[0]: tuple(row) for row in rows}
        for name in workers:
            if name and name not in records:
                records[name] = (name, 0, 0, 0, 0, 0, 0, 0, None, None, None)
        return frame_of([records[name] for name in sorted(records)], LEARNER_SUMMARY_COLUMNS)

    def known_workers(self) -> list[str]:
        """Return every worker name the projection mentions (trades, intents, positions, faults, states)."""
        rows = self._db.rows(
            "SELECT worker FROM trades UNION SELECT worker FROM intents UNION SELECT worker FROM positions"
            " UNION SELECT worker FROM worker_faults UNION SELECT worker FROM worker_state"
        )
        return sorted(name for (name,) in rows if name)

    def known_symbols(self) -> list[str]:
        """Return the symbols the feed has delivered candles for."""
        return sorted(self.feed_status()["symbol"].tolist())

    # --- operator commands and the journal --------------------------------------------------

    def commands(self, limit: int = 100) -> pd.DataFrame:
        """Return the newest operator commands from the inbox (pending, applied or rejected, with the detail)."""
        c = schema.commands
        statement = select(c.c.command_id, c.c.created_wall_ms, literal(None), c.c.command, c.c.payload, c.c.status)
        statement = statement.add_columns(c.c.detail, c.c.acked_seq).order_by(c.c.command_id.desc())
        rows = self._db.execute(statement.limit(max(0, limit)))
        return with_utc_time(frame_of([tuple(row) for row in rows], COMMAND_COLUMNS), "created_wall_ms", "created_time")

    def journal_tail(
        self,
        types: Collection[str] | None = None,
        workers: Collection[str] | None = None,
        symbols: Collection[str] | None = None,
        levels: Collection[str] | None = None,
        last_n: int = 200,
        max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES,
    ) -> JournalTail:
        """Return the last `last_n` journal records matching every given filter, read from the newest files back.

        Columns: seq, ts, time, type, level, worker, symbol, detail (as `tail`
        prints it). Levels are derived from the type (see `event_level`). At
        most `max_scan_bytes` of the journal are searched; `complete` says
        whether that covered all of it.
        """
        return journal_tail(
            self._journal,
            types=types,
            workers=workers,
            symbols=symbols,
            levels=levels,
            last_n=last_n,
            max_scan_bytes=max_scan_bytes,
        )

    # --- internals ----------------------------------------------------------------------------

    def _trade_filters(
        self,
        workers: Collection[str] | None,
        symbols: Collection[str] | None,
        start_ms: int | None,
        end_ms: int | None,
        exit_reasons: Collection[str] | None,
    ) -> list[ColumnElement[bool]]:
        t = schema.trades
        clauses: list[ColumnElement[bool]] = []
        if workers:
            clauses.append(t.c.worker.in_(sorted(workers)))
        if symbols:
            clauses.append(t.c.symbol.in_(sorted(symbols)))
        if start_ms is not None:
            clauses.append(t.c.exit_ts >= start_ms)
        if end_ms is not None:
            clauses.append(t.c.exit_ts <= end_ms)
        if exit_reasons:
            clauses.append(self._exit_category_sql().in_(sorted(exit_reasons)))
        return [and_(*clauses)] if clauses else []

    def _exit_category_sql(self) -> ColumnElement[str]:
        """The SQL twin of `exit_category` for the trades table."""
        reason = schema.trades.c.exit_reason
        if self._db.backend == "postgresql":
            return func.trim(func.split_part(reason, ":", 1))
        colon = func.instr(reason, ":")
        return case((colon > 0, func.trim(func.substr(reason, 1, colon - 1))), else_=reason)


def _range(start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    return (_TS_MIN if start_ms is None else int(start_ms)), (_TS_MAX if end_ms is None else int(end_ms))
