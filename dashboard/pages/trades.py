"""Trades: the open positions with their protection, and the closed-trade ledger.

The ledger is filtered and paginated in SQL (`StoreReader.closed_trades`), so a
store with a hundred thousand trades renders one page of rows; the CSV download
builds the whole filtered ledger only when the button is clicked.
"""

from __future__ import annotations

import functools
from datetime import date
from typing import Any

import streamlit as st

from dashboard import common

PAGE_SIZES = (50, 100, 250, 500)
PRICE_FORMAT = "%.8g"
# Minutes are enough to tell trades apart, and without seconds and "+00:00" the time column is half as wide.
TIME = "YYYY-MM-DD HH:mm"
POSITION_VIEW = ["worker", "symbol", "qty", "entry_time", "entry_price", "stop_price", "take_profit", "last_close"]
POSITION_VIEW += ["unrealized_pnl", "unrealized_r", "risk_usd", "fees", "position_id"]
# The outcome first (net PnL, R, why it closed), the mechanics after: what is cut off on a narrow window
# is what scrolls into view, with the exit time and worker pinned beside it.
LEDGER_VIEW = ["exit_time", "worker", "symbol", "net_pnl", "r_multiple", "exit_reason", "qty", "entry_time"]
LEDGER_VIEW += ["entry_price", "exit_price", "realized_pnl", "fees", "position_id"]


def _money(label: str) -> st.column_config.NumberColumn:
    return st.column_config.NumberColumn(label, format="dollar")


def _price(label: str) -> st.column_config.NumberColumn:
    return st.column_config.NumberColumn(label, format=PRICE_FORMAT)


# Short headers and times: the thirteen columns of each table fit the page at 1400 px without scrolling.
POSITION_COLUMNS = {
    "qty": st.column_config.NumberColumn("qty", format="%.6g"),
    "entry_time": st.column_config.DatetimeColumn("entry (UTC)", format=TIME),
    "entry_price": _price("entry"),
    "stop_price": _price("stop"),
    "take_profit": _price("target"),
    "last_close": _price("last"),
    "unrealized_pnl": _money("unreal. PnL"),
    "unrealized_r": st.column_config.NumberColumn("R", format="%.2f", help="unrealised PnL / risk"),
    "risk_usd": _money("risk"),
    "fees": _money("fees"),
    "position_id": st.column_config.TextColumn("id"),
}
LEDGER_COLUMNS = {
    "exit_time": st.column_config.DatetimeColumn("exit (UTC)", format=TIME, pinned=True),
    "worker": st.column_config.TextColumn("worker", pinned=True),
    "qty": st.column_config.NumberColumn("qty", format="%.6g"),
    "entry_time": st.column_config.DatetimeColumn("entry (UTC)", format=TIME),
    "entry_price": _price("entry"),
    "exit_price": _price("exit"),
    "realized_pnl": _money("gross PnL"),
    "fees": _money("fees"),
    "net_pnl": _money("net PnL"),
    "r_multiple": st.column_config.NumberColumn("R", format="%.2f"),
    "exit_reason": st.column_config.TextColumn("exit reason", width="medium"),
    "position_id": st.column_config.TextColumn("id"),
}


def show_open_positions() -> None:
    """Open positions: entry, stop, take-profit and the unrealised PnL at the last close."""
    st.subheader("Open positions")
    positions = common.open_positions()
    if positions.empty:
        st.info("No open positions.")
        return
    common.data_table(positions[POSITION_VIEW], key="open_positions_table", column_config=POSITION_COLUMNS)
    st.caption(
        f"Unrealised PnL {common.signed_money(float(positions['unrealized_pnl'].fillna(0).sum()))} at the last "
        "closes, before exit fees (fees paid so far are listed)."
    )


def ledger_filters() -> dict[str, Any] | None:
    """Draw the ledger's filters; return them as `closed_trades` keyword arguments, None without trades."""
    options = common.trade_filter_options()
    if options.first_exit_ms is None or options.last_exit_ms is None:
        return None
    first_day, last_day = common.utc_date(options.first_exit_ms), common.utc_date(options.last_exit_ms)
    columns = st.columns([2, 2, 2, 3])
    workers = columns[0].multiselect("Worker", options.workers, key="trades_workers")
    symbols = columns[1].multiselect("Symbol", options.symbols, key="trades_symbols")
    reasons = columns[2].multiselect("Exit reason", options.exit_reasons, key="trades_reasons")
    days = columns[3].date_input(
        "Exit date (UTC)", value=(first_day, last_day), min_value=first_day, max_value=last_day, key="trades_days"
    )
    start_ms, end_ms = _day_range(days)
    return {"workers": workers, "symbols": symbols, "exit_reasons": reasons, "start_ms": start_ms, "end_ms": end_ms}


def _day_range(days: Any) -> tuple[int | None, int | None]:
    """Turn the date input's value (one day while a range is being picked, or two) into inclusive ms bounds."""
    picked = [d for d in (days if isinstance(days, tuple | list) else (days,)) if isinstance(d, date)]
    if not picked:
        return None, None
    return common.day_start_ms(picked[0]), common.day_end_ms(picked[-1])


def show_ledger() -> None:
    """The closed-trade ledger: filters, totals, one page of rows and the CSV download."""
    st.subheader("Closed trades")
    filters = ledger_filters()
    if filters is None:
        st.info("No closed trades yet.")
        return
    totals = common.ledger_totals(**filters)
    columns = st.columns(4)
    columns[0].metric("Trades", f"{totals.trades:,}")
    columns[1].metric("Net PnL", common.signed_money(totals.net_pnl))
    columns[2].metric("Win rate", common.pct(totals.win_rate, 1))
    columns[3].metric("Fees", common.money(totals.fees))

    controls = st.columns([1, 1, 4])
    page_size = controls[0].selectbox("Rows per page", PAGE_SIZES, index=1, key="trades_page_size")
    pages = max(1, -(-totals.trades // page_size))
    page = int(controls[1].number_input("Page", min_value=1, max_value=pages, value=1, step=1, key="trades_page"))
    ledger = common.closed_trades(limit=page_size, offset=(page - 1) * page_size, **filters)
    controls[2].caption(f"Page {page} of {pages}, newest exit first.")
    common.data_table(ledger[LEDGER_VIEW], key="ledger_table", column_config=LEDGER_COLUMNS)
    st.download_button(
        f"Download the filtered ledger as CSV ({totals.trades:,} trades)",
        data=functools.partial(common.ledger_csv, common.reader(), filters),
        file_name="closed_trades.csv",
        mime="text/csv",
        key="ledger_csv",
        on_click="ignore",
    )


common.page_header("Trades")
show_open_positions()
show_ledger()
