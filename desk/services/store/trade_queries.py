"""Position and trade queries of `StoreReader`: open positions and the closed-trade ledger, filtered in SQL."""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd
from sqlalchemy import and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from desk.services.store import schema
from desk.services.store.query_results import (
    POSITION_COLUMNS,
    TRADE_COLUMNS,
    LedgerTotals,
    TradeFilterOptions,
    frame_of,
    with_utc_time,
)
from desk.services.store.reader_base import ReaderBase

__all__ = ["TradeQueries"]


class TradeQueries(ReaderBase):
    """Open positions, closed trades, their totals and the values the ledger can be filtered by."""

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
