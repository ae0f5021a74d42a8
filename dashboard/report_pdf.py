"""A performance report as a PDF, built in memory with matplotlib (Agg, no display, no pyplot state).

`build_report_pdf` is a pure function of the store and a period: a title page
with the totals, a page with the equity and drawdown charts (restarts and
halts marked), and the per-worker attribution table (continued over as many
pages as the workers need). It reads through `StoreReader` only, so it works
the same from the Report page, a test or a script.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")  # a server process has no display; set before anything draws

import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from desk.services.store.queries import StoreReader

__all__ = ["build_report_pdf"]

A4_PORTRAIT = (8.27, 11.69)
WORKER_ROWS_PER_PAGE = 32
# Worker names are the long column; the figures fit in a tenth of the width each.
WORKER_COLUMN_WIDTHS = [0.2, 0.08, 0.09, 0.11, 0.1, 0.11, 0.1, 0.07, 0.09]
MARK_COLORS = {"start": "#2e7d32", "stop": "#757575", "halt": "#c62828", "resume": "#1565c0"}


def build_report_pdf(reader: StoreReader, start_ms: int | None, end_ms: int | None) -> bytes:
    """Return the PDF bytes of a performance report on trades and equity in [start_ms, end_ms] (None: open)."""
    curve = reader.equity_curve(start_ms, end_ms, max_points=1500)
    marks = reader.lifecycle_marks(start_ms, end_ms)
    attribution = reader.worker_attribution(start_ms, end_ms)
    buffer = io.BytesIO()
    # Fixed dates keep the bytes a function of the store only (no creation time in the file).
    metadata = {"Title": "Trading Desk performance report", "Creator": "Trading Desk", "CreationDate": None}
    with PdfPages(buffer, metadata=metadata) as pdf:
        pdf.savefig(_title_page(reader, start_ms, end_ms, curve, marks))
        pdf.savefig(_charts_page(curve, marks))
        for page in _worker_pages(attribution):
            pdf.savefig(page)
    return buffer.getvalue()


def _period_text(start_ms: int | None, end_ms: int | None, curve: pd.DataFrame) -> str:
    first = start_ms if start_ms is not None else (int(curve["ts"].iloc[0]) if not curve.empty else None)
    last = end_ms if end_ms is not None else (int(curve["ts"].iloc[-1]) if not curve.empty else None)
    return f"{_utc(first)}  to  {_utc(last)}"


def _title_page(
    reader: StoreReader, start_ms: int | None, end_ms: int | None, curve: pd.DataFrame, marks: pd.DataFrame
) -> Figure:
    stats = reader.period_stats(start_ms, end_ms)
    totals = reader.ledger_totals(start_ms=start_ms, end_ms=end_ms)
    risk = reader.risk_state()
    figure = Figure(figsize=A4_PORTRAIT)
    figure.text(0.08, 0.92, "Trading Desk", fontsize=26, weight="bold")
    figure.text(0.08, 0.885, "Performance report", fontsize=16)
    figure.text(0.08, 0.85, f"Period (UTC): {_period_text(start_ms, end_ms, curve)}", fontsize=10)
    figure.text(0.08, 0.83, f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}", fontsize=9, color="#555")
    rows = [
        ("Equity at start", _money(stats.start_equity)),
        ("Equity at end", _money(stats.end_equity)),
        ("Change", f"{_money(stats.change, signed=True)} ({_pct(stats.change_pct)})"),
        ("Worst drawdown from high-water mark", _pct(stats.max_drawdown_pct)),
        ("Closed trades", f"{totals.trades:,}"),
        ("Win rate (net of fees)", _pct(totals.win_rate)),
        ("Net realised PnL", _money(totals.net_pnl, signed=True)),
        ("Fees paid on those trades", _money(totals.fees)),
        ("Restarts in the period", str(int(marks["kind"].eq("start").sum()))),
        ("Halts in the period", str(int(marks["kind"].eq("halt").sum()))),
        ("Trading state now", f"{risk.state}" + (f" ({risk.rule}: {risk.reason})" if risk.rule else "")),
    ]
    if stats.start_equity is None:
        figure.text(0.08, 0.76, "No equity samples in this period.", fontsize=12, color="#c62828")
    axes = figure.add_axes((0.08, 0.35, 0.84, 0.4))
    axes.axis("off")
    table = axes.table(cellText=[[k, v] for k, v in rows], colWidths=[0.55, 0.45], loc="upper left", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(11)
    table.scale(1, 1.8)
    return figure


def _charts_page(curve: pd.DataFrame, marks: pd.DataFrame) -> Figure:
    figure = Figure(figsize=A4_PORTRAIT)
    equity_axes, drawdown_axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    figure.suptitle("Equity and drawdown", fontsize=14)
    if curve.empty:
        equity_axes.text(0.5, 0.5, "No equity samples in this period", ha="center", transform=equity_axes.transAxes)
    else:
        times = curve["time"].dt.tz_convert(None)  # naive UTC: matplotlib's date axis needs no tz juggling
        equity_axes.fill_between(times, curve["equity_min"], curve["equity_max"], color="#1f77b4", alpha=0.15, lw=0)
        equity_axes.plot(times, curve["equity"], color="#1f77b4", lw=1.2, label="equity")
        drawdown_axes.fill_between(times, -curve["drawdown_max"] * 100, 0, color="#c62828", alpha=0.5, lw=0)
        drawdown_axes.plot(times, -curve["drawdown_max"] * 100, color="#c62828", lw=0.8)
        for kind, group in marks.groupby("kind"):
            for when in group["time"].dt.tz_convert(None):
                equity_axes.axvline(when, color=MARK_COLORS.get(str(kind), "#000"), lw=0.8, ls=":")
        equity_axes.legend(loc="upper left", fontsize=8)
    equity_axes.set_ylabel("equity")
    equity_axes.grid(alpha=0.3)
    drawdown_axes.set_ylabel("drawdown %")
    drawdown_axes.set_xlabel("time (UTC)")
    drawdown_axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.text(0.08, 0.02, "Dotted lines: restarts (green), stops (grey), halts (red), resumes (blue).", fontsize=8)
    return figure


def _worker_pages(attribution: pd.DataFrame) -> list[Figure]:
    header = ["worker", "trades", "win rate", "net PnL", "fees", "expectancy", "max DD", "faults", "state"]
    rows = [
        [
            str(row.worker),
            f"{int(row.trades):,}",
            _pct(row.win_rate),
            _money(row.net_pnl, signed=True),
            _money(row.fees),
            _money(row.expectancy, signed=True),
            _money(row.max_drawdown),
            str(int(row.faults)),
            str(row.state),
        ]
        for row in attribution.itertuples()
    ]
    chunks = [rows[i : i + WORKER_ROWS_PER_PAGE] for i in range(0, len(rows), WORKER_ROWS_PER_PAGE)] or [[]]
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        figure = Figure(figsize=A4_PORTRAIT)
        suffix = f" ({number}/{len(chunks)})" if len(chunks) > 1 else ""
        figure.text(0.05, 0.95, f"Per-worker attribution{suffix}", fontsize=14, weight="bold")
        axes = figure.add_axes((0.03, 0.05, 0.94, 0.87))
        axes.axis("off")
        if chunk:
            table = axes.table(
                cellText=chunk, colLabels=header, colWidths=WORKER_COLUMN_WIDTHS, loc="upper center", cellLoc="right"
            )
            table.auto_set_font_size(False)
            table.set_fontsize(8)
            table.scale(1, 1.4)
        else:
            axes.text(0.02, 0.95, "No worker closed a trade in this period.", fontsize=11, va="top")
        note = "Win rate and expectancy are net of fees; max DD is on the cumulative net PnL."
        figure.text(0.05, 0.02, note, fontsize=8)
        pages.append(figure)
    return pages


def _utc(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _money(value: float | None, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return "-"
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    return f"{sign}${abs(value):,.2f}"


def _pct(fraction: float | None) -> str:
    return "-" if fraction is None or pd.isna(fraction) else f"{fraction * 100:.2f}%"
