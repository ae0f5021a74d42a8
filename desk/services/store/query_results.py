"""What the store's read queries return: result types, column lists and display levels.

Kept apart from `queries.py` so the reader stays about SQL; `queries` re-exports
everything here, so the control room still imports one module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from desk.core.events import EVENT_TYPES

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "COMMAND_COLUMNS",
    "DAY_MS",
    "EQUITY_COLUMNS",
    "ERROR_TYPES",
    "EVENT_TYPE_NAMES",
    "FAULT_COLUMNS",
    "FEED_COLUMNS",
    "JOURNAL_COLUMNS",
    "LEARNER_COLUMNS",
    "LEARNER_SUMMARY_COLUMNS",
    "LOG_LEVELS",
    "MARK_COLUMNS",
    "POSITION_COLUMNS",
    "TRADE_COLUMNS",
    "WARNING_TYPES",
    "WORKER_CURVE_COLUMNS",
    "Heartbeat",
    "JournalTail",
    "LedgerTotals",
    "PeriodStats",
    "RiskStatus",
    "Summary",
    "TradeFilterOptions",
    "event_level",
    "exit_category",
    "frame_of",
    "with_utc_time",
]

DAY_MS = 86_400_000
EVENT_TYPE_NAMES: tuple[str, ...] = tuple(sorted(EVENT_TYPES))
LOG_LEVELS = ("error", "warning", "info")
# Journal records have no level; the control room derives one from the type so an operator can
# filter for what needs attention: a fault or a broker rejection is an error, a refusal or a state
# change a warning, everything else (candles, fills, samples...) is info.
ERROR_TYPES = frozenset({"WorkerFaulted", "OrderRejected"})
WARNING_TYPES = frozenset({"OrderDenied", "RiskStateChanged", "WorkerStateChanged"})

# The columns of each DataFrame result, so an empty result still has them (pages can rely on them).
# `ts`-like columns are epoch ms on the desk's clock, `*time` the same instant as a UTC datetime.
EQUITY_COLUMNS = ["seq", "ts", "time", "equity", "cash", "positions_value", "high_water_mark", "drawdown_pct"]
EQUITY_COLUMNS += ["open_positions", "equity_min", "equity_max", "drawdown_max"]
MARK_COLUMNS = ["seq", "ts", "time", "kind", "detail"]
FEED_COLUMNS = ["symbol", "ts", "time", "close", "behind_ms"]
POSITION_COLUMNS = ["position_id", "worker", "symbol", "qty", "entry_ts", "entry_time", "entry_price", "stop_price"]
POSITION_COLUMNS += ["take_profit", "risk_usd", "fees", "last_close", "last_ts", "unrealized_pnl", "unrealized_r"]
TRADE_COLUMNS = ["position_id", "worker", "symbol", "qty", "entry_ts", "entry_time", "exit_ts", "exit_time"]
TRADE_COLUMNS += ["entry_price", "exit_price", "realized_pnl", "fees", "net_pnl", "r_multiple", "exit_reason"]
ATTRIBUTION_COLUMNS = ["worker", "trades", "wins", "win_rate", "realized_pnl", "fees", "net_pnl", "expectancy"]
ATTRIBUTION_COLUMNS += ["expectancy_r", "avg_win", "avg_loss", "max_drawdown", "faults", "open_positions", "state"]
ATTRIBUTION_COLUMNS += ["state_reason"]
WORKER_CURVE_COLUMNS = ["ts", "time", "cum_net_pnl", "trades"]
FAULT_COLUMNS = ["seq", "ts", "time", "worker", "symbol", "error_type", "message", "consecutive"]
LEARNER_COLUMNS = ["intent_id", "ts", "time", "worker", "symbol", "side", "confidence", "score", "vetoed", "status"]
LEARNER_COLUMNS += ["deny_rule", "deny_reason", "net_pnl", "r_multiple", "won"]
LEARNER_SUMMARY_COLUMNS = ["worker", "intents", "scored", "vetoed", "denied", "filled", "outcomes", "wins"]
LEARNER_SUMMARY_COLUMNS += ["mean_score", "mean_score_won", "mean_score_lost"]
COMMAND_COLUMNS = ["command_id", "created_wall_ms", "created_time", "command", "payload", "status", "detail"]
COMMAND_COLUMNS += ["acked_seq"]
JOURNAL_COLUMNS = ["seq", "ts", "time", "type", "level", "worker", "symbol", "detail"]


def event_level(event_type: str) -> str:
    """Return the display level of a journal record type: "error", "warning" or "info"."""
    if event_type in ERROR_TYPES:
        return "error"
    if event_type in WARNING_TYPES:
        return "warning"
    return "info"


def exit_category(exit_reason: str) -> str:
    """Return the kind of exit: the text before the first colon (`signal: RSI crossed…` is "signal")."""
    return exit_reason.split(":", 1)[0].strip()


def frame_of(records: Sequence[tuple[Any, ...]], columns: list[str]) -> pd.DataFrame:
    """Return a DataFrame of `records` with `columns`, empty but with those columns when there are none."""
    return pd.DataFrame.from_records(list(records), columns=columns)


def with_utc_time(frame: pd.DataFrame, ms_column: str, time_column: str) -> pd.DataFrame:
    """Fill `time_column` with the UTC datetimes of the epoch-ms `ms_column`; return the frame."""
    frame[time_column] = pd.to_datetime(frame[ms_column].astype("Int64"), unit="ms", utc=True)
    return frame


@dataclass(frozen=True, slots=True)
class Summary:
    """The account at its latest equity sample; "today" is that sample's UTC day on the desk's clock."""

    as_of_ms: int
    equity: float
    cash: float
    positions_value: float  # open exposure, marked to the last closes
    open_positions: int
    high_water_mark: float
    drawdown_pct: float
    today_start_ms: int
    # Equity change since the last sample of the previous UTC day (the first sample of today when
    # the store started today). The risk engine's daily limit measures from today's first sample.
    today_pnl: float
    today_pnl_pct: float
    trade_count: int
    realized_net_pnl: float


@dataclass(frozen=True, slots=True)
class PeriodStats:
    """Equity at both ends of a period, the change, and the worst drawdown from the high-water mark inside it."""

    start_equity: float | None
    end_equity: float | None
    change: float | None
    change_pct: float | None
    max_drawdown_pct: float | None


@dataclass(frozen=True, slots=True)
class RiskStatus:
    """The trading state and the change that set it; ACTIVE with no `since_ms` when it never changed."""

    state: str
    previous: str
    rule: str
    reason: str
    since_ms: int | None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The daemon's last sign of life (wall clock, not the desk's clock)."""

    component: str
    wall_ms: int
    pid: int
    last_seq: int
    detail: str

    @property
    def stopped(self) -> bool:
        """Return True when the daemon's last beat said it was stopping."""
        return self.detail.startswith("stopped")

    def age_s(self, now_wall_ms: int) -> float:
        """Return the seconds since the beat."""
        return max(0.0, (now_wall_ms - self.wall_ms) / 1000)


@dataclass(frozen=True, slots=True)
class TradeFilterOptions:
    """The values the closed-trade filters can take, and the exit-time range."""

    workers: tuple[str, ...]
    symbols: tuple[str, ...]
    exit_reasons: tuple[str, ...]  # categories, see `exit_category`
    first_exit_ms: int | None
    last_exit_ms: int | None


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """Totals of a filtered closed-trade ledger."""

    trades: int
    wins: int
    net_pnl: float
    fees: float

    @property
    def win_rate(self) -> float | None:
        """Return wins / trades, None without trades."""
        return self.wins / self.trades if self.trades else None


@dataclass(frozen=True, slots=True)
class JournalTail:
    """The newest matching journal records (oldest first) and how much of the journal was searched."""

    rows: pd.DataFrame
    bytes_scanned: int
    complete: bool  # the whole journal was searched
