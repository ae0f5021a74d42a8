"""Read-only queries over the store: the one module the control room reads through.

`StoreReader` opens the SQL projection read-only (see `readonly.py`: SQLite
through a `mode=ro` URI, so it can never create, lock or change the daemon's
database) and the journal without its writer lock. A store that does not
exist yet is a normal state: every method then returns an empty result (an
empty DataFrame with the usual columns, or None) instead of failing.

Large tables are reduced in SQL, never row by row in Python: the equity curve
and the per-worker curves are bucketed by time with integer division (last
sample, min and max per bucket; a backtest's equity chunks the same way with
numpy over only the chunks in range), ledgers are filtered and paginated with the indexes
of `schema.py`, and the journal tail reads the newest files backwards.
Times are epoch milliseconds on the desk's clock (`ts`-like columns) with a
UTC datetime column next to them for display. The result types live in
`query_results.py` and are re-exported here.

The queries themselves live in one module per family, each a mixin over
`reader_base.ReaderBase` that `StoreReader` composes: `equity_queries.py`
(the equity curve, drawdown, period stats, from per-minute rows and backtest
chunks alike), `account_queries.py` (summary, lifecycle marks, risk,
heartbeat, feed; built on the equity queries), `trade_queries.py` (open positions, the closed-trade ledger and its
filters) and `worker_queries.py` (attribution, worker curves and faults, the
learner, operator commands); the journal tail is `recent.py`.
"""

from __future__ import annotations

from collections.abc import Collection

from desk.services.store.account_queries import AccountQueries
from desk.services.store.query_results import (
    DAY_MS,
    EVENT_TYPE_NAMES,
    LOG_LEVELS,
    Heartbeat,
    JournalTail,
    LedgerTotals,
    PeriodStats,
    RiskStatus,
    Summary,
    TradeFilterOptions,
    event_level,
    exit_category,
)
from desk.services.store.readonly import StoreReadError
from desk.services.store.recent import DEFAULT_MAX_SCAN_BYTES, journal_tail
from desk.services.store.store import resolve_database_url
from desk.services.store.trade_queries import TradeQueries
from desk.services.store.worker_queries import WorkerQueries

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


class StoreReader(AccountQueries, TradeQueries, WorkerQueries):
    """Read-only access to a store's database and journal; see the module docstring.

    Cheap to construct: nothing is opened until a query runs, and the database
    is looked for again on every query until it exists, so a reader made before
    the daemon's first start picks the store up once it appears.
    """

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
