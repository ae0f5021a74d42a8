"""Account, daemon and feed queries of `StoreReader`: summary, lifecycle marks, risk, heartbeat, feed.

The equity curve, drawdown and period stats are in `equity_queries.py`, which this builds on.
"""

from __future__ import annotations

import json

import pandas as pd

from desk.services.store.equity_queries import EquityQueries
from desk.services.store.query_results import (
    DAY_MS,
    FEED_COLUMNS,
    MARK_COLUMNS,
    Heartbeat,
    RiskStatus,
    Summary,
    frame_of,
    with_utc_time,
)
from desk.services.store.reader_base import ts_range

__all__ = ["AccountQueries"]

_LIFECYCLE_TYPES = ("RuntimeStarted", "RuntimeStopped", "RiskStateChanged")


class AccountQueries(EquityQueries):
    """The account at a time and over a period, the daemon's state and the feed's progress."""

    def lifecycle_marks(self, start_ms: int | None = None, end_ms: int | None = None) -> pd.DataFrame:
        """Return restarts, stops, halts and resumes for chart markers (seq, ts, time, kind, detail).

        Read from the events table through its type index. `kind` is "start",
        "stop", "halt" (a change to HALTED) or "resume" (a change out of it).
        """
        lo, hi = ts_range(start_ms, end_ms)
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
        lo, hi = ts_range(None, None)
        latest = self.last_mark(lo, hi)
        if latest is None:
            return None
        _, as_of, equity, cash, positions_value, hwm, drawdown, open_positions = latest
        day_start = as_of // DAY_MS * DAY_MS
        # The last mark before today, else (a store that started today) today's first.
        baseline = self.last_mark(lo, day_start - 1) or self.first_mark(day_start, hi)
        base = float(equity) if baseline is None else float(baseline[2])
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

    def known_symbols(self) -> list[str]:
        """Return the symbols the feed has delivered candles for."""
        return sorted(self.feed_status()["symbol"].tolist())
