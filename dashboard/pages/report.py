"""Report: pick a period, build a PDF performance report in memory, download it.

The PDF is built by `dashboard.report_pdf.build_report_pdf` only when asked
(it takes a moment on a big store) and kept in the session for its period, so
the download button does not rebuild it on every rerun.
"""

from __future__ import annotations

from datetime import date

import streamlit as st

from dashboard import common
from dashboard.report_pdf import build_report_pdf

_REPORT = "report_pdf"  # session key: (store, start_ms, end_ms, pdf bytes)


def pick_period(bounds: tuple[int, int]) -> tuple[int, int]:
    """Draw the date range (UTC days) and return it as inclusive epoch-ms bounds."""
    first_day, last_day = common.utc_date(bounds[0]), common.utc_date(bounds[1])
    days = st.date_input(
        "Period (UTC days)", value=(first_day, last_day), min_value=first_day, max_value=last_day, key="report_days"
    )
    picked = [d for d in (days if isinstance(days, tuple | list) else (days,)) if isinstance(d, date)]
    start, end = (picked[0], picked[-1]) if picked else (first_day, last_day)
    return common.day_start_ms(start), common.day_end_ms(end)


def show_preview(start_ms: int, end_ms: int) -> None:
    """The report's headline figures, so the period can be checked before building the PDF."""
    stats = common.period_stats(start_ms, end_ms)
    totals = common.ledger_totals(start_ms=start_ms, end_ms=end_ms)
    columns = st.columns(4)
    columns[0].metric("Equity at end", common.money(stats.end_equity))
    columns[1].metric("Change", common.signed_money(stats.change), delta=common.pct(stats.change_pct))
    columns[2].metric("Worst drawdown", common.pct(stats.max_drawdown_pct))
    columns[3].metric("Closed trades", f"{totals.trades:,}", help=f"net {common.signed_money(totals.net_pnl)}")


location = common.page_header("Report")
bounds = common.equity_bounds()
if bounds is None:
    st.info("Nothing to report yet: the store has no equity samples.")
    st.stop()
start_ms, end_ms = pick_period(bounds)
show_preview(start_ms, end_ms)
wanted = (location.database_url, start_ms, end_ms)
if st.button("Build PDF report", type="primary", key="report_build"):
    with st.spinner("Building the report..."):
        st.session_state[_REPORT] = (*wanted, build_report_pdf(common.reader(), start_ms, end_ms))
built = st.session_state.get(_REPORT)
if built is not None and tuple(built[:3]) == wanted:
    first, last = common.utc_date(start_ms).isoformat(), common.utc_date(end_ms).isoformat()
    st.download_button(
        f"Download the report ({len(built[3]) / 1024:,.0f} KB)",
        data=built[3],
        file_name=f"trading-desk-report-{first}-to-{last}.pdf",
        mime="application/pdf",
        key="report_download",
        on_click="ignore",
    )
else:
    st.caption(
        "Build the report to download it as a PDF: a title page with the totals, the equity and drawdown "
        "charts with restarts and halts marked, and the per-worker attribution."
    )
