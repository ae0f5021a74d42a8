"""Worker, learner and command queries of `StoreReader`: attribution, per-worker curves, faults, scores, inbox."""

from __future__ import annotations

import math
from collections.abc import Collection

import pandas as pd
from sqlalchemy import literal, select

from desk.services.store import schema
from desk.services.store.query_results import (
    ATTRIBUTION_COLUMNS,
    COMMAND_COLUMNS,
    FAULT_COLUMNS,
    LEARNER_COLUMNS,
    LEARNER_SUMMARY_COLUMNS,
    WORKER_CURVE_COLUMNS,
    frame_of,
    with_utc_time,
)
from desk.services.store.reader_base import ReaderBase, ts_range

__all__ = ["WorkerQueries"]


class WorkerQueries(ReaderBase):
    """Per-worker results and curves, faults, the learner's scores and the operator command inbox."""

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
        lo, hi = ts_range(start_ms, end_ms)
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

    # --- operator commands ----------------------------------------------------------------------

    def commands(self, limit: int = 100) -> pd.DataFrame:
        """Return the newest operator commands from the inbox (pending, applied or rejected, with the detail)."""
        c = schema.commands
        statement = select(c.c.command_id, c.c.created_wall_ms, literal(None), c.c.command, c.c.payload, c.c.status)
        statement = statement.add_columns(c.c.detail, c.c.acked_seq).order_by(c.c.command_id.desc())
        rows = self._db.execute(statement.limit(max(0, limit)))
        return with_utc_time(frame_of([tuple(row) for row in rows], COMMAND_COLUMNS), "created_wall_ms", "created_time")
