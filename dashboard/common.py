"""Shared pieces of the control room's pages: which store to read, cached queries, formatting.

Every page reads the store through `desk.services.store.queries.StoreReader`,
here wrapped in Streamlit caches keyed by the store's location, so two stores
(two tests, or an operator switching DESK_STORE_DIR) never share an answer.
Live figures (heartbeat, summary, journal) are cached for `LIVE_TTL_S`,
heavier ones (curves, ledgers, attribution) for `QUERY_TTL_S`: a rerun within
that time costs nothing, and the page is never more than seconds stale.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import streamlit as st
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from desk.config import StoreConfig
from desk.config_versions import redact_text
from desk.services.store.queries import (
    Heartbeat,
    JournalTail,
    LedgerTotals,
    PeriodStats,
    RiskStatus,
    StoreReader,
    StoreReadError,
    Summary,
    TradeFilterOptions,
    exit_category,
    resolve_database_url,
)

__all__ = [
    "CHART_CONFIG",
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "HEARTBEAT_STALE_S",
    "MISSING",
    "STORE_DIR_ENV",
    "StoreLocation",
    "StoreLocationError",
    "configured_workers",
    "data_table",
    "database_display",
    "day_end_ms",
    "day_start_ms",
    "duration",
    "ledger_csv",
    "money",
    "page_header",
    "pct",
    "reader",
    "resolve_store",
    "signed_money",
    "store_location",
    "utc_time",
    "wall_ms",
]

STORE_DIR_ENV = "DESK_STORE_DIR"
CONFIG_ENV = "DESK_CONFIG"
DEFAULT_CONFIG = "configs/config.yaml"
LIVE_TTL_S = 2.0
QUERY_TTL_S = 5.0
# The daemon beats once a wall second; half a minute of silence means it is hung or gone.
HEARTBEAT_STALE_S = 30.0
DAY_MS = 86_400_000
NO_VALUE = "n/a"
# What a table shows in an empty cell (st.dataframe's placeholder; its default is the text "None").
MISSING = "\u2013"  # an en dash
# Plotly's mode bar sits over the top right of the plot, on the data: charts here go without it.
CHART_CONFIG: dict[str, Any] = {"displayModeBar": False, "displaylogo": False}

T = TypeVar("T")


# --- which store ------------------------------------------------------------------------------


class StoreLocationError(Exception):
    """The control room cannot tell which store to read (a missing or unreadable config)."""


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where a store lives; `config_path` is the config the daemon runs on, when there is one."""

    database_url: str
    journal_dir: Path
    config_path: Path | None


def resolve_store(env: Mapping[str, str], cwd: Path) -> StoreLocation:
    """Return the store the control room should read.

    With DESK_STORE_DIR set (a backtest's --out folder, or a test's store), the
    store is DIR/journal and sqlite:///DIR/desk.db; the config is DESK_CONFIG
    if set, else DIR/config.yaml if it exists. Otherwise the store section of
    DESK_CONFIG (default configs/config.yaml) is used, relative paths resolved
    against `cwd` as the daemon does. Only the store section is read, so a
    config with a mistake elsewhere still shows its store.
    """
    config_value = env.get(CONFIG_ENV, "").strip()
    config_path = _absolute(Path(config_value or DEFAULT_CONFIG), cwd)
    store_dir_value = env.get(STORE_DIR_ENV, "").strip()
    if store_dir_value:
        store_dir = _absolute(Path(store_dir_value), cwd)
        if not config_value:
            candidate = store_dir / "config.yaml"
            config_path = candidate if candidate.is_file() else None
        return StoreLocation(f"sqlite:///{store_dir / 'desk.db'}", store_dir / "journal", config_path)
    try:
        mtime_ns = config_path.stat().st_mtime_ns
    except OSError as exc:
        raise StoreLocationError(
            f"config {config_path} not found ({exc.strerror}); set {CONFIG_ENV} or {STORE_DIR_ENV}"
        ) from exc
    store = _store_section(config_path, mtime_ns)
    journal_dir = _absolute(Path(store.journal_dir), cwd)
    return StoreLocation(resolve_database_url(store.database_url, cwd), journal_dir, config_path)


@functools.lru_cache(maxsize=16)
def _store_section(config_path: Path, mtime_ns: int) -> StoreConfig:
    """Parse the store section of a config; cached per file version (`mtime_ns` is the key, not read)."""
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise StoreLocationError(f"cannot read {config_path}: {exc}") from exc
    section = data.get("store", {}) if isinstance(data, dict) else {}
    try:
        return StoreConfig.model_validate(section or {})
    except ValidationError as exc:  # pydantic quotes the invalid input, which may be a URL with a password
        raise StoreLocationError(f"{config_path}: invalid store section: {redact_text(str(exc))}") from exc


def _absolute(path: Path, cwd: Path) -> Path:
    return path if path.is_absolute() else cwd / path


def store_location() -> StoreLocation:
    """Return the store for this process's environment and working directory."""
    return resolve_store(os.environ, Path.cwd())


def database_display(database_url: str) -> str:
    """Return the database URL with any password masked: the only form of it a page may show."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return redact_text(database_url)


def configured_workers() -> tuple[str, ...]:
    """Return the worker names of the config the store belongs to, in config order; () without a readable one.

    Only the names of the `workers` list are read, so a config with a mistake
    elsewhere still names its workers; the pages list them even before they trade.
    """
    try:
        config_path = store_location().config_path
        if config_path is None:
            return ()
        return _worker_names(config_path, config_path.stat().st_mtime_ns)
    except (StoreLocationError, OSError):
        return ()


@functools.lru_cache(maxsize=16)
def _worker_names(config_path: Path, mtime_ns: int) -> tuple[str, ...]:
    """The names in a config's `workers` list; cached per file version (`mtime_ns` is the key, not read)."""
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ()
    workers = data.get("workers") if isinstance(data, dict) else None
    if not isinstance(workers, list):
        return ()
    names = (str(worker["name"]) for worker in workers if isinstance(worker, dict) and worker.get("name"))
    return tuple(dict.fromkeys(names))


@st.cache_resource(show_spinner=False)
def get_reader(database_url: str, journal_dir: str) -> StoreReader:
    """Return the shared reader of one store (one connection pool per store and process)."""
    return StoreReader(database_url, Path(journal_dir))


def reader() -> StoreReader:
    """Return the reader of the current store."""
    location = store_location()
    return get_reader(location.database_url, str(location.journal_dir))


# --- cached queries -----------------------------------------------------------------------------


# Two functions, not one decorated twice: Streamlit keys a cache by the function, so they would share one.
@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False, max_entries=256)
def _live_call(database_url: str, journal_dir: str, method: str, kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return getattr(get_reader(database_url, journal_dir), method)(**dict(kwargs))


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False, max_entries=256)
def _slow_call(database_url: str, journal_dir: str, method: str, kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return getattr(get_reader(database_url, journal_dir), method)(**dict(kwargs))


def _query(cached: Callable[..., T], method: str, **kwargs: Any) -> T:
    """Run a reader method through a cache keyed by the store and the arguments; stop the page on a read error."""
    location = store_location()
    # Collections become sorted tuples: hashable, and the same filter in another order is the same query.
    key = tuple(
        (name, tuple(sorted(value)) if isinstance(value, list | set | frozenset | tuple) else value)
        for name, value in sorted(kwargs.items())
    )
    try:
        return cached(location.database_url, str(location.journal_dir), method, key)
    except StoreReadError as exc:
        st.error(f"Cannot read the store at `{database_display(location.database_url)}`: {redact_text(str(exc))}")
        st.stop()
        raise  # st.stop raises; this keeps type checkers and readers sure nothing follows


def summary() -> Summary | None:
    """Cached `StoreReader.summary`."""
    return _query(_live_call, "summary")


def risk_state() -> RiskStatus:
    """Cached `StoreReader.risk_state`."""
    return _query(_live_call, "risk_state")


def heartbeat() -> Heartbeat | None:
    """Cached `StoreReader.heartbeat`."""
    return _query(_live_call, "heartbeat")


def runtime_status() -> dict[str, str | None]:
    """Cached `StoreReader.runtime_status`."""
    return _query(_live_call, "runtime_status")


def feed_status() -> pd.DataFrame:
    """Cached `StoreReader.feed_status`."""
    return _query(_live_call, "feed_status")


def equity_curve(start_ms: int | None = None, end_ms: int | None = None, max_points: int = 2000) -> pd.DataFrame:
    """Cached `StoreReader.equity_curve`."""
    return _query(_slow_call, "equity_curve", start_ms=start_ms, end_ms=end_ms, max_points=max_points)


def equity_bounds() -> tuple[int, int] | None:
    """Cached `StoreReader.equity_bounds`."""
    return _query(_slow_call, "equity_bounds")


def period_stats(start_ms: int | None = None, end_ms: int | None = None) -> PeriodStats:
    """Cached `StoreReader.period_stats`."""
    return _query(_slow_call, "period_stats", start_ms=start_ms, end_ms=end_ms)


def lifecycle_marks(start_ms: int | None = None, end_ms: int | None = None) -> pd.DataFrame:
    """Cached `StoreReader.lifecycle_marks`."""
    return _query(_slow_call, "lifecycle_marks", start_ms=start_ms, end_ms=end_ms)


def open_positions() -> pd.DataFrame:
    """Cached `StoreReader.open_positions`."""
    return _query(_live_call, "open_positions")


def closed_trades(limit: int | None = 100, offset: int = 0, **filters: Any) -> pd.DataFrame:
    """Cached `StoreReader.closed_trades` (filters: workers, symbols, start_ms, end_ms, exit_reasons)."""
    return _query(_slow_call, "closed_trades", limit=limit, offset=offset, **filters)


def ledger_totals(**filters: Any) -> LedgerTotals:
    """Cached `StoreReader.ledger_totals`."""
    return _query(_slow_call, "ledger_totals", **filters)


def trade_filter_options() -> TradeFilterOptions:
    """Cached `StoreReader.trade_filter_options`."""
    return _query(_slow_call, "trade_filter_options")


def worker_attribution(
    start_ms: int | None = None, end_ms: int | None = None, workers: Collection[str] = ()
) -> pd.DataFrame:
    """Cached `StoreReader.worker_attribution` (`workers`: also list these, with zeros if they did nothing)."""
    return _query(_slow_call, "worker_attribution", start_ms=start_ms, end_ms=end_ms, workers=list(workers))


def worker_equity(worker: str, max_points: int = 1000) -> pd.DataFrame:
    """Cached `StoreReader.worker_equity`."""
    return _query(_slow_call, "worker_equity", worker=worker, max_points=max_points)


def worker_faults(worker: str | None = None, limit: int = 200) -> pd.DataFrame:
    """Cached `StoreReader.worker_faults`."""
    return _query(_slow_call, "worker_faults", worker=worker, limit=limit)


def learner_scores(worker: str | None = None, limit: int = 500) -> pd.DataFrame:
    """Cached `StoreReader.learner_scores`."""
    return _query(_slow_call, "learner_scores", worker=worker, limit=limit)


def learner_summary(workers: Collection[str] = ()) -> pd.DataFrame:
    """Cached `StoreReader.learner_summary` (`workers`: also list these, with zeros if they proposed nothing)."""
    return _query(_slow_call, "learner_summary", workers=list(workers))


def known_workers() -> list[str]:
    """Cached `StoreReader.known_workers`."""
    return _query(_slow_call, "known_workers")


def known_symbols() -> list[str]:
    """Cached `StoreReader.known_symbols`."""
    return _query(_slow_call, "known_symbols")


def commands(limit: int = 100) -> pd.DataFrame:
    """Cached `StoreReader.commands`."""
    return _query(_live_call, "commands", limit=limit)


def journal_tail(
    types: Collection[str] = (),
    workers: Collection[str] = (),
    symbols: Collection[str] = (),
    levels: Collection[str] = (),
    last_n: int = 200,
) -> JournalTail:
    """Cached `StoreReader.journal_tail`."""
    return _query(
        _live_call,
        "journal_tail",
        types=list(types),
        workers=list(workers),
        symbols=list(symbols),
        levels=list(levels),
        last_n=last_n,
    )


def ledger_csv(read: StoreReader, filters: Mapping[str, Any]) -> bytes:
    """Return the whole filtered closed-trade ledger as CSV, with the exit kind next to the full reason.

    Uncached and unpaginated on purpose: the Trades page hands this to its
    download button as deferred data, so it runs only when the button is clicked.
    """
    ledger = read.closed_trades(limit=None, **filters)
    ledger.insert(len(ledger.columns) - 1, "exit_kind", [exit_category(reason) for reason in ledger["exit_reason"]])
    return ledger.to_csv(index=False).encode("utf-8")


# --- formatting ---------------------------------------------------------------------------------


def money(value: float | None, currency: str = "$") -> str:
    """Return `$1,234.56` (`-$1,234.56` below zero, NO_VALUE for none)."""
    if value is None or pd.isna(value):
        return NO_VALUE
    sign = "-" if value < 0 else ""
    return f"{sign}{currency}{abs(value):,.2f}"


def signed_money(value: float | None, currency: str = "$") -> str:
    """Return `+$1.00` / `-$1.00`: for changes, where the sign is the point."""
    if value is None or pd.isna(value):
        return NO_VALUE
    return ("+" if value >= 0 else "-") + money(abs(value), currency)


def pct(fraction: float | None, digits: int = 2) -> str:
    """Return a fraction as a percentage: 0.0123 -> `1.23%`."""
    if fraction is None or pd.isna(fraction):
        return NO_VALUE
    return f"{fraction * 100:.{digits}f}%"


def utc_time(ms: int | None, seconds: bool = False) -> str:
    """Return epoch milliseconds as `2026-01-01 05:00 UTC`."""
    if ms is None or pd.isna(ms):
        return NO_VALUE
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    """Return a short human duration: `12 s`, `3 min 4 s`, `2 h 5 min`, `3 d 4 h`."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def day_start_ms(day: date) -> int:
    """Return the first millisecond of a UTC calendar day."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def day_end_ms(day: date) -> int:
    """Return the last millisecond of a UTC calendar day."""
    return day_start_ms(day + timedelta(days=1)) - 1


def utc_date(ms: int) -> date:
    """Return the UTC calendar day of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def wall_ms() -> int:
    """Return the wall clock in epoch milliseconds (heartbeats are on the wall clock)."""
    return time.time_ns() // 1_000_000


def page_header(title: str) -> StoreLocation:
    """Show the page title and which store it reads; stop the page when the store cannot be located."""
    st.title(title)
    try:
        location = store_location()
    except StoreLocationError as exc:
        st.error(f"No store to show: {redact_text(str(exc))}")
        st.stop()
        raise
    st.caption(f"Store: database `{database_display(location.database_url)}` · journal `{location.journal_dir}`")
    return location


def data_table(data: Any, key: str, **options: Any) -> None:
    """Show a read-only table the pages' way: no index, full width, `MISSING` in empty cells.

    `key` gives the table a stable identity in the browser; `options` go to `st.dataframe`
    as they are (`column_config`, `height`...).
    """
    st.dataframe(data, hide_index=True, width="stretch", key=key, placeholder=MISSING, **options)
